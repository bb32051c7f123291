//! `/etc/gondwana/gondwana.toml`. Every key is documented in docs/config.md;
//! unknown keys are refused so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use gondwana_core::Boxname;
use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/gondwana/gondwana.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gondwana";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the state lives (the state partition's mount point).
    pub state_dir: Option<PathBuf>,
    /// The name this box asks for at first boot; derived from its id if absent.
    pub boxname: Option<String>,
    #[serde(default)]
    pub wireguard: WireguardConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardConfig {
    /// A file holding an existing private key in base64 (`wg genkey` output).
    pub private_key_file: Option<PathBuf>,
    /// An existing wg-quick config whose `[Interface] PrivateKey` is adopted.
    pub wg_quick_config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// An existing WireGuard key the config asks us to adopt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptSource {
    KeyFile(PathBuf),
    WgQuick(PathBuf),
}

impl Config {
    /// Loads `path`. A missing file is fine only when it is the default path
    /// (a fresh box has no config); a path the user named must exist.
    pub fn load(path: &Path, explicitly_named: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicitly_named => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail,
        };
        if let Some(name) = &self.boxname {
            Boxname::parse(name).map_err(|e| invalid(format!("boxname {name:?}: {e}")))?;
        }
        if self.wireguard.private_key_file.is_some() && self.wireguard.wg_quick_config.is_some() {
            return Err(invalid(
                "wireguard.private_key_file and wireguard.wg_quick_config are exclusive: name one key"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn boxname(&self) -> Option<Boxname> {
        self.boxname.as_deref().and_then(|n| Boxname::parse(n).ok())
    }

    pub fn adopt_source(&self) -> Option<AdoptSource> {
        let wg = &self.wireguard;
        wg.private_key_file
            .clone()
            .map(AdoptSource::KeyFile)
            .or_else(|| wg.wg_quick_config.clone().map(AdoptSource::WgQuick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path, true)
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "state_dir = \"/tmp/s\"\nboxname = \"box-1\"\n[wireguard]\nprivate_key_file = \"/k\"\n",
        )
        .unwrap();
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/tmp/s")));
        assert_eq!(c.boxname().unwrap().as_str(), "box-1");
        assert_eq!(c.adopt_source(), Some(AdoptSource::KeyFile("/k".into())));
    }

    #[test]
    fn refuses_typos_bad_names_and_two_keys() {
        assert!(parse("stat_dir = \"/x\"\n").is_err());
        assert!(parse("boxname = \"Bad_Name\"\n").is_err());
        assert!(
            parse("[wireguard]\nprivate_key_file = \"/a\"\nwg_quick_config = \"/b\"\n").is_err()
        );
    }

    #[test]
    fn missing_default_is_empty_but_missing_named_is_an_error() {
        let missing = Path::new("/nonexistent/gondwana.toml");
        assert!(Config::load(missing, false).is_ok());
        assert!(Config::load(missing, true).is_err());
    }
}

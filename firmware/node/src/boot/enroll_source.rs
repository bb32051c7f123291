//! Where a fresh box finds its enrolment instructions, in this order (the
//! order is `gondwana_core::node_enrol::sources`; this module reads them):
//! 1. each `enroll.search_paths` file (the boot partition's
//!    `gondwana/enroll.toml`, then one under `/run/gondwana/gw-config`);
//! 2. `gondwana/enroll.toml` on a FAT volume labelled `GW_CONFIG` (a USB
//!    stick: the MOCHAbin's eMMC is soldered), mounted read-only just long
//!    enough to read it (see `gw_config`);
//! 3. `gondwana.enroll=<base64url of the TOML>` on the kernel command line.
//!
//! The file names the hub URL, the hub's public key (the pin) and the token.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use gondwana_core::node_enrol::Source;

pub use super::enroll_file::{EnrollPlan, SourceError, parse_toml};
use crate::config::EnrollConfig;

/// The first enrolment instruction found, if any. A source that exists but
/// is malformed is an error (the operator meant something), not skipped.
/// The first instruction in the core machine's order. The daemon looks
/// source by source through the machine; this is the whole order at once.
#[cfg(test)]
pub fn find(config: &EnrollConfig) -> Result<Option<EnrollPlan>, SourceError> {
    for source in gondwana_core::node_enrol::sources(config.search_paths.len()) {
        if let Some(plan) = look(config, source)? {
            return Ok(Some(plan));
        }
    }
    Ok(None)
}

/// Looks at one source; the order is the core enrolment machine's
/// (`gondwana_core::node_enrol::sources`). A search path that cannot be read is absent;
/// one that can is used, and a parse error is then the answer.
pub fn look(config: &EnrollConfig, source: Source) -> Result<Option<EnrollPlan>, SourceError> {
    match source {
        Source::SearchPath(i) => {
            let Some(path) = config.search_paths.get(i) else {
                return Ok(None);
            };
            match std::fs::read_to_string(path) {
                Ok(text) => parse_toml(&text, path.display().to_string()).map(Some),
                Err(_) => Ok(None),
            }
        }
        // A FAT volume labelled `enroll.config_volume_label` (a USB stick),
        // mounted read-only only while its enroll.toml is read.
        Source::ConfigVolume => match super::gw_config::read_enroll(config)? {
            Some(found) => parse_toml(&found.text, found.source).map(Some),
            None => Ok(None),
        },
        Source::KernelCmdline => from_cmdline(&config.kernel_cmdline),
    }
}

fn from_cmdline(path: &Path) -> Result<Option<EnrollPlan>, SourceError> {
    let Ok(cmdline) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let Some(value) = cmdline
        .split_ascii_whitespace()
        .find_map(|arg| arg.strip_prefix("gondwana.enroll="))
    else {
        return Ok(None);
    };
    let source = format!("kernel command line ({})", path.display());
    let bytes = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(value))
        // Not the decoder's message: it quotes a byte of the secret.
        .map_err(|_| SourceError::Invalid {
            source_name: source.clone(),
            detail: "gondwana.enroll= is not base64url".into(),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| SourceError::Invalid {
        source_name: source.clone(),
        detail: "gondwana.enroll= is not UTF-8 TOML".into(),
    })?;
    parse_toml(&text, source).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gondwana_core::token::TokenSecret;

    fn sample() -> String {
        let token = TokenSecret::from_seed([1; 32]).to_text();
        format!(
            "hub_url = \"http://127.0.0.1:8799\"\nhub_key = \"{}\"\ntoken = \"{}\"\n",
            "ab".repeat(32),
            token.as_str()
        )
    }

    #[test]
    fn search_order_files_then_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("boot.toml");
        let second = dir.path().join("gwconfig.toml");
        let cmdline = dir.path().join("cmdline");
        let config = EnrollConfig {
            search_paths: vec![first.clone(), second.clone()],
            kernel_cmdline: cmdline.clone(),
            // A real GW_CONFIG stick on the test machine must not count.
            config_volume_label: String::new(),
            ..EnrollConfig::default()
        };
        assert!(find(&config).unwrap().is_none());
        let encoded = URL_SAFE_NO_PAD.encode(sample());
        std::fs::write(
            &cmdline,
            format!("console=ttyS0 gondwana.enroll={encoded} quiet\n"),
        )
        .unwrap();
        assert!(
            find(&config)
                .unwrap()
                .unwrap()
                .source
                .starts_with("kernel command line")
        );
        std::fs::write(&second, sample()).unwrap();
        assert_eq!(
            find(&config).unwrap().unwrap().source,
            second.display().to_string()
        );
        std::fs::write(&first, sample()).unwrap();
        assert_eq!(
            find(&config).unwrap().unwrap().source,
            first.display().to_string()
        );
    }

    #[test]
    fn malformed_sources_are_errors() {
        assert!(parse_toml("hub_url = 1", "x".into()).is_err());
        let bad_pin = sample().replace(&"ab".repeat(32), "zz");
        assert!(parse_toml(&bad_pin, "x".into()).is_err());
        let https = sample().replace("http://", "ftp://");
        assert!(parse_toml(&https, "x".into()).is_err());
        let extra = format!("{}surprise = 1\n", sample());
        assert!(parse_toml(&extra, "x".into()).is_err());
    }
}

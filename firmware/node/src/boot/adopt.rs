//! Reading an existing WireGuard private key named in the config. When the
//! config names a key, it is that key or an error: never a fresh one.

use gondwana_core::keys::{WireguardSecret, wg_key_from_base64};
use gondwana_core::wg_quick;
use zeroize::Zeroizing;

use crate::config::{AdoptSource, ConfigError};

pub fn read_existing_key(source: &AdoptSource) -> Result<WireguardSecret, ConfigError> {
    let (path, text) = match source {
        AdoptSource::KeyFile(p) | AdoptSource::WgQuick(p) => (
            p,
            Zeroizing::new(
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?,
            ),
        ),
    };
    let invalid = |detail: String| ConfigError::Invalid {
        path: path.clone(),
        detail,
    };
    let key =
        match source {
            AdoptSource::KeyFile(_) => wg_key_from_base64(&text)
                .map_err(|e| invalid(format!("WireGuard key file: {e}")))?,
            AdoptSource::WgQuick(_) => wg_quick::private_key(&text)
                .map_err(|e| invalid(format!("wg-quick config: {e}")))?,
        };
    Ok(WireguardSecret::from_bytes(*key))
}

pub fn describe(source: &AdoptSource) -> String {
    match source {
        AdoptSource::KeyFile(p) => format!("key file {}", p.display()),
        AdoptSource::WgQuick(p) => format!("wg-quick config {}", p.display()),
    }
}

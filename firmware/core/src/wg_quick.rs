//! Reads the private key out of an existing `wg-quick` config, so a box that
//! already has a WireGuard identity keeps it (adoption, never regeneration).

use zeroize::Zeroizing;

use crate::keys::{KeyTextError, wg_key_from_base64};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WgQuickError {
    #[error("no PrivateKey in the [Interface] section")]
    NoPrivateKey,
    #[error("more than one PrivateKey in the [Interface] section")]
    DuplicatePrivateKey,
    #[error("PrivateKey on line {line}: {source}")]
    BadKey { line: usize, source: KeyTextError },
}

/// The `PrivateKey` of the `[Interface]` section. Keys and section names are
/// case-insensitive and `#` starts a comment, as in wg-quick(8).
pub fn private_key(config_text: &str) -> Result<Zeroizing<[u8; 32]>, WgQuickError> {
    let mut in_interface = false;
    let mut found = None;
    for (index, raw_line) in config_text.lines().enumerate() {
        let line = raw_line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_interface = line.eq_ignore_ascii_case("[interface]");
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_interface && key.trim().eq_ignore_ascii_case("privatekey") {
            if found.is_some() {
                return Err(WgQuickError::DuplicatePrivateKey);
            }
            let key = wg_key_from_base64(value.trim()).map_err(|source| WgQuickError::BadKey {
                line: index + 1,
                source,
            })?;
            found = Some(key);
        }
    }
    found.ok_or(WgQuickError::NoPrivateKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "yOD0hF2KAS7TG6cZ5C7pimLRbiV4JL9e9euQLvozyVY=";

    #[test]
    fn finds_the_interface_key_only() {
        let text = format!(
            "# mesh\n[Interface]\nAddress = 10.10.0.2/24\nprivatekey= {KEY} # mine\nListenPort = 51822\n\n\
             [Peer]\nPublicKey = 3Da9URnELgG7k1TOlJdezZRaY1wH37L2eY5PwPWfZzk=\nPrivateKey = AAAA\n"
        );
        let key = private_key(&text).unwrap();
        assert_eq!(crate::keys::wg_key_to_base64(&key), KEY);
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            private_key("[Interface]\nListenPort = 1\n").err(),
            Some(WgQuickError::NoPrivateKey)
        );
        assert_eq!(
            private_key(&format!(
                "[Interface]\nPrivateKey={KEY}\nPrivateKey={KEY}\n"
            ))
            .err(),
            Some(WgQuickError::DuplicatePrivateKey)
        );
        assert!(matches!(
            private_key("[Interface]\nPrivateKey = nope\n"),
            Err(WgQuickError::BadKey { line: 2, .. })
        ));
    }
}

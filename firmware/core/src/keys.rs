//! Key material. Secrets are built from 32-byte seeds that the caller draws
//! from the OS RNG (this crate never touches the RNG), are zeroized on drop,
//! and deliberately have no `Debug`, `Display` or `Serialize`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

pub type PublicKey = [u8; 32];
pub type SignatureBytes = [u8; 64];

/// The node's ed25519 signing key.
pub struct SigningSecret(SigningKey);

impl SigningSecret {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let seed = Zeroizing::new(seed);
        SigningSecret(SigningKey::from_bytes(&seed))
    }

    pub fn public_key(&self) -> PublicKey {
        self.0.verifying_key().to_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> SignatureBytes {
        self.0.sign(message).to_bytes()
    }

    /// The seed, for the state store only.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }
}

/// Checks an ed25519 signature with the strict rules (no malleable or
/// small-order forms), so one message has one accepted signature per key.
pub fn verify_signature(public_key: &PublicKey, message: &[u8], sig: &SignatureBytes) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// The node's X25519 WireGuard key.
pub struct WireguardSecret(x25519_dalek::StaticSecret);

impl WireguardSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        WireguardSecret(x25519_dalek::StaticSecret::from(*bytes))
    }

    pub fn public_key(&self) -> PublicKey {
        x25519_dalek::PublicKey::from(&self.0).to_bytes()
    }

    /// X25519 with `peer`: the 32-byte shared secret, or `None` when it is
    /// all zeros (`peer` is a low-order point, so the result proves nothing
    /// about either secret).
    pub fn shared_secret(&self, peer: &PublicKey) -> Option<Zeroizing<[u8; 32]>> {
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        shared
            .was_contributory()
            .then(|| Zeroizing::new(shared.to_bytes()))
    }

    /// The raw key as stored (and as `wg` shows it in base64). Stored
    /// unclamped, exactly as given, so an adopted key round-trips.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    #[error("key is not valid base64")]
    NotBase64,
    #[error("key must be 32 bytes, found {0}")]
    WrongLength(usize),
    #[error("key must be 64 hexadecimal characters")]
    NotHex,
}

/// WireGuard's key text form: standard base64 of 32 bytes (44 characters).
pub fn wg_key_to_base64(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

pub fn wg_key_from_base64(text: &str) -> Result<Zeroizing<[u8; 32]>, KeyTextError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| KeyTextError::NotBase64)?,
    );
    let len = bytes.len();
    let mut out = Zeroizing::new([0u8; 32]);
    if len != 32 {
        return Err(KeyTextError::WrongLength(len));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

pub fn decode_hex32(text: &str) -> Result<[u8; 32], KeyTextError> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|_| KeyTextError::NotHex)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyTextError::WrongLength(bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let a = SigningSecret::from_seed([1; 32]);
        let b = SigningSecret::from_seed([2; 32]);
        let sig = a.sign(b"hello");
        assert!(verify_signature(&a.public_key(), b"hello", &sig));
        assert!(!verify_signature(&a.public_key(), b"hellO", &sig));
        assert!(!verify_signature(&b.public_key(), b"hello", &sig));
    }

    #[test]
    fn wireguard_key_matches_wg_pubkey() {
        // Reference pair from `wg genkey | tee k | wg pubkey` (wireguard-tools).
        let secret = wg_key_from_base64("yOD0hF2KAS7TG6cZ5C7pimLRbiV4JL9e9euQLvozyVY=").unwrap();
        let wg = WireguardSecret::from_bytes(*secret);
        assert_eq!(
            wg_key_to_base64(&wg.public_key()),
            "3Da9URnELgG7k1TOlJdezZRaY1wH37L2eY5PwPWfZzk="
        );
        assert_eq!(*wg.to_bytes(), *secret);
    }

    #[test]
    fn base64_key_errors() {
        assert_eq!(
            wg_key_from_base64("!!").err(),
            Some(KeyTextError::NotBase64)
        );
        assert_eq!(
            wg_key_from_base64("AAAA").err(),
            Some(KeyTextError::WrongLength(3))
        );
    }
}

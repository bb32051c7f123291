//! Enrolment tokens.
//!
//! A token's secret is a 32-byte seed. From it derive an ed25519 *token key*;
//! the hub stores only `verifier = BLAKE2b-256(tag || token public key)` and
//! the token id (a prefix of the verifier). The node proves it holds the
//! token by signing its enrolment request body with the token key and
//! sending the token's *public* key: the secret never crosses the wire, and
//! a stolen hub database does not let anyone enrol.
//!
//! Text form of the secret: `gwt1-` + 52 lowercase base32 characters.

use data_encoding::BASE32_NOPAD;
use zeroize::Zeroizing;

use crate::envelope::{signed_message, tag};
use crate::hash::{Hash32, blake2b256};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};

pub const TEXT_PREFIX: &str = "gwt1-";
/// Characters of base32 verifier used as the token id (80 bits).
pub const ID_LEN: usize = 16;

pub struct TokenSecret(SigningSecret);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token must start with \"gwt1-\"")]
    BadPrefix,
    #[error("token must be 52 lowercase base32 characters after \"gwt1-\"")]
    BadEncoding,
}

impl TokenSecret {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        TokenSecret(SigningSecret::from_seed(seed))
    }

    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let rest = text
            .trim()
            .strip_prefix(TEXT_PREFIX)
            .ok_or(TokenError::BadPrefix)?;
        if rest.len() != 52 || rest.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(TokenError::BadEncoding);
        }
        let bytes = Zeroizing::new(
            BASE32_NOPAD
                .decode(rest.to_ascii_uppercase().as_bytes())
                .map_err(|_| TokenError::BadEncoding)?,
        );
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::BadEncoding)?;
        Ok(Self::from_seed(seed))
    }

    /// The secret's text form: shown once, at creation, and written into
    /// `enroll.toml`; never stored on the hub.
    pub fn to_text(&self) -> Zeroizing<String> {
        let seed = self.0.seed();
        let encoded = Zeroizing::new(BASE32_NOPAD.encode(&seed[..]).to_ascii_lowercase());
        Zeroizing::new(format!("{TEXT_PREFIX}{}", encoded.as_str()))
    }

    pub fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }

    /// The token proof for an enrolment request body.
    pub fn prove(&self, request_body: &[u8]) -> SignatureBytes {
        self.0
            .sign(&signed_message(tag::ENROL_TOKEN_PROOF, request_body))
    }
}

/// What the hub stores for a token's secret.
pub fn verifier(token_public_key: &PublicKey) -> Hash32 {
    let mut data = tag::TOKEN_VERIFIER.to_vec();
    data.extend_from_slice(token_public_key);
    blake2b256(&data)
}

pub fn token_id(verifier: &Hash32) -> String {
    BASE32_NOPAD.encode(verifier)[..ID_LEN].to_ascii_lowercase()
}

pub fn check_proof(
    token_public_key: &PublicKey,
    request_body: &[u8],
    proof: &SignatureBytes,
) -> bool {
    verify_signature(
        token_public_key,
        &signed_message(tag::ENROL_TOKEN_PROOF, request_body),
        proof,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_proof() {
        let t = TokenSecret::from_seed([5; 32]);
        let text = t.to_text();
        assert!(text.starts_with("gwt1-"));
        assert_eq!(text.len(), 57);
        let back = TokenSecret::parse(&text).unwrap();
        assert_eq!(back.public_key(), t.public_key());
        let proof = t.prove(b"body");
        assert!(check_proof(&t.public_key(), b"body", &proof));
        assert!(!check_proof(&t.public_key(), b"bodY", &proof));
        let v = verifier(&t.public_key());
        assert_eq!(token_id(&v).len(), ID_LEN);
        assert_ne!(v, verifier(&TokenSecret::from_seed([6; 32]).public_key()));
    }

    #[test]
    fn parse_rejects_bad_text() {
        assert!(matches!(
            TokenSecret::parse("abc"),
            Err(TokenError::BadPrefix)
        ));
        assert!(matches!(
            TokenSecret::parse("gwt1-abc"),
            Err(TokenError::BadEncoding)
        ));
        let good = TokenSecret::from_seed([5; 32]).to_text();
        assert!(matches!(
            TokenSecret::parse(&good.to_uppercase().replace("GWT1-", "gwt1-")),
            Err(TokenError::BadEncoding)
        ));
    }
}

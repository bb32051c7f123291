//! A read-only token look-up, separate from the enrolment transaction: the
//! enrolment route uses it to decide whether a request is authenticated
//! (signed by a token key the hub issued) before it remembers its nonce.

use gondwana_core::token;

use super::schema::TOKENS;
use super::{StateStore, StoreError};

impl StateStore {
    /// Whether `token_key` is the public key of a token this hub created
    /// (revoked, spent and expired ones included: the enrolment decides
    /// those).
    pub fn knows_token(&self, token_key: &[u8; 32]) -> Result<bool, StoreError> {
        let id = token::token_id(&token::verifier(token_key));
        self.read()?.open(TOKENS)?.contains(id.as_str())
    }
}

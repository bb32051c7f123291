//! Enrolment tokens: created with a secret returned once (the hub keeps only
//! a verifier), revoked by id, every change audited in its transaction.

use gondwana_core::Boxname;
use gondwana_core::audit::Field;
use gondwana_core::hub_enrol::TokenRecord;
use gondwana_core::token::{self, TokenSecret};

use crate::store::schema::TOKEN_RECORDS;
use crate::store::{StateStore, StoreError, append_audit};

pub struct NewToken {
    pub max_uses: u32,
    pub ttl_secs: Option<u64>,
    pub boxname: Option<Boxname>,
    pub tags: Vec<String>,
    pub replace: bool,
}

/// Creates a token; the secret is returned once and stored nowhere.
pub fn create_token(
    store: &StateStore,
    seed: [u8; 32],
    spec: NewToken,
    now: u64,
) -> Result<(TokenSecret, TokenRecord), StoreError> {
    let secret = TokenSecret::from_seed(seed);
    let verifier = token::verifier(&secret.public_key());
    let record = TokenRecord {
        id: token::token_id(&verifier),
        verifier,
        max_uses: spec.max_uses,
        uses: 0,
        created_unix: now,
        expires_unix: spec.ttl_secs.map(|t| now.saturating_add(t)),
        boxname: spec.boxname.map(|b| b.to_string()),
        tags: spec.tags,
        revoked: false,
        replace: spec.replace,
    };
    let txn = store.write()?;
    txn.records(TOKEN_RECORDS)?.put(&record.id, &record)?;
    let mut fields = vec![
        Field::text("token", &record.id),
        Field::uint("max_uses", record.max_uses.into()),
    ];
    // No `expires` field: the token never expires.
    fields.extend(record.expires_unix.map(|t| Field::time("expires", t)));
    append_audit(&txn, "token.create", &fields, now)?;
    store.commit(txn)?;
    Ok((secret, record))
}

/// Marks a token revoked; false if there is no such token.
pub fn revoke_token(store: &StateStore, id: &str, now: u64) -> Result<bool, StoreError> {
    let txn = store.write()?;
    {
        let mut tokens = txn.records(TOKEN_RECORDS)?;
        let Some(mut record) = tokens.get(id)? else {
            return Ok(false);
        };
        record.revoked = true;
        tokens.put(id, &record)?;
    }
    append_audit(&txn, "token.revoke", &[Field::text("token", id)], now)?;
    store.commit(txn)?;
    Ok(true)
}

impl StateStore {
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read()?.records(TOKEN_RECORDS)?.all()
    }
}

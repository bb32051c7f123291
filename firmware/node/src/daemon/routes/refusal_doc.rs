//! The refusal contract: every `Refusal` answers 4xx (a store failure 500),
//! and docs/protocol.md's "Refusals" table lists every code the enrolment
//! and grant endpoints answer, with the status the code gives it.

use std::collections::BTreeMap;

use http::StatusCode;

use super::{refusal_error, refusal_status};
use crate::api::ApiError;
use crate::store::registry::Refusal;

const PROTOCOL_MD: &str = include_str!("../../../../../docs/protocol.md");

/// One of each variant. The match has no wildcard: a new variant does not
/// compile until it is listed here, and so checked against the doc.
fn every_refusal() -> Vec<Refusal> {
    let all = vec![
        Refusal::UnknownNonce,
        Refusal::UnknownToken,
        Refusal::TokenExpired,
        Refusal::TokenRevoked,
        Refusal::TokenExhausted,
        Refusal::NodeRevoked("gw:x".into()),
        Refusal::BoxnameTaken("box-1".into()),
        Refusal::SubnetExhausted("no free address".into()),
        Refusal::StaleIdentity("shorter log".into()),
        Refusal::UnknownNode("gw:x".into()),
        Refusal::WireguardKeyTaken("held by gw:y".into()),
        Refusal::BadWireguardProof("wrong".into()),
        Refusal::Store("disk".into()),
    ];
    for r in &all {
        match r {
            Refusal::UnknownNonce
            | Refusal::UnknownToken
            | Refusal::TokenExpired
            | Refusal::TokenRevoked
            | Refusal::TokenExhausted
            | Refusal::NodeRevoked(_)
            | Refusal::BoxnameTaken(_)
            | Refusal::SubnetExhausted(_)
            | Refusal::StaleIdentity(_)
            | Refusal::UnknownNode(_)
            | Refusal::WireguardKeyTaken(_)
            | Refusal::BadWireguardProof(_)
            | Refusal::Store(_) => {}
        }
    }
    all
}

/// The codes the routes answer besides refusals (`ApiError` constructors
/// and the grant route's own), as the handlers produce them.
fn other_errors() -> Vec<ApiError> {
    vec![
        ApiError::bad_request(""),
        ApiError::request_timeout(""),
        ApiError::payload_too_large(""),
        ApiError::rate_limited(""),
        ApiError::forbidden(""),
        ApiError::not_found(""),
        ApiError::internal(""),
        // daemon/grants.rs
        ApiError::new(StatusCode::FORBIDDEN, "bad_signature", ""),
        ApiError::new(StatusCode::FORBIDDEN, "unknown_nonce", ""),
        // daemon/revocation.rs
        ApiError::new(StatusCode::NOT_FOUND, "not_revoked", ""),
    ]
}

/// code → status from the table under "## Refusals".
fn doc_table() -> BTreeMap<String, u16> {
    let section = PROTOCOL_MD
        .split("\n## Refusals\n")
        .nth(1)
        .expect("docs/protocol.md has a Refusals section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let code = cells[1].trim_matches('`').to_string();
        let status: u16 = cells[2]
            .parse()
            .unwrap_or_else(|_| panic!("status of {code}: {:?}", cells[2]));
        assert!(table.insert(code.clone(), status).is_none(), "{code} twice");
    }
    table
}

#[test]
fn every_refusal_is_4xx_except_a_store_failure() {
    for r in every_refusal() {
        let status = refusal_status(&r);
        let answered = refusal_error(r.clone());
        assert_eq!(answered.status, status, "{r:?}");
        if matches!(r, Refusal::Store(_)) {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(answered.error, "internal");
        } else {
            assert!(status.is_client_error(), "{r:?} answers {status}");
            assert_eq!(answered.error, r.code());
        }
    }
    assert_eq!(
        refusal_status(&Refusal::SubnetExhausted(String::new())),
        StatusCode::CONFLICT
    );
}

#[test]
fn the_protocol_doc_lists_every_code_with_its_status() {
    let table = doc_table();
    let mut answered: BTreeMap<String, u16> = BTreeMap::new();
    for r in every_refusal() {
        let e = refusal_error(r);
        answered.insert(e.error.to_string(), e.status.as_u16());
    }
    for e in other_errors() {
        if let Some(before) = answered.insert(e.error.to_string(), e.status.as_u16()) {
            assert_eq!(before, e.status.as_u16(), "{} has two statuses", e.error);
        }
    }
    for (code, status) in &answered {
        assert_eq!(
            table.get(code),
            Some(status),
            "docs/protocol.md Refusals: `{code}` must be listed with {status}"
        );
    }
    for code in table.keys() {
        assert!(
            answered.contains_key(code),
            "docs/protocol.md Refusals lists `{code}`, which no route answers"
        );
    }
}

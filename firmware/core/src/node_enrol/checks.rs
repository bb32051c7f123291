//! The checks an attempt makes on the hub's answers: the pin, the request
//! a nonce leads to, grant acceptance.

use crate::enrol::{self, EnrolRequest};
use crate::hash::to_hex;
use crate::identity_log::IdentityState;
use crate::keys::{PublicKey, decode_hex32};
use crate::mesh;

use super::{Accepted, GrantAnswer, Instruction, NonceAnswer};

/// The pin check and the request the nonce answer leads to.
pub(super) fn request_for(
    instruction: &Instruction,
    answer: &NonceAnswer,
    identity: &IdentityState,
) -> Result<(EnrolRequest, PublicKey), String> {
    let pin = to_hex(&instruction.hub_key);
    // A hub that names another key than our pin would only hand us a grant
    // we must refuse, after spending a use of our token: stop here.
    if let Some(key) = &answer.hub_key
        && *key != pin
    {
        return Err(format!(
            "the hub at {} says its key is {key}, but the pinned hub key is {pin}: not submitting",
            instruction.hub_url
        ));
    }
    let nonce = answer
        .nonce
        .as_deref()
        .ok_or("hub's nonce answer has no nonce")?;
    let hub_nonce = decode_hex32(nonce).map_err(|e| e.to_string())?;
    // Unauthenticated like `hub_key`: a substituted key only makes the
    // proof of our WireGuard key fail at the hub.
    let hub_wireguard_key = answer
        .hub_wireguard_key
        .as_deref()
        .ok_or("hub's nonce answer has no hub_wireguard_key")
        .map(decode_hex32)?
        .map_err(|e| e.to_string())?;
    let request = EnrolRequest {
        version: enrol::VERSION,
        hub_nonce,
        wireguard_key: identity.wireguard_key,
        boxname: instruction
            .boxname
            .clone()
            .unwrap_or_else(|| identity.boxname.clone()),
        token_key: instruction.token_key,
    };
    Ok((request, hub_wireguard_key))
}

/// Grant acceptance: signed under the pin, answering our request, and a
/// mesh that does not overlap this host's networks (or a reserved one),
/// which would take traffic from them.
pub(super) fn accept(
    instruction: &Instruction,
    request: &EnrolRequest,
    identity: &IdentityState,
    answer: GrantAnswer,
) -> Result<Accepted, String> {
    let response = enrol::decode_response(&answer.body).map_err(|e| e.to_string())?;
    let grant = enrol::open_grant(&response.grant, &instruction.hub_key, request, identity)
        .map_err(|e| e.to_string())?;
    mesh::check_subnet(
        &grant.subnet,
        &answer.reserved_subnets,
        &answer.host_subnets,
    )
    .map_err(|e| format!("{e}: refusing to join this mesh"))?;
    Ok(Accepted {
        grant,
        grant_raw: response.grant.to_vec(),
        first_page: response.directory,
        hub_url: instruction.hub_url.clone(),
        hub_key: instruction.hub_key,
        source: instruction.source.clone(),
    })
}

//! Fixed keys and messages shared by the fuzz targets and the seed-corpus
//! generator (`examples/seed_corpus.rs`), so the seeds are valid for exactly
//! the request, identity and keys the targets check against.

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use gondwana_core::Boxname;
use gondwana_core::directory;
use gondwana_core::enrol::{self, EnrolGrant, EnrolRequest};
use gondwana_core::envelope::{self, Envelope, MAX_ENVELOPE_BODY, signed_message};
use gondwana_core::identity_log::{IdentityState, build};
use gondwana_core::keys::{PublicKey, SigningSecret, WireguardSecret};
use gondwana_core::token::TokenSecret;

/// The node whose enrolment the targets check: key seeds as in
/// `firmware/core/src/enrol/tests.rs`.
pub struct Fixture {
    pub node_signing: SigningSecret,
    /// The node's WireGuard secret (its proof of possession).
    pub node_wireguard: WireguardSecret,
    /// The node's identity log: its genesis only.
    pub node_log: Vec<Vec<u8>>,
    pub node_state: IdentityState,
    pub token: TokenSecret,
    /// The request the node sent (what `open_grant` checks a grant against).
    pub request: EnrolRequest,
    /// The hub: the pinned key of `open_grant` and the directory authority.
    pub hub: SigningSecret,
    pub hub_key: PublicKey,
    /// The hub's WireGuard secret: what `verify_submission` checks the
    /// node's proof with.
    pub hub_wireguard: WireguardSecret,
    pub hub_state: IdentityState,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let node_signing = SigningSecret::from_seed([1; 32]);
        let node_wireguard = WireguardSecret::from_bytes([1 ^ 0x55; 32]);
        let (genesis, node_state) = build::genesis(
            &node_signing,
            node_wireguard.public_key(),
            Boxname::parse("n").expect("boxname"),
        )
        .expect("node genesis");
        let token = TokenSecret::from_seed([9; 32]);
        let request = EnrolRequest {
            version: enrol::VERSION,
            hub_nonce: [7; 32],
            wireguard_key: node_state.wireguard_key,
            boxname: Boxname::parse("box-1").expect("boxname"),
            token_key: token.public_key(),
        };
        let hub = SigningSecret::from_seed([200; 32]);
        let hub_wireguard = WireguardSecret::from_bytes([200 ^ 0x55; 32]);
        let (_, hub_state) = build::genesis(
            &hub,
            hub_wireguard.public_key(),
            Boxname::parse("hub").expect("boxname"),
        )
        .expect("hub genesis");
        Fixture {
            node_signing,
            node_wireguard,
            node_log: vec![genesis],
            node_state,
            token,
            request,
            hub_key: hub.public_key(),
            hub,
            hub_wireguard,
            hub_state,
        }
    })
}

/// A grant `open_grant` accepts for the fixture's request.
pub fn valid_grant() -> EnrolGrant {
    let f = fixture();
    EnrolGrant {
        version: enrol::VERSION,
        hub_nonce: f.request.hub_nonce,
        node_id: f.node_state.node_id.clone(),
        node_signing_key: f.node_state.signing_key,
        node_wireguard_key: f.node_state.wireguard_key,
        boxname: f.request.boxname.clone(),
        mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
        subnet: "10.10.0.0/24".parse().expect("subnet"),
        hub_node_id: f.hub_state.node_id.clone(),
        hub_mesh_ip: Ipv4Addr::new(10, 10, 0, 1),
        hub_wireguard_key: f.hub_state.wireguard_key,
        hub_endpoint: "hub.example:51822".try_into().expect("endpoint"),
        wireguard_port: 51822,
        api_port: 8798,
        directory_len: 1,
        directory_tip: [2; 32],
    }
}

/// Directory records covering every variant.
pub fn directory_records() -> Vec<directory::Record> {
    let f = fixture();
    vec![
        directory::Record::Node {
            node_id: f.node_state.node_id.clone(),
            boxname: f.request.boxname.clone(),
            signing_key: f.node_state.signing_key,
            wireguard_key: f.node_state.wireguard_key,
            mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
            endpoint_hint: Some("198.51.100.7:51822".try_into().expect("hint")),
        },
        directory::Record::Service {
            node_id: f.node_state.node_id.clone(),
            name: "ssh".try_into().expect("service"),
            port: 22,
        },
        directory::Record::Lending(
            lending_offer()
                .as_slice()
                .try_into()
                .expect("offer fits an entry"),
        ),
        directory::Record::Revoke {
            node_id: f.node_state.node_id.clone(),
            reason: "stolen".try_into().expect("reason"),
        },
    ]
}

/// Wraps arbitrary `body` bytes in an envelope that `signer` really signed
/// under `domain_tag`, so a target can get past the signature check and
/// reach the body decoder and the checks after it. `None` if the body is
/// larger than an envelope allows.
pub fn sign_raw_body(domain_tag: &[u8], body: &[u8], signer: &SigningSecret) -> Option<Vec<u8>> {
    if body.len() > MAX_ENVELOPE_BODY {
        return None;
    }
    let env = Envelope {
        body: body.try_into().ok()?,
        signer: signer.public_key(),
        sig: signer.sign(&signed_message(domain_tag, body)),
    };
    Some(envelope::encode(&env))
}

/// The directory the candidate targets check against: the fixture's node
/// (10.10.0.2) and hub, both active.
pub fn candidate_view() -> directory::View {
    let f = fixture();
    let mut view = directory::View::default();
    for (key, state, ip) in [
        (&f.node_signing, &f.node_state, Ipv4Addr::new(10, 10, 0, 2)),
        (&f.hub, &f.hub_state, Ipv4Addr::new(10, 10, 0, 1)),
    ] {
        view.apply(&directory::Record::Node {
            node_id: gondwana_core::NodeId::from_genesis_key(&key.public_key()),
            boxname: state.boxname.clone(),
            signing_key: key.public_key(),
            wireguard_key: state.wireguard_key,
            mesh_ip: ip,
            endpoint_hint: None,
        });
    }
    view
}

/// A report of the fixture's node, signed by it.
pub fn candidate_report(seq: u64) -> Vec<u8> {
    use gondwana_core::candidates::{self, ReportBody};
    let f = fixture();
    let body = ReportBody {
        version: candidates::VERSION,
        node_id: gondwana_core::NodeId::from_genesis_key(&f.node_signing.public_key()),
        seq,
        listen_port: 51822,
        lan: ["192.168.1.2:51822".parse().expect("addr")]
            .into_iter()
            .collect(),
        want_relay: [gondwana_core::NodeId::from_genesis_key(&f.hub_key)]
            .into_iter()
            .collect(),
        relay: Some(candidates::RelayOffer {
            first: 56000,
            last: 56999,
        }),
    };
    candidates::seal_report(&body, &f.node_signing).expect("report")
}

/// The lending targets' provider: the hub of [`candidate_view`], offering
/// `web` (auto, TCP 8080); the consumer is the fixture's node (10.10.0.2).
pub fn lending_view() -> directory::View {
    let mut view = candidate_view();
    let record = directory::Record::Lending(
        lending_offer()
            .as_slice()
            .try_into()
            .expect("offer fits an entry"),
    );
    view.apply(&record);
    view
}

/// The hub's `web` offer, sealed.
pub fn lending_offer() -> Vec<u8> {
    use gondwana_core::lending::{self, Approval, Offer, Protocol, Publication, ServiceName};
    let f = fixture();
    let offer = Offer {
        version: lending::VERSION,
        provider: gondwana_core::NodeId::from_genesis_key(&f.hub_key),
        name: ServiceName::parse("web").expect("name"),
        serial: 1,
        protocol: Protocol::Tcp,
        port: 8080,
        approval: Approval::Auto,
        description: Some("the wiki".try_into().expect("description")),
        max_duration_secs: Some(3600),
    };
    lending::seal_publication(&Publication::Offer(offer), &f.hub).expect("offer")
}

/// The fixture node's subscription to the hub's `web`, sealed.
pub fn lending_subscription(counter: u64) -> Vec<u8> {
    use gondwana_core::lending::{self, OfferRef, Request, ServiceName, Subscription};
    let f = fixture();
    let request = Request::Subscribe(Subscription {
        version: lending::VERSION,
        offer: OfferRef {
            provider: gondwana_core::NodeId::from_genesis_key(&f.hub_key),
            name: ServiceName::parse("web").expect("name"),
            serial: 1,
        },
        consumer: gondwana_core::NodeId::from_genesis_key(&f.node_signing.public_key()),
        consumer_ip: Ipv4Addr::new(10, 10, 0, 2),
        duration_secs: 600,
        counter,
    });
    lending::seal_request(&request, &f.node_signing).expect("subscription")
}

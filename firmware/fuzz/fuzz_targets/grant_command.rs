//! `grant::open_command` against a fixed pinned hub key and mesh subnet:
//! first on the input as a whole envelope, then on the input as a command
//! body the pinned hub really signed (so the checks after the signature are
//! reached too). Whatever is accepted names one host of the subnet and a
//! real port, and its body is canonical.
#![no_main]

use gondwana_core::envelope::{self, tag};
use gondwana_core::grant::{GrantCommand, open_command};
use gondwana_core::mesh::Ipv4Net;
use gondwana_fuzz::{fixture, sign_raw_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let subnet: Ipv4Net = "10.10.0.0/24".parse().expect("subnet");
    let check = |ip: std::net::Ipv4Addr, port: u16| {
        assert!(subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast());
        assert_ne!(port, 0);
    };
    if let Ok(v) = open_command(data, &f.hub_key, &subnet) {
        check(v.grant.ip, v.grant.port);
    }
    if let Some(sealed) = sign_raw_body(tag::GRANT_COMMAND, data, &f.hub)
        && let Ok(v) = open_command(&sealed, &f.hub_key, &subnet)
    {
        check(v.grant.ip, v.grant.port);
        let body: GrantCommand = envelope::decode_canonical(data, envelope::MAX_ENVELOPE_BODY)
            .expect("accepted body decodes");
        assert_eq!(
            envelope::encode(&body),
            data,
            "accepted body is not canonical"
        );
    }
});

//! rtnetlink in a namespace of our own: idempotent addresses and routes.

use gondwana_core::InterfaceName;

use super::link::Links;
use super::testns::NetNs;

fn name(s: &str) -> InterfaceName {
    InterfaceName::parse(s).unwrap()
}

#[test]
fn addresses_and_routes_are_idempotent_and_replaced_when_different() {
    let ns = NetNs::new();
    // This host has no dummy module; a veth pair will do.
    ns.exec(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ns.run(|| async {
        let links = Links::new().unwrap();
        assert!(links.link_index(&name("d0")).await.unwrap().is_some());
        assert_eq!(links.link_index(&name("nope0")).await.unwrap(), None);
        let a = "10.61.0.5/24".parse().unwrap();
        links.ensure_address(&name("d0"), a).await.unwrap();
        links.ensure_address(&name("d0"), a).await.unwrap();
        assert_eq!(links.ipv4_addresses_of(&name("d0")).await.unwrap(), vec![a]);
        let b = "10.62.0.7/16".parse().unwrap();
        links.ensure_address(&name("d0"), b).await.unwrap();
        assert_eq!(links.ipv4_addresses_of(&name("d0")).await.unwrap(), vec![b]);
        links.set_up(&name("d0")).await.unwrap();
        assert!(links.link(&name("d0")).await.unwrap().unwrap().up);
        let dst = "10.88.0.0/16".parse().unwrap();
        links.ensure_route(dst, &name("d0")).await.unwrap();
        links.ensure_route(dst, &name("d0")).await.unwrap();
        assert_eq!(
            links
                .link(&name("d0"))
                .await
                .unwrap()
                .unwrap()
                .kind
                .as_deref(),
            Some("veth")
        );
        let err = links.set_up(&name("nope0")).await.unwrap_err();
        assert!(err.to_string().contains("nope0"), "{err}");
    });
    let addrs = String::from_utf8(
        ns.exec(&["ip", "-4", "-o", "addr", "show", "dev", "d0"])
            .stdout,
    )
    .unwrap();
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    assert!(addrs.contains("10.62.0.7/16"), "{addrs}");
    let routes =
        String::from_utf8(ns.exec(&["ip", "route", "show", "10.88.0.0/16"]).stdout).unwrap();
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.contains("dev d0"), "{routes}");
    ns.run(|| async {
        let links = Links::new().unwrap();
        links.delete_link(&name("d0")).await.unwrap();
        links.delete_link(&name("d0")).await.unwrap();
        assert_eq!(links.link_index(&name("d0")).await.unwrap(), None);
    });
}

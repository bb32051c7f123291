//! Adopting an existing WireGuard key at first boot: the configured key is
//! used or firstboot fails; it is never silently replaced by a fresh one.

mod harness;

use std::fs;
use std::path::Path;

use harness::offline::*;

fn key_file_config(path: &Path) -> String {
    format!(
        "[wireguard]\nprivate_key_file = {:?}\n",
        path.to_str().unwrap()
    )
}

fn wg_quick_config(path: &Path) -> String {
    format!(
        "[wireguard]\nwg_quick_config = {:?}\n",
        path.to_str().unwrap()
    )
}

fn wg_quick_text(private: &str) -> String {
    format!(
        "# written by hand, before gondwana\n\
         [Interface]\n\
         Address = 10.44.0.2/24\n\
         PrivateKey = {private}\n\
         ListenPort = 51820\n\
         \n\
         [Peer]\n\
         PublicKey = {KNOWN_WG_PUBLIC}\n\
         AllowedIPs = 10.44.0.0/24\n\
         Endpoint = hub.example.invalid:51820\n"
    )
}

/// Checks a node provisioned by adopting `private`/`public` from `source`.
fn assert_adopted(
    node: &Node,
    first: &serde_json::Value,
    private: &str,
    public: &str,
    source: &str,
) {
    assert_eq!(first["provisioned_now"], true);
    assert_eq!(first["wireguard_public_key"], public);
    let key_source = first["wireguard_key_source"].as_str().unwrap();
    assert!(
        key_source.starts_with("adopted from ") && key_source.contains(source),
        "wireguard_key_source {key_source:?} should name {source}"
    );
    assert_eq!(node.show()["wireguard_public_key"], public);
    node.run(&["identity", "verify"]).ok();

    // Stored exactly as given (unclamped), so the key round-trips.
    let (_, stored) = node.secrets();
    assert_eq!(stored, base64_decode(private));

    let audit = node.run(&["audit", "show", "--json"]).ok().json();
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["identity.genesis", "identity.adopt-wireguard"]);
    assert!(
        audit[1]["detail"].as_str().unwrap().contains(source),
        "{audit}"
    );
    node.run(&["audit", "verify"]).ok();
}

#[test]
fn firstboot_adopts_a_private_key_file() {
    let (private, public) = wg_keypair();
    let node = Node::new();
    let key = node.path("wg.key");
    fs::write(&key, format!("{private}\n")).unwrap();
    node.set_config(&key_file_config(&key));

    let first = node.firstboot();
    let source = format!("key file {}", key.display());
    assert_adopted(&node, &first, &private, &public, &source);

    let human = Node::new();
    human.set_config(&key_file_config(&key));
    let run = human.run(&["firstboot"]);
    run.ok();
    assert!(
        run.stdout()
            .contains(&format!("wireguard key adopted from {source}")),
        "{}",
        run.describe()
    );
    assert!(run.stdout().contains(&public));
}

#[test]
fn firstboot_adopts_the_known_reference_key() {
    let node = Node::new();
    let key = node.path("wg.key");
    fs::write(&key, KNOWN_WG_PRIVATE).unwrap();
    node.set_config(&key_file_config(&key));
    let first = node.firstboot();
    assert_adopted(
        &node,
        &first,
        KNOWN_WG_PRIVATE,
        KNOWN_WG_PUBLIC,
        &format!("key file {}", key.display()),
    );
}

#[test]
fn firstboot_adopts_the_key_of_a_wg_quick_config() {
    let (private, public) = wg_keypair();
    let node = Node::new();
    let conf = node.path("wg0.conf");
    fs::write(&conf, wg_quick_text(&private)).unwrap();
    node.set_config(&wg_quick_config(&conf));

    let first = node.firstboot();
    assert_adopted(
        &node,
        &first,
        &private,
        &public,
        &format!("wg-quick config {}", conf.display()),
    );
}

#[test]
fn an_unusable_configured_key_fails_firstboot_without_creating_an_identity() {
    let (private, _) = wg_keypair();
    let short = base64(&[7u8; 31], B64_STANDARD, true);
    let cases: Vec<(&str, Option<String>, bool)> = vec![
        // (name, file contents or None for a missing file, wg-quick?)
        ("missing key file", None, false),
        ("missing wg-quick config", None, true),
        ("empty key file", Some(String::new()), false),
        ("key file not base64", Some("not a key!\n".into()), false),
        ("key file with 31 bytes", Some(short.clone()), false),
        (
            "key file with two keys",
            Some(format!("{private}\n{private}\n")),
            false,
        ),
        (
            "wg-quick config without PrivateKey",
            Some("[Interface]\nListenPort = 51820\n".into()),
            true,
        ),
        (
            "wg-quick config with a bad PrivateKey",
            Some(format!("[Interface]\nPrivateKey = {short}\n")),
            true,
        ),
        (
            "wg-quick config with the key only in [Peer]",
            Some(format!("[Peer]\nPrivateKey = {private}\n")),
            true,
        ),
    ];
    for (name, contents, wg_quick) in cases {
        let node = Node::new();
        let file = node.path("configured-key");
        if let Some(text) = &contents {
            fs::write(&file, text).unwrap();
        }
        node.set_config(&if wg_quick {
            wg_quick_config(&file)
        } else {
            key_file_config(&file)
        });
        let run = node.run(&["firstboot", "--json"]);
        assert_eq!(
            run.code,
            Some(EXIT_CONFIG),
            "{name}: expected exit 7\n{}",
            run.describe()
        );
        assert!(
            run.stderr().contains(file.to_str().unwrap()),
            "{name}: the error should name the file\n{}",
            run.describe()
        );
        assert!(run.stdout.is_empty(), "{name}: {}", run.describe());
        let show = node.run(&["identity", "show"]);
        assert_eq!(
            show.code,
            Some(EXIT_NO_IDENTITY),
            "{name}: an identity exists after a failed adoption\n{}",
            show.describe()
        );
        // A retry with the key fixed adopts it: nothing was half-made.
        if !wg_quick {
            fs::write(&file, KNOWN_WG_PRIVATE).unwrap();
            let v = node.firstboot();
            assert_eq!(v["wireguard_public_key"], KNOWN_WG_PUBLIC, "{name}");
        }
    }
}

#[test]
fn naming_both_a_key_file_and_a_wg_quick_config_is_a_config_error() {
    let node = Node::new();
    let key = node.path("wg.key");
    let conf = node.path("wg0.conf");
    fs::write(&key, KNOWN_WG_PRIVATE).unwrap();
    fs::write(&conf, wg_quick_text(KNOWN_WG_PRIVATE)).unwrap();
    node.set_config(&format!(
        "[wireguard]\nprivate_key_file = {:?}\nwg_quick_config = {:?}\n",
        key.to_str().unwrap(),
        conf.to_str().unwrap()
    ));
    node.run(&["firstboot"])
        .expect_code(EXIT_CONFIG)
        .stderr_contains("exclusive");
    assert!(!node.state.exists());
}

#[test]
fn a_different_configured_key_after_provisioning_only_warns() {
    let node = Node::new();
    let first = node.firstboot(); // generated key, no config
    let stored_before = node.stored_identity();

    let (private, public) = wg_keypair();
    let key = node.path("wg.key");
    fs::write(&key, &private).unwrap();
    node.set_config(&key_file_config(&key));
    let run = node.run(&["firstboot", "--json"]);
    run.ok();
    let v = run.json();
    assert_eq!(v["provisioned_now"], false);
    assert_eq!(v["wireguard_key_source"], "existing");
    assert_eq!(v["wireguard_public_key"], first["wireguard_public_key"]);
    assert_ne!(v["wireguard_public_key"], public.as_str());
    let stderr = run.stderr();
    assert!(
        stderr.contains("warning") && stderr.contains(key.to_str().unwrap()),
        "{}",
        run.describe()
    );
    assert!(stderr.contains("identity rotate --wireguard"), "{stderr}");
    assert!(node.stored_identity() == stored_before, "identity changed");

    // Same for a wg-quick config naming yet another key.
    let conf = node.path("wg0.conf");
    fs::write(&conf, wg_quick_text(KNOWN_WG_PRIVATE)).unwrap();
    node.set_config(&wg_quick_config(&conf));
    let run = node.run(&["firstboot"]);
    run.ok().stderr_contains("warning");
    assert!(node.stored_identity() == stored_before, "identity changed");
    assert_eq!(
        node.show()["wireguard_public_key"],
        first["wireguard_public_key"]
    );
}

#[test]
fn the_adopted_key_configured_again_gives_no_warning() {
    let node = Node::new();
    let key = node.path("wg.key");
    fs::write(&key, KNOWN_WG_PRIVATE).unwrap();
    node.set_config(&key_file_config(&key));
    node.firstboot();
    let run = node.run(&["firstboot", "--json"]);
    run.ok();
    assert_eq!(run.json()["provisioned_now"], false);
    assert!(
        !run.stderr().contains("warning"),
        "unexpected warning\n{}",
        run.describe()
    );
}

//! Private keys never leave the state file: not on stdout, not on stderr,
//! not in an exported file, in any common spelling.

mod harness;

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};

use harness::offline::*;

/// Everything a set of runs produced, labelled.
#[derive(Default)]
struct Transcript(Vec<(String, Vec<u8>)>);

impl Transcript {
    fn record(&mut self, run: &Run) {
        self.0
            .push((format!("stdout of `{}`", run.what), run.stdout.clone()));
        self.0
            .push((format!("stderr of `{}`", run.what), run.stderr.clone()));
    }

    /// Runs `args` on `node`, asserting the exit code, and records it.
    fn run(&mut self, node: &Node, args: &[&str], code: i32) -> Run {
        let run = node.run(args);
        run.expect_code(code);
        self.record(&run);
        run
    }

    fn file(&mut self, label: &str, bytes: Vec<u8>) {
        self.0.push((label.to_string(), bytes));
    }

    fn assert_free_of(&self, secrets: &[(String, Vec<u8>)]) {
        for (what, bytes) in &self.0 {
            for (name, secret) in secrets {
                assert_no_secret(bytes, secret, what, name);
            }
        }
    }

    fn all_text(&self) -> String {
        self.0
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn remember_secrets(node: &Node, when: &str, secrets: &mut Vec<(String, Vec<u8>)>) {
    let (signing, wireguard) = node.secrets();
    secrets.push((format!("signing seed ({when})"), signing));
    secrets.push((format!("wireguard private key ({when})"), wireguard));
}

/// Runs every command against a provisioned `node`, twice rotating each key,
/// and checks no secret (old or new) shows up anywhere.
fn exercise_every_command(node: &Node, firstboot_output: &Run) {
    let mut t = Transcript::default();
    t.record(firstboot_output);
    let mut secrets = Vec::new();
    remember_secrets(node, "as provisioned", &mut secrets);

    let export = node.path("export.bin");
    let export_arg = export.to_str().unwrap().to_string();
    let garbage = node.path("garbage.bin");
    fs::write(&garbage, b"definitely not an identity log").unwrap();
    let garbage_arg = garbage.to_str().unwrap().to_string();

    for round in [
        "before rotation",
        "after wireguard rotation",
        "after signing rotation",
    ] {
        t.run(node, &["firstboot"], EXIT_OK);
        t.run(node, &["firstboot", "--json"], EXIT_OK);
        let show = t.run(node, &["identity", "show"], EXIT_OK);
        let show_json = t.run(node, &["identity", "show", "--json"], EXIT_OK);
        t.run(node, &["identity", "verify"], EXIT_OK);
        t.run(node, &["identity", "verify", "--json"], EXIT_OK);
        t.run(node, &["identity", "export", "--out", &export_arg], EXIT_OK);
        t.file(
            &format!("exported file ({round})"),
            fs::read(&export).unwrap(),
        );
        // Export to a pipe.
        t.run(node, &["identity", "export"], EXIT_OK);
        t.run(
            node,
            &["identity", "verify", "--file", &export_arg, "--json"],
            EXIT_OK,
        );
        t.run(
            node,
            &["identity", "verify", "--file", &garbage_arg],
            EXIT_VERIFY_FAILED,
        );
        t.run(node, &["identity", "rotate"], EXIT_USAGE);
        t.run(node, &["audit", "show"], EXIT_OK);
        t.run(node, &["audit", "show", "--json"], EXIT_OK);
        t.run(node, &["audit", "verify"], EXIT_OK);
        t.run(node, &["audit", "verify", "--json"], EXIT_OK);
        t.run(node, &["version"], EXIT_OK);
        t.run(node, &["version", "--json"], EXIT_OK);
        t.file(
            &format!("lock file ({round})"),
            fs::read(node.lock()).unwrap(),
        );

        // Sanity: the check can see keys. The public halves are printed.
        let v = show_json.json();
        let signing_pub = v["signing_public_key"].as_str().unwrap();
        let wg_pub = v["wireguard_public_key"].as_str().unwrap();
        assert!(show.stdout().contains(signing_pub), "{}", show.describe());
        assert!(show.stdout().contains(wg_pub), "{}", show.describe());
        assert!(show_json.stdout().contains(signing_pub));

        let rotate = match round {
            "before rotation" => "--wireguard",
            "after wireguard rotation" => "--signing",
            _ => continue,
        };
        t.run(node, &["identity", "rotate", rotate], EXIT_OK);
        remember_secrets(node, &format!("after rotate {rotate}"), &mut secrets);
    }

    // Each rotation really produced new secrets (otherwise the later
    // rounds would check nothing new).
    let distinct: std::collections::BTreeSet<&Vec<u8>> = secrets.iter().map(|(_, s)| s).collect();
    assert_eq!(
        distinct.len(),
        4,
        "expected 2 signing + 2 wireguard secrets"
    );

    // The public keys do appear, spelled as the leak check spells things:
    // proof that the check would see a key if one were printed.
    let text = t.all_text();
    let v = node.show();
    let signing_pub = v["signing_public_key"].as_str().unwrap();
    assert!(text.contains(signing_pub));
    let wg_pub = base64_decode(v["wireguard_public_key"].as_str().unwrap());
    assert!(
        secret_spellings(&wg_pub)
            .iter()
            .any(|form| text.contains(form)),
        "the wireguard public key should be visible to the leak check"
    );

    t.assert_free_of(&secrets);
}

#[test]
fn generated_private_keys_appear_in_no_output() {
    let node = Node::new();
    let first = node.run(&["firstboot", "--json"]);
    first.ok();
    exercise_every_command(&node, &first);
}

#[test]
fn an_adopted_private_key_appears_in_no_output() {
    let node = Node::new();
    let key = node.path("wg.key");
    fs::write(&key, KNOWN_WG_PRIVATE).unwrap();
    node.set_config(&format!(
        "[wireguard]\nprivate_key_file = {:?}\n",
        key.to_str().unwrap()
    ));
    let first = node.run(&["firstboot"]);
    first.ok();
    let (_, wg) = node.secrets();
    assert_eq!(wg, base64_decode(KNOWN_WG_PRIVATE), "not the adopted key");
    exercise_every_command(&node, &first);
}

#[test]
fn a_rejected_or_conflicting_key_file_is_not_echoed() {
    let node = Node::new();
    let key = node.path("wg.key");
    let private = base64_decode(KNOWN_WG_PRIVATE);
    node.set_config(&format!(
        "[wireguard]\nprivate_key_file = {:?}\n",
        key.to_str().unwrap()
    ));
    // Almost a key: trailing junk makes it invalid.
    fs::write(&key, format!("{KNOWN_WG_PRIVATE}junk\n")).unwrap();
    let run = node.run(&["firstboot"]);
    run.expect_code(EXIT_CONFIG);
    assert_no_secret(&run.stderr, &private, "stderr of rejected key file", "key");
    assert_no_secret(&run.stdout, &private, "stdout of rejected key file", "key");

    // A wg-quick config with the key in a bad line.
    let conf = node.path("wg0.conf");
    fs::write(
        &conf,
        format!("[Interface]\nPrivateKey = {KNOWN_WG_PRIVATE} extra\n"),
    )
    .unwrap();
    node.set_config(&format!(
        "[wireguard]\nwg_quick_config = {:?}\n",
        conf.to_str().unwrap()
    ));
    let run = node.run(&["firstboot"]);
    run.expect_code(EXIT_CONFIG);
    assert_no_secret(&run.stderr, &private, "stderr of rejected wg-quick", "key");

    // A valid but different key after provisioning: only a warning, which
    // names the file, not the key.
    node.set_config("");
    node.firstboot();
    fs::write(&key, KNOWN_WG_PRIVATE).unwrap();
    node.set_config(&format!(
        "[wireguard]\nprivate_key_file = {:?}\n",
        key.to_str().unwrap()
    ));
    let run = node.run(&["firstboot"]);
    run.ok().stderr_contains("warning");
    assert_no_secret(&run.stderr, &private, "stderr of the warning", "key");
    let (_, stored) = node.secrets();
    assert_no_secret(&run.stderr, &stored, "stderr of the warning", "node key");
    assert_no_secret(&run.stdout, &stored, "stdout of the warning", "node key");
}

#[test]
fn the_leak_check_catches_every_spelling() {
    let secret = base64_decode(KNOWN_WG_PRIVATE);
    assert_eq!(secret.len(), 32);
    // The encoder agrees with wg's own text form.
    assert_eq!(base64(&secret, B64_STANDARD, true), KNOWN_WG_PRIVATE);

    let caught = |haystack: Vec<u8>| {
        catch_unwind(AssertUnwindSafe(|| {
            assert_no_secret(&haystack, &secret, "test", "secret")
        }))
        .is_err()
    };
    assert!(!caught(b"nothing to see".to_vec()));
    let mut raw = b"prefix ".to_vec();
    raw.extend_from_slice(&secret);
    assert!(caught(raw), "raw bytes");
    for form in secret_spellings(&secret) {
        assert!(caught(format!("key: {form}\n").into_bytes()), "{form}");
    }
    // Embedded at any alignment inside a longer base64 blob.
    for shift in 0..3 {
        let mut blob = vec![0x55u8; 7 + shift];
        blob.extend_from_slice(&secret);
        blob.extend_from_slice(b"tail");
        for alphabet in [B64_STANDARD, B64_URL_SAFE] {
            let text = base64(&blob, alphabet, true);
            assert!(caught(text.into_bytes()), "shift {shift}");
        }
    }
    // Hex in either case.
    assert!(caught(hex_lower(&secret).into_bytes()));
    assert!(caught(hex_lower(&secret).to_uppercase().into_bytes()));
}

//! The command line, end to end: every command run as the built binary.

mod harness;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use harness::offline::*;
use serde_json::Value;

fn assert_public_identity_shape(v: &Value) {
    let node_id = v["node_id"].as_str().expect("node_id");
    assert!(node_id.starts_with("gw:"), "node id {node_id}");
    assert_eq!(node_id.len(), 3 + 52, "node id {node_id}");
    assert!(
        node_id[3..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "node id is not lowercase base32: {node_id}"
    );
    let boxname = v["boxname"].as_str().expect("boxname");
    assert!(!boxname.is_empty() && boxname.len() <= 63, "{boxname}");
    assert!(
        boxname
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "boxname is not a DNS label: {boxname}"
    );
    let signing = v["signing_public_key"].as_str().expect("signing key");
    assert_eq!(signing.len(), 64, "{signing}");
    assert!(
        signing
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "signing key is not lowercase hex: {signing}"
    );
    let wg = v["wireguard_public_key"].as_str().expect("wireguard key");
    assert_eq!(wg.len(), 44, "{wg}");
    assert!(wg.ends_with('='), "{wg}");
    assert_eq!(base64_decode(wg).len(), 32, "{wg}");
}

#[test]
fn firstboot_prints_a_human_summary() {
    let node = Node::new();
    let run = node.run(&["firstboot"]);
    run.ok();
    let out = run.stdout();
    assert!(out.contains("identity provisioned in"), "{out}");
    assert!(out.contains("wireguard key generated"), "{out}");
    for label in [
        "node id:",
        "boxname:",
        "signing key:",
        "wireguard key:",
        "identity log:",
    ] {
        assert!(out.contains(label), "summary lacks {label:?}:\n{out}");
    }
    let shown = node.show();
    assert!(out.contains(shown["node_id"].as_str().unwrap()), "{out}");
    assert!(out.contains(shown["signing_public_key"].as_str().unwrap()));
    assert!(out.contains(shown["wireguard_public_key"].as_str().unwrap()));

    let again = node.run(&["firstboot"]);
    again.ok();
    assert!(
        again.stdout().contains("already provisioned"),
        "{}",
        again.describe()
    );
}

#[test]
fn firstboot_json_reports_the_new_identity() {
    let node = Node::new();
    let first = node.firstboot();
    assert_public_identity_shape(&first);
    assert_eq!(first["provisioned_now"], Value::Bool(true));
    assert_eq!(first["wireguard_key_source"], "generated");
    assert_eq!(first["log_entries"], 1);
    assert_eq!(first["retired"], false);
    assert_eq!(
        first["genesis_signing_public_key"],
        first["signing_public_key"]
    );
    assert_eq!(first["state_dir"], node.state.to_str().unwrap());
    // The default boxname is derived from the node id.
    let node_id = first["node_id"].as_str().unwrap();
    let boxname = first["boxname"].as_str().unwrap();
    assert!(
        boxname.starts_with("gw-") && node_id[3..].starts_with(&boxname[3..]),
        "boxname {boxname} not derived from {node_id}"
    );

    let second = node.firstboot();
    assert_eq!(second["provisioned_now"], Value::Bool(false));
    assert_eq!(second["wireguard_key_source"], "existing");
}

#[test]
fn firstboot_is_idempotent() {
    let node = Node::new();
    let first = node.firstboot();
    let stored_before = node.stored_identity();

    let second = node.firstboot();
    assert_eq!(second["provisioned_now"], false);
    for field in [
        "node_id",
        "boxname",
        "signing_public_key",
        "wireguard_public_key",
        "log_entries",
        "log_tip",
    ] {
        assert_eq!(first[field], second[field], "{field} changed");
    }
    // Secrets, identity log and audit chain are exactly as they were (the
    // repeated run is not even audited).
    assert!(
        node.stored_identity() == stored_before,
        "a repeated firstboot changed the stored identity"
    );
    let audit = node.run(&["audit", "show", "--json"]).ok().json();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
}

#[test]
fn identity_show_json_equals_firstboot_json() {
    let node = Node::new();
    let mut first = node.firstboot();
    let shown = node.show();
    let obj = first.as_object_mut().unwrap();
    assert_eq!(obj.remove("provisioned_now"), Some(Value::Bool(true)));
    assert!(obj.remove("wireguard_key_source").is_some());
    assert_eq!(first, shown);

    let human = node.run(&["identity", "show"]);
    human.ok();
    assert!(human.stdout().contains(shown["node_id"].as_str().unwrap()));
    assert!(
        human
            .stdout()
            .contains(shown["wireguard_public_key"].as_str().unwrap())
    );
}

#[test]
fn rotate_signing_keeps_node_id_and_changes_signing_key() {
    let node = Node::new();
    let before = node.firstboot();
    let (seed_before, wg_before) = node.secrets();

    let run = node.run(&["identity", "rotate", "--signing"]);
    run.ok();
    let after = node.show();
    // The summary shows the new key.
    assert!(
        run.stdout().starts_with("rotated")
            && run
                .stdout()
                .contains(after["signing_public_key"].as_str().unwrap()),
        "{}",
        run.describe()
    );
    assert_eq!(after["node_id"], before["node_id"]);
    assert_ne!(after["signing_public_key"], before["signing_public_key"]);
    assert_eq!(
        after["genesis_signing_public_key"],
        before["signing_public_key"]
    );
    assert_eq!(
        after["wireguard_public_key"],
        before["wireguard_public_key"]
    );
    assert_eq!(after["log_entries"], 2);
    assert_ne!(after["log_tip"], before["log_tip"]);
    let (seed_after, wg_after) = node.secrets();
    assert_ne!(seed_after, seed_before);
    assert_eq!(wg_after, wg_before);
    node.run(&["identity", "verify"]).ok();
}

#[test]
fn rotate_wireguard_changes_only_the_wireguard_key() {
    let node = Node::new();
    let before = node.firstboot();
    let (seed_before, wg_before) = node.secrets();

    let run = node.run(&["identity", "rotate", "--wireguard"]);
    run.ok();
    let after = node.show();
    // The summary shows the new key.
    assert!(
        run.stdout().starts_with("rotated")
            && run
                .stdout()
                .contains(after["wireguard_public_key"].as_str().unwrap()),
        "{}",
        run.describe()
    );
    assert_eq!(after["node_id"], before["node_id"]);
    assert_eq!(after["signing_public_key"], before["signing_public_key"]);
    assert_ne!(
        after["wireguard_public_key"],
        before["wireguard_public_key"]
    );
    assert_public_identity_shape(&after);
    assert_eq!(after["log_entries"], 2);
    let (seed_after, wg_after) = node.secrets();
    assert_eq!(seed_after, seed_before);
    assert_ne!(wg_after, wg_before);
    node.run(&["identity", "verify"]).ok();
}

#[test]
fn rotate_needs_exactly_one_of_signing_or_wireguard() {
    let node = Node::new();
    node.firstboot();
    let before = node.db_bytes();
    node.run(&["identity", "rotate"])
        .expect_code(EXIT_USAGE)
        .stderr_contains("--signing");
    node.run(&["identity", "rotate", "--signing", "--wireguard"])
        .expect_code(EXIT_USAGE)
        .stderr_contains("cannot be used with");
    assert_same_bytes(
        &before,
        &node.db_bytes(),
        "state file after a refused rotate",
    );
    assert_eq!(node.show()["log_entries"], 1);
}

#[test]
fn identity_verify_succeeds_on_a_fresh_identity() {
    let node = Node::new();
    let first = node.firstboot();
    let run = node.run(&["identity", "verify"]);
    run.ok();
    assert!(run.stdout().contains("identity log verified"));
    let v = node.run(&["identity", "verify", "--json"]).ok().json();
    assert_eq!(v["verified"], true);
    assert_eq!(v["node_id"], first["node_id"]);
    assert_eq!(v["source"], node.state.to_str().unwrap());
}

#[test]
fn exported_log_verifies_without_any_state() {
    let node = Node::new();
    node.firstboot();
    node.run(&["identity", "rotate", "--signing"]).ok();
    node.run(&["identity", "rotate", "--wireguard"]).ok();
    let shown = node.show();

    let file = node.path("identity.bin");
    let export = node.run(&["identity", "export", "--out", file.to_str().unwrap()]);
    export.ok();
    assert!(export.stderr().contains("exported 3 identity-log entries"));
    assert!(file.exists());

    // Verified by a "different machine": no state dir at all.
    let elsewhere = node.path("no-such-state");
    let run = gondwana([
        "--state-dir",
        elsewhere.to_str().unwrap(),
        "--config",
        node.config.to_str().unwrap(),
        "identity",
        "verify",
        "--json",
        "--file",
        file.to_str().unwrap(),
    ]);
    let v = run.ok().json();
    assert_eq!(v["verified"], true);
    for field in [
        "node_id",
        "boxname",
        "signing_public_key",
        "genesis_signing_public_key",
        "wireguard_public_key",
        "log_entries",
        "log_tip",
    ] {
        assert_eq!(v[field], shown[field], "{field}");
    }
    assert!(!elsewhere.exists(), "verify --file created a state dir");

    // Export to stdout gives the same bytes.
    let stdout = node.run(&["identity", "export"]);
    stdout.ok();
    assert_eq!(stdout.stdout, fs::read(&file).unwrap());
}

#[test]
fn any_single_flipped_bit_in_an_export_fails_verification() {
    let node = Node::new();
    node.firstboot();
    node.run(&["identity", "rotate", "--signing"]).ok();
    let file = node.path("identity.bin");
    node.run(&["identity", "export", "--out", file.to_str().unwrap()])
        .ok();
    let good = fs::read(&file).unwrap();
    let tampered = node.path("tampered.bin");
    let verify = |path: &std::path::Path| {
        gondwana([
            "--state-dir",
            node.path("none").to_str().unwrap(),
            "--config",
            node.config.to_str().unwrap(),
            "identity",
            "verify",
            "--file",
            path.to_str().unwrap(),
        ])
    };
    verify(&file).ok();
    // Every byte position, one low bit flipped, plus one whole-byte flip.
    for i in 0..good.len() {
        for mask in [0x01u8, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            fs::write(&tampered, &bad).unwrap();
            let run = verify(&tampered);
            assert_eq!(
                run.code,
                Some(EXIT_VERIFY_FAILED),
                "byte {i} ^ {mask:#04x} of {} was not detected\n{}",
                good.len(),
                run.describe()
            );
        }
    }
    // Truncation and trailing bytes too.
    fs::write(&tampered, &good[..good.len() - 1]).unwrap();
    verify(&tampered).expect_code(EXIT_VERIFY_FAILED);
    let mut longer = good.clone();
    longer.push(0);
    fs::write(&tampered, &longer).unwrap();
    verify(&tampered).expect_code(EXIT_VERIFY_FAILED);
}

#[test]
fn audit_show_lists_genesis_and_rotations_in_order() {
    let node = Node::new();
    let first = node.firstboot();
    node.run(&["identity", "rotate", "--signing"]).ok();
    node.run(&["identity", "rotate", "--wireguard"]).ok();
    node.run(&["identity", "rotate", "--signing"]).ok();
    // A repeated firstboot is not audited.
    node.firstboot();

    let rows = node.run(&["audit", "show", "--json"]).ok().json();
    let rows = rows.as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "identity.genesis",
            "identity.rotate-signing",
            "identity.rotate-wireguard",
            "identity.rotate-signing"
        ]
    );
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["seq"], i, "{row}");
        assert!(row["unix_time"].as_u64().unwrap() > 1_600_000_000, "{row}");
        assert!(row["time"].as_str().unwrap().ends_with('Z'), "{row}");
    }
    // Typed fields (docs/audit.md), and their one-line text.
    assert_eq!(rows[0]["fields"]["node_id"], first["node_id"]);
    assert_eq!(rows[0]["fields"]["boxname"], first["boxname"]);
    assert_eq!(rows[1]["fields"]["entry"], 1);
    assert_eq!(rows[3]["fields"]["entry"], 3);
    assert!(rows[1]["detail"].as_str().unwrap().starts_with("entry=1 "));
    // The last rotation's record names the identity log's tip.
    let tip = node.show()["log_tip"].as_str().unwrap().to_string();
    assert_eq!(rows[3]["fields"]["tip"], tip.as_str());
    assert!(rows[3]["detail"].as_str().unwrap().ends_with(&tip));

    let human = node.run(&["audit", "show"]);
    human.ok();
    let lines: Vec<String> = human.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1 + 4, "{}", human.stdout());
    assert!(lines[0].starts_with("SEQ  TIME"), "{}", human.stdout());
    assert!(lines[1].contains("identity.genesis"));
    assert!(lines[3].contains("identity.rotate-wireguard"));
    assert!(lines[3].contains("entry=2 tip="), "{}", human.stdout());
}

#[test]
fn audit_verify_succeeds_on_an_untouched_chain() {
    let node = Node::new();
    node.firstboot();
    node.run(&["identity", "rotate", "--wireguard"]).ok();
    let run = node.run(&["audit", "verify"]);
    run.ok();
    assert!(run.stdout().contains("audit log verified: 2 records"));
    let v = node.run(&["audit", "verify", "--json"]).ok().json();
    assert_eq!(v["verified"], true);
    assert_eq!(v["records"], 2);
    assert_eq!(v["tip"].as_str().unwrap().len(), 64);
}

#[test]
fn version_prints_the_crate_version() {
    let run = gondwana(["version"]);
    run.ok();
    let out = run.stdout();
    assert!(
        out.starts_with(&format!("gondwana {} ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.contains("commit ") && out.contains("target "), "{out}");
    let v = gondwana(["version", "--json"]).ok().json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(!v["commit"].as_str().unwrap().is_empty());
    assert!(!v["target"].as_str().unwrap().is_empty());
}

#[test]
fn version_needs_no_config_or_state() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    gondwana([
        "--config",
        missing.to_str().unwrap(),
        "--state-dir",
        tmp.path().join("s").to_str().unwrap(),
        "version",
    ])
    .ok();
    assert!(dir_entries(tmp.path()).is_empty());
}

#[test]
fn commands_on_an_empty_state_dir_report_no_identity_and_create_nothing() {
    let node = Node::new();
    for args in [
        &["identity", "show"][..],
        &["identity", "show", "--json"],
        &["identity", "verify"],
        &["identity", "export", "--out", "/dev/null"],
        &["identity", "rotate", "--signing"],
        &["audit", "show"],
        &["audit", "verify"],
    ] {
        let run = node.run(args);
        run.expect_code(EXIT_NO_IDENTITY)
            .stderr_contains("gondwana firstboot");
        assert!(!node.state.exists(), "{args:?} created the state dir");
    }
    // An existing but empty directory stays empty.
    fs::create_dir(&node.state).unwrap();
    node.run(&["identity", "show"])
        .expect_code(EXIT_NO_IDENTITY);
    assert!(dir_entries(&node.state).is_empty());
}

#[test]
fn a_named_config_file_that_is_missing_is_an_error() {
    let node = Node::new();
    let missing = node.path("missing.toml");
    let run = gondwana([
        "--state-dir",
        node.state.to_str().unwrap(),
        "--config",
        missing.to_str().unwrap(),
        "firstboot",
    ]);
    run.expect_code(EXIT_CONFIG)
        .stderr_contains(missing.to_str().unwrap());
    assert!(!node.state.exists());
}

#[test]
fn config_boxname_is_used_at_firstboot() {
    let node = Node::with_config("boxname = \"box-7\"\n");
    let v = node.firstboot();
    assert_eq!(v["boxname"], "box-7");
    assert_eq!(node.show()["boxname"], "box-7");
    let audit = node.run(&["audit", "show", "--json"]).ok().json();
    assert_eq!(audit[0]["fields"]["boxname"], "box-7", "{audit}");
    assert!(
        audit[0]["detail"]
            .as_str()
            .unwrap()
            .ends_with("boxname=box-7")
    );
}

#[test]
fn config_state_dir_is_used_when_no_flag_is_given() {
    let node = Node::new();
    node.set_config(&format!("state_dir = {:?}\n", node.state.to_str().unwrap()));
    let run = gondwana([
        "--config",
        node.config.to_str().unwrap(),
        "firstboot",
        "--json",
    ]);
    let v = run.ok().json();
    assert_eq!(v["state_dir"], node.state.to_str().unwrap());
    assert!(node.db().exists());
    assert_eq!(node.show()["node_id"], v["node_id"]);
}

#[test]
fn config_errors_exit_7_before_touching_state() {
    for (text, mention) in [
        ("stat_dir = \"/x\"\n", "stat_dir"),
        ("boxname = \"box-7\"\ncolour = \"red\"\n", "colour"),
        ("[wireguard]\nprivte_key_file = \"/k\"\n", "privte_key_file"),
        ("boxname = \"Not_A_Label\"\n", "boxname"),
        ("boxname = [\n", ""),
        ("[mesh]\ninterface = \".\"\n", "interface"),
        ("[mesh]\ninterface = \"a/b\"\n", "interface"),
        ("[mesh]\ninterface = \"sixteen-chars-xx\"\n", "interface"),
    ] {
        let node = Node::with_config(text);
        let run = node.run(&["firstboot"]);
        run.expect_code(EXIT_CONFIG)
            .stderr_contains(node.config.to_str().unwrap())
            .stderr_contains(mention);
        assert!(!node.state.exists(), "config {text:?} still created state");
    }
}

#[test]
fn state_dir_is_0700_and_state_files_0600() {
    let node = Node::new();
    node.firstboot();
    assert_eq!(mode(&node.state), 0o700);
    assert_eq!(mode(&node.db()), 0o600);
    assert_eq!(mode(&node.lock()), 0o600);
    assert_eq!(dir_entries(&node.state), [LOCK_FILE, DB_FILE]);
}

#[test]
fn an_existing_open_state_dir_and_file_are_tightened() {
    let node = Node::new();
    fs::create_dir(&node.state).unwrap();
    fs::set_permissions(&node.state, fs::Permissions::from_mode(0o755)).unwrap();
    node.firstboot();
    assert_eq!(mode(&node.state), 0o700);
    assert_eq!(mode(&node.db()), 0o600);

    // Loosened later (say by a careless backup restore): any command that
    // opens the state tightens them again.
    fs::set_permissions(&node.state, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(node.db(), fs::Permissions::from_mode(0o644)).unwrap();
    node.show();
    assert_eq!(mode(&node.state), 0o700);
    assert_eq!(mode(&node.db()), 0o600);
}

#[test]
fn a_missing_state_dir_is_created_with_its_parents() {
    let node = Node::new();
    let deep = node.path("a/b/c");
    let run = gondwana([
        "--state-dir",
        deep.to_str().unwrap(),
        "--config",
        node.config.to_str().unwrap(),
        "firstboot",
        "--json",
    ]);
    run.ok();
    assert_eq!(mode(&deep), 0o700);
    assert!(deep.join(DB_FILE).exists());
}

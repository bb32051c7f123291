//! Releases over the mesh with real daemons on loopback (docs/updates.md,
//! "Over the mesh"): the hub publishes a bundle and its signed release
//! record; node A fetches the bundle from the hub; the hub is stopped and
//! node B fetches it from A — a corrupted and a truncated copy served by A
//! are refused, and after a restart B continues a partial download with a
//! range request where it stopped. `update status` shows the release, the
//! download and the policy's next step. Nothing is installed here (no A/B
//! disk on loopback: the policies are `manual` and `download-only`;
//! `tests/update_install.rs` covers the install).

mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gondwana_core::hash::{blake2b256, to_hex};
use gondwana_core::keys::SigningSecret;
use gondwana_core::update::{
    FORMAT, Manifest, Part, ReleaseBody, Target, head_manifest_bytes, seal, seal_release,
};
use harness::EXIT_VERIFY_FAILED;
use harness::mesh::{Hub, Mesh, Node, poll};
use serde_json::Value;

const ENROL: Duration = Duration::from_secs(30);
const FETCH: Duration = Duration::from_secs(30);
const ROOT_BYTES: usize = 3 << 20;

struct Release {
    bundle: PathBuf,
    record: PathBuf,
    bytes: Vec<u8>,
    hash: String,
}

/// A bundle of `version` for board `testboard` (a 3 MiB root and a
/// kernel), and its release record, in `dir`.
fn release(dir: &Path, key: &SigningSecret, version: u64) -> Release {
    let mut root = vec![0u8; ROOT_BYTES];
    let mut x = 0x9e37_79b9u32;
    for b in root.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let kernel = format!("kernel-v{version}").into_bytes();
    let manifest = Manifest {
        format: FORMAT,
        board: "testboard".into(),
        version,
        label: format!("v{version}"),
        min_version: 1,
        release_key: key.public_key(),
        parts: vec![
            Part {
                target: Target::RootSlot,
                size: root.len() as u64,
                blake2b: blake2b256(&root),
            },
            Part {
                target: Target::BootFile("vmlinuz".into()),
                size: kernel.len() as u64,
                blake2b: blake2b256(&kernel),
            },
        ],
    };
    let mut bytes = seal(&manifest, key, &[]).unwrap();
    let head = head_manifest_bytes(&bytes[12..]).unwrap();
    bytes.extend_from_slice(&root);
    bytes.extend_from_slice(&kernel);
    let hash = blake2b256(&bytes);
    let body = ReleaseBody::for_bundle(&manifest, &head, bytes.len() as u64, hash, 0, vec![]);
    let bundle = dir.join(format!("testboard-{version}.bundle"));
    let record = dir.join(format!("testboard-{version}.bundle.release"));
    fs::write(&bundle, &bytes).unwrap();
    fs::write(&record, seal_release(&body, key, &[]).unwrap()).unwrap();
    Release {
        bundle,
        record,
        bytes,
        hash: to_hex(&hash),
    }
}

/// The `[update]` table: version 1 of `testboard` runs, `key` is trusted.
fn update_table(dir: &Path, key: &SigningSecret, extra: &str) -> String {
    let release = dir.join("release");
    let keys = dir.join("release-keys");
    fs::write(
        &release,
        "board=testboard\nversion=1\nmin_version=0\nlabel=v1\n",
    )
    .unwrap();
    fs::write(&keys, format!("{}\n", to_hex(&key.public_key()))).unwrap();
    format!(
        "[update]\nrelease_file = \"{}\"\nrelease_keys = \"{}\"\nroot_device_file = \"{}\"\n{extra}",
        release.display(),
        keys.display(),
        dir.join("no-root-device").display()
    )
}

fn mesh_status(node: &Node) -> Value {
    node.cli(&["update", "status", "--json"]).ok().json()["mesh"].clone()
}

fn held(state: &Path, hash: &str, ext: &str) -> PathBuf {
    state.join("updates").join(format!("{hash}.{ext}"))
}

fn enrol(hub: &Hub, node: &mut Node) {
    let file = node.dir.join("e.toml");
    hub.token(&["--uses", "1"], &file);
    node.set_enroll(&fs::read_to_string(&file).unwrap());
    node.start();
    node.wait_enrolled(ENROL);
}

fn wait_mesh(node: &Node, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    poll(
        FETCH,
        what,
        || Some(mesh_status(node)).filter(|m| ok(m)),
        || format!("{}\n--- log ---\n{}", mesh_status(node), node.log_text()),
    )
}

#[test]
fn the_hub_publishes_a_node_fetches_and_another_fetches_from_it_with_the_hub_down() {
    let m = Mesh::new();
    let key = SigningSecret::from_seed([21; 32]);
    let r = release(m.root(), &key, 2);

    let mut hub = m.hub();
    let hub_update = update_table(&hub.dir, &key, "policy = \"manual\"\n");
    let config = fs::read_to_string(&hub.config).unwrap();
    fs::write(&hub.config, format!("{config}{hub_update}")).unwrap();
    hub.start();

    let mut a = m.node("upd-a", &hub);
    let a_update = update_table(
        &a.dir,
        &key,
        &format!(
            "policy = \"download-only\"\nfetch_from = [\"{}\"]\n",
            hub.api_url()
        ),
    );
    a.write_config(1, &a_update);
    enrol(&hub, &mut a);
    let a_url = format!("http://127.0.0.1:{}", a.api_port);
    let mut b = m.node("upd-b", &hub);
    let b_sources = format!("fetch_from = [\"{}\", \"{a_url}\"]\n", hub.api_url());
    b.write_config(
        1,
        &update_table(&b.dir, &key, &format!("policy = \"manual\"\n{b_sources}")),
    );
    enrol(&hub, &mut b);

    // Refused publications change nothing: a record by a key the hub does
    // not trust, a bundle that is not the one the record names.
    let entries = hub.directory()["entries"].clone();
    let other = release(
        &m.root().join("upd-a"),
        &SigningSecret::from_seed([22; 32]),
        2,
    );
    let bundle = r.bundle.to_str().unwrap();
    hub.cli(&[
        "update",
        "publish",
        bundle,
        "--record",
        other.record.to_str().unwrap(),
    ])
    .expect_code(EXIT_VERIFY_FAILED)
    .stderr_contains("release record rejected: signed by release key");
    let short = m.root().join("short.bundle");
    fs::write(&short, &r.bytes[..r.bytes.len() - 1]).unwrap();
    hub.cli(&[
        "update",
        "publish",
        short.to_str().unwrap(),
        "--record",
        r.record.to_str().unwrap(),
    ])
    .expect_code(EXIT_VERIFY_FAILED)
    .stderr_contains("the release record says");
    assert_eq!(hub.directory()["entries"], entries);

    let published = hub
        .cli(&["update", "publish", bundle, "--json"])
        .ok()
        .json();
    assert_eq!(published["published"], true, "{published}");
    assert_eq!(published["release"]["bundle_blake2b"], r.hash.as_str());
    let again = hub
        .cli(&["update", "publish", bundle, "--json"])
        .ok()
        .json();
    assert_eq!(again["published"], false, "publishing twice appends once");

    // A fetches from the hub and holds the very bytes.
    let a_mesh = wait_mesh(&a, "A to download the bundle", |m| {
        m["release"]["download"]["state"] == "complete"
    });
    assert_eq!(a_mesh["release"]["version"], 2);
    assert_eq!(a_mesh["policy"], "download-only");
    assert_eq!(a_mesh["step"]["step"], "idle", "{a_mesh}");
    assert_eq!(a_mesh["held"][0], r.hash.as_str());
    let a_copy = held(&a.state, &r.hash, "bundle");
    assert_eq!(fs::read(&a_copy).unwrap(), r.bytes);

    // B (manual) sees the release and does nothing.
    let b_mesh = wait_mesh(&b, "B to see the release", |m| m["release"]["version"] == 2);
    assert_eq!(b_mesh["step"]["why"], "policy manual", "{b_mesh}");
    assert_eq!(b_mesh["release"]["download"]["state"], "none");
    let human = b.cli(&["update", "status"]).ok().stdout();
    assert!(human.contains("policy manual"), "{human}");
    assert!(human.contains("release: version 2 (v2)"), "{human}");

    // The hub goes away; B may now download, and A serves a damaged copy.
    hub.stop();
    let mut damaged = r.bytes.clone();
    damaged[ROOT_BYTES / 2 + 7] ^= 0x40;
    fs::write(&a_copy, &damaged).unwrap();
    b.stop();
    b.write_config(
        1,
        &update_table(
            &b.dir,
            &key,
            &format!("policy = \"download-only\"\n{b_sources}"),
        ),
    );
    b.start();
    let refused = wait_mesh(&b, "B to refuse the corrupted bundle", |m| {
        m["last"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("BLAKE2b-256"))
    });
    assert_eq!(refused["release"]["download"]["state"], "none", "{refused}");
    assert!(!held(&b.state, &r.hash, "bundle").exists());

    // A truncated copy: refused at the first answer, nothing kept.
    fs::write(&a_copy, &r.bytes[..r.bytes.len() - 1000]).unwrap();
    wait_mesh(&b, "B to refuse the truncated bundle", |m| {
        m["last"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the release record says"))
    });
    assert!(!held(&b.state, &r.hash, "bundle").exists());

    // B stops with half the bundle downloaded, A's copy is whole again: B
    // continues from that byte, from A.
    b.stop();
    let half = r.bytes.len() / 2;
    fs::write(held(&b.state, &r.hash, "part"), &r.bytes[..half]).unwrap();
    fs::write(&a_copy, &r.bytes).unwrap();
    b.start();
    let done = wait_mesh(&b, "B to download from A", |m| {
        m["release"]["download"]["state"] == "complete"
    });
    assert_eq!(done["last"]["source"], a_url.as_str(), "{done}");
    assert!(
        b.log_text().contains(&format!(
            "resuming bundle {} at byte {half} from {a_url}",
            r.hash
        )),
        "{}",
        b.log_text()
    );
    assert_eq!(
        fs::read(held(&b.state, &r.hash, "bundle")).unwrap(),
        r.bytes
    );
    assert!(!held(&b.state, &r.hash, "part").exists());
    let human = b.cli(&["update", "status"]).ok().stdout();
    assert!(human.contains("download complete"), "{human}");

    // A node publishes too: it keeps and serves the bundle and sends the
    // record to the hub, which appends it; a record the hub's keys do not
    // verify, posted straight to the hub, is refused.
    hub.start();
    let v3 = release(m.root(), &key, 3);
    let sent = b
        .cli(&["update", "publish", v3.bundle.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(sent["published"], true, "{sent}");
    assert!(held(&b.state, &v3.hash, "bundle").exists());
    let on_hub = hub.cli(&["update", "status", "--json"]).ok().json()["mesh"].clone();
    assert_eq!(on_hub["release"]["version"], 3, "{on_hub}");
    let entries = hub.directory()["entries"].clone();
    let forged = harness::mesh::post(
        hub.api_port,
        "/v1/update/release",
        &fs::read(&other.record).unwrap(),
    )
    .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.text());
    assert_eq!(hub.directory()["entries"], entries);
}

//! The state file and directory in bad shape: corrupt, foreign, newer,
//! tampered with, not writable, or in use by another process.

mod harness;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::offline::*;
use redb::{Database, TableDefinition};

/// One provisioned node with two rotations (3 identity-log entries, 3 audit
/// records), to copy from.
fn provisioned_with_rotations() -> Node {
    let node = Node::new();
    node.firstboot();
    node.run(&["identity", "rotate", "--wireguard"]).ok();
    node.run(&["identity", "rotate", "--signing"]).ok();
    node.run(&["audit", "verify"]).ok();
    node.run(&["identity", "verify"]).ok();
    node
}

/// Runs `args` and asserts: exit 4, an error naming the state file and
/// mentioning `mention`, nothing on stdout.
#[track_caller]
fn assert_refused(node: &Node, args: &[&str], mention: &str, case: &str) -> Run {
    let run = node.run(args);
    assert_eq!(
        run.code,
        Some(EXIT_STATE_UNUSABLE),
        "{case}: `{}` should exit 4\n{}",
        args.join(" "),
        run.describe()
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains(node.db().to_str().unwrap()),
        "{case}: the error should name the state file\n{}",
        run.describe()
    );
    assert!(
        stderr.contains(mention),
        "{case}: the error should mention {mention:?}\n{}",
        run.describe()
    );
    assert!(run.stdout.is_empty(), "{case}: {}", run.describe());
    run
}

/// [`assert_refused`], and the file is byte-for-byte as before.
#[track_caller]
fn assert_refused_untouched(node: &Node, args: &[&str], mention: &str, case: &str) -> Run {
    let before = node.db_bytes();
    let run = assert_refused(node, args, mention, case);
    assert_same_bytes(
        &before,
        &node.db_bytes(),
        &format!("{case}: state file after `{}`", args.join(" ")),
    );
    run
}

// ---- corrupt, foreign and newer files ------------------------------------

#[test]
fn a_corrupt_state_file_is_refused_and_left_untouched() {
    let template = provisioned_with_rotations();
    type Corrupt = fn(&Path);
    let cases: [(&str, Corrupt); 3] = [
        ("garbage bytes", |db| {
            let len = fs::metadata(db).unwrap().len() as usize;
            let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
            let garbage: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            fs::write(db, garbage).unwrap();
        }),
        ("truncated to half", |db| {
            let len = fs::metadata(db).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(db)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("first 512 bytes zeroed", |db| {
            let mut bytes = fs::read(db).unwrap();
            bytes[..512].fill(0);
            fs::write(db, bytes).unwrap();
        }),
    ];
    for (case, corrupt) in cases {
        for args in [
            &["identity", "show"][..],
            &["firstboot"],
            &["firstboot", "--json"],
            &["identity", "verify"],
            &["audit", "verify"],
        ] {
            let node = Node::copy_of(&template);
            corrupt(&node.db());
            assert_refused_untouched(&node, args, "unreadable", case);
            // Refused again, the same way: nothing was "repaired".
            assert_refused_untouched(&node, args, "unreadable", case);
        }
    }
}

/// A copy of `template` whose schema_version is one more than this
/// gondwana writes (2 while the current schema is 1); returns it and the
/// version set.
fn newer_schema_copy(template: &Node) -> (Node, u32) {
    let node = Node::copy_of(template);
    let newer = node.schema_version() + 1;
    let db = node.open_db();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(KEY_SCHEMA_VERSION, &newer.to_le_bytes()[..])
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    (node, newer)
}

const NEWER_OR_FOREIGN_BUG: &str = "bug: a newer-schema or foreign state file is opened read-write before the schema check, and redb's close on drop rewrites it (header, allocator state; a newer file even shrank)";

#[test]
fn a_state_file_from_a_newer_gondwana_is_refused() {
    let template = provisioned_with_rotations();
    let (node, newer) = newer_schema_copy(&template);
    let stored = node.stored_identity();
    let tables = node.table_names();
    for args in [
        &["firstboot"][..],
        &["identity", "show"],
        &["audit", "show"],
    ] {
        let run = assert_refused(&node, args, "newer", "newer schema");
        assert!(
            run.stderr().contains(&format!("schema version {newer}")),
            "{}",
            run.describe()
        );
    }
    // Logically untouched: not migrated, nothing added.
    assert_eq!(node.schema_version(), newer);
    assert_eq!(node.table_names(), tables);
    assert!(node.stored_identity() == stored);
}

#[test]
fn a_state_file_from_a_newer_gondwana_is_left_byte_for_byte_untouched() {
    let template = provisioned_with_rotations();
    for args in [
        &["firstboot"][..],
        &["identity", "show"],
        &["audit", "show"],
    ] {
        let (node, _) = newer_schema_copy(&template);
        assert_refused_untouched(&node, args, "newer", NEWER_OR_FOREIGN_BUG);
    }
}

#[test]
fn an_empty_redb_file_is_migrated_from_schema_0_and_provisioned() {
    let node = Node::new();
    fs::create_dir(&node.state).unwrap();
    drop(Database::create(node.db()).unwrap());
    let v = node.firstboot();
    assert_eq!(v["provisioned_now"], true);
    // Migrated to what a fresh firstboot writes (1 today), with the same
    // tables.
    let fresh = Node::new();
    fresh.firstboot();
    assert!(fresh.schema_version() >= 1);
    assert_eq!(node.schema_version(), fresh.schema_version());
    assert_eq!(node.table_names(), fresh.table_names());
    for table in ["meta", "secrets", "identity_log", "audit"] {
        assert!(
            node.table_names().iter().any(|t| t == table),
            "no {table} table"
        );
    }
    assert_eq!(node.rows(IDENTITY_LOG).len(), 1);
    assert_eq!(node.rows(AUDIT).len(), 1);
    node.secrets();
    node.run(&["identity", "verify"]).ok();
    node.run(&["audit", "verify"]).ok();
}

const OTHER: TableDefinition<&str, u64> = TableDefinition::new("settings");

/// A node whose state file is some other program's redb database.
fn foreign_file() -> Node {
    let node = Node::new();
    fs::create_dir(&node.state).unwrap();
    let db = Database::create(node.db()).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(OTHER)
        .unwrap()
        .insert("volume", &11)
        .unwrap();
    txn.commit().unwrap();
    node
}

#[test]
fn a_foreign_redb_file_is_refused() {
    let node = foreign_file();
    for args in [
        &["firstboot"][..],
        &["identity", "show"],
        &["audit", "verify"],
    ] {
        let run = assert_refused(&node, args, "no meta table", "foreign file");
        assert!(run.stderr().contains("settings"), "{}", run.describe());
    }
    // Still the other program's data, and nothing of ours was added.
    let db = node.open_db();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(
        txn.open_table(OTHER)
            .unwrap()
            .get("volume")
            .unwrap()
            .unwrap()
            .value(),
        11
    );
    assert!(txn.open_table(META).is_err(), "a meta table was added");
}

#[test]
fn a_foreign_redb_file_is_left_byte_for_byte_untouched() {
    for args in [
        &["firstboot"][..],
        &["identity", "show"],
        &["audit", "verify"],
    ] {
        let node = foreign_file();
        assert_refused_untouched(&node, args, "no meta table", NEWER_OR_FOREIGN_BUG);
    }
}

// ---- tampering --------------------------------------------------------

fn edit_table(
    node: &Node,
    table: TableDefinition<u64, &[u8]>,
    edit: impl FnOnce(&mut Vec<(u64, Vec<u8>)>),
) {
    let mut rows = node.rows(table);
    edit(&mut rows);
    let db = node.open_db();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        t.retain(|_, _| false).unwrap();
        for (k, v) in &rows {
            t.insert(*k, v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn audit_verify_detects_an_altered_removed_or_reordered_record() {
    let template = provisioned_with_rotations();
    assert_eq!(template.rows(AUDIT).len(), 3);
    type Tamper = fn(&mut Vec<(u64, Vec<u8>)>);
    let cases: [(&str, Tamper); 5] = [
        ("record 1 detail text altered (still decodable)", |rows| {
            let last = rows[1].1.last_mut().unwrap();
            *last = if *last == b'0' { b'1' } else { b'0' };
        }),
        ("record 1 byte flipped in the middle", |rows| {
            let mid = rows[1].1.len() / 2;
            rows[1].1[mid] ^= 0x01;
        }),
        ("record 1 timestamp changed", |rows| {
            // Byte layout: version, seq, 32-byte prev, then the time varint.
            rows[1].1[2 + 32] ^= 0x01;
        }),
        ("record 2 (the last) removed", |rows| {
            rows.pop();
        }),
        ("records 0 and 1 swapped", |rows| {
            let (a, b) = (rows[0].1.clone(), rows[1].1.clone());
            rows[0].1 = b;
            rows[1].1 = a;
        }),
    ];
    for (case, tamper) in cases {
        let node = Node::copy_of(&template);
        edit_table(&node, AUDIT, tamper);
        let run = node.run(&["audit", "verify"]);
        assert_eq!(
            run.code,
            Some(EXIT_VERIFY_FAILED),
            "{case}: not detected\n{}",
            run.describe()
        );
        assert!(run.stderr().contains("audit log"), "{}", run.describe());
        let json = node.run(&["audit", "verify", "--json"]);
        json.expect_code(EXIT_VERIFY_FAILED);
        // The identity itself is intact.
        node.run(&["identity", "verify"]).ok();
    }
}

#[test]
fn identity_verify_detects_a_removed_identity_log_entry() {
    let template = provisioned_with_rotations();
    assert_eq!(template.rows(IDENTITY_LOG).len(), 3);

    // The last entry (the signing rotation) removed: the log verifies on
    // its own, but the stored signing secret no longer matches it.
    let node = Node::copy_of(&template);
    edit_table(&node, IDENTITY_LOG, |rows| {
        rows.pop();
    });
    node.run(&["identity", "verify"])
        .expect_code(EXIT_VERIFY_FAILED)
        .stderr_contains("do not match");
    node.run(&["identity", "verify", "--json"])
        .expect_code(EXIT_VERIFY_FAILED);
    // Other commands refuse the damaged store rather than use it.
    node.run(&["identity", "show"])
        .expect_code(EXIT_STATE_UNUSABLE);
    node.run(&["identity", "rotate", "--wireguard"])
        .expect_code(EXIT_STATE_UNUSABLE);
    node.run(&["firstboot"]).expect_code(EXIT_STATE_UNUSABLE);
    assert_eq!(node.rows(IDENTITY_LOG).len(), 2, "nothing was appended");

    // A middle entry removed: a gap.
    let node = Node::copy_of(&template);
    edit_table(&node, IDENTITY_LOG, |rows| {
        rows.remove(1);
    });
    node.run(&["identity", "verify"])
        .expect_code(EXIT_VERIFY_FAILED)
        .stderr_contains("gap");

    // An entry altered: its signature fails.
    let node = Node::copy_of(&template);
    edit_table(&node, IDENTITY_LOG, |rows| {
        let mid = rows[1].1.len() / 2;
        rows[1].1[mid] ^= 0x01;
    });
    node.run(&["identity", "verify"])
        .expect_code(EXIT_VERIFY_FAILED)
        .stderr_contains("does not verify");
}

// ---- not writable -------------------------------------------------------

fn unshare_usable() -> Result<(), String> {
    match Command::new("unshare")
        .args(["--mount", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) => Err(format!("unshare not available: {e}")),
        Ok(o) if !o.status.success() => Err(format!(
            "unshare --mount fails here: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

/// Runs `gondwana --state-dir <state> firstboot` in a private mount
/// namespace where `mount_point` is a read-only tmpfs.
fn firstboot_on_read_only_mount(
    node: &Node,
    mount_point: &Path,
    options: &str,
    state: &Path,
) -> Run {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o "$2" tmpfs "$1" && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(mount_point)
        .arg(options)
        .arg(bin())
        .arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(&node.config)
        .arg("firstboot");
    run_command(&mut cmd)
}

#[test]
fn a_state_dir_that_cannot_be_written_exits_8() {
    let node = Node::new();
    let mount_point = node.path("ro");
    fs::create_dir(&mount_point).unwrap();

    if !is_root() {
        // Permissions do stop a non-root user.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&mount_point, fs::Permissions::from_mode(0o500)).unwrap();
        let state = mount_point.join("state");
        let run = gondwana([
            "--state-dir",
            state.to_str().unwrap(),
            "--config",
            node.config.to_str().unwrap(),
            "firstboot",
        ]);
        run.expect_code(EXIT_NOT_WRITABLE)
            .stderr_contains("not writable");
        fs::set_permissions(&mount_point, fs::Permissions::from_mode(0o700)).unwrap();
        return;
    }
    if let Err(reason) = unshare_usable() {
        require::missing("a_state_dir_that_cannot_be_written_exits_8", &reason);
        return;
    }
    for (case, options, state) in [
        (
            "missing state dir on a read-only mount",
            "ro",
            mount_point.join("state"),
        ),
        (
            "read-only mount point (mode 1777) as the state dir",
            "ro",
            mount_point.clone(),
        ),
        (
            "read-only mount point (mode 0700) as the state dir",
            "ro,mode=0700",
            mount_point.clone(),
        ),
    ] {
        let run = firstboot_on_read_only_mount(&node, &mount_point, options, &state);
        assert_eq!(
            run.code,
            Some(EXIT_NOT_WRITABLE),
            "{case}\n{}",
            run.describe()
        );
        assert!(
            run.stderr().contains("not writable") && run.stderr().contains(state.to_str().unwrap()),
            "{case}\n{}",
            run.describe()
        );
    }
    // The mount stayed private to the namespace.
    assert!(dir_entries(&mount_point).is_empty());
}

// ---- in use -------------------------------------------------------------

/// A process holding the state lock, killed (by pid) when dropped.
struct LockHolder(Child);

impl LockHolder {
    /// `flock --exclusive --no-fork <lock> sleep 30`, once it holds the lock.
    fn hold(lock: &Path) -> LockHolder {
        let child = Command::new("flock")
            .args(["--exclusive", "--no-fork"])
            .arg(lock)
            .args(["sleep", "30"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn flock (util-linux)");
        let holder = LockHolder(child);
        let held = wait_until(Duration::from_secs(10), || {
            // flock -n fails with our code only while somebody holds it.
            Command::new("flock")
                .args(["--nonblock", "--conflict-exit-code", "99"])
                .arg(lock)
                .arg("true")
                .status()
                .is_ok_and(|s| s.code() == Some(99))
        });
        assert!(held, "flock never took {}", lock.display());
        holder
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_state_dir_locked_by_another_process_exits_3() {
    let node = Node::new();
    let first = node.firstboot();
    let stored = node.stored_identity();

    let holder = LockHolder::hold(&node.lock());
    for args in [
        &["firstboot"][..],
        &["identity", "show"],
        &["identity", "rotate", "--signing"],
        &["audit", "verify"],
    ] {
        node.run(args)
            .expect_code(EXIT_STATE_IN_USE)
            .stderr_contains("in use by another gondwana process");
    }
    drop(holder);

    // Released with its holder: everything works again, nothing changed.
    assert!(node.stored_identity() == stored);
    let again = node.firstboot();
    assert_eq!(again["node_id"], first["node_id"]);
    assert_eq!(again["provisioned_now"], false);
}

#[test]
fn a_locked_fresh_state_dir_is_not_touched() {
    let node = Node::new();
    fs::create_dir(&node.state).unwrap();
    let holder = LockHolder::hold(&node.lock());
    node.run(&["firstboot"])
        .expect_code(EXIT_STATE_IN_USE)
        .stderr_contains("in use by another gondwana process");
    assert_eq!(
        dir_entries(&node.state),
        [LOCK_FILE],
        "firstboot created files"
    );
    drop(holder);
    assert_eq!(node.firstboot()["provisioned_now"], true);
}

#[test]
fn concurrent_firstboots_make_exactly_one_identity() {
    // A process that looked for the state file before another created it,
    // and took the lock after that one finished, once re-initialised the
    // file and made a second identity (seen on CI): rounds give it chances.
    const PROCESSES: usize = 8;
    const ROUNDS: usize = 20;
    let mut contended = 0;
    for round in 0..ROUNDS {
        let node = Node::new();
        let children: Vec<Child> = (0..PROCESSES)
            .map(|_| {
                node.command(&["firstboot", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let runs: Vec<Run> = children
            .into_iter()
            .map(|c| {
                Run::from_output(
                    format!("firstboot round {round}"),
                    c.wait_with_output().unwrap(),
                )
            })
            .collect();
        let mut ids = Vec::new();
        let mut provisioned = 0;
        for run in &runs {
            match run.code {
                Some(EXIT_OK) => {
                    let v = run.json();
                    ids.push(v["node_id"].as_str().unwrap().to_string());
                    if v["provisioned_now"] == true {
                        provisioned += 1;
                    }
                }
                Some(EXIT_STATE_IN_USE) => {
                    contended += 1;
                    run.stderr_contains("in use by another gondwana process");
                }
                _ => panic!("round {round}: unexpected exit\n{}", run.describe()),
            }
        }
        assert!(!ids.is_empty(), "round {round}: nobody succeeded");
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "round {round}: two identities {ids:?}"
        );
        assert_eq!(provisioned, 1, "round {round}: provisioned_now=true count");
        assert_eq!(node.node_id(), ids[0]);
        let audit = node.run(&["audit", "show", "--json"]).ok().json();
        assert_eq!(audit.as_array().unwrap().len(), 1, "round {round}: {audit}");
    }
    eprintln!(
        "concurrent firstboots: {contended} of {} refused with exit 3",
        ROUNDS * PROCESSES
    );
}

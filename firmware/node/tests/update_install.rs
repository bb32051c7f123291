//! `gondwana update install` into real block devices: a file laid out like
//! the image (docs/image.md: 1 GW_BOOT, 2 root A, 3 root B), attached as a
//! loop device with its partitions. Bundles are built with
//! `gondwana_core::update` (what `gondwana-release` calls). Checked: the
//! bundle lands in the inactive slot only (the running slot's bytes hashed
//! before and after), and every refusal changes no byte of either slot and
//! writes no boot file.
//!
//! Needs root and util-linux (`losetup`, `sfdisk`, `partx`); fails without
//! them under `GONDWANA_REQUIRE_PRIVILEGED=1`. One install runs against a
//! read-only boot partition (remounted read-write for the install and back)
//! in a private mount namespace: FAT as on the image, or tmpfs when the
//! host kernel cannot mount vfat.

mod harness;
use harness::mesh::Daemon;
use harness::require::{self, run_tool as run, which};
use harness::{EXIT_FAILURE, EXIT_VERIFY_FAILED, Run, run_command};

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use gondwana_core::envelope::encode;
use gondwana_core::hash::{blake2b256, to_hex};
use gondwana_core::keys::SigningSecret;
use gondwana_core::update::{FORMAT, Manifest, Part, SignedRotation, Target, seal, seal_rotation};

const MIB: u64 = 1 << 20;
/// Each partition of the test disk.
const PART_MIB: u64 = 4;

fn prerequisites(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        require::missing(test, "not root (losetup needs it)");
        return false;
    }
    for tool in ["losetup", "sfdisk", "partx"] {
        if which(tool).is_none() {
            require::missing(test, &format!("no {tool} on PATH"));
            return false;
        }
    }
    true
}

/// The test disk attached as a loop device with partitions 1–3; detached
/// (this device only) on drop.
struct Disk {
    device: String,
}

impl Disk {
    fn attach(image: &Path) -> Disk {
        let size = 1 + 3 * PART_MIB + 1;
        File::create(image).unwrap().set_len(size * MIB).unwrap();
        let s = 2048 * PART_MIB; // sectors per partition
        let table = format!(
            "label: dos\nunit: sectors\n2048,{s},c\n{},{s},83\n{},{s},83\n",
            2048 + s,
            2048 + 2 * s
        );
        let mut sfdisk = Command::new(which("sfdisk").unwrap())
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(image)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        sfdisk
            .stdin
            .take()
            .unwrap()
            .write_all(table.as_bytes())
            .unwrap();
        assert!(sfdisk.wait().unwrap().success(), "sfdisk");
        let device = run(Command::new(which("losetup").unwrap())
            .args(["--partscan", "--find", "--show"])
            .arg(image))
        .trim()
        .to_string();
        assert!(device.starts_with("/dev/loop"), "losetup gave {device:?}");
        let disk = Disk { device };
        // A kernel without the MBR parser finds no partitions by itself:
        // add them from the table (BLKPG), as `partx` does.
        if !Path::new(&disk.part(3)).exists() {
            run(Command::new(which("partx").unwrap())
                .arg("-a")
                .arg(&disk.device));
        }
        for _ in 0..50 {
            if Path::new(&disk.part(3)).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(Path::new(&disk.part(3)).exists(), "no {}", disk.part(3));
        disk
    }

    fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.device)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Some(partx) = which("partx") {
            let _ = Command::new(partx).arg("-d").arg(&self.device).status();
        }
        if let Some(losetup) = which("losetup") {
            let _ = Command::new(losetup).arg("-d").arg(&self.device).status();
        }
    }
}

fn hash_of(device: &str) -> String {
    let mut bytes = Vec::new();
    File::open(device).unwrap().read_to_end(&mut bytes).unwrap();
    to_hex(&blake2b256(&bytes))
}

fn fill(device: &str, seed: u8) {
    let bytes: Vec<u8> = (0..PART_MIB * MIB)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut f = fs::OpenOptions::new().write(true).open(device).unwrap();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
}

fn key(seed: u8) -> SigningSecret {
    SigningSecret::from_seed([seed; 32])
}

/// A box: the disk, its running slot, release files and config.
struct Box_ {
    dir: tempfile::TempDir,
    disk: Disk,
    config: PathBuf,
    boot: PathBuf,
}

impl Box_ {
    fn new(running_partition: u32) -> Box_ {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::attach(&dir.path().join("disk.img"));
        fill(&disk.part(2), 1);
        fill(&disk.part(3), 2);
        let d = dir.path();
        let boot = d.join("boot");
        fs::create_dir_all(&boot).unwrap();
        fs::write(
            d.join("root-device"),
            format!("{}\n", disk.part(running_partition)),
        )
        .unwrap();
        fs::write(
            d.join("release"),
            "board=testboard\nversion=10\nmin_version=5\nlabel=v10\n",
        )
        .unwrap();
        fs::write(
            d.join("release-keys"),
            format!("# baked\n{}\n", to_hex(&key(1).public_key())),
        )
        .unwrap();
        fs::write(d.join("cmdline"), "console=ttyS0 gondwana.trial=0\n").unwrap();
        if running_partition == 3 {
            // Slot B runs as the good slot: the boot environment says so.
            fs::create_dir_all(boot.join("gondwana")).unwrap();
            fs::write(boot.join("gondwana/bootenv"), "gw_good=b\n").unwrap();
        }
        let config = d.join("gondwana.toml");
        // Enough for a daemon too (`Box_::daemon`): its own loopback port,
        // no WireGuard, no firewall, nothing to enrol, and no watchdog (a
        // host's /dev/watchdog must never be opened by a test).
        fs::write(
            &config,
            format!(
                "[wireguard]\nbackend = \"none\"\n[firewall]\nenabled = false\n[enroll]\nsearch_paths = [\"{0}/no-enroll.toml\"]\nconfig_volume_label = \"\"\n[api]\nloopback = \"127.0.0.1:{2}\"\nadmin_socket = \"{0}/admin.sock\"\n\n[update]\nroot_device_file = \"{0}/root-device\"\nboot_dir = \"{1}\"\nrelease_file = \"{0}/release\"\nrelease_keys = \"{0}/release-keys\"\nstate_file = \"{0}/update.json\"\ncmdline_file = \"{0}/cmdline\"\nwatchdog = \"{0}/no-watchdog\"\n",
                d.display(),
                boot.display(),
                harness::mesh::free_port(),
            ),
        )
        .unwrap();
        Box_ {
            dir,
            disk,
            config,
            boot,
        }
    }

    fn gondwana(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(harness::bin());
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(args);
        run_command(&mut cmd)
    }

    /// `gondwana run` on this box: the CLI's commands then go through its
    /// admin socket (the store is the daemon's: the CLI cannot open it).
    fn daemon(&self) -> Daemon {
        let d = Daemon::spawn(
            "box",
            &self.config,
            &self.dir.path().join("state"),
            &self.dir.path().join("daemon.log"),
        );
        assert!(
            harness::wait_until(Duration::from_secs(30), || d.started()),
            "the daemon did not start: {}",
            d.log_text()
        );
        d
    }

    fn bootenv(&self) -> String {
        let env = fs::read(self.boot.join("gondwana/bootenv")).unwrap();
        assert_eq!(
            env.len(),
            1024,
            "the boot environment is one 1024-byte block"
        );
        String::from_utf8_lossy(&env).into_owned()
    }

    fn write_bundle(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn slot_hashes(&self) -> (String, String) {
        (hash_of(&self.disk.part(2)), hash_of(&self.disk.part(3)))
    }
}

struct Spec {
    signer: SigningSecret,
    board: &'static str,
    version: u64,
    min_version: u64,
    root: Vec<u8>,
    rotations: Vec<SignedRotation>,
}

fn spec() -> Spec {
    Spec {
        signer: key(1),
        board: "testboard",
        version: 12,
        min_version: 6,
        root: (0..3 * MIB).map(|i| (i % 251) as u8).collect(),
        rotations: Vec::new(),
    }
}

const KERNEL: &[u8] = b"a kernel";
const DTB: &[u8] = b"a device tree";

fn bundle(s: &Spec) -> Vec<u8> {
    let part = |target: Target, bytes: &[u8]| Part {
        target,
        size: bytes.len() as u64,
        blake2b: blake2b256(bytes),
    };
    let manifest = Manifest {
        format: FORMAT,
        board: s.board.into(),
        version: s.version,
        label: format!("v{}", s.version),
        min_version: s.min_version,
        release_key: s.signer.public_key(),
        parts: vec![
            part(Target::RootSlot, &s.root),
            part(Target::BootFile("Image".into()), KERNEL),
            part(Target::BootFile("dtbs/board.dtb".into()), DTB),
        ],
    };
    let mut out = seal(&manifest, &s.signer, &s.rotations).unwrap();
    out.extend_from_slice(&s.root);
    out.extend_from_slice(KERNEL);
    out.extend_from_slice(DTB);
    out
}

fn rotation(seq: u64, old: &SigningSecret, new: &SigningSecret) -> SignedRotation {
    seal_rotation(seq, old, new.public_key()).unwrap()
}

#[test]
fn refusals_change_no_byte_of_either_slot() {
    if !prerequisites("refusals_change_no_byte_of_either_slot") {
        return;
    }
    let b = Box_::new(2);
    let before = b.slot_hashes();
    let good = bundle(&spec());
    let head_end = 12 + u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;

    let mut cases: Vec<(&str, Vec<u8>, i32, &str)> = Vec::new();
    let other_board = Spec {
        board: "otherboard",
        ..spec()
    };
    cases.push((
        "other board",
        bundle(&other_board),
        EXIT_FAILURE,
        "bundle is for board otherboard",
    ));
    let downgrade = Spec {
        version: 4,
        min_version: 0,
        ..spec()
    };
    cases.push(("downgrade", bundle(&downgrade), EXIT_FAILURE, "downgrade"));
    let too_new = Spec {
        min_version: 11,
        ..spec()
    };
    cases.push((
        "running too old",
        bundle(&too_new),
        EXIT_FAILURE,
        "replaces version 11 or later",
    ));
    let stranger = Spec {
        signer: key(9),
        ..spec()
    };
    cases.push((
        "unknown release key",
        bundle(&stranger),
        EXIT_VERIFY_FAILED,
        "does not trust",
    ));
    let mut bad_sig = good.clone();
    bad_sig[head_end - 10] ^= 1; // inside the signature (the head ends with it and one 0 byte: no rotations)
    cases.push((
        "bad signature",
        bad_sig,
        EXIT_VERIFY_FAILED,
        "signature does not verify",
    ));
    let mut bad_hash = good.clone();
    bad_hash[head_end + 2 * MIB as usize] ^= 1; // inside the root part
    cases.push((
        "hash mismatch",
        bad_hash,
        EXIT_VERIFY_FAILED,
        "part root has BLAKE2b-256",
    ));
    let mut bad_boot = good.clone();
    let last = bad_boot.len() - 1;
    bad_boot[last] ^= 1; // the last byte of the dtb
    cases.push((
        "boot file hash mismatch",
        bad_boot,
        EXIT_VERIFY_FAILED,
        "part dtbs/board.dtb",
    ));
    cases.push((
        "truncated",
        good[..good.len() - 5].to_vec(),
        EXIT_VERIFY_FAILED,
        "truncated",
    ));
    cases.push((
        "truncated head",
        good[..head_end - 3].to_vec(),
        EXIT_VERIFY_FAILED,
        "truncated",
    ));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"more");
    cases.push((
        "bytes after the parts",
        trailing,
        EXIT_VERIFY_FAILED,
        "after the last part",
    ));
    cases.push((
        "not a bundle",
        b"hello, this is not a bundle".to_vec(),
        EXIT_VERIFY_FAILED,
        "GWBUNDLE",
    ));
    let too_large = Spec {
        root: vec![7u8; (PART_MIB * MIB + 512) as usize],
        ..spec()
    };
    cases.push((
        "larger than the slot",
        bundle(&too_large),
        EXIT_FAILURE,
        "larger than slot b",
    ));
    // A rotation record signed by a key the box does not trust.
    let rogue = Spec {
        signer: key(3),
        rotations: vec![rotation(1, &key(9), &key(3))],
        ..spec()
    };
    cases.push((
        "rotation by an unknown key",
        bundle(&rogue),
        EXIT_VERIFY_FAILED,
        "key rotation record 0",
    ));

    for (case, bytes, code, mention) in cases {
        let path = b.write_bundle("bad.bundle", &bytes);
        let run = b.gondwana(&["update", "install", &path]);
        assert_eq!(run.code, Some(code), "{case}\n{}", run.describe());
        assert!(
            run.stderr().contains(mention),
            "{case}: should mention {mention:?}\n{}",
            run.describe()
        );
        assert_eq!(b.slot_hashes(), before, "{case}: a slot changed");
        assert!(
            !b.boot.join("slot-b").exists(),
            "{case}: boot files were written"
        );
    }
    let status = b.gondwana(&["update", "status", "--json"]);
    status.ok();
    assert_eq!(status.json()["slots"][1]["state"], "empty");
}

#[test]
fn install_writes_the_inactive_slot_only() {
    if !prerequisites("install_writes_the_inactive_slot_only") {
        return;
    }
    // Running slot A: the bundle goes to partition 3 and slot-b/. It is
    // signed by a new release key, reached from the baked one by a chain.
    let b = Box_::new(2);
    let (running_before, _) = b.slot_hashes();
    let s = Spec {
        signer: key(3),
        rotations: vec![rotation(1, &key(1), &key(2)), rotation(2, &key(2), &key(3))],
        ..spec()
    };
    let path = b.write_bundle("good.bundle", &bundle(&s));
    let run = b.gondwana(&["update", "install", &path, "--json"]);
    run.ok();
    let v = run.json();
    assert_eq!(v["slot"], "b");
    assert_eq!(v["device"], b.disk.part(3));
    assert_eq!(v["release"]["version"], 12);
    let (running_after, inactive) = b.slot_hashes();
    assert_eq!(running_after, running_before, "the running slot changed");
    let mut written = vec![0u8; s.root.len()];
    let mut dev = File::open(b.disk.part(3)).unwrap();
    dev.seek(SeekFrom::Start(0)).unwrap();
    dev.read_exact(&mut written).unwrap();
    assert!(written == s.root, "slot b does not hold the root");
    assert_ne!(inactive, running_before);
    assert_eq!(fs::read(b.boot.join("slot-b/Image")).unwrap(), KERNEL);
    assert_eq!(fs::read(b.boot.join("slot-b/dtbs/board.dtb")).unwrap(), DTB);
    assert!(
        !b.boot.join("slot-a").exists(),
        "slot a's boot files touched"
    );

    let status = b.gondwana(&["update", "status", "--json"]);
    status.ok();
    let v = status.json();
    assert_eq!(v["running_slot"], "a");
    assert_eq!(v["slots"][0]["state"], "running");
    assert_eq!(v["slots"][0]["release"]["version"], 10);
    assert_eq!(v["slots"][1]["state"], "installed");
    assert_eq!(v["slots"][1]["release"]["version"], 12);
    let human = b.gondwana(&["update", "status"]);
    human.ok();
    assert!(
        human
            .stdout()
            .contains("slot b: installed, version 12 (v12)"),
        "{}",
        human.describe()
    );
    // The trial is armed: the boot environment names slot b once, slot a
    // stays the good one; status says so.
    let env = fs::read(b.boot.join("gondwana/bootenv")).unwrap();
    assert_eq!(env.len(), 1024);
    let env = String::from_utf8_lossy(&env);
    assert!(env.starts_with("# GRUB Environment Block\n"), "{env}");
    assert!(
        env.contains("\ngw_good=a\n") && env.contains("\ngw_try=b\n"),
        "{env}"
    );
    assert_eq!(v["good_slot"], "a");
    assert_eq!(v["trial"]["slot"], "b");
    assert_eq!(v["trial"]["release"]["version"], 12);
    assert!(
        human
            .stdout()
            .contains("trial: slot b (version 12 (v12)): armed: boots once on the next reboot"),
        "{}",
        human.describe()
    );

    // A refused bundle after a good install leaves the installed slot as it was.
    let mut bad = bundle(&s);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let bad = b.write_bundle("bad.bundle", &bad);
    b.gondwana(&["update", "install", &bad])
        .expect_code(EXIT_VERIFY_FAILED);
    assert_eq!(b.slot_hashes(), (running_before.clone(), inactive));
    assert_eq!(
        b.gondwana(&["update", "status", "--json"]).json()["slots"][1]["state"],
        "installed"
    );

    // Running slot B: the same bundle goes to partition 2 and slot-a/.
    let b = Box_::new(3);
    let (_, running_b) = b.slot_hashes();
    let path = b.write_bundle("good.bundle", &bundle(&spec()));
    let v = b
        .gondwana(&["update", "install", &path, "--json"])
        .ok()
        .json();
    assert_eq!(v["slot"], "a");
    assert_eq!(b.slot_hashes().1, running_b, "the running slot b changed");
    assert_eq!(fs::read(b.boot.join("slot-a/Image")).unwrap(), KERNEL);
}

#[test]
fn install_is_refused_while_the_running_slot_is_on_trial() {
    if !prerequisites("install_is_refused_while_the_running_slot_is_on_trial") {
        return;
    }
    // Slot A runs on trial (the bootloader said gondwana.trial=1): slot B,
    // the good one, is the only way back and must not be overwritten.
    let b = Box_::new(2);
    fs::write(
        b.dir.path().join("cmdline"),
        "gondwana.slot=a gondwana.trial=1\n",
    )
    .unwrap();
    fs::create_dir_all(b.boot.join("gondwana")).unwrap();
    fs::write(b.boot.join("gondwana/bootenv"), "gw_good=b\ngw_try=a\n").unwrap();
    let before = b.slot_hashes();
    let path = b.write_bundle("good.bundle", &bundle(&spec()));
    let run = b.gondwana(&["update", "install", &path]);
    run.expect_code(EXIT_FAILURE);
    assert!(run.stderr().contains("runs on trial"), "{}", run.describe());
    assert_eq!(b.slot_hashes(), before);
    assert!(!b.boot.join("slot-b").exists());
    let v = b.gondwana(&["update", "status", "--json"]).ok().json();
    assert_eq!(v["trial"]["state"], "running on trial");
}

#[test]
fn install_remounts_a_read_only_boot_partition() {
    let test = "install_remounts_a_read_only_boot_partition";
    if !prerequisites(test) {
        return;
    }
    let (Some(mkfs), Some(unshare), Some(mount)) =
        (which("mkfs.vfat"), which("unshare"), which("mount"))
    else {
        require::missing(test, "no mkfs.vfat, unshare or mount on PATH");
        return;
    };
    let b = Box_::new(2);
    run(Command::new(mkfs)
        .args(["-n", "GW_BOOT"])
        .arg(b.disk.part(1)));
    let path = b.write_bundle("good.bundle", &bundle(&spec()));
    let fat = format!("-t vfat {}", b.disk.part(1));
    let out = install_under_ro_mount(&b, &unshare, &mount, &path, &fat);
    let out = if out.status.code() == Some(99) {
        // The remount is the same for any filesystem: check it on tmpfs.
        require::kernel_limit(
            test,
            "the kernel does not mount vfat: a read-only tmpfs instead",
        );
        install_under_ro_mount(&b, &unshare, &mount, &path, "-t tmpfs tmpfs")
    } else {
        out
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("version=12"),
        "{}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In a private mount namespace: the boot directory mounted read-only
/// with `source` (`-t TYPE DEVICE`), the install (which remounts it
/// read-write and back), then its status record; exit 2 when the mount is
/// not read-only again, 99 when the mount itself fails.
fn install_under_ro_mount(
    b: &Box_,
    unshare: &Path,
    mount: &Path,
    bundle: &str,
    source: &str,
) -> std::process::Output {
    let script = format!(
        "{mount} {source} -o ro,nodev,nosuid,noexec {boot} || exit 99; \
         {bin} --config {config} --state-dir {state} update install {bundle} || exit 1; \
         grep -q ' {boot} [a-z]* ro,' /proc/self/mounts || {{ echo 'not read-only again'; exit 2; }}; \
         cat {boot}/slot-b/installed",
        mount = mount.display(),
        boot = b.boot.display(),
        bin = harness::bin(),
        config = b.config.display(),
        state = b.dir.path().join("state").display(),
    );
    Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_rotation_from_an_installed_bundle_is_kept_on_the_state_partition() {
    if !prerequisites("a_rotation_from_an_installed_bundle_is_kept_on_the_state_partition") {
        return;
    }
    let b = Box_::new(2);
    b.gondwana(&["firstboot"]).ok(); // the state store: a real redb file
    let new_key_only = |version| Spec {
        signer: key(2),
        version,
        ..spec()
    };
    // Before: the baked key 1 alone is trusted; key 2 without a record is not.
    let bare = b.write_bundle("bare.bundle", &bundle(&new_key_only(12)));
    let untrusted = |path: &str| {
        b.gondwana(&["update", "install", path])
            .expect_code(EXIT_VERIFY_FAILED)
            .stderr_contains("signed by release key");
    };
    untrusted(&bare);
    // A bundle signed by key 2 carrying the rotation 1 -> 2 installs, and
    // the rotation is stored.
    let carried = Spec {
        rotations: vec![rotation(1, &key(1), &key(2))],
        ..new_key_only(12)
    };
    let carried = b.write_bundle("carried.bundle", &bundle(&carried));
    b.gondwana(&["update", "install", &carried]).ok();
    // Later processes (a reboot's) read it from the store: key 2 signs
    // without the record now, and the old key 1 signs nothing any more.
    b.gondwana(&["update", "install", &bare]).ok();
    let old = b.write_bundle("old.bundle", &bundle(&spec()));
    untrusted(&old);
    // The rotation is audited.
    let audit = b.gondwana(&["audit", "show", "--json"]);
    audit.ok();
    assert!(
        audit.stdout().contains("update.rotation"),
        "{}",
        audit.describe()
    );
}

// ---------------------------------------------------------------------------
// `update trust FILE` (docs/updates.md, "Rotating the release key")

/// A rotation record file as `gondwana-release rotate` writes it.
fn rotation_file(b: &Box_, name: &str, bytes: &[u8]) -> String {
    b.write_bundle(name, bytes)
}

/// How many `update.rotation` audit records the box holds.
fn rotation_audits(b: &Box_) -> usize {
    let audit = b.gondwana(&["audit", "show", "--json"]);
    audit.ok();
    audit.stdout().matches("\"update.rotation\"").count()
}

fn untrusted(b: &Box_, bundle: &str) {
    b.gondwana(&["update", "install", bundle])
        .expect_code(EXIT_VERIFY_FAILED)
        .stderr_contains("signed by release key");
}

fn signed_by(signer: u8) -> Spec {
    Spec {
        signer: key(signer),
        ..spec()
    }
}

#[test]
fn a_rotation_record_stored_by_hand_is_trusted_and_a_bad_one_changes_nothing() {
    if !prerequisites("a_rotation_record_stored_by_hand_is_trusted_and_a_bad_one_changes_nothing") {
        return;
    }
    let b = Box_::new(2);
    b.gondwana(&["firstboot"]).ok();
    let bare = b.write_bundle("bare.bundle", &bundle(&signed_by(2)));
    untrusted(&b, &bare);

    let good = encode(&rotation(1, &key(1), &key(2)));
    let mut forged = rotation(1, &key(1), &key(2));
    forged.signature[10] ^= 1;
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "forged signature",
            encode(&forged),
            "signature does not verify",
        ),
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            "is not a rotation record",
        ),
        ("empty", Vec::new(), "is not a rotation record"),
        (
            "bytes after the record",
            trailing,
            "is not a rotation record",
        ),
        ("not a record", vec![b'x'; 4096], "is not a rotation record"),
        (
            "not chained from a trusted key",
            encode(&rotation(1, &key(9), &key(2))),
            "which this box does not trust",
        ),
        (
            "a key to itself",
            {
                // Sealed by hand: `seal_rotation` refuses it.
                let mut r = rotation(1, &key(1), &key(2));
                let mut body = r.body.clone();
                let new = key(1).public_key();
                let at = body.len() - 32;
                body[at..].copy_from_slice(&new);
                r.signature = key(1).sign(&gondwana_core::envelope::signed_message(
                    gondwana_core::envelope::tag::RELEASE_KEY_ROTATION,
                    &body,
                ));
                r.body = body;
                encode(&r)
            },
            "cannot rotate to itself",
        ),
    ];
    for (case, bytes, mention) in cases {
        let path = rotation_file(&b, "bad.rotation", &bytes);
        let run = b.gondwana(&["update", "trust", &path]);
        assert_eq!(
            run.code,
            Some(EXIT_VERIFY_FAILED),
            "{case}\n{}",
            run.describe()
        );
        assert!(
            run.stderr().contains("rotation record rejected") && run.stderr().contains(mention),
            "{case}: should mention {mention:?}\n{}",
            run.describe()
        );
    }
    let missing = b.dir.path().join("missing.rotation").display().to_string();
    b.gondwana(&["update", "trust", &missing])
        .expect_code(EXIT_FAILURE)
        .stderr_contains("missing.rotation");
    // Nothing stored: no audit record, key 2 still not trusted.
    assert_eq!(rotation_audits(&b), 0);
    untrusted(&b, &bare);

    let path = rotation_file(&b, "1.rotation", &good);
    let v = b
        .gondwana(&["update", "trust", &path, "--json"])
        .ok()
        .json();
    assert_eq!(v["stored"], true, "{v}");
    assert_eq!(v["record"]["seq"], 1);
    assert_eq!(v["record"]["old_key"], to_hex(&key(1).public_key()));
    assert_eq!(v["record"]["new_key"], to_hex(&key(2).public_key()));
    assert_eq!(
        v["release_keys"],
        serde_json::json!([to_hex(&key(2).public_key())])
    );
    assert_eq!(v["stored_records"], 1);
    assert_eq!(rotation_audits(&b), 1);
    // A bundle signed by the new key verifies without carrying the record;
    // the old key signs nothing any more.
    b.gondwana(&["update", "install", &bare]).ok();
    untrusted(&b, &b.write_bundle("old.bundle", &bundle(&spec())));
    // The same record again: the box is past it, nothing stored.
    let again = b.gondwana(&["update", "trust", &path]);
    again.ok();
    assert!(
        again.stdout().starts_with("not stored: "),
        "{}",
        again.describe()
    );
    let v = b
        .gondwana(&["update", "trust", &path, "--json"])
        .ok()
        .json();
    assert_eq!(v["stored"], false);
    assert!(
        v["skipped"].as_str().unwrap().contains("already past"),
        "{v}"
    );
    assert_eq!(rotation_audits(&b), 1);
}

#[test]
fn at_most_16_rotation_records_are_stored() {
    if !prerequisites("at_most_16_rotation_records_are_stored") {
        return;
    }
    let b = Box_::new(2);
    b.gondwana(&["firstboot"]).ok();
    // Key 1 (baked) -> 2 -> … -> 17: sixteen records, each by hand.
    for n in 1..=16u8 {
        let path = rotation_file(
            &b,
            "r.rotation",
            &encode(&rotation(n.into(), &key(n), &key(n + 1))),
        );
        let v = b
            .gondwana(&["update", "trust", &path, "--json"])
            .ok()
            .json();
        assert_eq!(v["stored"], true, "record {n}: {v}");
    }
    let path = rotation_file(&b, "r.rotation", &encode(&rotation(17, &key(17), &key(18))));
    b.gondwana(&["update", "trust", &path])
        .expect_code(EXIT_FAILURE)
        .stderr_contains("16 rotation records are stored already");
    assert_eq!(rotation_audits(&b), 16);
    untrusted(&b, &b.write_bundle("k18.bundle", &bundle(&signed_by(18))));
    b.gondwana(&[
        "update",
        "install",
        &b.write_bundle("k17.bundle", &bundle(&signed_by(17))),
    ])
    .ok();
}

// ---------------------------------------------------------------------------
// `update cancel` (docs/updates.md, "Rolling back by hand")

fn env_var(env: &str, name: &str) -> Option<String> {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

#[test]
fn cancel_disarms_the_trial_and_keeps_the_installed_slot() {
    if !prerequisites("cancel_disarms_the_trial_and_keeps_the_installed_slot") {
        return;
    }
    let b = Box_::new(2);
    let no_trial = |b: &Box_| {
        b.gondwana(&["update", "cancel"])
            .expect_code(EXIT_FAILURE)
            .stderr_contains("no trial is armed");
    };
    no_trial(&b);
    assert!(
        !b.boot.join("gondwana/bootenv").exists(),
        "a refused cancel wrote the boot environment"
    );
    let good = b.write_bundle("good.bundle", &bundle(&spec()));
    b.gondwana(&["update", "install", &good]).ok();
    let armed = b.bootenv();
    let arm = env_var(&armed, "gw_arm").expect("gw_arm");
    assert_eq!(env_var(&armed, "gw_try").as_deref(), Some("b"));

    let v = b.gondwana(&["update", "cancel", "--json"]).ok().json();
    assert_eq!(v["cancelled"], true);
    assert_eq!(v["slot"], "b");
    assert_eq!(v["good_slot"], "a");
    assert_eq!(v["release"]["version"], 12);
    // The one-shot try is gone; the good slot and the arming's id stay,
    // with the cancel naming it. Same block, rewritten in place.
    let env = b.bootenv();
    assert!(env.starts_with("# GRUB Environment Block\n"), "{env}");
    assert_eq!(env_var(&env, "gw_good").as_deref(), Some("a"), "{env}");
    assert_eq!(env_var(&env, "gw_try"), None, "{env}");
    assert_eq!(env_var(&env, "gw_arm").as_deref(), Some(arm.as_str()));
    assert_eq!(env_var(&env, "gw_cancel").as_deref(), Some(arm.as_str()));
    // The slot stays installed, not armed; status says cancelled.
    assert!(b.boot.join("slot-b/installed").exists());
    let s = b.gondwana(&["update", "status", "--json"]).ok().json();
    assert!(s["trial"].is_null(), "{s}");
    assert_eq!(s["good_slot"], "a");
    assert_eq!(s["slots"][1]["state"], "installed");
    assert_eq!(s["last_update"]["ok"], false);
    let human = b.gondwana(&["update", "status"]);
    assert!(
        human.ok().stdout().contains(
            "last update: update to version 12 (v12) cancelled: slot b stays installed, not armed"
        ),
        "{}",
        human.describe()
    );
    // Nothing armed any more: refused, the block unchanged.
    no_trial(&b);
    assert_eq!(b.bootenv(), env);

    // Installing again arms a new trial (the cancel forgotten).
    b.gondwana(&["update", "install", &good]).ok();
    let env = b.bootenv();
    assert_eq!(env_var(&env, "gw_try").as_deref(), Some("b"), "{env}");
    assert_eq!(env_var(&env, "gw_cancel"), None, "{env}");
    // Taken by the bootloader (U-Boot's copy of the block): not cancellable.
    fs::copy(
        b.boot.join("gondwana/bootenv"),
        b.boot.join("gondwana/bootenv.tried"),
    )
    .unwrap();
    no_trial(&b);
    fs::remove_file(b.boot.join("gondwana/bootenv.tried")).unwrap();

    // Running on trial (slot a booted once, slot b the good one): refused.
    fs::write(
        b.dir.path().join("cmdline"),
        "gondwana.slot=a gondwana.trial=1\n",
    )
    .unwrap();
    let on_trial = "gw_good=b\ngw_try=a\n";
    fs::write(b.boot.join("gondwana/bootenv"), on_trial).unwrap();
    b.gondwana(&["update", "cancel"])
        .expect_code(EXIT_FAILURE)
        .stderr_contains("runs on trial");
    assert_eq!(
        fs::read_to_string(b.boot.join("gondwana/bootenv")).unwrap(),
        on_trial
    );
}

#[test]
fn trust_and_cancel_go_through_the_running_daemon() {
    if !prerequisites("trust_and_cancel_go_through_the_running_daemon") {
        return;
    }
    let b = Box_::new(2);
    let daemon = b.daemon();
    let bare = b.write_bundle("bare.bundle", &bundle(&signed_by(2)));
    let mut forged = rotation(1, &key(1), &key(2));
    forged.signature[0] ^= 1;
    let forged = rotation_file(&b, "forged.rotation", &encode(&forged));
    b.gondwana(&["update", "trust", &forged])
        .expect_code(EXIT_VERIFY_FAILED)
        .stderr_contains("signature does not verify");
    let good = rotation_file(&b, "1.rotation", &encode(&rotation(1, &key(1), &key(2))));
    let v = b
        .gondwana(&["update", "trust", &good, "--json"])
        .ok()
        .json();
    assert_eq!(v["stored"], true, "{v}");
    assert!(
        daemon.log_text().contains("stored by hand"),
        "{}",
        daemon.log_text()
    );
    b.gondwana(&["update", "install", &bare]).ok();
    let v = b.gondwana(&["update", "cancel", "--json"]).ok().json();
    assert_eq!(v["slot"], "b");
    assert!(
        daemon.log_text().contains("cancelled"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(env_var(&b.bootenv(), "gw_try"), None);
    daemon.terminate(Duration::from_secs(10));
    // After the daemon (a reboot): the stored record still makes key 2 trusted.
    b.gondwana(&["update", "install", &bare]).ok();
    assert_eq!(rotation_audits(&b), 1);
}

//! `GW_CONFIG` volumes for real: FAT images made with `mkfs.vfat`, attached
//! as loop devices, found by a `gondwana run` node in a private mount
//! namespace (`unshare --mount --propagation private`, so nothing it mounts
//! can reach the host) whose only enrolment source is such a volume.
//!
//! Needs root, util-linux (`losetup`, `unshare`, `mount`), dosfstools and
//! mtools; without them each test fails under `GONDWANA_REQUIRE_PRIVILEGED=1`
//! (as `scripts/test` runs it) and prints SKIPPED otherwise. When the kernel
//! cannot mount vfat at all, the tests check discovery only (the node finds
//! the volume, cannot mount it, stays unenrolled) and say
//! `SKIPPED (host kernel)` for the rest.
//!
//! The tests run one at a time: a node looks at every block device, so it
//! would see another test's stick.

mod harness;
use harness::require::{self, run_tool as run, which};

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::mesh::{Hub, Mesh, Node, get, poll, send_signal};

const ENROL_TIMEOUT: Duration = Duration::from_secs(60);
/// The node looks for enrolment config every 5 s while it has none.
const SCAN_TIMEOUT: Duration = Duration::from_secs(30);

static SERIAL: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// Tools

struct Tools {
    losetup: PathBuf,
    unshare: PathBuf,
    mount: PathBuf,
    mkfs_vfat: PathBuf,
    mmd: PathBuf,
    mcopy: PathBuf,
}

fn tools() -> Result<Tools, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root (losetup and mount need it)".into());
    }
    let need = |name: &str| which(name).ok_or_else(|| format!("no {name} on PATH"));
    Ok(Tools {
        losetup: need("losetup")?,
        unshare: need("unshare")?,
        mount: need("mount")?,
        mkfs_vfat: need("mkfs.vfat")?,
        mmd: need("mmd")?,
        mcopy: need("mcopy")?,
    })
}

fn skipped(test: &str, why: &str) {
    require::missing(test, why);
}

/// The lock that runs these tests one at a time, and the tools; `None`
/// (after saying SKIPPED) when the tools are missing.
fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, Tools)> {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    match tools() {
        Ok(tools) => Some((serial, tools)),
        Err(why) => {
            skipped(test, &why);
            None
        }
    }
}

// ---------------------------------------------------------------------------
// FAT images and loop devices

/// A `size_mib` FAT`bits` image labelled `label`, with `gondwana/enroll.toml`
/// holding `enroll` if given.
fn fat_image(
    tools: &Tools,
    path: &Path,
    size_mib: u64,
    bits: u8,
    label: &str,
    enroll: Option<&str>,
) {
    File::create(path)
        .and_then(|f| f.set_len(size_mib << 20))
        .expect("image file");
    run(Command::new(&tools.mkfs_vfat)
        .arg("-F")
        .arg(bits.to_string())
        .arg("-n")
        .arg(label)
        .arg(path));
    if let Some(text) = enroll {
        let file = path.with_extension("enroll.toml");
        fs::write(&file, text).unwrap();
        run(Command::new(&tools.mmd)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(path)
            .arg("::/gondwana"));
        run(Command::new(&tools.mcopy)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(path)
            .arg(&file)
            .arg("::/gondwana/enroll.toml"));
    }
}

/// A loop device this test attached; detached (only it) on drop.
struct Loop {
    device: String,
    losetup: PathBuf,
}

impl Loop {
    fn attach(tools: &Tools, image: &Path) -> Result<Loop, String> {
        let out = Command::new(&tools.losetup)
            .arg("--find")
            .arg("--show")
            .arg(image)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("losetup: {e}"))?;
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !device.starts_with("/dev/loop") {
            return Err(format!(
                "losetup --find --show failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Loop {
            device,
            losetup: tools.losetup.clone(),
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new(&self.losetup)
            .arg("-d")
            .arg(&self.device)
            .stdin(Stdio::null())
            .status();
    }
}

/// Whether this kernel mounts vfat at all (tried in a throwaway private
/// mount namespace, which takes the mount with it when `mount` exits).
fn kernel_mounts_vfat(tools: &Tools, device: &str, dir: &Path) -> bool {
    fs::create_dir_all(dir).unwrap();
    Command::new(&tools.unshare)
        .args(["--mount", "--propagation", "private"])
        .arg(&tools.mount)
        .args(["-t", "vfat", "-o", "ro", device])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------
// A node daemon in its own mount namespace

struct NsDaemon {
    child: Option<Child>,
    log: PathBuf,
}

impl NsDaemon {
    /// `unshare --mount --propagation private -- gondwana … run` for `node`,
    /// then waits until its API answers. (unshare execs the daemon: the
    /// child's pid is the daemon's.)
    fn start(tools: &Tools, node: &Node) -> NsDaemon {
        let log = node.log();
        let err = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let out = err.try_clone().unwrap();
        let child = Command::new(&tools.unshare)
            .args(["--mount", "--propagation", "private", "--"])
            .arg(harness::mesh::bin())
            .arg("--config")
            .arg(&node.config)
            .arg("--state-dir")
            .arg(&node.state)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning unshare … gondwana run");
        let mut daemon = NsDaemon {
            child: Some(child),
            log: log.clone(),
        };
        let port = node.api_port;
        poll(
            Duration::from_secs(30),
            "the node to listen",
            || {
                if let Some(status) = daemon.exited() {
                    panic!("the node exited ({status}) during start-up");
                }
                get(port, "/v1/health")
                    .is_ok_and(|r| r.status == 200)
                    .then_some(())
            },
            || fs::read_to_string(&log).unwrap_or_default(),
        );
        daemon
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- node log ---\n{}", self.log_text());
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            send_signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// The mount table of `pid`'s namespace mentions `mount_point` or `device`.
fn mounted(pid: &str, mount_point: &Path, device: &str) -> Option<String> {
    let table = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mount_point = mount_point.to_str().unwrap();
    table
        .lines()
        .find(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let source = line
                .split_once(" - ")
                .and_then(|(_, rest)| rest.split(' ').nth(1));
            fields.get(4) == Some(&mount_point) || source == Some(device)
        })
        .map(str::to_string)
}

/// Nothing of the stick is left mounted, in the daemon's namespace or the
/// host's, and the mount point (seen from inside) is empty.
#[track_caller]
fn assert_not_mounted(daemon: &NsDaemon, mount_point: &Path, device: &str) {
    let pid = daemon.pid().to_string();
    for who in [pid.as_str(), "self"] {
        if let Some(line) = mounted(who, mount_point, device) {
            panic!("still mounted in /proc/{who}/mountinfo: {line}");
        }
    }
    let inside = PathBuf::from(format!("/proc/{pid}/root{}", mount_point.display()));
    if let Ok(entries) = fs::read_dir(&inside) {
        let names: Vec<_> = entries.filter_map(|e| Some(e.ok()?.file_name())).collect();
        assert!(names.is_empty(), "{} holds {names:?}", inside.display());
    }
}

/// The daemon really is in a mount namespace of its own.
#[track_caller]
fn assert_private_namespace(daemon: &NsDaemon) {
    let ns = |who: &str| fs::read_link(format!("/proc/{who}/ns/mnt")).unwrap();
    assert_ne!(ns(&daemon.pid().to_string()), ns("self"));
}

// ---------------------------------------------------------------------------
// Hub, node

/// A running hub and the text of a fresh single-use `enroll.toml`.
fn hub_and_enroll(m: &Mesh) -> (Hub, String) {
    let mut hub = m.hub();
    hub.cli(&["firstboot"]).ok();
    let token_file = hub.dir.join("enroll.toml");
    hub.token(&[], &token_file);
    let enroll = fs::read_to_string(&token_file).unwrap();
    hub.start();
    (hub, enroll)
}

/// A node whose `search_paths` file does not exist and whose command line
/// is empty, with its volume mount point in the test's temp dir; and that
/// mount point.
fn node(m: &Mesh, name: &str, hub_api_url: &str) -> (Node, PathBuf) {
    let node = Node::new(m.root(), name, hub_api_url);
    let mount_point = node.dir.join("run").join("gw-config");
    node.write_config(
        1,
        &format!(
            "config_volume_label = \"GW_CONFIG\"\nconfig_volume_mount = \"{}\"\n",
            mount_point.display()
        ),
    );
    fs::write(&node.cmdline, "").unwrap();
    assert!(!node.enroll_file.exists());
    (node, mount_point)
}

fn source(device: &str) -> String {
    format!("GW_CONFIG volume {device} (gondwana/enroll.toml)")
}

#[track_caller]
fn wait_for_log(daemon: &NsDaemon, needle: &str) {
    poll(
        SCAN_TIMEOUT,
        &format!("{needle:?} in the node log"),
        || daemon.log_text().contains(needle).then_some(()),
        || daemon.log_text(),
    );
}

fn enrol_state(node: &Node) -> String {
    node.enrol_state().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn a_gw_config_stick_enrols_the_node_and_is_unmounted_again() {
    const TEST: &str = "a_gw_config_stick_enrols_the_node_and_is_unmounted_again";
    let Some((_serial, tools)) = setup(TEST) else {
        return;
    };
    let m = Mesh::new();
    // FAT32, as USB sticks come (FAT32 needs ≥ 65525 clusters: 40 MiB,
    // sparse).
    let (hub, enroll) = hub_and_enroll(&m);
    let image = m.root().join("stick.img");
    fat_image(&tools, &image, 40, 32, "GW_CONFIG", Some(&enroll));
    let stick = match Loop::attach(&tools, &image) {
        Ok(stick) => stick,
        Err(why) => return skipped(TEST, &why),
    };
    let vfat = kernel_mounts_vfat(&tools, &stick.device, &m.root().join("probe"));

    let (node, mount_point) = node(&m, "n1", &hub.api_url());
    let daemon = NsDaemon::start(&tools, &node);
    assert_private_namespace(&daemon);

    if vfat {
        node.wait_enrolled(ENROL_TIMEOUT);
        // The status can say so a moment before the log line is written.
        wait_for_log(&daemon, &format!("via {}", source(&stick.device)));
        assert_not_mounted(&daemon, &mount_point, &stick.device);
        let mode = fs::metadata(&mount_point).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
            0o700
        );
        assert_eq!(hub.node_list().len(), 1);
    } else {
        wait_for_log(&daemon, &format!("{}: cannot mount", source(&stick.device)));
        assert_eq!(enrol_state(&node), "unenrolled");
        assert_not_mounted(&daemon, &mount_point, &stick.device);
        require::kernel_limit(
            TEST,
            "this kernel cannot mount vfat: checked that the volume is found, not the enrolment",
        );
    }
}

#[test]
fn other_labels_and_sticks_without_the_file_are_passed_over() {
    const TEST: &str = "other_labels_and_sticks_without_the_file_are_passed_over";
    let Some((_serial, tools)) = setup(TEST) else {
        return;
    };
    let m = Mesh::new();
    let (hub, enroll) = hub_and_enroll(&m);
    // A good enroll.toml under another label (FAT12), and the right label
    // (FAT16) without the file.
    let other_image = m.root().join("other.img");
    fat_image(&tools, &other_image, 4, 12, "NOT_GW", Some(&enroll));
    let empty_image = m.root().join("empty.img");
    fat_image(&tools, &empty_image, 16, 16, "GW_CONFIG", None);
    let other = match Loop::attach(&tools, &other_image) {
        Ok(stick) => stick,
        Err(why) => return skipped(TEST, &why),
    };
    let empty = Loop::attach(&tools, &empty_image).expect("second loop device");
    let vfat = kernel_mounts_vfat(&tools, &empty.device, &m.root().join("probe"));

    let (node, mount_point) = node(&m, "n1", &hub.api_url());
    let daemon = NsDaemon::start(&tools, &node);
    assert_private_namespace(&daemon);
    let why = if vfat { "no such file" } else { "cannot mount" };
    wait_for_log(&daemon, &format!("{}: {why}", source(&empty.device)));
    // One more full scan after that.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(enrol_state(&node), "unenrolled");
    let log = daemon.log_text();
    assert!(
        !log.contains(&format!("{} ", other.device))
            && !log.contains(&format!("{}:", other.device)),
        "the NOT_GW volume is not even mentioned:\n{log}"
    );
    assert_not_mounted(&daemon, &mount_point, &empty.device);
    assert_not_mounted(&daemon, &mount_point, &other.device);

    // Plugged in later, a stick labelled in lower case (FAT12) is found.
    let lower_image = m.root().join("lower.img");
    fat_image(&tools, &lower_image, 4, 12, "gw_config", Some(&enroll));
    let lower = Loop::attach(&tools, &lower_image).expect("third loop device");
    if vfat {
        node.wait_enrolled(ENROL_TIMEOUT);
        wait_for_log(&daemon, &format!("via {}", source(&lower.device)));
    } else {
        wait_for_log(&daemon, &format!("{}: cannot mount", source(&lower.device)));
        require::kernel_limit(
            TEST,
            "this kernel cannot mount vfat: checked which volumes are found, not the enrolment",
        );
    }
    for stick in [&other, &empty, &lower] {
        assert_not_mounted(&daemon, &mount_point, &stick.device);
    }
}

#[test]
fn a_malformed_enroll_toml_on_a_stick_is_reported() {
    const TEST: &str = "a_malformed_enroll_toml_on_a_stick_is_reported";
    let Some((_serial, tools)) = setup(TEST) else {
        return;
    };
    let m = Mesh::new();
    let image = m.root().join("bad.img");
    fat_image(&tools, &image, 4, 12, "GW_CONFIG", Some("hub_url = 1\n"));
    let stick = match Loop::attach(&tools, &image) {
        Ok(stick) => stick,
        Err(why) => return skipped(TEST, &why),
    };
    if !kernel_mounts_vfat(&tools, &stick.device, &m.root().join("probe")) {
        return require::kernel_limit(TEST, "this kernel cannot mount vfat");
    }
    let (node, mount_point) = node(&m, "n1", "http://127.0.0.1:9");
    let daemon = NsDaemon::start(&tools, &node);
    let status = poll(
        SCAN_TIMEOUT,
        "the malformed stick to be reported",
        || {
            node.status_http()
                .filter(|v| v["enrolment"]["state"] == "enrolling")
        },
        || daemon.log_text(),
    );
    let error = status["enrolment"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.starts_with(&format!("{}: ", source(&stick.device))),
        "{status}"
    );
    assert_not_mounted(&daemon, &mount_point, &stick.device);
}

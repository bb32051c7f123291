//! The userspace backend for real: our device process (boringtun on a
//! TUN), in network namespaces we create, inspected with the real `wg`;
//! two namespaces joined by a veth pass pings through the tunnel. The
//! device process is this test binary re-executed (`device_process_entry`
//! below calls the same `device_process::main` as `gondwana
//! wireguard-userspace`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::*;
use crate::net::link::Links;
use crate::net::testns::{NetNs, unique_tag};

const IFACE_ENV: &str = "GONDWANA_TEST_WG_IFACE";
const DIR_ENV: &str = "GONDWANA_TEST_WG_SOCKET_DIR";
const HOLD_ENV: &str = "GONDWANA_TEST_WG_HOLD";

fn socket_dir() -> PathBuf {
    PathBuf::from(uapi::DEFAULT_SOCKET_DIR)
}

pub(crate) fn test_options(iface: &str) -> OpenOptions {
    let exe = std::env::current_exe().expect("test binary path");
    OpenOptions {
        launcher: Launcher {
            program: exe,
            args: [
                "net::wireguard::tests::device_process_entry",
                "--exact",
                "--ignored",
                "--nocapture",
            ]
            .map(Into::into)
            .to_vec(),
            envs: vec![
                (IFACE_ENV.into(), iface.into()),
                (DIR_ENV.into(), socket_dir().into()),
            ],
            append_interface_args: false,
        },
        socket_dir: socket_dir(),
    }
}

/// Not a test: the entry point of the device processes the tests start.
#[test]
#[ignore = "entry point of the device process (run by the tests below)"]
fn device_process_entry() {
    let (Some(iface), Some(dir)) = (std::env::var_os(IFACE_ENV), std::env::var_os(DIR_ENV)) else {
        return;
    };
    let iface = iface.to_string_lossy().into_owned();
    if let Err(e) = device_process::main(&iface, std::path::Path::new(&dir)) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
}

/// Stops, on drop, every device process it names (a failing test must
/// not leave them behind: they hold their namespaces alive).
pub(crate) struct Devices(pub(crate) Vec<String>);

impl Drop for Devices {
    fn drop(&mut self) {
        for iface in &self.0 {
            let socket = uapi::socket_path(&socket_dir(), iface);
            if let Some(pid) = userspace::server_pid(&socket) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = std::fs::remove_file(device_process::log_path(&socket_dir(), iface));
        }
    }
}

pub(crate) fn random_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut *key).expect("OS RNG");
    key
}

pub(crate) fn peer(
    public_key: [u8; 32],
    ips: &[&str],
    endpoint: Option<&str>,
    keepalive: Option<u16>,
) -> PeerConfig {
    PeerConfig {
        public_key,
        endpoint: endpoint.map(|e| e.parse().unwrap()),
        allowed_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        keepalive,
    }
}

fn b64(key: &[u8; 32]) -> String {
    gondwana_core::keys::wg_key_to_base64(key)
}

fn wg(args: &[&str]) -> String {
    let out = Command::new("wg").args(args).output().expect("run wg");
    assert!(
        out.status.success(),
        "wg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn userspace_device_is_configured_read_back_adopted_and_deleted() {
    let ns = NetNs::new();
    let iface = format!("wgu{}", unique_tag());
    let _devices = Devices(vec![iface.clone()]);
    let key = random_key();
    let [p1, p2, p3] = [[1u8; 32], [2; 32], [3; 32]];
    let options = test_options(&iface);
    let name = iface.clone();
    let k = key.clone();
    let o = options.clone();
    ns.run(move || async move {
        let wg = WireGuard::open(&ifname(&name), BackendChoice::Userspace, &o)
            .await
            .unwrap();
        assert_eq!(wg.backend(), Backend::Userspace);
        let before = wg.get().await.unwrap();
        assert_eq!(before.public_key, None);
        assert!(before.peers.is_empty());
        // Peers before a key are refused, not a boringtun panic.
        let err = wg
            .apply_peers(&[peer(p1, &["10.70.0.2/32"], None, None)], &[])
            .await;
        assert!(matches!(err, Err(WgError::NoKey(_))), "{err:?}");
        wg.configure(&k, 51901).await.unwrap();
        let changes = wg
            .apply_peers(
                &[
                    peer(p1, &["10.70.0.2/32"], None, None),
                    peer(
                        p2,
                        &["10.70.0.3/32", "10.71.0.0/16"],
                        Some("192.0.2.7:51822"),
                        Some(25),
                    ),
                    peer(p3, &["10.70.0.4/32"], None, None),
                ],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(changes.added, 3);
        let state = wg.get().await.unwrap();
        assert_eq!(state.public_key, Some(public_key(&k)));
        assert_eq!(state.listen_port, 51901);
        assert_eq!(state.peers.len(), 3);
        let two = state
            .peers
            .iter()
            .find(|p| p.config.public_key == p2)
            .unwrap();
        assert_eq!(
            two.config.endpoint,
            Some("192.0.2.7:51822".parse().unwrap())
        );
        assert_eq!(two.config.keepalive, Some(25));
        assert_eq!(two.last_handshake, None);
        let one = state
            .peers
            .iter()
            .find(|p| p.config.public_key == p1)
            .unwrap();
        // No endpoint or keepalive leaked from peer 2 (boringtun's carry-over).
        assert_eq!((one.config.endpoint, one.config.keepalive), (None, None));

        // The same again touches nothing.
        let same = wg
            .apply_peers(
                &[
                    peer(p1, &["10.70.0.2/32"], None, None),
                    peer(
                        p2,
                        &["10.71.0.0/16", "10.70.0.3/32"],
                        Some("192.0.2.7:51822"),
                        Some(25),
                    ),
                ],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            same,
            PeerChanges {
                unchanged: 2,
                ..PeerChanges::default()
            }
        );
        // Changed, removed, and an absent removal.
        let changed = wg
            .apply_peers(
                &[peer(p1, &["10.70.0.9/32"], None, Some(10))],
                &[p3, [9; 32]],
            )
            .await
            .unwrap();
        assert_eq!((changed.updated, changed.removed), (1, 1));
        let state = wg.get().await.unwrap();
        assert_eq!(state.peers.len(), 2);
        let one = state
            .peers
            .iter()
            .find(|p| p.config.public_key == p1)
            .unwrap();
        assert_eq!(
            one.config.allowed_ips,
            vec!["10.70.0.9/32".parse().unwrap()]
        );
        assert_eq!(one.config.keepalive, Some(10));
    });

    // The real wg sees the same.
    let dump = wg(&["show", &iface, "dump"]);
    let mut lines = dump.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(head[1], b64(&public_key(&key)), "{dump}");
    // Like the kernel, the root-only socket answers the private key (which
    // `wg show` hides and `wg showconf` prints); nothing else shows it.
    assert_eq!(head[0], b64(&key));
    let mode = std::fs::metadata(uapi::socket_path(&socket_dir(), &iface)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0
    );
    let log = std::fs::read_to_string(device_process::log_path(&socket_dir(), &iface)).unwrap();
    assert!(log.contains("userspace WireGuard device up"), "{log}");
    assert!(
        !log.contains(&uapi::hex(&key)) && !log.contains(&b64(&key)),
        "{log}"
    );
    assert_eq!(head[2], "51901");
    let peers: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert_eq!(peers.len(), 2, "{dump}");
    let two = peers.iter().find(|p| p[0] == b64(&p2)).unwrap();
    assert_eq!(two[2], "192.0.2.7:51822");
    assert_eq!(two[3], "10.70.0.3/32,10.71.0.0/16");
    assert_eq!(two[4], "0", "no handshake yet: {dump}");
    let conf = wg(&["showconf", &iface]);
    assert!(conf.contains("ListenPort = 51901"), "{conf}");
    assert!(
        conf.contains(&format!("PublicKey = {}", b64(&p1))),
        "{conf}"
    );

    // `wg set` changing an existing peer (which panics plain boringtun).
    wg(&[
        "set",
        &iface,
        "peer",
        &b64(&p1),
        "allowed-ips",
        "10.70.0.10/32",
        "persistent-keepalive",
        "15",
    ]);
    // An IPv6 allowed IP is outside our model: seen, and replaced by a re-set.
    wg(&[
        "set",
        &iface,
        "peer",
        &b64(&p2),
        "allowed-ips",
        "10.70.0.3/32,10.71.0.0/16,fd00::/64",
    ]);
    let o = options.clone();
    let name = iface.clone();
    let k = key.clone();
    ns.run(move || async move {
        // A second open adopts the same device, key and peers.
        let wg = WireGuard::open(&ifname(&name), BackendChoice::Userspace, &o)
            .await
            .unwrap();
        let state = wg.get().await.unwrap();
        assert_eq!(state.public_key, Some(public_key(&k)));
        assert_eq!(state.peers.len(), 2);
        let one = state
            .peers
            .iter()
            .find(|p| p.config.public_key == p1)
            .unwrap();
        assert_eq!(
            one.config.allowed_ips,
            vec!["10.70.0.10/32".parse().unwrap()]
        );
        assert_eq!(one.config.keepalive, Some(15));
        let two = |state: &DeviceState| {
            state
                .peers
                .iter()
                .find(|p| p.config.public_key == p2)
                .cloned()
                .unwrap()
        };
        assert_eq!(two(&state).foreign_allowed_ips, vec!["fd00::/64"]);
        let want2 = peer(
            p2,
            &["10.70.0.3/32", "10.71.0.0/16"],
            Some("192.0.2.7:51822"),
            Some(25),
        );
        let changes = wg
            .apply_peers(std::slice::from_ref(&want2), &[])
            .await
            .unwrap();
        assert_eq!(changes.updated, 1, "{changes:?}");
        let after = two(&wg.get().await.unwrap());
        assert!(after.foreign_allowed_ips.is_empty(), "{after:?}");
        assert!(after.satisfies(&want2), "{after:?}");
        let ips = self::wg(&["show", &name, "allowed-ips"]);
        assert!(!ips.contains("fd00"), "{ips}");
        let again = wg.apply_peers(&[want2], &[]).await.unwrap();
        assert_eq!(again.unchanged, 1, "{again:?}");
        wg.configure(&k, 51901).await.unwrap();
        assert_eq!(wg.get().await.unwrap().peers.len(), 2);
        wg.delete().await.unwrap();
        assert_eq!(
            Links::new()
                .unwrap()
                .link_index(&ifname(&name))
                .await
                .unwrap(),
            None
        );
    });
    assert!(!uapi::socket_path(&socket_dir(), &iface).exists());
}

#[test]
fn auto_falls_back_to_userspace_and_forced_kernel_fails_clearly() {
    let has_module = std::path::Path::new("/sys/module/wireguard").exists();
    let ns = NetNs::new();
    let iface = format!("wga{}", unique_tag());
    let _devices = Devices(vec![iface.clone()]);
    let options = test_options(&iface);
    ns.run(move || async move {
        let forced = WireGuard::open(&ifname(&iface), BackendChoice::Kernel, &options).await;
        if has_module {
            assert_eq!(forced.unwrap().backend(), Backend::Kernel);
            return;
        }
        let err = forced.err().expect("kernel backend without a module");
        assert!(matches!(err, WgError::KernelUnavailable(_)), "{err:?}");
        assert!(err.to_string().contains("kernel has no WireGuard"), "{err}");
        // Nothing was created by the refused attempt.
        assert_eq!(
            Links::new()
                .unwrap()
                .link_index(&ifname(&iface))
                .await
                .unwrap(),
            None
        );
        let auto = WireGuard::open(&ifname(&iface), BackendChoice::Auto, &options)
            .await
            .unwrap();
        assert_eq!(auto.backend(), Backend::Userspace);
        // Auto adopts the live userspace device.
        let again = WireGuard::open(&ifname(&iface), BackendChoice::Auto, &options)
            .await
            .unwrap();
        assert_eq!(again.backend(), Backend::Userspace);
        again.delete().await.unwrap();
    });
}

/// A stand-in daemon in another process: opens and configures a device in
/// namespace `ns`, prints "ready", then waits to be killed.
fn spawn_holder(ns: &NetNs, iface: &str, spec: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(exe)
        .args([
            "net::wireguard::tests::hold_device_entry",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLD_ENV, spec)
        .env(IFACE_ENV, iface)
        .env(DIR_ENV, socket_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "ready");
    assert!(ready, "holder for {iface} did not get ready");
    child
}

/// Not a test: the stand-in daemon of `spawn_holder`. Spec: private key
/// hex, port, address, then peer key hex, allowed IP, endpoint (space
/// separated).
#[test]
#[ignore = "entry point of a stand-in daemon (run by the tests below)"]
fn hold_device_entry() {
    let (Some(spec), Some(iface)) = (std::env::var(HOLD_ENV).ok(), std::env::var(IFACE_ENV).ok())
    else {
        return;
    };
    let f: Vec<&str> = spec.split(' ').collect();
    let runtime = crate::runtime::current_thread().unwrap();
    runtime.block_on(async {
        let options = test_options(&iface);
        let wg = WireGuard::open(&ifname(&iface), BackendChoice::Userspace, &options)
            .await
            .unwrap();
        let key = Zeroizing::new(uapi::parse_hex_key(f[0]).unwrap());
        wg.configure(&key, f[1].parse().unwrap()).await.unwrap();
        let links = Links::new().unwrap();
        links
            .ensure_address(&ifname(&iface), f[2].parse().unwrap())
            .await
            .unwrap();
        links.set_up(&ifname(&iface)).await.unwrap();
        let hub = peer(
            uapi::parse_hex_key(f[3]).unwrap(),
            &[f[4]],
            Some(f[5]),
            Some(25),
        );
        wg.apply_peers(&[hub], &[]).await.unwrap();
    });
    println!("ready");
    std::thread::sleep(Duration::from_secs(3600));
}

/// Starts a userspace device `iface` in `ns` (port 51820) with `key`,
/// `address` and one peer, and brings it up.
pub(crate) fn start_device(
    ns: &NetNs,
    iface: &str,
    key: &Zeroizing<[u8; 32]>,
    address: &str,
    one_peer: PeerConfig,
) {
    let (name, key, address) = (iface.to_string(), key.clone(), address.to_string());
    let options = test_options(iface);
    ns.run(move || async move {
        let wg = WireGuard::open(&ifname(&name), BackendChoice::Userspace, &options)
            .await
            .unwrap();
        wg.configure(&key, 51820).await.unwrap();
        let links = Links::new().unwrap();
        links
            .ensure_address(&ifname(&name), address.parse().unwrap())
            .await
            .unwrap();
        links.set_up(&ifname(&name)).await.unwrap();
        wg.apply_peers(&[one_peer], &[]).await.unwrap();
    });
}

pub(crate) fn ping(ns: &NetNs, to: &str) -> bool {
    (0..5).any(|_| {
        ns.try_exec(&["ping", "-c", "1", "-W", "2", to])
            .status
            .success()
    })
}

#[test]
fn two_namespaces_ping_through_the_tunnel_and_it_outlives_its_starter() {
    let a = NetNs::new();
    let b = NetNs::new();
    let tag = unique_tag();
    let (wa, wb) = (format!("wga{tag}"), format!("wgb{tag}"));
    let _devices = Devices(vec![wa.clone(), wb.clone()]);
    a.exec(&[
        "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b.name,
    ]);
    a.exec(&["ip", "addr", "add", "192.168.77.1/24", "dev", "va"]);
    a.exec(&["ip", "link", "set", "va", "up"]);
    b.exec(&["ip", "addr", "add", "192.168.77.2/24", "dev", "vb"]);
    b.exec(&["ip", "link", "set", "vb", "up"]);
    let (ka, kb) = (random_key(), random_key());
    let (pa, pb) = (public_key(&ka), public_key(&kb));

    // B's device is started by a separate process, killed below.
    let spec = format!(
        "{} 51820 10.77.0.2/24 {} 10.77.0.0/24 192.168.77.1:51820",
        uapi::hex(&kb),
        uapi::hex(&pa)
    );
    let mut holder = spawn_holder(&b, &wb, &spec);

    let to_b = peer(pb, &["10.77.0.2/32"], Some("192.168.77.2:51820"), None);
    start_device(&a, &wa, &ka, "10.77.0.1/24", to_b);
    assert!(ping(&a, "10.77.0.2"), "no ping through the tunnel");

    let name = wa.clone();
    let options = test_options(&wa);
    let handshake = a.run(move || async move {
        let wg = WireGuard::open(&ifname(&name), BackendChoice::Userspace, &options)
            .await
            .unwrap();
        let state = wg.get().await.unwrap();
        let peer = &state.peers[0];
        assert!(peer.rx_bytes > 0 && peer.tx_bytes > 0, "{peer:?}");
        peer.last_handshake.expect("a handshake happened")
    });
    let age = SystemTime::now()
        .duration_since(handshake)
        .expect("handshake not in the future");
    assert!(age < Duration::from_secs(60), "handshake {age:?} ago");
    let dump = wg(&["show", &wa, "latest-handshakes"]);
    let secs: u64 = dump.split_whitespace().nth(1).unwrap().parse().unwrap();
    let wg_age = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .saturating_sub(secs);
    assert!(
        wg_age < 60,
        "wg show says the handshake was {wg_age} s ago: {dump}"
    );

    // The process that started B's device dies; the device does not.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(ping(&b, "10.77.0.1"), "tunnel died with its starter");
    // A new "daemon" adopts it: same key, same single peer.
    let name = wb.clone();
    let options = test_options(&wb);
    b.run(move || async move {
        let wg = WireGuard::open(&ifname(&name), BackendChoice::Userspace, &options)
            .await
            .unwrap();
        wg.configure(&kb, 51820).await.unwrap();
        let hub = peer(pa, &["10.77.0.0/24"], Some("192.168.77.1:51820"), Some(25));
        let changes = wg.apply_peers(&[hub], &[]).await.unwrap();
        assert_eq!(
            changes,
            PeerChanges {
                unchanged: 1,
                ..PeerChanges::default()
            }
        );
        let state = wg.get().await.unwrap();
        assert_eq!(state.public_key, Some(pb));
        assert_eq!(state.peers.len(), 1);
        assert!(state.peers[0].last_handshake.is_some());
        // Removing the peer stops the traffic.
        wg.apply_peers(&[], &[pa]).await.unwrap();
        assert!(wg.get().await.unwrap().peers.is_empty());
    });
    assert!(
        !b.try_exec(&["ping", "-c", "1", "-W", "1", "10.77.0.1"])
            .status
            .success()
    );
}

pub(crate) fn ifname(name: &str) -> gondwana_core::InterfaceName {
    gondwana_core::InterfaceName::parse(name).unwrap()
}

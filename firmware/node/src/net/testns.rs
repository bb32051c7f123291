//! Tests only: network namespaces we create (unique names, deleted on
//! drop) and running async code inside one. `setns` moves only the calling
//! thread, so each body runs on its own thread with its own runtime; every
//! socket it opens and every process it spawns lives in the namespace.

use std::future::Future;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short tag unique on this host among concurrently running tests
/// (pid and a counter), usable inside interface names (≤ 15 characters).
pub fn unique_tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{n}", std::process::id() % 100_000)
}

pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Creates the namespace with loopback up. This host runs tests as
    /// root: failing to create one is a test failure, never a skip.
    pub fn new() -> NetNs {
        let name = format!("gw-test-{}", unique_tag());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `body` on a fresh thread inside this namespace.
    pub fn run<F, Fut>(&self, body: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns handle");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            let runtime = crate::runtime::current_thread().expect("tokio runtime");
            runtime.block_on(body())
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// `ip netns exec NAME args…`, which must succeed.
    pub fn exec(&self, args: &[&str]) -> Output {
        run_ok(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
        )
    }

    /// Like `exec` but returns the output whatever the status.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("spawn ip netns exec")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

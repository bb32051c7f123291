//! A trial boot's verdict and the boot environment's bytes (docs/updates.md,
//! "Trial boot and rollback"). Sans-IO: the node feeds observations and the
//! time; this decides when a trial slot is good and when it has failed.

use std::collections::BTreeMap;

/// What the node saw at one moment of a trial boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// The state partition is mounted, persistent (not tmpfs) and writable.
    pub state_writable: bool,
    /// The daemon's own API answered `GET /v1/status` over loopback.
    pub api_ready: bool,
    /// The node is enrolled: then the next two must hold too.
    pub enrolled: bool,
    /// The data plane reports `up`.
    pub wireguard_up: bool,
    /// The store's directory head reads back and holds entries (every
    /// entry is verified before it is stored).
    pub directory_verified: bool,
}

impl Health {
    /// The checks that do not hold, by name (empty: healthy). A node that
    /// was never enrolled has no mesh to check: WireGuard and the
    /// directory are not asked of it.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.state_writable {
            out.push("state partition not mounted read-write");
        }
        if !self.api_ready {
            out.push("API not ready");
        }
        if self.enrolled {
            if !self.wireguard_up {
                out.push("WireGuard not up");
            }
            if !self.directory_verified {
                out.push("directory not verified");
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep looking.
    Wait,
    /// Every check held: mark the slot good (once).
    Good,
    /// The deadline passed: reboot to the good slot; the reason names what
    /// did not hold at the last observation.
    Failed(String),
}

/// One trial boot: started at `start_ms` (the node's monotonic clock),
/// good when every check holds at one observation before
/// `start_ms + deadline_ms`, failed at the first observation after it.
#[derive(Debug, Clone)]
pub struct Trial {
    deadline_at: u64,
    deadline_secs: u64,
    done: bool,
    last_failing: Vec<&'static str>,
}

impl Trial {
    pub fn new(start_ms: u64, deadline_ms: u64) -> Trial {
        Trial {
            deadline_at: start_ms.saturating_add(deadline_ms),
            deadline_secs: deadline_ms / 1000,
            done: false,
            last_failing: vec!["no health observation"],
        }
    }

    /// The verdict after `health` at `now_ms`. `Good` and `Failed` are
    /// given once; after either, `Wait` forever (the node acts once).
    pub fn observe(&mut self, now_ms: u64, health: &Health) -> Verdict {
        if self.done {
            return Verdict::Wait;
        }
        let failing = health.failing();
        if now_ms >= self.deadline_at {
            self.done = true;
            let why = if failing.is_empty() {
                // Healthy only after the deadline: still a failure, the
                // deadline is the contract.
                "healthy only after the deadline".to_string()
            } else {
                failing.join(", ")
            };
            return Verdict::Failed(format!(
                "not healthy within {} s: {why}",
                self.deadline_secs
            ));
        }
        if failing.is_empty() {
            self.done = true;
            return Verdict::Good;
        }
        self.last_failing = failing;
        Verdict::Wait
    }

    /// What did not hold at the last observation (for status while waiting).
    pub fn failing(&self) -> &[&'static str] {
        &self.last_failing
    }
}

/// GRUB's environment block: 1024 bytes, a header line, `name=value`
/// lines, `#` padding. U-Boot reads the same file with `env import -t`
/// (it skips `#` lines). Both bootloaders and the node share it on GW_BOOT.
pub const ENV_BLOCK_LEN: usize = 1024;
const ENV_HEADER: &str = "# GRUB Environment Block\n";

/// The variables of an environment block; lenient: any `name=value` line,
/// `#` lines and a NUL end ignored (U-Boot's `env export -t` writes no
/// header), so what a bootloader wrote always reads.
pub fn parse_env(bytes: &[u8]) -> BTreeMap<String, String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("environment variable {0:?}: names are [A-Za-z0-9_], values have no newline")]
    Invalid(String),
    #[error("the environment does not fit the {ENV_BLOCK_LEN}-byte block")]
    TooLarge,
}

/// The 1024-byte block for `vars` (sorted by name), `#`-padded.
pub fn encode_env(vars: &BTreeMap<String, String>) -> Result<Vec<u8>, EnvError> {
    let mut out = ENV_HEADER.as_bytes().to_vec();
    for (k, v) in vars {
        let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok || v.contains(['\n', '\0', '\\']) {
            return Err(EnvError::Invalid(k.clone()));
        }
        out.extend_from_slice(format!("{k}={v}\n").as_bytes());
    }
    if out.len() > ENV_BLOCK_LEN {
        return Err(EnvError::TooLarge);
    }
    out.resize(ENV_BLOCK_LEN, b'#');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: Health = Health {
        state_writable: true,
        api_ready: true,
        enrolled: true,
        wireguard_up: true,
        directory_verified: true,
    };

    #[test]
    fn good_once_every_check_holds_before_the_deadline() {
        let mut t = Trial::new(1_000, 300_000);
        let starting = Health {
            wireguard_up: false,
            ..HEALTHY
        };
        assert_eq!(t.observe(2_000, &starting), Verdict::Wait);
        assert_eq!(t.failing(), ["WireGuard not up"]);
        assert_eq!(t.observe(60_000, &HEALTHY), Verdict::Good);
        // Acted on once: nothing more, not even after the deadline.
        assert_eq!(t.observe(400_000, &starting), Verdict::Wait);
    }

    #[test]
    fn fails_at_the_deadline_naming_what_did_not_hold() {
        let mut t = Trial::new(0, 300_000);
        let sick = Health {
            state_writable: false,
            api_ready: true,
            enrolled: true,
            wireguard_up: false,
            directory_verified: true,
        };
        assert_eq!(t.observe(299_999, &sick), Verdict::Wait);
        assert_eq!(
            t.observe(300_000, &sick),
            Verdict::Failed(
                "not healthy within 300 s: state partition not mounted read-write, WireGuard not up"
                    .into()
            )
        );
        assert_eq!(t.observe(300_001, &HEALTHY), Verdict::Wait);
    }

    #[test]
    fn healthy_only_after_the_deadline_is_a_failure() {
        let mut t = Trial::new(0, 10_000);
        assert!(
            matches!(t.observe(10_000, &HEALTHY), Verdict::Failed(w) if w.contains("after the deadline"))
        );
    }

    #[test]
    fn an_unenrolled_node_needs_no_mesh() {
        let h = Health {
            state_writable: true,
            api_ready: true,
            ..Health::default()
        };
        assert!(h.failing().is_empty());
        let mut t = Trial::new(0, 10_000);
        assert_eq!(t.observe(5, &h), Verdict::Good);
        assert_eq!(
            Health::default().failing(),
            ["state partition not mounted read-write", "API not ready"]
        );
    }

    #[test]
    fn env_block_round_trips_and_reads_what_u_boot_writes() {
        let mut vars = BTreeMap::new();
        vars.insert("gw_good".to_string(), "a".to_string());
        vars.insert("gw_try".to_string(), "b".to_string());
        let block = encode_env(&vars).unwrap();
        assert_eq!(block.len(), ENV_BLOCK_LEN);
        assert!(block.starts_with(b"# GRUB Environment Block\ngw_good=a\ngw_try=b\n#"));
        assert_eq!(parse_env(&block), vars);
        // U-Boot's `env export -t`: no header, NUL-terminated.
        assert_eq!(parse_env(b"gw_good=a\ngw_try=b\n\0garbage=1\n"), vars);
    }

    #[test]
    fn env_block_refuses_what_a_bootloader_would_misread() {
        let mut vars = BTreeMap::new();
        vars.insert("gw good".to_string(), "a".to_string());
        assert!(encode_env(&vars).is_err());
        let mut vars = BTreeMap::new();
        vars.insert("gw_x".to_string(), "a\nb".to_string());
        assert!(encode_env(&vars).is_err());
        let mut vars = BTreeMap::new();
        vars.insert("gw_x".to_string(), "x".repeat(1100));
        assert_eq!(encode_env(&vars), Err(EnvError::TooLarge));
    }
}

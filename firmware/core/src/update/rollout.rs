//! What a box does about a release it saw in its directory, now
//! (docs/updates.md, "Policy and waves"): a pure decision over the box's
//! policy, maintenance window, wave and what it already holds. The daemon
//! asks again whenever something changes or the time it was told to wait
//! for comes; tests drive it with a virtual clock.

use serde::Serialize;

use super::release::{ReleaseBody, wave_time};
use super::{Release, check_replaces};

/// `[update] policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Download, install and reboot into the release (in the window).
    Auto,
    /// Download and keep the bundle; an operator installs it.
    DownloadOnly,
    /// Nothing by itself.
    Manual,
}

impl Policy {
    pub fn parse(text: &str) -> Option<Policy> {
        match text {
            "auto" => Some(Policy::Auto),
            "download-only" => Some(Policy::DownloadOnly),
            "manual" => Some(Policy::Manual),
            _ => None,
        }
    }
}

const DAY: u64 = 86_400;

/// A daily maintenance window in UTC, `HH:MM-HH:MM`; it may wrap past
/// midnight (`22:00-02:00`). Start included, end excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Minutes after midnight UTC.
    pub start: u16,
    pub end: u16,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let parsed = text
            .split_once('-')
            .and_then(|(a, b)| Some((minute(a)?, minute(b)?)));
        match parsed {
            Some((start, end)) if start != end => Ok(Window { start, end }),
            Some(_) => Err(format!("window {text:?} is empty (start = end)")),
            None => Err(format!("window {text:?} is not HH:MM-HH:MM (UTC)")),
        }
    }

    fn minute_of(unix: u64) -> u64 {
        (unix % DAY) / 60
    }

    pub fn contains(&self, unix: u64) -> bool {
        let m = Self::minute_of(unix);
        let (s, e) = (u64::from(self.start), u64::from(self.end));
        if s < e {
            s <= m && m < e
        } else {
            m >= s || m < e
        }
    }

    /// The next opening at or after `unix`.
    pub fn next_open(&self, unix: u64) -> u64 {
        let midnight = unix - unix % DAY;
        let open = midnight + u64::from(self.start) * 60;
        if open >= unix { open } else { open + DAY }
    }
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    /// Wall clock, unix seconds.
    pub now: u64,
    pub policy: Policy,
    pub window: Option<Window>,
    pub running: &'a Release,
    /// The verified record of the newest release for this board.
    pub release: &'a ReleaseBody,
    /// This box's share in the release's rollout ([`super::wave_share`]).
    pub share: u8,
    /// The bundle is on the state partition, complete and verified.
    pub downloaded: bool,
    /// The inactive slot holds this release (installed and verified).
    pub installed: bool,
    /// Installing or booting this release failed before: not again by
    /// itself (an operator may still install it by hand).
    pub failed: bool,
    /// The running slot is on trial, not marked good yet: the other slot is
    /// the way back, so nothing is installed or rebooted into until the
    /// verdict (an install now would be refused and wrongly count as this
    /// release's failure).
    pub on_trial: bool,
}

/// The step to take now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Nothing, now or later, until something changes.
    Idle {
        why: String,
    },
    /// Nothing until `at` (unix seconds), then ask again.
    Wait {
        at: u64,
        why: String,
    },
    Download,
    Install,
    /// Boot the installed slot (the trial boot's business from here).
    Reboot,
}

/// How soon a box on trial asks again (the trial's verdict takes seconds to
/// minutes).
pub const TRIAL_RECHECK_SECS: u64 = 30;

fn idle(why: impl Into<String>) -> Step {
    Step::Idle { why: why.into() }
}

pub fn decide(s: &Situation<'_>) -> Step {
    let r = s.release;
    if r.board != s.running.board {
        return idle(format!("release is for board {}", r.board));
    }
    if r.version <= s.running.version {
        return idle("running this release or a newer one");
    }
    if let Err(e) = check_replaces(&r.board, r.version, r.min_version, s.running) {
        return idle(format!("refused: {e}"));
    }
    if s.failed {
        return idle("this release failed here before; install it by hand to retry");
    }
    if s.policy == Policy::Manual {
        return idle("policy manual");
    }
    let wave_at = wave_time(r, s.share);
    if s.now < wave_at {
        return Step::Wait {
            at: wave_at,
            why: format!("wave: share {} waits for its wave", s.share),
        };
    }
    if !s.downloaded {
        return Step::Download;
    }
    if s.policy == Policy::DownloadOnly {
        return idle("policy download-only: downloaded, install by hand");
    }
    if s.on_trial {
        return Step::Wait {
            at: s.now.saturating_add(TRIAL_RECHECK_SECS),
            why: "the running slot is on trial: installs after it is marked good".into(),
        };
    }
    if let Some(w) = s.window
        && !w.contains(s.now)
    {
        return Step::Wait {
            at: w.next_open(s.now),
            why: "outside the maintenance window".into(),
        };
    }
    if s.installed {
        Step::Reboot
    } else {
        Step::Install
    }
}

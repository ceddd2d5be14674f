//! The reboots this node completed, kept in `state_dir` across reboots
//! (issue 10.2): when each was issued and completed, and what triggered it
//! (the detectors' [`Evidence`]). Two gates of the pass read it: the
//! reboot-loop guard (the same evidence after a completed reboot does not
//! cause another one) and the daily cap (`max_reboots_per_day`).
//!
//! A reboot that never happened (the reboot command failed, or succeeded
//! without taking the host down, and `reboot_timeout_sec` ran out) is kept
//! too, as a given-up attempt: the daily cap counts it, so a reboot command
//! that never works cannot drain the node and hold a slot every
//! `reboot_timeout_sec` forever; the loop guard ignores it (the need
//! surviving a reboot that did not happen says nothing about the need).
//!
//! Time between two moments is counted in running time, conservatively:
//! the smaller of the wall-clock difference and what the boot clock
//! (`/proc/uptime`, which cannot step) proves. A wall clock that steps
//! forward, or a host whose clock is wrong until NTP fixes it, therefore
//! cannot age a reboot out of the last 24 hours; time the host was down
//! does not count either.

use std::fs;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::host::detector::Evidence;
use crate::host::state::{read_json, write_json};
use crate::time::secs_between;

/// File name of the reboot log inside `state_dir`.
pub const LOG_FILE: &str = "reboot-log.json";
/// File name of the operator's `rebootctl clear-loop` inside `state_dir`.
pub const CLEARED_FILE: &str = "reboot-loop-cleared.json";
/// Completed reboots kept in the log (more than any daily cap).
pub const KEEP: usize = 32;
/// The window of the daily cap.
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// The boot clock: seconds since boot, suspend included.
const UPTIME_FILE: &str = "/proc/uptime";

/// A point in this node's life: which boot, the wall clock, the boot clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// The boot id.
    pub boot_id: String,
    /// The wall clock (RFC 3339).
    pub at: String,
    /// Milliseconds since that boot (None when `/proc/uptime` was unreadable).
    #[serde(default)]
    pub uptime_ms: Option<u64>,
}

impl Moment {
    /// Now, in boot `boot_id`.
    pub fn now(boot_id: &str) -> Moment {
        Moment {
            boot_id: boot_id.to_string(),
            at: crate::time::timestamp_now(),
            uptime_ms: uptime_ms(),
        }
    }
}

/// Milliseconds since boot from the boot clock, if readable.
pub fn uptime_ms() -> Option<u64> {
    let text = fs::read_to_string(UPTIME_FILE).ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
}

/// One completed reboot, or one given up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletedReboot {
    /// When the reboot command was run (the boot that went down).
    pub issued: Moment,
    /// When the node was back and healthy (the boot after); for a reboot
    /// given up, when it was given up (the same boot).
    pub completed: Moment,
    /// What the detectors saw when the reboot was decided.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// Whether `reboot_ineffective` was notified for this reboot.
    #[serde(default)]
    pub ineffective_notified: bool,
    /// A pass after this reboot completed found no reboot required: a need
    /// seen later is a new one, whatever its evidence (a command detector's
    /// evidence is only its exit code).
    #[serde(default)]
    pub need_gone: bool,
    /// The reboot never happened and was given up after
    /// `reboot_timeout_sec`: counted by the daily cap, not by the loop guard.
    #[serde(default)]
    pub given_up: bool,
}

impl CompletedReboot {
    /// What identifies this reboot in [`CLEARED_FILE`].
    pub fn id(&self) -> String {
        format!("{}@{}", self.completed.boot_id, self.completed.at)
    }
}

/// The log: completed reboots, oldest first, at most [`KEEP`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebootLog {
    /// Oldest first.
    #[serde(default)]
    pub reboots: Vec<CompletedReboot>,
}

impl RebootLog {
    /// The newest reboot that happened (given-up attempts left out): the
    /// one the loop guard and `clear-loop` are about.
    pub fn last_completed(&self) -> Option<&CompletedReboot> {
        self.reboots.iter().rev().find(|r| !r.given_up)
    }
}

/// What `rebootctl clear-loop` wrote: the reboot whose surviving need may
/// cause one more reboot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopCleared {
    /// [`CompletedReboot::id`] of the reboot cleared.
    pub reboot: String,
    /// When (RFC 3339).
    pub at: String,
    /// Who (`user@host`).
    pub by: String,
}

/// Reads the log (empty when there is none).
pub fn read(state_dir: &Path) -> Result<RebootLog> {
    Ok(read_json(&state_dir.join(LOG_FILE), "reading the reboot log")?.unwrap_or_default())
}

fn write(state_dir: &Path, log: &RebootLog) -> Result<()> {
    write_json(&state_dir.join(LOG_FILE), log, "writing the reboot log")
}

/// Appends a completed (or given-up) reboot, durably; a retry of the same completion
/// (same issue moment) is not counted twice. A log that is not valid JSON
/// is moved aside to `reboot-log.json.corrupt` and a new one started: the
/// completion (and the release of the slot) must not wait for an operator.
pub fn append(state_dir: &Path, reboot: CompletedReboot) -> Result<()> {
    let path = state_dir.join(LOG_FILE);
    let mut log = match read(state_dir) {
        Ok(log) => log,
        Err(e @ crate::error::Error::Runtime(_)) => {
            let aside = path.with_extension("json.corrupt");
            fs::rename(&path, &aside)
                .map_err(|io| crate::error::Error::io("moving aside", &path, io))?;
            log::error!("{e}; moved it to {} and started a new one", aside.display());
            RebootLog::default()
        }
        Err(e) => return Err(e),
    };
    if log.reboots.iter().any(|r| r.issued == reboot.issued) {
        return Ok(());
    }
    log.reboots.push(reboot);
    let extra = log.reboots.len().saturating_sub(KEEP);
    log.reboots.drain(..extra);
    write(state_dir, &log)
}

/// Marks the newest completed reboot as notified for `reboot_ineffective`.
pub fn mark_notified(state_dir: &Path) -> Result<()> {
    let mut log = read(state_dir)?;
    match log.reboots.iter_mut().rev().find(|r| !r.given_up) {
        Some(last) if !last.ineffective_notified => last.ineffective_notified = true,
        _ => return Ok(()),
    }
    write(state_dir, &log)
}

/// Records that a pass found no reboot required after the newest
/// completed reboot (once: nothing is written when it is already recorded,
/// or when no reboot is).
pub fn mark_need_gone(state_dir: &Path) -> Result<()> {
    let mut log = read(state_dir)?;
    match log.reboots.iter_mut().rev().find(|r| !r.given_up) {
        Some(last) if !last.need_gone => last.need_gone = true,
        _ => return Ok(()),
    }
    write(state_dir, &log)
}

/// The operator's clearing, if any.
pub fn read_cleared(state_dir: &Path) -> Result<Option<LoopCleared>> {
    read_json(
        &state_dir.join(CLEARED_FILE),
        "reading the reboot-loop clearing",
    )
}

/// Records that the operator cleared the loop guard of `reboot`.
pub fn write_cleared(state_dir: &Path, cleared: &LoopCleared) -> Result<()> {
    write_json(
        &state_dir.join(CLEARED_FILE),
        cleared,
        "writing the reboot-loop clearing",
    )
}

/// A lower bound of the running time from `a` to `b`: the smaller of the
/// wall-clock difference (zero when it went backwards) and what the boot
/// clock proves (in one boot, the difference of the two uptimes; across
/// boots, the uptime at `b`, since `b`'s boot started after `a`). A bound
/// that cannot be computed (unparsable time, no uptime) is left out; with
/// neither, zero.
pub fn running_between(a: &Moment, b: &Moment) -> Duration {
    let wall = match (a.at.parse::<Timestamp>(), b.at.parse::<Timestamp>()) {
        (Ok(x), Ok(y)) => Some(secs_between(x, y)),
        _ => None,
    };
    let boot = match (a.uptime_ms, b.uptime_ms) {
        (Some(x), Some(y)) if a.boot_id == b.boot_id => Some(y.saturating_sub(x)),
        (_, Some(y)) if a.boot_id != b.boot_id => Some(y),
        _ => None,
    }
    .map(Duration::from_millis);
    match (wall, boot) {
        (Some(w), Some(m)) => w.min(m),
        (Some(w), None) => w,
        (None, Some(m)) => m,
        (None, None) => Duration::ZERO,
    }
}

/// The running time since each reboot's completion at `now`, in the order
/// of `reboots` (oldest first): the sum of [`running_between`] along the
/// chain of moments from that completion to `now`.
pub fn ages(reboots: &[CompletedReboot], now: &Moment) -> Vec<Duration> {
    let mut ages = Vec::with_capacity(reboots.len());
    let mut acc = Duration::ZERO;
    let mut next = now;
    for r in reboots.iter().rev() {
        acc += running_between(&r.completed, next);
        ages.push(acc);
        acc += running_between(&r.issued, &r.completed);
        next = &r.issued;
    }
    ages.reverse();
    ages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::test_support::TempDir;

    fn at(boot: &str, wall: &str, up_secs: Option<u64>) -> Moment {
        Moment {
            boot_id: boot.into(),
            at: wall.into(),
            uptime_ms: up_secs.map(|s| s * 1000),
        }
    }

    fn reboot(issued: Moment, completed: Moment) -> CompletedReboot {
        CompletedReboot {
            issued,
            completed,
            evidence: vec![Evidence::Kernel {
                detector: "kernel".into(),
                running: "6.1.0-18-amd64".into(),
                newest: "6.1.0-21-amd64".into(),
            }],
            ineffective_notified: false,
            need_gone: false,
            given_up: false,
        }
    }

    const H: u64 = 3600;

    #[test]
    fn running_time_takes_the_smaller_bound() {
        // (from, to, expected seconds)
        let cases = [
            // Same boot: wall and boot clock agree.
            (
                at("b1", "2026-11-27T10:00:00Z", Some(100)),
                at("b1", "2026-11-27T11:00:00Z", Some(100 + H)),
                H,
            ),
            // Same boot, the wall clock stepped forward a day: the boot clock wins.
            (
                at("b1", "2026-11-27T10:00:00Z", Some(100)),
                at("b1", "2026-11-28T10:10:00Z", Some(700)),
                600,
            ),
            // Same boot, the wall clock stepped back: zero, not negative.
            (
                at("b1", "2026-11-27T10:00:00Z", Some(100)),
                at("b1", "2026-11-27T09:00:00Z", Some(700)),
                0,
            ),
            // Across a reboot: the new boot's uptime bounds it (downtime
            // does not count).
            (
                at("b1", "2026-11-27T10:00:00Z", Some(5 * H)),
                at("b2", "2026-11-27T12:00:00Z", Some(120)),
                120,
            ),
            // A dead RTC: completed in 2000 before NTP, now in 2026.
            (
                at("b1", "2000-01-01T00:01:00Z", Some(60)),
                at("b1", "2026-11-27T10:00:00Z", Some(300)),
                240,
            ),
            // No boot clock: the wall clock alone.
            (
                at("b1", "2026-11-27T10:00:00Z", None),
                at("b1", "2026-11-27T10:30:00Z", None),
                1800,
            ),
            // Unparsable wall time: the boot clock alone.
            (
                at("b1", "garbage", Some(10)),
                at("b1", "2026-11-27T10:30:00Z", Some(70)),
                60,
            ),
            // Nothing to go on: zero (counted as just now).
            (at("b1", "garbage", None), at("b2", "garbage", None), 0),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                running_between(&a, &b),
                Duration::from_secs(want),
                "{a:?} → {b:?}"
            );
        }
    }

    #[test]
    fn ages_follow_the_chain_of_reboots() {
        // Boot b1 up 7 days, reboot at 7d; b2 completes at 2 min, runs
        // 1 h, reboots; b3 completes at 2 min; now b3 at 10 min.
        let r1 = reboot(
            at("b0", "2026-11-20T09:58:00Z", Some(H)),
            at("b1", "2026-11-20T10:00:00Z", Some(120)),
        );
        let r2 = reboot(
            at("b1", "2026-11-27T10:00:00Z", Some(7 * 24 * H)),
            at("b2", "2026-11-27T10:03:00Z", Some(120)),
        );
        let r3 = reboot(
            at("b2", "2026-11-27T11:01:00Z", Some(H + 60)),
            at("b3", "2026-11-27T11:04:00Z", Some(120)),
        );
        let now = at("b3", "2026-11-27T11:12:00Z", Some(600));
        let ages = ages(&[r1, r2, r3], &now);
        let secs: Vec<u64> = ages.iter().map(Duration::as_secs).collect();
        // r3: 8 min; r2: + 2 min (b3 boot) + 58 min (b2 after completion)
        // + 2 min (b2's boot before completion); r1: + 7 days of b1.
        assert_eq!(
            secs,
            [
                480 + 120 + 3480 + 7 * 24 * H - 120 + 120,
                480 + 120 + 3480,
                480
            ]
        );
    }

    #[test]
    fn a_clock_that_steps_forward_every_boot_cannot_age_a_loop_out() {
        // Every boot: completion at 2 min with the clock a day ahead.
        let mut reboots = Vec::new();
        for i in 0..3u64 {
            let day = |d: u64| format!("2026-11-{:02}T10:00:00Z", 10 + d);
            reboots.push(reboot(
                at(&format!("b{i}"), &day(2 * i), Some(300)),
                at(&format!("b{}", i + 1), &day(2 * i + 1), Some(120)),
            ));
        }
        let now = at("b3", "2026-11-20T10:00:00Z", Some(600));
        let ages = ages(&reboots, &now);
        assert!(ages.iter().all(|a| *a < Duration::from_secs(H)), "{ages:?}");
    }

    #[test]
    fn append_keeps_the_newest_and_ignores_a_repeated_completion() {
        let dir = TempDir::new("reboot-log");
        assert_eq!(read(dir.path()).unwrap(), RebootLog::default());
        for i in 0..(KEEP as u64 + 3) {
            let r = reboot(
                at(&format!("b{i}"), "2026-11-27T10:00:00Z", Some(i)),
                at(&format!("b{}", i + 1), "2026-11-27T10:01:00Z", Some(60)),
            );
            append(dir.path(), r.clone()).unwrap();
            append(dir.path(), r).unwrap();
        }
        let log = read(dir.path()).unwrap();
        assert_eq!(log.reboots.len(), KEEP);
        assert_eq!(log.reboots[0].issued.boot_id, "b3");
        mark_notified(dir.path()).unwrap();
        let log = read(dir.path()).unwrap();
        assert!(log.reboots.last().unwrap().ineffective_notified);
        assert!(!log.reboots[0].ineffective_notified);
        assert_eq!(read_cleared(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_corrupt_log_blocks_the_guard_but_not_a_completion() {
        let dir = TempDir::new("reboot-log-corrupt");
        fs::write(dir.path().join(LOG_FILE), "{not json").unwrap();
        assert!(read(dir.path()).is_err());
        let r = reboot(
            at("b1", "2026-11-27T10:00:00Z", Some(10)),
            at("b2", "2026-11-27T10:01:00Z", Some(60)),
        );
        append(dir.path(), r.clone()).unwrap();
        assert_eq!(read(dir.path()).unwrap().reboots, [r]);
        let aside = fs::read_to_string(dir.path().join("reboot-log.json.corrupt")).unwrap();
        assert_eq!(aside, "{not json");
    }

    #[test]
    fn a_given_up_attempt_is_not_the_last_completed_reboot() {
        let dir = TempDir::new("reboot-log-given-up");
        let done = reboot(
            at("b1", "2026-11-27T10:00:00Z", Some(10)),
            at("b2", "2026-11-27T10:01:00Z", Some(60)),
        );
        let given_up = CompletedReboot {
            given_up: true,
            ..reboot(
                at("b2", "2026-11-27T11:00:00Z", Some(3600)),
                at("b2", "2026-11-27T11:30:00Z", Some(5400)),
            )
        };
        append(dir.path(), done.clone()).unwrap();
        append(dir.path(), given_up.clone()).unwrap();
        let log = read(dir.path()).unwrap();
        assert_eq!(log.reboots.len(), 2);
        assert_eq!(log.last_completed(), Some(&done));
        mark_notified(dir.path()).unwrap();
        let log = read(dir.path()).unwrap();
        assert!(log.reboots[0].ineffective_notified);
        assert!(!log.reboots[1].ineffective_notified);
        mark_need_gone(dir.path()).unwrap();
        let log = read(dir.path()).unwrap();
        assert!(log.reboots[0].need_gone);
        assert!(!log.reboots[1].need_gone);
        // Written by an older version: no given_up field, a completed reboot.
        let old: CompletedReboot = serde_json::from_str(
            r#"{"issued":{"boot_id":"a","at":"x"},"completed":{"boot_id":"b","at":"y"}}"#,
        )
        .unwrap();
        assert!(!old.given_up);
    }
}

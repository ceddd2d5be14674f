//! The gates of a pass as pure verdicts, and the one runner that records
//! them. Each gate function takes what it decides on (and `now`) and
//! returns a [`Verdict`]; the pass gathers the inputs and acts. [`Gates`]
//! owns the two rules of recording: the first closed gate is the outcome,
//! and in status mode every gate is still evaluated and shown.

use std::io;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::cluster::lock::SlotPhase;
use crate::cluster::policy::{self, NodeState, PolicyVerdict};
use crate::cluster::records::PauseRecord;
use crate::config::ClusterPolicies;
use crate::host::detector::Evidence;
use crate::host::reboot_log::{CompletedReboot, DAY};
use crate::host::sessions::Session;
use crate::pass::outcome::{Block, Outcome};
use crate::pass::report::{Step, StepState};
use crate::time::{human_duration, secs_between};
use crate::window::{WindowVerdict, Windows};

/// What one gate says.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Verdict {
    /// The gate is open; one human line says why.
    Open(String),
    /// The gate is closed.
    Closed(Block),
}

/// The kill switch, from whether its file exists: an error counts as set,
/// never as absent.
pub fn kill_switch(path: &Path, exists: &io::Result<bool>) -> Verdict {
    match exists {
        Ok(false) => Verdict::Open(format!("off ({} absent)", path.display())),
        Ok(true) => Verdict::Closed(Block::KillSwitch(format!("{} exists", path.display()))),
        Err(e) => Verdict::Closed(Block::KillSwitch(format!(
            "cannot check {}: {e}",
            path.display()
        ))),
    }
}

/// The cluster pause, from the pause record and its lease's remaining TTL
/// in seconds (None: paused until `resume`).
pub fn pause(paused: Option<(&PauseRecord, Option<i64>)>) -> Verdict {
    let Some((rec, ttl)) = paused else {
        return Verdict::Open("cluster not paused".to_string());
    };
    let until = match ttl {
        Some(t) => format!(
            ", {} left",
            human_duration(Duration::from_secs(t.max(0).unsigned_abs()))
        ),
        None => String::new(),
    };
    let why = if rec.reason.is_empty() {
        "no reason given".to_string()
    } else {
        rec.reason.clone()
    };
    Verdict::Closed(Block::Paused(format!(
        "{why} (by {} at {}{until})",
        rec.by, rec.at
    )))
}

/// The maintenance windows at `now`.
pub fn window(windows: &Windows, now: Timestamp) -> Verdict {
    match windows.verdict(now) {
        WindowVerdict::Open => {
            if windows.allow_entries().is_empty() && windows.deny_entries().is_empty() {
                Verdict::Open("open (no windows configured)".to_string())
            } else {
                Verdict::Open(format!("open ({})", windows.timezone_name()))
            }
        }
        verdict => {
            let why = match verdict {
                WindowVerdict::Denied { entry } => format!("inside deny window {entry:?}"),
                _ => "outside every allow window".to_string(),
            };
            let next = match windows.next_open(now) {
                Some(t) => format!("; opens {}", crate::time::when(t, now, windows.timezone())),
                None => "; no opening within 8 days".to_string(),
            };
            Verdict::Closed(Block::Window(format!(
                "{why} ({}){next}",
                windows.timezone_name()
            )))
        }
    }
}

/// The cluster-wide cooldown, from the time left on it (None: not running).
pub fn cluster_cooldown(left: Option<Duration>) -> Verdict {
    match left {
        None => Verdict::Open("no cluster cooldown running".to_string()),
        Some(left) => Verdict::Closed(Block::Cooldown(left)),
    }
}

/// The local cooldown (local mode): `min_reboot_interval` since the last
/// completed reboot, if one is recorded.
pub fn local_cooldown(interval: Duration, last: Option<Timestamp>, now: Timestamp) -> Verdict {
    if interval.is_zero() {
        return Verdict::Open("none configured".to_string());
    }
    let Some(at) = last else {
        return Verdict::Open("no previous reboot recorded".to_string());
    };
    let elapsed = secs_between(at, now);
    if elapsed < interval {
        Verdict::Closed(Block::Cooldown(interval - elapsed))
    } else {
        Verdict::Open("over".to_string())
    }
}

/// The reboot-loop guard: closed when everything the detectors show now
/// was already there when the last completed reboot was decided (the need
/// survived the reboot: a kernel that fell back, a pinned boot entry, a
/// wrong detector). Any new evidence opens it; so does a pass after that
/// reboot that found no reboot required (the need went away: this one is
/// new), and the operator's `rebootctl clear-loop` for that reboot
/// (`cleared`).
pub fn reboot_loop(now: &[Evidence], last: Option<&CompletedReboot>, cleared: bool) -> Verdict {
    let Some(last) = last else {
        return Verdict::Open("no completed reboot recorded".to_string());
    };
    if last.need_gone {
        return Verdict::Open(format!(
            "a new need: none was left after the reboot completed at {}",
            last.completed.at
        ));
    }
    let same = !now.is_empty() && now.iter().all(|e| last.evidence.contains(e));
    if !same {
        return Verdict::Open(format!(
            "new evidence since the reboot completed at {}",
            last.completed.at
        ));
    }
    if cleared {
        return Verdict::Open(format!(
            "the need survived the reboot completed at {}, cleared with clear-loop",
            last.completed.at
        ));
    }
    let seen: Vec<String> = now.iter().map(ToString::to_string).collect();
    Verdict::Closed(Block::RebootIneffective(format!(
        "the need survived the reboot completed at {} with the same evidence ({}); \
         fix its cause, or run 'rebootctl clear-loop' to allow one more reboot",
        last.completed.at,
        seen.join("; ")
    )))
}

/// The daily cap, from the running time since each completed or given-up reboot
/// ([`crate::host::reboot_log::ages`]): closed while `max` or more fall in
/// the last 24 hours, with the time until enough of them have aged out.
pub fn reboot_cap(ages: &[Duration], max: u32) -> Verdict {
    let mut recent: Vec<Duration> = ages.iter().copied().filter(|a| *a < DAY).collect();
    let max = max as usize;
    if recent.len() < max {
        return Verdict::Open(format!(
            "{} of {max} reboots in the last 24 h",
            recent.len()
        ));
    }
    // Oldest first: the one that must age out for the count to drop below max.
    recent.sort_by(|a, b| b.cmp(a));
    let next = DAY - recent[recent.len() - max];
    Verdict::Closed(Block::RebootLimit(format!(
        "{} reboot{} (completed or given up) in the last 24 h of running time (max_reboots_per_day {max}); next allowed in {}",
        recent.len(),
        if recent.len() == 1 { "" } else { "s" },
        human_duration(next)
    )))
}

/// The name conflict check, from what another host claiming this node's
/// name left behind (None: nothing seen).
pub fn name_conflict(seen: Option<String>) -> Verdict {
    match seen {
        None => Verdict::Open("no other host seen under this node name".to_string()),
        Some(what) => Verdict::Closed(Block::NameConflict(what)),
    }
}

/// The health gate, from the script's verdict and reason.
pub fn health(healthy: bool, reason: String) -> Verdict {
    if healthy {
        Verdict::Open(reason)
    } else {
        Verdict::Closed(Block::Health(reason))
    }
}

/// The cluster policies for `me`. Under the lock every other slot holder
/// counts as down, not only those already rebooting: with several slots,
/// two nodes checking at once could otherwise each count the other as up
/// and go down together.
pub fn policies(
    me: &str,
    mut nodes: Vec<NodeState>,
    rules: &ClusterPolicies,
    under_lock: bool,
) -> Verdict {
    if under_lock {
        for n in nodes.iter_mut().filter(|n| n.slot.is_some()) {
            n.slot = Some(SlotPhase::Rebooting);
        }
    }
    match policy::policy_allows(me, &nodes, rules) {
        PolicyVerdict::Allowed(summary) => Verdict::Open(summary),
        PolicyVerdict::Forbidden(why) => Verdict::Closed(Block::Policy(why)),
    }
}

/// The logged-in users gate (`block_if_users_logged_in`), from the live
/// sessions (or why utmp could not be read) and since when it has waited:
/// closed while anyone is logged in, or while nobody can tell, until
/// `max_postpone` (zero: no maximum) has passed since `waiting_since`;
/// then open, saying why it gave up.
pub fn users(
    sessions: &Result<Vec<Session>, String>,
    max_postpone: Duration,
    waiting_since: Timestamp,
    now: Timestamp,
) -> Verdict {
    let who = match sessions {
        Ok(s) if s.is_empty() => return Verdict::Open("nobody logged in".to_string()),
        Ok(s) => s
            .iter()
            .map(|s| s.describe(now))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => e.clone(),
    };
    let waited = secs_between(waiting_since, now);
    // Whole seconds, and "0s" rather than "0ms" for a wait that just began.
    let human = |d: Duration| match d.as_secs() {
        0 => "0s".to_string(),
        s => human_duration(Duration::from_secs(s)),
    };
    if max_postpone.is_zero() {
        return Verdict::Closed(Block::UsersLoggedIn(format!(
            "{who}; waiting {} (users_max_postpone_sec is 0: no maximum)",
            human(waited)
        )));
    }
    if waited >= max_postpone {
        return Verdict::Open(format!(
            "{who}; not waiting longer: postponed {}, users_max_postpone_sec is {}",
            human(waited),
            human(max_postpone)
        ));
    }
    Verdict::Closed(Block::UsersLoggedIn(format!(
        "{who}; waiting {} of at most {}",
        human(waited),
        human(max_postpone)
    )))
}

/// The steps of a pass and its first closed gate.
#[derive(Debug)]
pub struct Gates {
    /// Status mode: every gate is evaluated, none stops the pass.
    status: bool,
    steps: Vec<Step>,
    first: Option<Block>,
}

impl Gates {
    /// An empty record; `status` for `rebootctl status`.
    pub fn new(status: bool) -> Gates {
        Gates {
            status,
            steps: Vec::new(),
            first: None,
        }
    }

    /// Adds a step that is not a gate (or an open one).
    pub fn step(&mut self, name: &'static str, state: StepState, detail: impl Into<String>) {
        self.steps.push(Step {
            name,
            state,
            detail: detail.into(),
        });
    }

    /// Records a gate's verdict; true when the pass must stop here (a
    /// closed gate, except in status mode).
    pub fn gate(&mut self, name: &'static str, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Open(detail) => {
                self.step(name, StepState::Ok, detail);
                false
            }
            Verdict::Closed(block) => self.block(name, block),
        }
    }

    /// Records a closed gate: the first one is the outcome. True when the
    /// pass must stop (always, except in status mode).
    pub fn block(&mut self, name: &'static str, block: Block) -> bool {
        self.step(name, StepState::Blocked, block.to_string());
        if self.first.is_none() {
            self.first = Some(block);
        }
        !self.status
    }

    /// Whether a gate has closed.
    pub fn is_blocked(&self) -> bool {
        self.first.is_some()
    }

    /// Takes the first closed gate away, so that gates recorded before
    /// [`Gates::restore_first`] are shown without changing the outcome.
    pub fn take_first(&mut self) -> Option<Block> {
        self.first.take()
    }

    /// Puts back what [`Gates::take_first`] took: the outcome is again the
    /// gate that closed first before it.
    pub fn restore_first(&mut self, first: Option<Block>) {
        self.first = first;
    }

    /// The outcome of a pass that stops here: the first closed gate, or
    /// nothing to do.
    pub fn stop(&mut self) -> Outcome {
        match self.first.take() {
            Some(b) => Outcome::Blocked(b),
            None => Outcome::NothingToDo,
        }
    }

    /// The steps in pass order.
    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::HealthRecord;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn open(v: &Verdict) -> bool {
        matches!(v, Verdict::Open(_))
    }

    #[test]
    fn users_gate_waits_then_gives_up() {
        let now = ts("2026-11-27T12:00:00Z");
        let alice = Session {
            user: "alice".into(),
            tty: "pts/0".into(),
            host: "10.0.0.5".into(),
            since: "2026-11-27T10:00:00Z".into(),
            pid: 42,
        };
        let hour = Duration::from_secs(3600);
        let since = ts("2026-11-27T11:30:00Z");
        type Found = Result<Vec<Session>, String>;
        let cases: [(Found, Duration, bool, &str); 6] = [
            (Ok(vec![]), hour, true, "nobody logged in"),
            (
                Ok(vec![alice.clone()]),
                hour,
                false,
                "users logged in: alice on pts/0 from 10.0.0.5 for 2h; waiting 30m of at most 1h",
            ),
            (
                Ok(vec![alice.clone()]),
                Duration::ZERO,
                false,
                "users logged in: alice on pts/0 from 10.0.0.5 for 2h; waiting 30m (users_max_postpone_sec is 0: no maximum)",
            ),
            (
                Ok(vec![alice.clone()]),
                Duration::from_secs(1800),
                true,
                "alice on pts/0 from 10.0.0.5 for 2h; not waiting longer: postponed 30m, users_max_postpone_sec is 30m",
            ),
            (
                Err("/var/run/utmp does not exist".into()),
                hour,
                false,
                "users logged in: /var/run/utmp does not exist; waiting 30m of at most 1h",
            ),
            (
                Err("x".into()),
                Duration::from_secs(60),
                true,
                "x; not waiting longer: postponed 30m, users_max_postpone_sec is 1m",
            ),
        ];
        for (sessions, max, want_open, text) in cases {
            let v = users(&sessions, max, since, now);
            assert_eq!(open(&v), want_open, "{sessions:?}");
            let shown = match &v {
                Verdict::Open(t) => t.clone(),
                Verdict::Closed(b) => b.to_string(),
            };
            assert_eq!(shown, text);
            if let Verdict::Closed(b) = v {
                assert_eq!((b.label(), b.exit_code()), ("users_logged_in", 3));
            }
        }
    }

    #[test]
    fn kill_switch_is_closed_when_present_or_unknown() {
        let path = Path::new("/etc/rebootctl/kill");
        let cases = [
            (Ok(false), true, "off (/etc/rebootctl/kill absent)"),
            (Ok(true), false, "kill switch: /etc/rebootctl/kill exists"),
            (
                Err(io::Error::from(io::ErrorKind::PermissionDenied)),
                false,
                "cannot check /etc/rebootctl/kill",
            ),
        ];
        for (exists, want_open, text) in cases {
            let v = kill_switch(path, &exists);
            assert_eq!(open(&v), want_open, "{exists:?}");
            let shown = match &v {
                Verdict::Open(d) => d.clone(),
                Verdict::Closed(b) => b.to_string(),
            };
            assert!(shown.contains(text), "{exists:?}: {shown}");
        }
    }

    #[test]
    fn pause_names_reason_operator_and_time_left() {
        let rec = |reason: &str| PauseRecord {
            reason: reason.into(),
            by: "ops@bastion".into(),
            at: "2026-11-27T10:00:00Z".into(),
        };
        // (pause record and TTL, the closed gate's text)
        type Case = (Option<(PauseRecord, Option<i64>)>, Option<&'static str>);
        let cases: [Case; 4] = [
            (None, None),
            (
                Some((rec("db migration"), None)),
                Some("db migration (by ops@bastion at 2026-11-27T10:00:00Z)"),
            ),
            (
                Some((rec(""), Some(7200))),
                Some("no reason given (by ops@bastion at 2026-11-27T10:00:00Z, 2h left)"),
            ),
            (
                Some((rec("x"), Some(-5))),
                Some("x (by ops@bastion at 2026-11-27T10:00:00Z, 0ms left)"),
            ),
        ];
        for (paused, want) in cases {
            let v = pause(paused.as_ref().map(|(r, t)| (r, *t)));
            match (v, want) {
                (Verdict::Open(d), None) => assert_eq!(d, "cluster not paused"),
                (Verdict::Closed(Block::Paused(d)), Some(w)) => assert_eq!(d, w),
                (v, w) => panic!("{v:?} for {w:?}"),
            }
        }
    }

    #[test]
    fn cooldowns_cluster_and_local() {
        let now = ts("2026-11-27T12:00:00Z");
        let hour = Duration::from_secs(3600);
        assert!(open(&cluster_cooldown(None)));
        assert_eq!(
            cluster_cooldown(Some(hour)),
            Verdict::Closed(Block::Cooldown(hour))
        );
        let cases = [
            (
                Duration::ZERO,
                Some("2026-11-27T11:59:00Z"),
                None,
                "none configured",
            ),
            (hour, None, None, "no previous reboot recorded"),
            (
                hour,
                Some("2026-11-27T11:30:00Z"),
                Some(Duration::from_secs(1800)),
                "",
            ),
            (hour, Some("2026-11-27T11:00:00Z"), None, "over"),
            (hour, Some("2026-11-27T09:00:00Z"), None, "over"),
            // A completion stamp in the future counts as just now.
            (hour, Some("2026-11-27T13:00:00Z"), Some(hour), ""),
        ];
        for (interval, last, left, text) in cases {
            let v = local_cooldown(interval, last.map(ts), now);
            match (&v, left) {
                (Verdict::Open(d), None) => assert_eq!(d, text, "{last:?}"),
                (Verdict::Closed(Block::Cooldown(l)), Some(want)) => {
                    assert_eq!(*l, want, "{last:?}")
                }
                _ => panic!("{interval:?} {last:?}: {v:?}"),
            }
        }
    }

    #[test]
    fn window_is_open_without_windows_and_says_when_it_opens() {
        let parse = |allow: &[&str], deny: &[&str]| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            Windows::parse("UTC", &s(allow), &s(deny)).unwrap()
        };
        // 2026-11-27 is a Friday.
        let now = ts("2026-11-27T12:00:00Z");
        let cases = [
            (parse(&[], &[]), "open (no windows configured)"),
            (parse(&["Fri 11:00-13:00"], &[]), "open (UTC)"),
            (
                parse(&["Fri 13:00-14:00"], &[]),
                "maintenance window: outside every allow window (UTC); opens Fri 13:00 UTC, in 1h",
            ),
            (
                parse(&[], &["Fri 11:30-12:30"]),
                "maintenance window: inside deny window \"Fri 11:30-12:30\" (UTC); opens Fri 12:30 UTC, in 30m",
            ),
        ];
        // The example: a weekday, a local time, a short duration.
        let berlin =
            Windows::parse("Europe/Berlin", &["Tue 22:00-23:00".to_string()], &[]).unwrap();
        let sunday = ts("2026-11-29T14:38:04Z");
        match window(&berlin, sunday) {
            Verdict::Closed(b) => assert!(
                b.to_string().ends_with("opens Tue 22:00 CET, in 2d 6h"),
                "{b}"
            ),
            v => panic!("{v:?}"),
        }
        for (w, want) in cases {
            let shown = match window(&w, now) {
                Verdict::Open(d) => d,
                Verdict::Closed(b) => b.to_string(),
            };
            assert_eq!(shown, want);
        }
    }

    fn completed(at: &str, evidence: Vec<Evidence>) -> CompletedReboot {
        let moment = |boot: &str| crate::host::reboot_log::Moment {
            boot_id: boot.into(),
            at: at.into(),
            uptime_ms: Some(60_000),
        };
        CompletedReboot {
            issued: moment("b1"),
            completed: moment("b2"),
            evidence,
            ineffective_notified: false,
            need_gone: false,
            given_up: false,
        }
    }

    #[test]
    fn the_same_evidence_after_a_completed_reboot_closes_the_loop_guard() {
        let kernel = |running: &str| Evidence::Kernel {
            detector: "kernel".into(),
            running: running.into(),
            newest: "6.1.0-21-amd64".into(),
        };
        let marker = |digest: &str| Evidence::File {
            detector: "marker".into(),
            path: "/run/reboot-required".into(),
            mtime_ns: Some(1),
            digest: Some(digest.into()),
        };
        let last = completed(
            "2026-11-27T10:00:00Z",
            vec![kernel("6.1.0-18-amd64"), marker("aa")],
        );
        // The need went away after that reboot: a new one.
        let gone = CompletedReboot {
            need_gone: true,
            ..last.clone()
        };
        // (evidence now, last reboot, cleared, closed)
        let cases = [
            (vec![kernel("6.1.0-18-amd64")], None, false, false),
            (vec![kernel("6.1.0-18-amd64")], Some(&last), false, true),
            (
                vec![kernel("6.1.0-18-amd64"), marker("aa")],
                Some(&last),
                false,
                true,
            ),
            // The kernel fell back to another old one: new evidence.
            (vec![kernel("6.1.0-20-amd64")], Some(&last), false, false),
            // One new piece of evidence is enough.
            (
                vec![kernel("6.1.0-18-amd64"), marker("bb")],
                Some(&last),
                false,
                false,
            ),
            (vec![kernel("6.1.0-18-amd64")], Some(&last), true, false),
            (vec![], Some(&last), false, false),
            (vec![kernel("6.1.0-18-amd64")], Some(&gone), false, false),
        ];
        for (now, last, cleared, want_closed) in cases {
            let v = reboot_loop(&now, last, cleared);
            assert_eq!(!open(&v), want_closed, "{now:?} {cleared}: {v:?}");
            if let Verdict::Closed(b) = v {
                assert_eq!(b.label(), "reboot_ineffective");
                assert!(b.to_string().contains("rebootctl clear-loop"), "{b}");
                assert!(b.to_string().contains("running 6.1.0-18-amd64"), "{b}");
            }
        }
    }

    #[test]
    fn the_cap_counts_reboots_of_the_last_24_hours() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        // (ages, max, closed text)
        let cases = [
            (vec![], 3, None),
            (vec![h(30), h(20), h(1)], 3, None),
            (
                vec![h(20), h(5), h(1)],
                3,
                Some(
                    "3 reboots (completed or given up) in the last 24 h of running time (max_reboots_per_day 3); next allowed in 4h",
                ),
            ),
            (
                vec![h(23), h(20), h(5), h(1)],
                3,
                Some(
                    "4 reboots (completed or given up) in the last 24 h of running time (max_reboots_per_day 3); next allowed in 4h",
                ),
            ),
            (
                vec![h(2)],
                1,
                Some(
                    "1 reboot (completed or given up) in the last 24 h of running time (max_reboots_per_day 1); next allowed in 22h",
                ),
            ),
        ];
        for (ages, max, want) in cases {
            match (reboot_cap(&ages, max), want) {
                (Verdict::Open(_), None) => {}
                (Verdict::Closed(Block::RebootLimit(text)), Some(w)) => assert_eq!(text, w),
                (v, w) => panic!("{ages:?}: {v:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn health_verdict_keeps_the_reason() {
        assert_eq!(health(true, "ok".into()), Verdict::Open("ok".into()));
        assert_eq!(
            health(false, "exit 1".into()),
            Verdict::Closed(Block::Health("exit 1".into()))
        );
    }

    #[test]
    fn under_the_lock_every_holder_counts_as_down() {
        let node = |name: &str, slot: Option<SlotPhase>| NodeState {
            name: name.into(),
            health: Some(HealthRecord {
                node: name.into(),
                healthy: true,
                phase: "heartbeat".into(),
                reason: String::new(),
                checked_at: String::new(),
                boot_id: String::new(),
                reboot_required: None,
                pid: 0,
                machine_id: String::new(),
                name_conflict: None,
            }),
            slot,
        };
        let rules = ClusterPolicies {
            min_healthy_absolute: Some(1),
            ..ClusterPolicies::default()
        };
        let nodes = vec![node("a", None), node("b", Some(SlotPhase::Checking))];
        for (under_lock, want_open) in [(false, true), (true, false)] {
            let v = policies("a", nodes.clone(), &rules, under_lock);
            assert_eq!(open(&v), want_open, "under_lock {under_lock}: {v:?}");
        }
    }

    fn closed(label: &str) -> Verdict {
        Verdict::Closed(Block::Health(label.to_string()))
    }

    #[test]
    fn first_block_wins_and_status_mode_evaluates_every_gate() {
        // (status, verdicts) → (gates recorded before stopping, outcome)
        let cases: [(bool, Vec<Verdict>, usize, Option<&str>); 6] = [
            (
                false,
                vec![Verdict::Open("a".into()), Verdict::Open("b".into())],
                2,
                None,
            ),
            (
                false,
                vec![closed("first"), closed("second")],
                1,
                Some("first"),
            ),
            (
                false,
                vec![
                    Verdict::Open("a".into()),
                    closed("b"),
                    Verdict::Open("c".into()),
                ],
                2,
                Some("b"),
            ),
            (
                true,
                vec![closed("first"), closed("second")],
                2,
                Some("first"),
            ),
            (
                true,
                vec![Verdict::Open("a".into()), closed("b"), closed("c")],
                3,
                Some("b"),
            ),
            (true, vec![Verdict::Open("a".into())], 1, None),
        ];
        for (status, verdicts, want_steps, want_first) in cases {
            let mut g = Gates::new(status);
            for v in verdicts.clone() {
                if g.gate("gate", v) {
                    break;
                }
            }
            let outcome = g.stop();
            let want = match want_first {
                Some(w) => Outcome::Blocked(Block::Health(w.into())),
                None => Outcome::NothingToDo,
            };
            assert_eq!(outcome, want, "status {status}: {verdicts:?}");
            assert_eq!(
                g.into_steps().len(),
                want_steps,
                "status {status}: {verdicts:?}"
            );
        }
    }

    #[test]
    fn gates_shown_only_do_not_change_the_outcome() {
        let mut g = Gates::new(true);
        assert!(!g.block("detectors", Block::DetectorFailed(vec!["x".into()])));
        let before = g.take_first();
        let _ = g.gate("window", closed("later"));
        g.restore_first(before);
        assert_eq!(
            g.stop(),
            Outcome::Blocked(Block::DetectorFailed(vec!["x".into()]))
        );
        let mut g = Gates::new(true);
        let before = g.take_first();
        let _ = g.gate("window", closed("shown"));
        g.restore_first(before);
        assert!(!g.is_blocked());
        assert_eq!(g.stop(), Outcome::NothingToDo);
        assert_eq!(g.into_steps().len(), 1);
    }
}

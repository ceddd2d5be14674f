//! The agent's phase: one enum for where `rebootctl run` stands between
//! passes, the wait each phase implies, and the single place a phase
//! changes ([`Agent::transition_to`]), which checks the change, logs it and
//! updates the metrics. A pass is always the step in between: every phase
//! goes to [`Phase::Checking`], and only a pass leaves it.

use std::fmt;
use std::time::Instant;

use crate::agent::metrics::Metrics;
use crate::pass::outcome::{Block, Outcome};

/// Where the agent stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Nothing to do: no reboot required (or the need vanished).
    Idle,
    /// A pass is running (the gates, the lock, the checks under it).
    Checking,
    /// A gate is closed; the next pass comes after `check_interval_sec`,
    /// earlier for a freed slot or an ended pause or cooldown.
    Waiting(Block),
    /// Between the reboot and its completion: the reboot has not happened
    /// yet, or the node is back but not yet healthy.
    PostReboot(Block),
    /// Every gate is open but this is a dry-run.
    Ready,
    /// The reboot command ran; no pass until the machine went down or
    /// `reboot_timeout_sec` has passed.
    Rebooting {
        /// When the command returned.
        since: Instant,
    },
    /// The reboot command failed, but it may have started a shutdown: the
    /// same wait as [`Phase::Rebooting`].
    RebootFailed {
        /// When the command failed.
        since: Instant,
    },
    /// The pass failed; the next one comes after a backoff.
    Backoff {
        /// Consecutive failed passes.
        errors: u32,
    },
}

impl Phase {
    /// The phase a finished pass leads to.
    pub fn after(outcome: &Outcome, now: Instant) -> Phase {
        match outcome {
            Outcome::NothingToDo | Outcome::NeedVanished => Phase::Idle,
            Outcome::WouldReboot => Phase::Ready,
            Outcome::RebootIssued => Phase::Rebooting { since: now },
            Outcome::Blocked(b @ (Block::RebootPending(_) | Block::PostRebootHealth(_))) => {
                Phase::PostReboot(b.clone())
            }
            Outcome::Blocked(b) => Phase::Waiting(b.clone()),
        }
    }

    /// A short stable label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Checking => "checking",
            Phase::Waiting(_) => "waiting",
            Phase::PostReboot(_) => "post_reboot",
            Phase::Ready => "ready",
            Phase::Rebooting { .. } => "rebooting",
            Phase::RebootFailed { .. } => "reboot_failed",
            Phase::Backoff { .. } => "backoff",
        }
    }

    /// Whether a lock release, an expired pause or cooldown should end the
    /// wait early: only while waiting on the cluster. A dry-run that found
    /// every gate open ([`Phase::Ready`]) waits for nothing: woken by a
    /// release (its own, or another dry-run node's), it would take and give
    /// back a slot over and over.
    pub fn wakes_on_release(&self) -> bool {
        matches!(
            self,
            Phase::Waiting(Block::NoSlot(_) | Block::Cooldown(_) | Block::Paused(_))
        )
    }

    /// Whether a reboot is under way: a reload does not start a pass then
    /// (the next pass would give the reboot up or release its slot).
    pub fn reboot_under_way(&self) -> bool {
        matches!(self, Phase::Rebooting { .. } | Phase::RebootFailed { .. })
    }

    /// The gate that keeps the agent in this phase, as a metric label.
    fn blocked_by(&self) -> Option<&'static str> {
        match self {
            Phase::Waiting(b) | Phase::PostReboot(b) => Some(b.label()),
            _ => None,
        }
    }

    /// Whether `self → next` is a transition the agent makes: into a pass
    /// from anywhere but a pass, and out of a pass to anywhere but a pass.
    pub fn may_become(&self, next: &Phase) -> bool {
        matches!(self, Phase::Checking) != matches!(next, Phase::Checking)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Waiting(b) | Phase::PostReboot(b) => {
                write!(f, "{} ({})", self.label(), b.label())
            }
            Phase::Backoff { errors } => write!(f, "backoff (attempt {errors})"),
            _ => f.write_str(self.label()),
        }
    }
}

/// A transition the agent does not make.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The phase the agent was in.
    pub from: Phase,
    /// The phase asked for.
    pub to: Phase,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "phase {} cannot become {}", self.from, self.to)
    }
}

/// The agent's phase and the one method that changes it.
#[derive(Debug)]
pub struct Agent {
    phase: Phase,
}

impl Default for Agent {
    fn default() -> Self {
        Agent { phase: Phase::Idle }
    }
}

impl Agent {
    /// The current phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Changes the phase: refused unless [`Phase::may_become`] allows it;
    /// otherwise logged (at debug level) and, when a pass ends, counted in
    /// `rebootctl_blocked_total` and `rebootctl_blocked` (not after a
    /// failed reboot command, which ends no pass).
    pub fn transition_to(&mut self, next: Phase, metrics: &Metrics) -> Result<(), Refused> {
        if !self.phase.may_become(&next) {
            return Err(Refused {
                from: self.phase.clone(),
                to: next,
            });
        }
        log::debug!("phase: {} → {next}", self.phase);
        if !matches!(next, Phase::Checking | Phase::RebootFailed { .. }) {
            metrics.pass_blocked(next.blocked_by());
        }
        self.phase = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn all(now: Instant) -> Vec<Phase> {
        vec![
            Phase::Idle,
            Phase::Checking,
            Phase::Waiting(Block::NoSlot("web-2".into())),
            Phase::PostReboot(Block::RebootPending("same boot".into())),
            Phase::Ready,
            Phase::Rebooting { since: now },
            Phase::RebootFailed { since: now },
            Phase::Backoff { errors: 2 },
        ]
    }

    #[test]
    fn every_phase_enters_a_pass_and_only_a_pass_leaves_one() {
        let now = Instant::now();
        for from in all(now) {
            for to in all(now) {
                let mut agent = Agent {
                    phase: from.clone(),
                };
                let result = agent.transition_to(to.clone(), &Metrics::default());
                let allowed = (from == Phase::Checking) != (to == Phase::Checking);
                assert_eq!(result.is_ok(), allowed, "{from} → {to}");
                let want = if allowed { &to } else { &from };
                assert_eq!(agent.phase(), want, "{from} → {to}");
            }
        }
    }

    #[test]
    fn refusal_names_both_phases() {
        let mut agent = Agent::default();
        let err = agent
            .transition_to(Phase::Ready, &Metrics::default())
            .unwrap_err();
        assert_eq!(err.to_string(), "phase idle cannot become ready");
    }

    #[test]
    fn outcomes_map_to_phases_and_their_waits() {
        let now = Instant::now();
        // (outcome, phase label, wakes on release, reboot under way)
        let cases = [
            (Outcome::NothingToDo, "idle", false, false),
            (Outcome::NeedVanished, "idle", false, false),
            (Outcome::WouldReboot, "ready", false, false),
            (Outcome::RebootIssued, "rebooting", false, true),
            (
                Outcome::Blocked(Block::NoSlot("x".into())),
                "waiting",
                true,
                false,
            ),
            (
                Outcome::Blocked(Block::Cooldown(Duration::from_secs(9))),
                "waiting",
                true,
                false,
            ),
            (
                Outcome::Blocked(Block::Paused("x".into())),
                "waiting",
                true,
                false,
            ),
            (
                Outcome::Blocked(Block::Window("x".into())),
                "waiting",
                false,
                false,
            ),
            (
                Outcome::Blocked(Block::Health("x".into())),
                "waiting",
                false,
                false,
            ),
            (
                Outcome::Blocked(Block::KillSwitch("x".into())),
                "waiting",
                false,
                false,
            ),
            (
                Outcome::Blocked(Block::RebootPending("x".into())),
                "post_reboot",
                false,
                false,
            ),
            (
                Outcome::Blocked(Block::PostRebootHealth("x".into())),
                "post_reboot",
                false,
                false,
            ),
        ];
        for (outcome, label, wakes, under_way) in cases {
            let p = Phase::after(&outcome, now);
            assert_eq!(p.label(), label, "{outcome:?}");
            assert_eq!(p.wakes_on_release(), wakes, "{outcome:?}");
            assert_eq!(p.reboot_under_way(), under_way, "{outcome:?}");
        }
        let failed = Phase::RebootFailed { since: now };
        assert!(failed.reboot_under_way() && !failed.wakes_on_release());
        let backoff = Phase::Backoff { errors: 1 };
        assert!(!backoff.reboot_under_way() && !backoff.wakes_on_release());
    }

    #[test]
    fn a_pass_ending_blocked_is_counted_once_with_its_gate() {
        let metrics = Metrics::default();
        let mut agent = Agent::default();
        agent.transition_to(Phase::Checking, &metrics).unwrap();
        agent
            .transition_to(Phase::Waiting(Block::Health("x".into())), &metrics)
            .unwrap();
        let text = metrics.render();
        assert!(
            text.contains("rebootctl_blocked_total{reason=\"health\"} 1"),
            "{text}"
        );
    }
}

//! What a pass tells the fleet about this node's progress in the round: the
//! `needs_reboot_since`, `last_block` and `last_reboot` fields of its
//! registry record, read by `rebootctl rollout`. [`next`] decides them from
//! the previous record and what the pass found ([`Facts`]; pure);
//! [`publish`] writes them, and only when they change (one etcd write per
//! change, not one per pass). The pass publishes after it ends, and once
//! before the reboot command: the host may go down before the pass ends.

use crate::cluster::Cluster;
use crate::cluster::records::{LastBlock, NodeRecord, RebootDone};
use crate::pass::outcome::{Block, Outcome};
use crate::pass::report::{PassEvent, PassReport};

/// What a pass found that the registry record keeps.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The detectors' verdict (None: not run or undecided).
    pub reboot_required: Option<bool>,
    /// A reboot of this node completed in this pass.
    pub completed: bool,
    /// The gate that stopped the pass.
    pub block: Option<&'a Block>,
}

impl Facts<'_> {
    /// The facts of a finished pass.
    pub fn of(report: &PassReport) -> Facts<'_> {
        Facts {
            reboot_required: report.reboot_required,
            completed: report.events.contains(&PassEvent::RebootCompleted),
            block: match &report.outcome {
                Outcome::Blocked(b) => Some(b),
                _ => None,
            },
        }
    }
}

/// Longest `last_block.detail` kept in the record, in characters.
pub const BLOCK_DETAIL_MAX_CHARS: usize = 120;

/// The record after a pass that found `facts` at `now` (RFC 3339), or None
/// when nothing changes.
///
/// - `needs_reboot_since` is set when the detectors first say "required",
///   kept while they do (or did not run), cleared when they say "not
///   required" or the reboot completed without them saying so again;
/// - `last_block` changes only when the reason does (the detail is as of
///   `since`), and is cleared by a pass that was not blocked;
/// - `last_reboot` is written when a reboot completed, with the time the
///   need began.
pub fn next(prev: &NodeRecord, facts: &Facts<'_>, now: &str) -> Option<NodeRecord> {
    let completed = facts.completed;
    let needs_reboot_since = match facts.reboot_required {
        Some(true) => prev
            .needs_reboot_since
            .clone()
            .or_else(|| Some(now.to_string())),
        Some(false) => None,
        None if completed => None,
        None => prev.needs_reboot_since.clone(),
    };
    let last_block = match facts.block {
        Some(b) => match &prev.last_block {
            Some(p) if p.reason == b.label() => Some(p.clone()),
            _ => Some(LastBlock {
                reason: b.label().to_string(),
                detail: b.to_string().chars().take(BLOCK_DETAIL_MAX_CHARS).collect(),
                since: now.to_string(),
            }),
        },
        None => None,
    };
    let last_reboot = if completed {
        Some(RebootDone {
            needed_since: prev.needs_reboot_since.clone(),
            completed_at: now.to_string(),
        })
    } else {
        prev.last_reboot.clone()
    };
    let next = NodeRecord {
        needs_reboot_since,
        last_block,
        last_reboot,
        ..prev.clone()
    };
    (next != *prev).then_some(next)
}

/// Publishes this node's progress (cluster mode, not status): the one
/// place the pass writes its registry record. A failure is logged: the
/// fields are advisory, for `rollout`.
pub fn publish(cluster: &Cluster, facts: &Facts<'_>) {
    let now = crate::time::timestamp_now();
    match cluster.update_node_record(|prev| next(prev, facts, &now)) {
        Ok(true) => log::debug!("registry record updated"),
        Ok(false) => {}
        Err(e) => log::warn!("cannot update the registry record: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-11-27T10:00:00Z";
    const T1: &str = "2026-11-27T11:00:00Z";

    fn report(required: Option<bool>, outcome: Outcome, events: Vec<PassEvent>) -> PassReport {
        PassReport {
            node: "web-1".into(),
            cluster: true,
            dry_run: false,
            steps: vec![],
            detectors: vec![],
            reboot_required: required,
            holders: vec![],
            holding_slot: false,
            outcome,
            events,
            alerts: None,
            users: None,
        }
    }

    /// The facts of a report; leaked so the test reads in one line.
    fn f(required: Option<bool>, outcome: Outcome, events: Vec<PassEvent>) -> Facts<'static> {
        Facts::of(Box::leak(Box::new(report(required, outcome, events))))
    }

    fn window() -> Outcome {
        Outcome::Blocked(Block::Window("outside every allow window".into()))
    }

    #[test]
    fn the_need_is_stamped_once_and_cleared_when_gone() {
        let prev = NodeRecord::default();
        let a = next(&prev, &f(Some(true), window(), vec![]), T0).unwrap();
        assert_eq!(a.needs_reboot_since.as_deref(), Some(T0));
        let block = a.last_block.clone().unwrap();
        assert_eq!(
            (block.reason.as_str(), block.since.as_str()),
            ("window", T0)
        );
        // The same again later: no write at all.
        assert_eq!(next(&a, &f(Some(true), window(), vec![]), T1), None);
        // Another reason: a new since; the need keeps its stamp.
        let health = Outcome::Blocked(Block::Health("exit 1".into()));
        let b = next(&a, &f(Some(true), health, vec![]), T1).unwrap();
        assert_eq!(b.needs_reboot_since.as_deref(), Some(T0));
        assert_eq!(b.last_block.as_ref().unwrap().since, T1);
        // Stopped before the detectors (kill switch): the need stays known.
        let kill = Outcome::Blocked(Block::KillSwitch("x".into()));
        let c = next(&b, &f(None, kill, vec![]), T1).unwrap();
        assert_eq!(c.needs_reboot_since.as_deref(), Some(T0));
        assert_eq!(c.last_block.as_ref().unwrap().reason, "kill_switch");
        // Not blocked: the block goes; no need: the stamp goes.
        let d = next(&c, &f(Some(false), Outcome::NothingToDo, vec![]), T1).unwrap();
        assert_eq!((d.needs_reboot_since, d.last_block), (None, None));
    }

    #[test]
    fn a_completed_reboot_keeps_when_it_was_needed() {
        let prev = NodeRecord {
            needs_reboot_since: Some(T0.into()),
            ..NodeRecord::default()
        };
        let done = report(
            Some(false),
            Outcome::NothingToDo,
            vec![PassEvent::RebootCompleted],
        );
        let a = next(&prev, &Facts::of(&done), T1).unwrap();
        assert_eq!(a.needs_reboot_since, None);
        assert_eq!(
            a.last_reboot,
            Some(RebootDone {
                needed_since: Some(T0.into()),
                completed_at: T1.into()
            })
        );
        // Still required after the reboot: the need (and its age) stays.
        let again = report(Some(true), window(), vec![PassEvent::RebootCompleted]);
        let b = next(&prev, &Facts::of(&again), T1).unwrap();
        assert_eq!(b.needs_reboot_since.as_deref(), Some(T0));
    }

    #[test]
    fn details_are_short() {
        let long = Outcome::Blocked(Block::Health("x".repeat(500)));
        let a = next(&NodeRecord::default(), &f(Some(true), long, vec![]), T0).unwrap();
        assert_eq!(
            a.last_block.unwrap().detail.chars().count(),
            BLOCK_DETAIL_MAX_CHARS
        );
    }
}

//! The rollout at a glance (`rebootctl rollout`): where every registered
//! node stands in the current round, from what the nodes publish in their
//! registry records (`needs_reboot_since`, `last_block`, `last_reboot`) and
//! the lock slots. Nothing is computed by scanning the history.
//!
//! [`Cluster::update_node_record`] is how an agent publishes those fields
//! (one etcd write per change); [`summarize`] is the pure view over them.
//!
//! A *round* is a stretch of time in which at least one node needed a
//! reboot: the union of the overlapping intervals [needed since, back]
//! (or [needed since, now] for a node that still needs one). The current
//! round is the latest such stretch; a node "finished this round" when
//! its last reboot completed inside it.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::cluster::lock::{Slot, SlotPhase};
use crate::cluster::records::{HealthRecord, LastBlock, NodeRecord, PauseRecord, RebootDone};
use crate::error::{Error, Result};
use crate::etcd::{CmpResult, Compare, Op, Txn};
use crate::time::secs_between;

/// How many times a registry update is retried when the record changed
/// between the read and the write.
const UPDATE_ATTEMPTS: usize = 3;

/// Default `--laggard-after`: a node needing a reboot for longer is a laggard.
pub const DEFAULT_LAGGARD_AFTER_SECS: u64 = 86_400;

/// Where a node stands in the round, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Holds a slot in phase rebooting (down, or back and not yet healthy).
    Rebooting,
    /// Holds a slot in phase checking (the checks under the lock).
    Checking,
    /// Its last pass was blocked (by `last_block.reason`).
    Blocked,
    /// Needs a reboot and was not blocked: its turn comes.
    Waiting,
    /// Rebooted in this round and needs no reboot now.
    Finished,
    /// Needs no reboot and did not reboot in this round.
    UpToDate,
}

/// One node in the rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRollout {
    /// The node's name.
    pub node: String,
    /// Where it stands.
    pub stage: Stage,
    /// Since when it needs a reboot (RFC 3339).
    pub needs_reboot_since: Option<String>,
    /// For how long, in seconds.
    pub needs_reboot_sec: Option<u64>,
    /// Needing a reboot for longer than the laggard threshold.
    pub laggard: bool,
    /// The phase of the slot it holds.
    pub slot_phase: Option<String>,
    /// Seconds since it took that slot.
    pub slot_sec: Option<u64>,
    /// The gate that stopped its last pass.
    pub last_block: Option<LastBlock>,
    /// Seconds since passes stop at that gate.
    pub blocked_sec: Option<u64>,
    /// Its last completed reboot.
    pub last_reboot: Option<RebootDone>,
    /// Healthy per its fresh health record (None: no fresh record).
    pub healthy: Option<bool>,
}

/// The nodes blocked by one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockGroup {
    /// The reason label.
    pub reason: String,
    /// Their names, longest blocked first.
    pub nodes: Vec<String>,
    /// The detail the group's nodes share (empty when they differ).
    pub detail: String,
}

/// How many nodes are at each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Registered nodes.
    pub nodes: usize,
    /// Nodes that need a reboot (any stage).
    pub needs_reboot: usize,
    /// [`Stage::Rebooting`].
    pub rebooting: usize,
    /// [`Stage::Checking`].
    pub checking: usize,
    /// [`Stage::Blocked`].
    pub blocked: usize,
    /// [`Stage::Waiting`].
    pub waiting: usize,
    /// [`Stage::Finished`].
    pub finished: usize,
    /// [`Stage::UpToDate`].
    pub up_to_date: usize,
    /// Nodes needing a reboot for longer than the threshold.
    pub laggards: usize,
}

/// The whole rollout, as `rollout --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// When it was computed (RFC 3339).
    pub now: String,
    /// When the current (or last) round started; None: no round yet.
    pub round_started_at: Option<String>,
    /// Whether a node still needs a reboot (the round is under way).
    pub round_open: bool,
    /// The laggard threshold in seconds.
    pub laggard_after_sec: u64,
    /// Lock slots (`max_concurrent_reboots`).
    pub slots: u32,
    /// The cluster pause, when paused.
    pub paused: Option<PauseRecord>,
    /// Nodes per stage.
    pub counts: Counts,
    /// The blocked nodes by reason, largest group first.
    pub blocked_by: Vec<BlockGroup>,
    /// Every registered node, by stage then name.
    pub nodes: Vec<NodeRollout>,
}

/// What [`summarize`] reads.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The registry.
    pub nodes: Vec<NodeRecord>,
    /// The lock slots held.
    pub slots: Vec<Slot>,
    /// The fresh health records.
    pub health: Vec<HealthRecord>,
    /// The pause record.
    pub paused: Option<PauseRecord>,
    /// `max_concurrent_reboots`.
    pub slot_count: u32,
}

fn parse(t: &str) -> Option<Timestamp> {
    t.parse().ok()
}

/// The start of the latest stretch of overlapping need intervals.
fn round_start(nodes: &[NodeRecord], now: Timestamp) -> Option<Timestamp> {
    let mut spans: Vec<(Timestamp, Timestamp)> = Vec::new();
    for n in nodes {
        if let Some(since) = n.needs_reboot_since.as_deref().and_then(parse) {
            spans.push((since.min(now), now));
        }
        if let Some(r) = &n.last_reboot {
            if let Some(done) = parse(&r.completed_at) {
                let from = r.needed_since.as_deref().and_then(parse).unwrap_or(done);
                spans.push((from.min(done), done));
            }
        }
    }
    spans.sort();
    let mut current: Option<(Timestamp, Timestamp)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            _ => Some((start, end)),
        };
    }
    current.map(|(s, _)| s)
}

/// Where every node stands at `now`; `laggard_after` is the threshold.
pub fn summarize(input: &Inputs, now: Timestamp, laggard_after: Duration) -> Rollout {
    let start = round_start(&input.nodes, now);
    let secs = |t: &str| parse(t).map(|t| secs_between(t, now).as_secs());
    let mut nodes: Vec<NodeRollout> = input
        .nodes
        .iter()
        .map(|n| {
            let slot = input.slots.iter().find(|s| s.node() == n.node);
            let needs_sec = n.needs_reboot_since.as_deref().and_then(secs);
            let finished = n.last_reboot.as_ref().is_some_and(
                |r| matches!((parse(&r.completed_at), start), (Some(done), Some(s)) if done >= s),
            );
            let stage = match (slot.and_then(Slot::phase), &n.last_block, needs_sec) {
                (Some(SlotPhase::Rebooting), _, _) => Stage::Rebooting,
                (Some(SlotPhase::Checking), _, _) => Stage::Checking,
                (None, Some(_), _) => Stage::Blocked,
                (None, None, Some(_)) => Stage::Waiting,
                (None, None, None) if finished => Stage::Finished,
                (None, None, None) => Stage::UpToDate,
            };
            NodeRollout {
                node: n.node.clone(),
                stage,
                needs_reboot_since: n.needs_reboot_since.clone(),
                needs_reboot_sec: needs_sec,
                laggard: needs_sec.is_some_and(|s| s > laggard_after.as_secs()),
                slot_phase: slot.and_then(Slot::phase).map(|p| p.as_str().to_string()),
                slot_sec: slot
                    .and_then(|s| s.value.as_ref())
                    .and_then(|v| secs(&v.acquired_at)),
                blocked_sec: n.last_block.as_ref().and_then(|b| secs(&b.since)),
                last_block: n.last_block.clone(),
                last_reboot: n.last_reboot.clone(),
                healthy: input
                    .health
                    .iter()
                    .find(|h| h.node == n.node)
                    .map(|h| h.healthy),
            }
        })
        .collect();
    nodes.sort_by(|a, b| (a.stage, &a.node).cmp(&(b.stage, &b.node)));
    let count = |stage: Stage| nodes.iter().filter(|n| n.stage == stage).count();
    let counts = Counts {
        nodes: nodes.len(),
        needs_reboot: nodes
            .iter()
            .filter(|n| n.needs_reboot_sec.is_some())
            .count(),
        rebooting: count(Stage::Rebooting),
        checking: count(Stage::Checking),
        blocked: count(Stage::Blocked),
        waiting: count(Stage::Waiting),
        finished: count(Stage::Finished),
        up_to_date: count(Stage::UpToDate),
        laggards: nodes.iter().filter(|n| n.laggard).count(),
    };
    Rollout {
        now: now.to_string(),
        round_started_at: start.map(|s| s.to_string()),
        round_open: counts.needs_reboot > 0,
        laggard_after_sec: laggard_after.as_secs(),
        slots: input.slot_count,
        paused: input.paused.clone(),
        blocked_by: block_groups(&nodes),
        counts,
        nodes,
    }
}

/// The blocked nodes grouped by reason: largest group first, and in a
/// group the longest blocked first.
fn block_groups(nodes: &[NodeRollout]) -> Vec<BlockGroup> {
    let mut groups: Vec<(BlockGroup, Vec<u64>)> = Vec::new();
    for n in nodes.iter().filter(|n| n.stage == Stage::Blocked) {
        let Some(b) = &n.last_block else { continue };
        let age = n.blocked_sec.unwrap_or(0);
        match groups.iter_mut().find(|(g, _)| g.reason == b.reason) {
            Some((g, ages)) => {
                let at = ages.iter().position(|a| *a < age).unwrap_or(ages.len());
                ages.insert(at, age);
                g.nodes.insert(at, n.node.clone());
                if g.detail != b.detail {
                    g.detail.clear();
                }
            }
            None => groups.push((
                BlockGroup {
                    reason: b.reason.clone(),
                    nodes: vec![n.node.clone()],
                    detail: b.detail.clone(),
                },
                vec![age],
            )),
        }
    }
    let mut out: Vec<BlockGroup> = groups.into_iter().map(|(g, _)| g).collect();
    out.sort_by(|a, b| {
        b.nodes
            .len()
            .cmp(&a.nodes.len())
            .then(a.reason.cmp(&b.reason))
    });
    out
}

impl Cluster {
    /// Rewrites this node's registry record with `change` (which returns
    /// None when nothing changes: no write). The write is a txn on the
    /// record's mod revision, retried when the record changed meanwhile, so
    /// it never undoes another writer. Returns whether it wrote; an
    /// unregistered (forgotten) node is not registered again.
    pub fn update_node_record(
        &self,
        change: impl Fn(&NodeRecord) -> Option<NodeRecord>,
    ) -> Result<bool> {
        let key = self.key(&format!("nodes/{}", self.node));
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(kv) = self.client.get(&key)? else {
                return Ok(false);
            };
            let current: NodeRecord = serde_json::from_slice(&kv.value)
                .map_err(|e| Error::Runtime(format!("unexpected value at etcd key {key}: {e}")))?;
            let Some(next) = change(&current) else {
                return Ok(false);
            };
            let body = serde_json::to_vec(&next).map_err(|e| Error::Runtime(e.to_string()))?;
            let resp = self.client.txn(&Txn {
                compare: vec![Compare::mod_revision(
                    &key,
                    CmpResult::Equal,
                    kv.mod_revision,
                )],
                success: vec![Op::put(&key, &body, None)],
                failure: vec![],
            })?;
            if resp.succeeded {
                return Ok(true);
            }
        }
        Err(Error::Runtime(format!(
            "{key} kept changing; gave up updating it after {UPDATE_ATTEMPTS} attempts"
        )))
    }

    /// Reads what [`summarize`] needs: the registry, the slots, the fresh
    /// health records and the pause.
    pub fn rollout_inputs(&self) -> Result<Inputs> {
        let (slots, _) = self.lock.holders()?;
        Ok(Inputs {
            nodes: self.nodes()?,
            slots,
            health: self.health_records()?,
            paused: self.pause()?.map(|(p, _)| p),
            slot_count: self.lock.slot_count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::lock::SlotValue;

    const NOW: &str = "2026-11-27T12:00:00Z";

    fn node(name: &str) -> NodeRecord {
        NodeRecord {
            node: name.into(),
            registered_at: "2026-11-01T00:00:00Z".into(),
            ..NodeRecord::default()
        }
    }

    fn needing(name: &str, since: &str) -> NodeRecord {
        NodeRecord {
            needs_reboot_since: Some(since.into()),
            ..node(name)
        }
    }

    fn blocked(name: &str, since: &str, reason: &str, at: &str) -> NodeRecord {
        NodeRecord {
            last_block: Some(LastBlock {
                reason: reason.into(),
                detail: format!("{reason} detail"),
                since: at.into(),
            }),
            ..needing(name, since)
        }
    }

    fn rebooted(name: &str, needed: &str, done: &str) -> NodeRecord {
        NodeRecord {
            last_reboot: Some(RebootDone {
                needed_since: Some(needed.into()),
                completed_at: done.into(),
            }),
            ..node(name)
        }
    }

    fn slot(name: &str, phase: SlotPhase, at: &str) -> Slot {
        Slot {
            key: "/rebootctl/lock/slot-0".into(),
            index: 0,
            value: Some(SlotValue {
                node: name.into(),
                pid: 1,
                boot_id: "b".into(),
                phase,
                acquired_at: at.into(),
                machine_id: String::new(),
                kind: crate::cluster::lock::SlotKind::Agent,
                limit: 1,
                group: String::new(),
            }),
            raw: String::new(),
            create_revision: 1,
            mod_revision: 1,
            lease: 1,
        }
    }

    fn run(nodes: Vec<NodeRecord>, slots: Vec<Slot>) -> Rollout {
        let input = Inputs {
            nodes,
            slots,
            slot_count: 1,
            ..Inputs::default()
        };
        summarize(&input, NOW.parse().unwrap(), Duration::from_secs(3_600))
    }

    fn stage_of(r: &Rollout, name: &str) -> Stage {
        r.nodes.iter().find(|n| n.node == name).unwrap().stage
    }

    #[test]
    fn every_stage_from_the_records_and_the_slots() {
        let r = run(
            vec![
                needing("a", "2026-11-27T10:00:00Z"),
                needing("b", "2026-11-27T10:00:00Z"),
                blocked(
                    "c",
                    "2026-11-27T10:00:00Z",
                    "window",
                    "2026-11-27T10:01:00Z",
                ),
                needing("d", "2026-11-27T11:30:00Z"),
                rebooted("e", "2026-11-27T10:00:00Z", "2026-11-27T10:20:00Z"),
                rebooted("f", "2026-10-01T10:00:00Z", "2026-10-01T10:20:00Z"),
                node("g"),
            ],
            vec![
                slot("a", SlotPhase::Rebooting, "2026-11-27T11:57:00Z"),
                slot("b", SlotPhase::Checking, "2026-11-27T11:59:59Z"),
            ],
        );
        let stages: Vec<(&str, Stage)> =
            r.nodes.iter().map(|n| (n.node.as_str(), n.stage)).collect();
        assert_eq!(
            stages,
            [
                ("a", Stage::Rebooting),
                ("b", Stage::Checking),
                ("c", Stage::Blocked),
                ("d", Stage::Waiting),
                ("e", Stage::Finished),
                ("f", Stage::UpToDate),
                ("g", Stage::UpToDate),
            ]
        );
        assert_eq!(r.round_started_at.as_deref(), Some("2026-11-27T10:00:00Z"));
        assert!(r.round_open);
        assert_eq!(r.counts.needs_reboot, 4);
        // a, b and c since 10:00 (2h > 1h); d since 11:30.
        assert_eq!(r.counts.laggards, 3);
        assert_eq!(r.nodes[0].slot_sec, Some(180));
        assert_eq!(r.nodes[2].blocked_sec, Some(7_140));
        assert_eq!(r.blocked_by.len(), 1);
        assert_eq!(r.blocked_by[0].nodes, ["c"]);
        assert_eq!(r.blocked_by[0].detail, "window detail");
    }

    #[test]
    fn a_round_is_the_latest_stretch_of_overlapping_needs() {
        // e's reboot ended before d's need began: d opens a new round.
        let r = run(
            vec![
                rebooted("e", "2026-11-27T09:00:00Z", "2026-11-27T09:30:00Z"),
                needing("d", "2026-11-27T11:00:00Z"),
            ],
            vec![],
        );
        assert_eq!(r.round_started_at.as_deref(), Some("2026-11-27T11:00:00Z"));
        assert_eq!(stage_of(&r, "e"), Stage::UpToDate);
        // Overlapping: one round from the earliest need.
        let r = run(
            vec![
                rebooted("e", "2026-11-27T09:00:00Z", "2026-11-27T11:30:00Z"),
                rebooted("f", "2026-11-27T11:10:00Z", "2026-11-27T11:40:00Z"),
                needing("d", "2026-11-27T11:35:00Z"),
            ],
            vec![],
        );
        assert_eq!(r.round_started_at.as_deref(), Some("2026-11-27T09:00:00Z"));
        assert_eq!(stage_of(&r, "e"), Stage::Finished);
        assert_eq!(stage_of(&r, "f"), Stage::Finished);
        // Nothing needed any more: the last round, closed.
        let r = run(
            vec![rebooted(
                "e",
                "2026-11-27T09:00:00Z",
                "2026-11-27T11:30:00Z",
            )],
            vec![],
        );
        assert!(!r.round_open);
        assert_eq!(stage_of(&r, "e"), Stage::Finished);
        // Never anything: no round.
        let r = run(vec![node("g")], vec![]);
        assert_eq!(r.round_started_at, None);
    }

    #[test]
    fn groups_are_largest_first_and_longest_blocked_first() {
        let since = "2026-11-27T10:00:00Z";
        let r = run(
            vec![
                blocked("h1", since, "health", "2026-11-27T11:00:00Z"),
                blocked("w1", since, "window", "2026-11-27T11:00:00Z"),
                blocked("w2", since, "window", "2026-11-27T10:00:00Z"),
                NodeRecord {
                    last_block: Some(LastBlock {
                        reason: "window".into(),
                        detail: "other".into(),
                        since: "2026-11-27T11:30:00Z".into(),
                    }),
                    ..needing("w3", since)
                },
            ],
            vec![],
        );
        let groups: Vec<(&str, Vec<&str>, &str)> = r
            .blocked_by
            .iter()
            .map(|g| {
                (
                    g.reason.as_str(),
                    g.nodes.iter().map(String::as_str).collect(),
                    g.detail.as_str(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("window", vec!["w2", "w1", "w3"], ""),
                ("health", vec!["h1"], "health detail"),
            ]
        );
    }
}

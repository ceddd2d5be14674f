//! The records nodes publish in etcd (SPEC §6): registry, health,
//! cooldown, pause, history (their keys: [`crate::cluster::keys`]), and
//! clusterrebootd's health record written beside ours during a migration. Plain data; the etcd I/O lives in
//! [`crate::cluster::Cluster`], the decision over them in
//! [`crate::cluster::policy`].

use serde::{Deserialize, Serialize};

/// Number of history entries kept in etcd.
pub const HISTORY_KEEP: usize = 200;

/// `<ns>/nodes/<node>`: a node that has run the agent, and where it stands
/// in the current round (written by its agent when that changes, never
/// every pass: one etcd write per change).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name.
    pub node: String,
    /// When it first registered (RFC 3339).
    pub registered_at: String,
    /// The agent version that registered it.
    #[serde(default)]
    pub version: String,
    /// The registering machine's id (empty when unknown).
    #[serde(default)]
    pub machine_id: String,
    /// Its `max_concurrent_reboots` (absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_reboots: Option<u32>,
    /// Since when the node needs a reboot (RFC 3339); None: it does not,
    /// or its agent has not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_reboot_since: Option<String>,
    /// Why its passes are blocked (None: its last pass was not blocked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block: Option<LastBlock>,
    /// Its last completed reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reboot: Option<RebootDone>,
}

/// The gate that has been stopping a node's passes, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBlock {
    /// The reason label (`window`, `health`, `kill_switch`, …).
    pub reason: String,
    /// A short human detail, as of `since`.
    #[serde(default)]
    pub detail: String,
    /// When passes started to stop at this gate (RFC 3339).
    pub since: String,
}

/// A node's last completed reboot, as its registry record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootDone {
    /// Since when the reboot had been needed (RFC 3339; None: not known).
    #[serde(default)]
    pub needed_since: Option<String>,
    /// When the node was back and healthy (RFC 3339).
    pub completed_at: String,
}

/// `<ns>/health/<node>`: the node's last health report, on a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// The node's name.
    pub node: String,
    /// Whether its health script passed.
    pub healthy: bool,
    /// The phase of the check that first gave this result ("pre-lock",
    /// "heartbeat", …).
    pub phase: String,
    /// Why (the script's verdict).
    #[serde(default)]
    pub reason: String,
    /// When the check that first gave this result ran (RFC 3339): the
    /// record is rewritten only when its content changes, and its lease,
    /// renewed at every heartbeat, is what shows it is current.
    pub checked_at: String,
    /// The node's boot id at the time.
    #[serde(default)]
    pub boot_id: String,
    /// Whether the node needs a reboot (None when not known).
    #[serde(default)]
    pub reboot_required: Option<bool>,
    /// The publishing agent's pid (0 in records of older versions): with
    /// the boot id it tells this agent's writes from another host's that
    /// claims the same node name.
    #[serde(default)]
    pub pid: u32,
    /// The publishing machine's id (empty when unknown).
    #[serde(default)]
    pub machine_id: String,
    /// Set while the publishing agent sees another host publish under the
    /// same node name (`rebootctl status` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_conflict: Option<String>,
}

impl HealthRecord {
    /// Whether `other` was published by another agent than `self`: another
    /// boot, or another process of the same boot (a pid of 0 is unknown).
    pub fn other_agent(&self, other: &HealthRecord) -> bool {
        self.boot_id != other.boot_id || (self.pid != 0 && other.pid != 0 && self.pid != other.pid)
    }

    /// True when `other` says the same, whenever and in whichever phase it
    /// was checked: a node waiting for a slot alternates pre-lock checks
    /// and heartbeats, and rewriting its record for each would be one
    /// write per check per waiting node.
    pub fn same_content(&self, other: &HealthRecord) -> bool {
        let plain = |r: &HealthRecord| HealthRecord {
            checked_at: String::new(),
            phase: String::new(),
            ..r.clone()
        };
        plain(self) == plain(other)
    }
}

/// `<ns>/lock/cooldown`: the last completed reboot, on a lease of
/// `min_reboot_interval_sec`. The same format as clusterrebootd's
/// `reboot_cooldown`, which rebootctl reads and writes when sharing its lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CooldownRecord {
    /// The node that completed a reboot.
    pub node: String,
    /// When (RFC 3339).
    pub started_at: String,
    /// The cooldown's length in seconds (clusterrebootd reads it when the
    /// key has no lease; absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_sec: Option<u64>,
}

/// clusterrebootd's health record of a node (`cluster_health/<node>` below
/// its namespace), which its cluster policies read: written beside ours
/// when sharing its lock. clusterrebootd writes it without a lease, and
/// `stage`/`reason` only when unhealthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterrebootdHealth {
    /// The node's name.
    pub node: String,
    /// Whether its health script passed.
    pub healthy: bool,
    /// The phase of the check, when unhealthy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage: String,
    /// Why, when unhealthy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When it was checked (RFC 3339; Go's `time.RFC3339Nano` parses it).
    pub reported_at: String,
}

impl From<&HealthRecord> for ClusterrebootdHealth {
    fn from(h: &HealthRecord) -> ClusterrebootdHealth {
        let (stage, reason) = if h.healthy {
            (String::new(), String::new())
        } else {
            (h.phase.clone(), h.reason.clone())
        };
        ClusterrebootdHealth {
            node: h.node.clone(),
            healthy: h.healthy,
            stage,
            reason,
            reported_at: h.checked_at.clone(),
        }
    }
}

/// `<ns>/lock/pause`: the cluster-wide kill switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseRecord {
    /// Why the operator paused.
    #[serde(default)]
    pub reason: String,
    /// Who paused (`user@host`).
    #[serde(default)]
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
}

/// `<ns>/history/<rfc3339>-<node>`: one event of a node's reboot life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The node.
    pub node: String,
    /// What happened (`reboot_started`, `reboot_completed`, `unlocked`, …).
    pub event: String,
    /// When (RFC 3339).
    pub at: String,
    /// The node's boot id at the time.
    #[serde(default)]
    pub boot_id: String,
}

/// True unless both machine ids are known and differ. Unknown counts as a
/// match and cloned images share their machine id, so this can tell two
/// hosts apart but never proves that a record is this host's own: the
/// reboot record in `state_dir` does that (issue 10.5).
pub fn same_machine(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_boot_or_another_live_pid_is_another_agent() {
        let rec = |boot: &str, pid: u32| HealthRecord {
            node: "web-1".into(),
            healthy: true,
            phase: "heartbeat".into(),
            reason: String::new(),
            checked_at: String::new(),
            boot_id: boot.into(),
            reboot_required: None,
            pid,
            machine_id: "m".into(),
            name_conflict: None,
        };
        let me = rec("b1", 10);
        // (theirs, another agent)
        let cases = [
            (rec("b1", 10), false),
            (rec("b1", 0), false),
            (rec("b1", 11), true),
            (rec("b2", 10), true),
            (rec("b2", 0), true),
        ];
        for (theirs, want) in cases {
            assert_eq!(me.other_agent(&theirs), want, "{theirs:?}");
        }
    }
}

//! The records nodes publish in etcd (SPEC §6): registry, health,
//! cooldown, pause, history. Plain data; the etcd I/O lives in
//! [`crate::cluster::Cluster`], the decision over them in
//! [`crate::cluster::policy`].

use serde::{Deserialize, Serialize};

/// Number of history entries kept in etcd.
pub const HISTORY_KEEP: usize = 200;

/// `<ns>/nodes/<node>`: a node that has run the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl HealthRecord {
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

/// `<ns>/cooldown`: the last completed reboot, on a lease of `min_reboot_interval_sec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CooldownRecord {
    /// The node that completed a reboot.
    pub node: String,
    /// When (RFC 3339).
    pub started_at: String,
}

/// `<ns>/pause`: the cluster-wide kill switch.
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

/// True unless both machine ids are known and differ.
pub fn same_machine(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a == b
}

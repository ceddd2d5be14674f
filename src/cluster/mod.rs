//! `cluster/` — rebootctl's data in etcd: this handle ([`Cluster`]), the
//! records ([`records`]), the pure policy decision ([`policy`]), the lock
//! slots ([`lock`]), the guard of a held slot ([`holding`]) and the
//! keyspace ([`keys`]). It may import
//! `etcd/` and the top-level leaves; never `host/`, `pass/`, `agent/` or
//! `cli/`.
//!
//! The etcd side of cluster mode (SPEC §6): one connection to the
//! namespace and the reads and writes of every record the agent and the
//! admin commands use — registry, health, pause, cooldown, history — plus
//! the lock slots through [`lock`].

pub mod holding;
pub mod keys;
pub mod lock;
pub mod policy;
pub mod records;
pub mod rollout;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::keys::Keys;
use crate::cluster::lock::{Lock, Slot, SlotKind, slots_below};
use crate::cluster::policy::NodeState;
use crate::cluster::records::{
    ClusterrebootdHealth, CooldownRecord, HISTORY_KEEP, HealthRecord, HistoryRecord, NodeRecord,
    PauseRecord, same_machine,
};
use crate::config::{Config, EtcdConfig};
use crate::error::{Error, Result};
use crate::etcd::{Client, CmpResult, Compare, Op, OpResponse, Txn};

/// A connection to the cluster's namespace.
#[derive(Clone)]
pub struct Cluster {
    /// The etcd client.
    pub client: Client,
    /// The lock slots.
    pub lock: Lock,
    /// The keyspace.
    pub keys: Keys,
    node: String,
    max_concurrent_reboots: u32,
    /// Set once this process registered the node (one txn, not one per pass).
    registered: Arc<AtomicBool>,
    /// This process's writes of the node's health record, to notice
    /// another host writing under the same name.
    writes: Arc<Mutex<OwnWrites>>,
    /// The lease and content of this node's health record, shared by the
    /// heartbeat and the pass so both renew the one lease.
    health: Arc<Mutex<HealthLease>>,
}

/// This node's health record as last written, and the lease it lives on.
#[derive(Debug, Default)]
struct HealthLease {
    /// The lease id and the TTL it was granted for.
    lease: Option<(i64, Duration)>,
    /// The record as last put on that lease.
    written: Option<HealthRecord>,
}

/// What a [`Cluster::publish_health`] call sent to etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The lease was renewed; the record was already there with this content.
    Renewed,
    /// The record was written (first time, new content or a new lease).
    Written,
}

/// What this process knows of the writers of its node's health record.
#[derive(Debug, Default)]
struct OwnWrites {
    /// The revision of this process's last write of the health record.
    last_health: Option<i64>,
    /// Another agent seen writing it in between, and until when that
    /// counts (the lease of its record).
    conflict: Option<(String, Instant)>,
}

impl OwnWrites {
    /// The conflict while it counts; logs and forgets it once it is over.
    fn conflict(&mut self, node: &str) -> Option<String> {
        match &self.conflict {
            Some((what, until)) if Instant::now() < *until => Some(what.clone()),
            Some(_) => {
                log::warn!(
                    event = "name_conflict_over";
                    "no other host has published under node name {node} for a while; name conflict over"
                );
                self.conflict = None;
                None
            }
            None => None,
        }
    }
}

/// What [`Cluster::start_cooldown_on`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CooldownStart {
    /// The cooldown record was put on the lease.
    Started,
    /// It was already on the lease (an earlier attempt got that far).
    AlreadyRunning,
    /// The lease has expired: the cooldown it measured is over.
    Over,
}

/// A node as `rebootctl nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    /// The node's name.
    pub node: String,
    /// When it registered.
    pub registered_at: String,
    /// Its agent version.
    pub version: String,
    /// Its `max_concurrent_reboots` (None: registered by an older version).
    pub max_concurrent_reboots: Option<u32>,
    /// Healthy per its last fresh record (None: no fresh record).
    pub healthy: Option<bool>,
    /// The reason of its last health report.
    pub health_reason: Option<String>,
    /// Seconds since that report.
    pub health_age_sec: Option<i64>,
    /// Whether it needs a reboot (from its last report).
    pub reboot_required: Option<bool>,
    /// Whether it holds a lock slot.
    pub holding_slot: bool,
    /// The phase of that slot.
    pub slot_phase: Option<String>,
    /// Its last completed reboot (RFC 3339), from the history.
    pub last_reboot: Option<String>,
    /// `agent` for a registered node; `fleetlock` for a FleetLock client
    /// that holds a slot (they are not registered, see
    /// [`Cluster::fleetlock_summaries`]).
    pub kind: SlotKind,
    /// The FleetLock group of a `fleetlock` entry.
    pub group: Option<String>,
}

impl Cluster {
    /// Connects to the cluster of `cfg` (cluster mode only).
    pub fn connect(cfg: &Config) -> Result<Cluster> {
        let etcd: &EtcdConfig = cfg.etcd.as_ref().ok_or_else(|| Error::NotClustered {
            command: "cluster mode".into(),
        })?;
        let client = Client::new(etcd)?;
        Ok(Cluster {
            lock: Lock::new(client.clone(), &etcd.lock_key, etcd.max_concurrent_reboots),
            keys: Keys::new(etcd),
            client,
            node: cfg.node_name.clone(),
            max_concurrent_reboots: etcd.max_concurrent_reboots,
            registered: Arc::new(AtomicBool::new(false)),
            writes: Arc::new(Mutex::new(OwnWrites::default())),
            health: Arc::new(Mutex::new(HealthLease::default())),
        })
    }

    /// The full key of `rest` below the namespace (`nodes/a` → `/rebootctl/nodes/a`).
    pub fn key(&self, rest: &str) -> String {
        self.keys.key(rest)
    }

    /// The same connection acting for `node` (records such as the cooldown
    /// and the history name it): the FleetLock server acts for its clients.
    pub fn with_node(&self, node: &str) -> Cluster {
        Cluster {
            node: node.to_string(),
            registered: Arc::new(AtomicBool::new(false)),
            ..self.clone()
        }
    }

    /// The lock over `slots` slots below `lock_key` on this connection (a
    /// FleetLock group's lock; the agents' own is [`Cluster::lock`]).
    pub fn lock_for(&self, lock_key: &str, slots: u32) -> Lock {
        Lock::new(self.client.clone(), lock_key, slots)
    }

    /// Every slot of every lock key below the control prefix `<ns>/lock/`,
    /// sorted by key (agents' and FleetLock groups').
    pub fn all_slots(&self) -> Result<Vec<Slot>> {
        slots_below(&self.client, &self.keys.control_prefix())
    }

    /// The FleetLock clients that hold a slot below the control prefix
    /// (or in the agents' lock, when it lies outside), as `rebootctl
    /// nodes` lists them beside the registered agents.
    pub fn fleetlock_summaries(&self) -> Result<Vec<NodeSummary>> {
        let mut slots = self.all_slots()?;
        // The agents' lock key may lie outside <ns>/lock/ (a migration).
        if self.keys.lock_outside_control_prefix() {
            slots.extend(self.lock.holders()?.0);
        }
        let mut out: Vec<NodeSummary> = Vec::new();
        for s in slots.into_iter().filter(Slot::is_fleetlock) {
            let Some(v) = s.value else { continue };
            out.push(NodeSummary {
                node: v.node,
                registered_at: String::new(),
                version: String::new(),
                healthy: None,
                health_reason: None,
                health_age_sec: None,
                reboot_required: Some(true),
                holding_slot: true,
                slot_phase: Some(v.phase.as_str().to_string()),
                max_concurrent_reboots: None,
                last_reboot: None,
                kind: SlotKind::Fleetlock,
                group: Some(v.group),
            });
        }
        Ok(out)
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, i64)>> {
        match self.client.get(key)? {
            None => Ok(None),
            Some(kv) => serde_json::from_slice(&kv.value)
                .map(|v| Some((v, kv.lease)))
                .map_err(|e| bad_value(key, e)),
        }
    }

    fn list_json<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        let (kvs, _) = self.client.get_prefix(prefix)?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| match serde_json::from_slice(&kv.value) {
                Ok(v) => Some((kv.key, v)),
                Err(e) => {
                    log::warn!("ignoring {}: {}", kv.key, bad_value(&kv.key, e));
                    None
                }
            })
            .collect())
    }

    fn put_json<T: Serialize>(&self, key: &str, value: &T, lease: Option<i64>) -> Result<()> {
        self.client
            .put(key, &to_json(key, value)?, lease)
            .map(|_| ())
    }

    /// Registers this node in `<ns>/nodes/` unless it already is (once per
    /// process).
    ///
    /// Refuses when the name is registered by another machine: two hosts
    /// sharing a `node_name` would take each other's lock slot for their
    /// own.
    pub fn register(&self, machine_id: &str) -> Result<()> {
        if self.registered.load(Ordering::SeqCst) {
            return Ok(());
        }
        let key = self.keys.node(&self.node);
        let body = serde_json::to_vec(&NodeRecord {
            node: self.node.clone(),
            registered_at: crate::time::timestamp_now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            machine_id: machine_id.to_string(),
            max_concurrent_reboots: Some(self.max_concurrent_reboots),
            ..NodeRecord::default()
        })
        .map_err(|e| Error::Runtime(e.to_string()))?;
        let resp = self.client.txn(&Txn {
            compare: vec![Compare::create_revision(&key, CmpResult::Equal, 0)],
            success: vec![Op::put(&key, &body, None)],
            failure: vec![Op::get(&key)],
        })?;
        if !resp.succeeded {
            let existing = match resp.responses.first() {
                Some(OpResponse::Range { kvs, .. }) => kvs.first().cloned(),
                _ => None,
            };
            let record = existing
                .as_ref()
                .and_then(|kv| serde_json::from_slice::<NodeRecord>(&kv.value).ok());
            let theirs = record
                .as_ref()
                .map(|r| r.machine_id.clone())
                .unwrap_or_default();
            // Bring our own record up to date (a record from before machine
            // ids is claimed, so the guard works from now on); fields other
            // writers keep there stay. If it changed meanwhile, the next
            // process start decides.
            if let (Some(kv), true) = (&existing, same_machine(&theirs, machine_id)) {
                if let Some(updated) = self.updated_record(&kv.value, machine_id) {
                    self.client.txn(&Txn {
                        compare: vec![Compare::mod_revision(
                            &key,
                            CmpResult::Equal,
                            kv.mod_revision,
                        )],
                        success: vec![Op::put(&key, &updated, None)],
                        failure: vec![],
                    })?;
                }
            }
            if !same_machine(&theirs, machine_id) {
                return Err(Error::NameConflict {
                    node: self.node.clone(),
                    theirs,
                    mine: machine_id.to_string(),
                });
            }
        }
        self.registered.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Our registry record `raw` with this process's machine id (when it
    /// had none), version and `max_concurrent_reboots`, keeping every other
    /// field; `None` when nothing changes or it is not a JSON object.
    fn updated_record(&self, raw: &[u8], machine_id: &str) -> Option<Vec<u8>> {
        let mut v: serde_json::Value = serde_json::from_slice(raw).ok()?;
        let obj = v.as_object_mut()?;
        let before = obj.clone();
        let known = obj
            .get("machine_id")
            .and_then(|m| m.as_str())
            .is_some_and(|m| !m.is_empty());
        if !known && !machine_id.is_empty() {
            obj.insert("machine_id".into(), machine_id.into());
        }
        obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        obj.insert(
            "max_concurrent_reboots".into(),
            self.max_concurrent_reboots.into(),
        );
        (*obj != before)
            .then(|| serde_json::to_vec(&v).ok())
            .flatten()
    }

    /// The pause record and, when it expires by itself, the seconds left.
    pub fn pause(&self) -> Result<Option<(PauseRecord, Option<i64>)>> {
        match self.get_json::<PauseRecord>(&self.keys.pause())? {
            None => Ok(None),
            Some((rec, 0)) => Ok(Some((rec, None))),
            Some((rec, lease)) => Ok(Some((rec, self.client.lease_time_to_live(lease)?))),
        }
    }

    /// Pauses the cluster, for `duration` when given (an etcd lease, so no
    /// host clock is involved in the expiry).
    pub fn set_pause(&self, rec: &PauseRecord, duration: Option<Duration>) -> Result<()> {
        let lease = match duration {
            Some(d) => Some(self.client.lease_grant(d)?.id),
            None => None,
        };
        self.put_json(&self.keys.pause(), rec, lease)
    }

    /// Lifts the pause; returns whether there was one.
    pub fn resume(&self) -> Result<bool> {
        Ok(self.client.delete(&self.keys.pause())? > 0)
    }

    /// The running cooldown and the time left, if any: ours, or — when
    /// sharing clusterrebootd's lock — clusterrebootd's, whichever ends later.
    pub fn cooldown(&self) -> Result<Option<(CooldownRecord, Duration)>> {
        let ours = self.cooldown_at(&self.keys.cooldown())?;
        let theirs = match self.keys.clusterrebootd_cooldown() {
            Some(key) => self.cooldown_at(&key)?,
            None => None,
        };
        Ok(match (ours, theirs) {
            (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
            (a, b) => a.or(b),
        })
    }

    /// The cooldown record at `key` and its time left: the lease's TTL, or
    /// without a lease clusterrebootd's `duration_sec` from `started_at`
    /// (zero when neither tells: present means running, as clusterrebootd
    /// reads it).
    fn cooldown_at(&self, key: &str) -> Result<Option<(CooldownRecord, Duration)>> {
        let Some((rec, lease)) = self.get_json::<CooldownRecord>(key)? else {
            return Ok(None);
        };
        let left = if lease != 0 {
            self.client.lease_time_to_live(lease)?.unwrap_or(0)
        } else {
            let ends = rec
                .started_at
                .parse::<Timestamp>()
                .ok()
                .zip(rec.duration_sec)
                .map(|(t, d)| {
                    t.as_second()
                        .saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
                });
            ends.map(|e| e - Timestamp::now().as_second()).unwrap_or(0)
        };
        Ok(Some((rec, Duration::from_secs(left.max(0).unsigned_abs()))))
    }

    /// Grants the lease of a cluster-wide cooldown of `interval` (not zero).
    /// The cooldown's clock starts now; [`Cluster::start_cooldown_on`] puts
    /// the record on it.
    pub fn cooldown_lease(&self, interval: Duration) -> Result<i64> {
        Ok(self.client.lease_grant(interval)?.id)
    }

    /// Puts this node's cooldown record (started at `started_at`) on
    /// `lease`, at most once and never on another lease: nothing when the
    /// record is already on it, nothing when the lease has expired (the
    /// cooldown it measured is over). So a retry never extends a cooldown.
    pub fn start_cooldown_on(
        &self,
        lease: i64,
        started_at: &str,
        interval: Duration,
    ) -> Result<CooldownStart> {
        let key = self.keys.cooldown();
        if self.client.get(&key)?.is_some_and(|kv| kv.lease == lease) {
            return Ok(CooldownStart::AlreadyRunning);
        }
        if self.client.lease_time_to_live(lease)?.is_none() {
            return Ok(CooldownStart::Over);
        }
        // When sharing clusterrebootd's lock, its cooldown key is written in
        // the same txn, on the same lease.
        let rec = CooldownRecord {
            node: self.node.clone(),
            started_at: started_at.to_string(),
            duration_sec: Some(interval.as_secs()),
        };
        let body = to_json(&key, &rec)?;
        let mut ops = vec![Op::put(&key, &body, Some(lease))];
        if let Some(theirs) = self.keys.clusterrebootd_cooldown() {
            ops.push(Op::put(&theirs, &body, Some(lease)));
        }
        self.client.txn(&Txn {
            compare: vec![],
            success: ops,
            failure: vec![],
        })?;
        Ok(CooldownStart::Started)
    }

    /// Publishes this node's health record on a lease of `ttl`, stamped
    /// with this process's pid and the name conflict it knows of.
    ///
    /// One lease per process, renewed by every call (a keepalive); the
    /// record is written only when its verdict changed
    /// ([`HealthRecord::same_content`]), the lease is new, `ttl` changed (a
    /// reload), or someone else wrote the key since this process's last
    /// write. So an idle node costs a keepalive and one read per
    /// `health_publish_interval_sec`, and its record still vanishes 3
    /// intervals after its last heartbeat.
    ///
    /// A write reads the record it replaces in the same txn: written by
    /// another agent (another boot or pid) since this process's previous
    /// write, it is another host claiming this node's name — a name
    /// conflict for `ttl`, logged as an error (see
    /// [`Cluster::name_conflict`]). A restart of this agent, or its host's
    /// reboot, is not one: a new process's first write has nothing to
    /// compare with, and the old process writes no more. When sharing
    /// clusterrebootd's lock, clusterrebootd's record of it (its format, no
    /// lease, as clusterrebootd writes it) is put in the same txn.
    pub fn publish_health(&self, rec: &HealthRecord, ttl: Duration) -> Result<Published> {
        let key = self.keys.health(&rec.node);
        let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let rec = HealthRecord {
            pid: std::process::id(),
            name_conflict: writes.conflict(&self.node),
            ..rec.clone()
        };
        let mut lease = state.lease.filter(|&(_, t)| t == ttl).map(|(id, _)| id);
        if let Some(id) = lease {
            if self.client.lease_keepalive(id)?.is_none() {
                // Expired (etcd unreachable for 3 intervals, or revoked):
                // the record went with it.
                log::info!("the health record's lease {id:x} is gone; publishing on a new one");
                lease = None;
            }
        }
        let id = match lease {
            Some(id) => id,
            None => {
                state.lease = None;
                state.written = None;
                let id = self.client.lease_grant(ttl)?.id;
                state.lease = Some((id, ttl));
                id
            }
        };
        if state.written.as_ref().is_some_and(|w| w.same_content(&rec)) {
            // Unchanged: still ours only if nobody wrote it since; a write
            // by another host falls through and is seen below.
            let current = self.client.get(&key)?.map(|kv| kv.mod_revision);
            if current.is_some() && current == writes.last_health {
                return Ok(Published::Renewed);
            }
        }
        // Until the put succeeds, the content in etcd is unknown.
        state.written = None;
        let body = to_json(&key, &rec)?;
        let mut ops = vec![Op::get(&key), Op::put(&key, &body, Some(id))];
        if let Some(compat_key) = self.keys.clusterrebootd_health(&rec.node) {
            let compat = ClusterrebootdHealth::from(&rec);
            ops.push(Op::put(&compat_key, &to_json(&compat_key, &compat)?, None));
        }
        let resp = self.client.txn(&Txn {
            compare: vec![],
            success: ops,
            failure: vec![],
        })?;
        let replaced = match resp.responses.first() {
            Some(OpResponse::Range { kvs, .. }) => kvs.first().cloned(),
            _ => None,
        };
        if let (Some(last), Some(kv)) = (writes.last_health, replaced) {
            let theirs = serde_json::from_slice::<HealthRecord>(&kv.value).ok();
            if let Some(theirs) = theirs.filter(|t| kv.mod_revision != last && rec.other_agent(t)) {
                let what = format!(
                    "another host publishes as node {} (boot id {}, pid {}, machine id {}; this host: boot id {}, pid {}, machine id {}): give every host its own node_name (and machine id)",
                    rec.node,
                    theirs.boot_id,
                    theirs.pid,
                    or_unknown(&theirs.machine_id),
                    rec.boot_id,
                    rec.pid,
                    or_unknown(&rec.machine_id),
                );
                if writes.conflict.is_none() {
                    log::error!(event = "name_conflict"; "{what}");
                }
                writes.conflict = Some((what, Instant::now() + ttl));
            }
        }
        writes.last_health = Some(resp.revision);
        state.written = Some(rec);
        Ok(Published::Written)
    }

    /// The name conflict this process saw while publishing its health
    /// record, while it counts (None in a process that never published).
    pub fn name_conflict(&self) -> Option<String> {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conflict(&self.node)
    }

    /// Read-only checks for `status`: the registry entry of this node's
    /// name from another machine, or the conflict the agent publishing
    /// this node's health record reports.
    pub fn name_conflict_seen(&self, machine_id: &str) -> Result<Option<String>> {
        let node_key = self.key(&format!("nodes/{}", self.node));
        if let Some((rec, _)) = self.get_json::<NodeRecord>(&node_key)? {
            if !same_machine(&rec.machine_id, machine_id) {
                return Ok(Some(
                    Error::NameConflict {
                        node: self.node.clone(),
                        theirs: rec.machine_id,
                        mine: machine_id.to_string(),
                    }
                    .to_string(),
                ));
            }
        }
        let health_key = self.key(&format!("health/{}", self.node));
        Ok(self
            .get_json::<HealthRecord>(&health_key)?
            .and_then(|(rec, _)| rec.name_conflict))
    }

    /// Appends a history entry for this node.
    pub fn record_history(&self, event: &str, boot_id: &str) -> Result<()> {
        self.append_history(&self.node, event, boot_id, &crate::time::timestamp_now())
    }

    /// Writes the history entry of this node for an event that happened
    /// `at` (RFC 3339). The key is made of `at` and the node, so writing it
    /// again (a retried completion) leaves one entry.
    pub fn record_history_at(&self, event: &str, boot_id: &str, at: &str) -> Result<()> {
        self.append_history(&self.node, event, boot_id, at)
    }

    /// Appends a history entry about another node (admin commands).
    pub fn record_history_for(&self, node: &str, event: &str) -> Result<()> {
        self.append_history(node, event, "", &crate::time::timestamp_now())
    }

    /// Appends a history entry and trims the history to the newest entries.
    fn append_history(&self, node: &str, event: &str, boot_id: &str, at: &str) -> Result<()> {
        let when = at.parse::<Timestamp>().unwrap_or_else(|_| Timestamp::now());
        let rec = HistoryRecord {
            node: node.to_string(),
            event: event.to_string(),
            at: at.to_string(),
            boot_id: boot_id.to_string(),
        };
        // Fixed-width nanoseconds so the keys sort in time order.
        let key_time = format!(
            "{}.{:09}Z",
            when.strftime("%Y-%m-%dT%H:%M:%S"),
            when.subsec_nanosecond()
        );
        // Created once: an entry written again (a retried completion) stays as it was.
        let key = self.key(&format!("history/{key_time}-{node}"));
        let body =
            serde_json::to_vec(&rec).map_err(|e| Error::Runtime(format!("encoding {key}: {e}")))?;
        self.client.txn(&Txn {
            compare: vec![Compare::create_revision(&key, CmpResult::Equal, 0)],
            success: vec![Op::put(&key, &body, None)],
            failure: vec![],
        })?;
        let prefix = self.key("history/");
        let (kvs, _) = self.client.get_prefix(&prefix)?;
        if kvs.len() > HISTORY_KEEP {
            let mut keys: Vec<String> = kvs.into_iter().map(|kv| kv.key).collect();
            keys.sort();
            for k in &keys[..keys.len() - HISTORY_KEEP] {
                self.client.delete(k)?;
            }
        }
        Ok(())
    }

    /// The history, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryRecord>> {
        let mut v: Vec<(String, HistoryRecord)> = self.list_json(&self.key("history/"))?;
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v.into_iter().map(|(_, r)| r).collect())
    }

    /// Every registered node.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>> {
        Ok(self
            .list_json::<NodeRecord>(&self.key("nodes/"))?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Every fresh health record.
    pub fn health_records(&self) -> Result<Vec<HealthRecord>> {
        Ok(self
            .list_json::<HealthRecord>(&self.key("health/"))?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// What the policies need: every registered node with its fresh health
    /// record and slot phase.
    pub fn node_states(&self, slots: &[Slot]) -> Result<Vec<NodeState>> {
        let health = self.health_records()?;
        Ok(self
            .nodes()?
            .into_iter()
            .map(|n| NodeState {
                health: health.iter().find(|h| h.node == n.node).cloned(),
                slot: slots
                    .iter()
                    .find(|s| s.is_agent(&n.node))
                    .and_then(Slot::phase),
                name: n.node,
            })
            .collect())
    }

    /// The `nodes` listing.
    pub fn node_summaries(&self) -> Result<Vec<NodeSummary>> {
        let (slots, _) = self.lock.holders()?;
        let health = self.health_records()?;
        let history = self.history()?;
        let now = Timestamp::now();
        let mut out: Vec<NodeSummary> = self
            .nodes()?
            .into_iter()
            .map(|n| {
                let h = health.iter().find(|h| h.node == n.node);
                let slot = slots.iter().find(|s| s.is_agent(&n.node));
                NodeSummary {
                    healthy: h.map(|h| h.healthy),
                    health_reason: h.map(|h| h.reason.clone()),
                    health_age_sec: h
                        .and_then(|h| h.checked_at.parse::<Timestamp>().ok())
                        .map(|t| now.duration_since(t).as_secs()),
                    reboot_required: h.and_then(|h| h.reboot_required),
                    holding_slot: slot.is_some(),
                    slot_phase: slot.and_then(Slot::phase).map(|p| p.as_str().to_string()),
                    last_reboot: history
                        .iter()
                        .rev()
                        .find(|e| e.node == n.node && e.event == "reboot_completed")
                        .map(|e| e.at.clone()),
                    node: n.node,
                    registered_at: n.registered_at,
                    version: n.version,
                    max_concurrent_reboots: n.max_concurrent_reboots,
                    kind: SlotKind::Agent,
                    group: None,
                }
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(out)
    }

    /// Removes a node from the registry and its health record (also the
    /// one written for clusterrebootd).
    pub fn forget(&self, node: &str) -> Result<bool> {
        let n = self.client.delete(&self.keys.node(node))?;
        self.client.delete(&self.keys.health(node))?;
        // clusterrebootd's policies would count a stale record forever.
        if let Some(key) = self.keys.clusterrebootd_health(node) {
            self.client.delete(&key)?;
        }
        Ok(n > 0)
    }
}

fn to_json<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Runtime(format!("encoding {key}: {e}")))
}

fn or_unknown(id: &str) -> &str {
    if id.is_empty() { "unknown" } else { id }
}

fn bad_value(key: &str, e: serde_json::Error) -> Error {
    Error::Runtime(format!("unexpected value at etcd key {key}: {e}"))
}

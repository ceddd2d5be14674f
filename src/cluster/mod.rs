//! `cluster/` — rebootctl's data in etcd: this handle ([`Cluster`]), the
//! records ([`records`]), the pure policy decision ([`policy`]), and the lock slots ([`lock`]). It may import
//! `etcd/` and the top-level leaves; never `host/`, `pass/`, `agent/` or
//! `cli/`.
//!
//! The etcd side of cluster mode (SPEC §6): one connection to the
//! namespace and the reads and writes of every record the agent and the
//! admin commands use — registry, health, pause, cooldown, history — plus
//! the lock slots through [`lock`].

pub mod lock;
pub mod policy;
pub mod records;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::lock::{Lock, Slot};
use crate::cluster::policy::NodeState;
use crate::cluster::records::{
    CooldownRecord, HISTORY_KEEP, HealthRecord, HistoryRecord, NodeRecord, PauseRecord,
    same_machine,
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
    namespace: String,
    node: String,
    /// Set once this process registered the node (one txn, not one per pass).
    registered: Arc<AtomicBool>,
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

/// A node as `rebootctl nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    /// The node's name.
    pub node: String,
    /// When it registered.
    pub registered_at: String,
    /// Its agent version.
    pub version: String,
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
            client,
            namespace: etcd.namespace.clone(),
            node: cfg.node_name.clone(),
            registered: Arc::new(AtomicBool::new(false)),
            health: Arc::new(Mutex::new(HealthLease::default())),
        })
    }

    /// The full key of `rest` below the namespace (`pause` → `/rebootctl/pause`).
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.namespace)
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
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::Runtime(format!("encoding {key}: {e}")))?;
        self.client.put(key, &body, lease).map(|_| ())
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
        let key = self.key(&format!("nodes/{}", self.node));
        let body = serde_json::to_vec(&NodeRecord {
            node: self.node.clone(),
            registered_at: crate::time::timestamp_now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            machine_id: machine_id.to_string(),
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
            // A record from before machine ids: claim it, so the guard works
            // from now on (if it changed meanwhile, the next pass decides).
            if let (Some(kv), Some(rec), true) = (
                &existing,
                &record,
                theirs.is_empty() && !machine_id.is_empty(),
            ) {
                let claimed = serde_json::to_vec(&NodeRecord {
                    machine_id: machine_id.to_string(),
                    ..rec.clone()
                })
                .map_err(|e| Error::Runtime(e.to_string()))?;
                self.client.txn(&Txn {
                    compare: vec![Compare::mod_revision(
                        &key,
                        CmpResult::Equal,
                        kv.mod_revision,
                    )],
                    success: vec![Op::put(&key, &claimed, None)],
                    failure: vec![],
                })?;
            }
            if !same_machine(&theirs, machine_id) {
                return Err(Error::NameConflict {
                    node: self.node.clone(),
                    theirs,
                    mine: machine_id.to_string(),
                    slot: None,
                });
            }
        }
        self.registered.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The pause record and, when it expires by itself, the seconds left.
    pub fn pause(&self) -> Result<Option<(PauseRecord, Option<i64>)>> {
        match self.get_json::<PauseRecord>(&self.key("pause"))? {
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
        self.put_json(&self.key("pause"), rec, lease)
    }

    /// Lifts the pause; returns whether there was one.
    pub fn resume(&self) -> Result<bool> {
        Ok(self.client.delete(&self.key("pause"))? > 0)
    }

    /// The running cooldown and the time left, if any.
    pub fn cooldown(&self) -> Result<Option<(CooldownRecord, Duration)>> {
        match self.get_json::<CooldownRecord>(&self.key("cooldown"))? {
            None => Ok(None),
            Some((rec, lease)) => {
                let left = if lease == 0 {
                    None
                } else {
                    self.client.lease_time_to_live(lease)?
                };
                Ok(Some((
                    rec,
                    Duration::from_secs(left.unwrap_or(0).max(0).unsigned_abs()),
                )))
            }
        }
    }

    /// Starts the cluster-wide cooldown (nothing when `interval` is zero).
    pub fn start_cooldown(&self, interval: Duration) -> Result<()> {
        if interval.is_zero() {
            return Ok(());
        }
        let lease = self.client.lease_grant(interval)?.id;
        self.put_json(
            &self.key("cooldown"),
            &CooldownRecord {
                node: self.node.clone(),
                started_at: crate::time::timestamp_now(),
            },
            Some(lease),
        )
    }

    /// Publishes this node's health record on a lease of `ttl`.
    ///
    /// One lease per process, renewed by every call (a keepalive); the
    /// record is written only when its verdict changed
    /// ([`HealthRecord::same_content`]), the lease is new, or `ttl` changed
    /// (a reload). So an idle node costs one request per
    /// `health_publish_interval_sec`, and its record still vanishes 3
    /// intervals after its last heartbeat.
    pub fn publish_health(&self, rec: &HealthRecord, ttl: Duration) -> Result<Published> {
        let mut state = self.health.lock().unwrap_or_else(|e| e.into_inner());
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
        if state.written.as_ref().is_some_and(|w| w.same_content(rec)) {
            return Ok(Published::Renewed);
        }
        // Until the put succeeds, the content in etcd is unknown.
        state.written = None;
        self.put_json(&self.key(&format!("health/{}", rec.node)), rec, Some(id))?;
        state.written = Some(rec.clone());
        Ok(Published::Written)
    }

    /// Appends a history entry for this node.
    pub fn record_history(&self, event: &str, boot_id: &str) -> Result<()> {
        self.append_history(&self.node, event, boot_id)
    }

    /// Appends a history entry about another node (admin commands).
    pub fn record_history_for(&self, node: &str, event: &str) -> Result<()> {
        self.append_history(node, event, "")
    }

    /// Appends a history entry and trims the history to the newest entries.
    fn append_history(&self, node: &str, event: &str, boot_id: &str) -> Result<()> {
        let now = Timestamp::now();
        let rec = HistoryRecord {
            node: node.to_string(),
            event: event.to_string(),
            at: crate::time::timestamp_now(),
            boot_id: boot_id.to_string(),
        };
        // Fixed-width nanoseconds so the keys sort in time order.
        let key_time = format!(
            "{}.{:09}Z",
            now.strftime("%Y-%m-%dT%H:%M:%S"),
            now.subsec_nanosecond()
        );
        self.put_json(&self.key(&format!("history/{key_time}-{node}")), &rec, None)?;
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
                    .find(|s| s.node() == n.node)
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
                let slot = slots.iter().find(|s| s.node() == n.node);
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
                }
            })
            .collect();
        out.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(out)
    }

    /// Removes a node from the registry and its health record.
    pub fn forget(&self, node: &str) -> Result<bool> {
        let n = self.client.delete(&self.key(&format!("nodes/{node}")))?;
        self.client.delete(&self.key(&format!("health/{node}")))?;
        Ok(n > 0)
    }
}

fn bad_value(key: &str, e: serde_json::Error) -> Error {
    Error::Runtime(format!("unexpected value at etcd key {key}: {e}"))
}

//! The fleet-wide reboot lock (SPEC §6, DESIGN §2): slot keys
//! `<lock_key>/slot-<i>`, each held on a lease — kept alive while checking,
//! switched atomically to a `reboot_timeout_sec` lease for the reboot,
//! released only after the node is back and healthy.
//!
//! **Holders and the limit.** Every key below `<lock_key>/` that is a slot
//! (any index, also beyond this host's `max_concurrent_reboots`) is a
//! holder, and so is the owner of an etcd `concurrency.Mutex` there (the
//! key `<lock_key>/<lease hex>` with the lowest create revision, as
//! clusterrebootd and `etcdctl lock` write it; the other mutex keys are
//! waiters). The limit is the smallest of this host's own and of the
//! `limit` recorded in every held slot ([`LockState::limit`]).
//!
//! **One transaction.** A slot is taken by one txn that compares
//! `create_revision(slot) == 0` and `mod_revision < R + 1` over the whole
//! range `<lock_key>/`, where `R` is the revision of the read the count
//! came from: any acquisition, phase change or new mutex key since that
//! read makes it fail, and [`Lock::acquire`] counts again. Two hosts can
//! therefore never both see "one left" and both succeed. (For the default
//! group, `<ns>/lock/`, the range also holds the pause, the cooldown and
//! other groups' slots: a change there only makes the txn count again.
//! Deletions never raise the count, so they may race.)
//!
//! **For other users of slots** (FleetLock, lock groups): build a [`Lock`]
//! on the group's key (`<ns>/lock/<group>`) with the group's limit, take
//! slots with [`Lock::acquire`] and a [`SlotValue`] of the right
//! [`SlotKind`] (the lock stamps its own limit into the value), give them
//! back with [`Lock::release`], and read holders with [`Lock::state`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::keys::{is_mutex_name, is_slot_name};
use crate::error::{Error, Result};
use crate::etcd::{Client, CmpResult, Compare, KeyValue, Op, OpResponse, Txn, TxnResponse};

/// How often [`Lock::acquire`] counts again after its txn lost a race.
pub const ACQUIRE_ATTEMPTS: u32 = 8;
/// How many of its own deletions a [`Lock`] remembers (to tell its own
/// watch events from others').
const OWN_WRITES_KEPT: usize = 32;

/// The phase of a held slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotPhase {
    /// The holder is running its checks under the lock (lease kept alive).
    Checking,
    /// The holder is rebooting (lease of `reboot_timeout_sec`, not kept alive).
    Rebooting,
}

impl SlotPhase {
    /// The phase as written in etcd.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotPhase::Checking => "checking",
            SlotPhase::Rebooting => "rebooting",
        }
    }
}

/// Who holds a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    /// A rebootctl agent (`rebootctl run`); the default of values written
    /// before kinds existed.
    #[default]
    Agent,
    /// A FleetLock client (e.g. Zincati), through rebootctl's FleetLock server.
    Fleetlock,
    /// Never written by rebootctl: the owner of a `concurrency.Mutex` below
    /// `lock_key` (clusterrebootd, `etcdctl lock`), shown and counted as a
    /// holder in phase rebooting.
    Mutex,
}

impl SlotKind {
    /// The kind as written in etcd and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Agent => "agent",
            SlotKind::Fleetlock => "fleetlock",
            SlotKind::Mutex => "mutex",
        }
    }
}

/// The JSON value of a slot key:
/// `{kind, node, pid, boot_id, machine_id, phase, acquired_at, limit}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotValue {
    /// Who holds it (absent in values written before kinds: an agent).
    #[serde(default)]
    pub kind: SlotKind,
    /// The holder's node name.
    pub node: String,
    /// The holder's agent pid (0 when not a local process).
    #[serde(default)]
    pub pid: u32,
    /// The holder's boot id when it took the slot.
    #[serde(default)]
    pub boot_id: String,
    /// The holder's machine id (empty when unknown).
    #[serde(default)]
    pub machine_id: String,
    /// Checking or rebooting.
    pub phase: SlotPhase,
    /// When the slot was taken (RFC 3339).
    pub acquired_at: String,
    /// The `max_concurrent_reboots` of the holder when it took the slot;
    /// while it holds, nobody takes a slot that would exceed it. 0: not
    /// recorded (older values), no constraint. [`Lock::acquire`] and
    /// [`Lock::to_rebooting`] write the lock's own limit here.
    #[serde(default)]
    pub limit: u32,
    /// The FleetLock group of a [`SlotKind::Fleetlock`] holder (empty for
    /// agents).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

impl SlotValue {
    /// The value of a FleetLock client's slot: the client id as the node,
    /// its group, phase rebooting from the start (a FleetLock client has no
    /// checking phase: it asks right before it reboots), no pid or boot id,
    /// and the group's slot count as its `limit` (so agents sharing the
    /// lock key never exceed it while the client holds).
    pub fn fleetlock(id: &str, group: &str, acquired_at: &str, limit: u32) -> SlotValue {
        SlotValue {
            kind: SlotKind::Fleetlock,
            node: id.to_string(),
            pid: 0,
            boot_id: String::new(),
            machine_id: String::new(),
            phase: SlotPhase::Rebooting,
            acquired_at: acquired_at.to_string(),
            limit,
            group: group.to_string(),
        }
    }
}

/// clusterrebootd's annotation of its mutex key: `{node, pid, acquired_at}`
/// (`etcdctl lock` leaves the value empty).
#[derive(Debug, Clone, Deserialize)]
struct MutexAnnotation {
    #[serde(default)]
    node: String,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    acquired_at: String,
}

/// A held slot as read from etcd (or the owner of a mutex below the lock
/// key, with [`SlotKind::Mutex`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The slot key.
    pub key: String,
    /// The slot index ([`MUTEX_INDEX`] for a mutex owner).
    pub index: u32,
    /// The holder; `None` when the value is not ours to parse (shown raw).
    pub value: Option<SlotValue>,
    /// The raw value, for display when it did not parse.
    pub raw: String,
    /// The key's create revision; with the lease, it identifies this holding.
    pub create_revision: i64,
    /// The key's mod revision.
    pub mod_revision: i64,
    /// The key's lease.
    pub lease: i64,
}

/// The [`Slot::index`] of a mutex owner, which has no slot index.
pub const MUTEX_INDEX: u32 = u32::MAX;

impl Slot {
    /// The holder's node name, `?` for an unreadable value, empty for a
    /// mutex owner that did not annotate its key (`etcdctl lock`).
    pub fn node(&self) -> &str {
        self.value.as_ref().map(|v| v.node.as_str()).unwrap_or("?")
    }

    /// The holder's phase, if readable.
    pub fn phase(&self) -> Option<SlotPhase> {
        self.value.as_ref().map(|v| v.phase)
    }

    /// Whether this is the owner of a mutex, not a slot.
    pub fn is_mutex(&self) -> bool {
        self.kind() == Some(SlotKind::Mutex)
    }

    /// True when the slot is held for a FleetLock client.
    pub fn is_fleetlock(&self) -> bool {
        self.kind() == Some(SlotKind::Fleetlock)
    }

    /// The holder's kind, if readable.
    pub fn kind(&self) -> Option<SlotKind> {
        self.value.as_ref().map(|v| v.kind)
    }

    /// True when this is the slot of the agent `node`: a slot of kind
    /// agent under that name. A FleetLock client or a mutex owner whose
    /// name happens to be the same is never an agent's own slot.
    pub fn is_agent(&self, node: &str) -> bool {
        self.kind() == Some(SlotKind::Agent) && self.node() == node
    }

    /// The lock key this slot belongs to (its key without `/slot-<i>`, or
    /// a mutex key without its last segment).
    pub fn lock_key(&self) -> &str {
        self.key
            .rsplit_once('/')
            .map(|(k, _)| k)
            .unwrap_or(&self.key)
    }

    /// The slot of `kv` when it is `<lock_key>/slot-<i>`.
    fn from_kv(kv: &KeyValue, lock_key: &str) -> Option<Slot> {
        let rest = kv.key.strip_prefix(lock_key)?.strip_prefix('/')?;
        if !is_slot_name(rest) {
            return None;
        }
        Some(Slot {
            key: kv.key.clone(),
            index: rest["slot-".len()..].parse().ok()?,
            value: serde_json::from_slice(&kv.value).ok(),
            raw: String::from_utf8_lossy(&kv.value).into_owned(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            lease: kv.lease,
        })
    }

    /// A mutex key as a holder in phase rebooting, with what its owner
    /// wrote about itself.
    fn from_mutex_kv(kv: &KeyValue) -> Slot {
        let ann: Option<MutexAnnotation> = serde_json::from_slice(&kv.value).ok();
        Slot {
            key: kv.key.clone(),
            index: MUTEX_INDEX,
            value: Some(SlotValue {
                kind: SlotKind::Mutex,
                node: ann.as_ref().map(|a| a.node.clone()).unwrap_or_default(),
                pid: ann.as_ref().map(|a| a.pid).unwrap_or(0),
                boot_id: String::new(),
                machine_id: String::new(),
                phase: SlotPhase::Rebooting,
                acquired_at: ann.map(|a| a.acquired_at).unwrap_or_default(),
                limit: 0,
                group: String::new(),
            }),
            raw: String::from_utf8_lossy(&kv.value).into_owned(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            lease: kv.lease,
        }
    }
}

/// Everything below `<lock_key>/` at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct LockState {
    /// The slots held (any index), by index.
    pub slots: Vec<Slot>,
    /// The owner of a mutex below the lock key (lowest create revision of
    /// the mutex keys); it counts as a holder.
    pub mutex_owner: Option<Slot>,
    /// Whether that owner is itself waiting behind a slot with a lower
    /// create revision (`etcdctl lock` blocks until every lower key is
    /// gone; clusterrebootd's `TryLock` gives up instead). It still
    /// counts: it goes down as soon as those slots are released.
    pub mutex_owner_waits: bool,
    /// Further mutex keys: contenders waiting (`etcdctl lock`); not holders.
    pub mutex_waiters: usize,
    /// The store revision of the read.
    pub revision: i64,
}

impl LockState {
    /// The state of the keys `kvs` read below `<lock_key>/` at `revision`
    /// (other keys there — the pause, the cooldown, other groups — are no
    /// holders).
    pub fn from_kvs(lock_key: &str, kvs: &[KeyValue], revision: i64) -> LockState {
        let lock_key = lock_key.trim_end_matches('/');
        let mut slots: Vec<Slot> = kvs
            .iter()
            .filter_map(|kv| Slot::from_kv(kv, lock_key))
            .collect();
        slots.sort_by_key(|s| s.index);
        let mut mutex: Vec<&KeyValue> = kvs
            .iter()
            .filter(|kv| {
                kv.key
                    .strip_prefix(lock_key)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(is_mutex_name)
            })
            .collect();
        mutex.sort_by_key(|kv| kv.create_revision);
        let owner = mutex.first().map(|kv| Slot::from_mutex_kv(kv));
        LockState {
            mutex_owner_waits: owner
                .as_ref()
                .is_some_and(|o| slots.iter().any(|s| s.create_revision < o.create_revision)),
            slots,
            mutex_owner: owner,
            mutex_waiters: mutex.len().saturating_sub(1),
            revision,
        }
    }

    /// Every holder: the slots, then the mutex owner.
    pub fn holders(&self) -> Vec<Slot> {
        let mut v = self.slots.clone();
        v.extend(self.mutex_owner.clone());
        v
    }

    /// How many hosts count as down: slots held plus the mutex owner.
    pub fn held(&self) -> usize {
        self.slots.len() + usize::from(self.mutex_owner.is_some())
    }

    /// The limit in force for a host whose own is `own`: the smallest of
    /// `own` and the `limit` recorded by every holder.
    pub fn limit(&self, own: u32) -> u32 {
        self.limit_without(own, None)
    }

    /// [`LockState::limit`] ignoring the slot `key` (the asking host's own).
    fn limit_without(&self, own: u32, key: Option<&str>) -> u32 {
        self.slots
            .iter()
            .filter(|s| Some(s.key.as_str()) != key)
            .filter_map(|s| s.value.as_ref().map(|v| v.limit))
            .filter(|l| *l > 0)
            .fold(own, u32::min)
    }
}

/// The result of trying to take a slot.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
#[allow(
    clippy::large_enum_variant,
    reason = "one short-lived value per acquisition; a Box would buy nothing"
)]
pub enum Acquire {
    /// This node holds the slot (newly taken or already held).
    Held(Slot),
    /// The limit is reached: the holders (slots, then a mutex owner).
    Busy(Vec<Slot>),
}

/// The lock slots below one `lock_key`.
#[derive(Clone)]
pub struct Lock {
    client: Client,
    lock_key: String,
    slots: u32,
    /// (key, revision) of this process's recent deletions below the lock key.
    own_deletes: Arc<Mutex<VecDeque<(String, i64)>>>,
}

impl Lock {
    /// The lock over `slots` slots below `lock_key` (trailing slashes
    /// trimmed); `slots` is this host's (or group's) limit.
    pub fn new(client: Client, lock_key: &str, slots: u32) -> Lock {
        Lock {
            client,
            lock_key: lock_key.trim_end_matches('/').to_string(),
            slots,
            own_deletes: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The key of slot `i`.
    pub fn slot_key(&self, i: u32) -> String {
        format!("{}/slot-{i}", self.lock_key)
    }

    /// The prefix every slot key starts with.
    pub fn prefix(&self) -> String {
        format!("{}/slot-", self.lock_key)
    }

    /// `<lock_key>/`: the range of the slots and mutex keys, which the
    /// acquiring txn compares as a whole.
    pub fn range(&self) -> String {
        format!("{}/", self.lock_key)
    }

    /// Number of slots (this host's own limit).
    pub fn slot_count(&self) -> u32 {
        self.slots
    }

    /// The lock key (without a trailing slash).
    pub fn lock_key(&self) -> &str {
        &self.lock_key
    }

    /// Slots and mutex keys below the lock key, with the read revision.
    pub fn state(&self) -> Result<LockState> {
        let (kvs, revision) = self.client.get_prefix(&self.range())?;
        Ok(LockState::from_kvs(&self.lock_key, &kvs, revision))
    }

    /// Every held slot (also slots beyond the configured count, left over
    /// from a larger `max_concurrent_reboots`), with the read revision; a
    /// mutex owner is not a slot (see [`Lock::state`]).
    pub fn holders(&self) -> Result<(Vec<Slot>, i64)> {
        let state = self.state()?;
        Ok((state.slots, state.revision))
    }

    /// The slot the agent `node` holds, if any (a slot of kind agent: a
    /// FleetLock client with the same name is not that agent).
    pub fn find(&self, node: &str) -> Result<Option<Slot>> {
        Ok(self.holders()?.0.into_iter().find(|s| s.is_agent(node)))
    }

    /// Takes a free slot for `value.node` on `lease`, or reports the
    /// holders. The value is written with this lock's limit
    /// ([`SlotValue::limit`]).
    ///
    /// A slot is free when the holders ([`LockState::held`]) are fewer
    /// than the limit ([`LockState::limit`]); it is taken by one txn that
    /// also proves nothing below the lock key changed since the count (see
    /// the module docs), and the count is repeated when that txn loses a
    /// race (at most [`ACQUIRE_ATTEMPTS`] times, then `Busy`).
    ///
    /// A node that already holds a slot of the value's kind (its own: an
    /// agent's slot is never a FleetLock client's of the same name) in
    /// phase checking gets it back, re-attached to `lease` (idempotent), unless another live agent of
    /// the same host is working under it — or unless the others already
    /// fill the limit (lowered since it was taken): then the stale slot is
    /// given back and the result is `Busy`.
    pub fn acquire(&self, value: &SlotValue, lease: i64) -> Result<Acquire> {
        let value = SlotValue {
            limit: self.slots,
            ..value.clone()
        };
        let body = to_json(&value)?;
        let mut state = self.state()?;
        for _ in 0..ACQUIRE_ATTEMPTS {
            // Only a slot of the same kind is ours: an agent never adopts a
            // FleetLock client's slot that carries its name, nor the reverse.
            if let Some(mine) = state
                .slots
                .iter()
                .find(|s| s.kind() == Some(value.kind) && s.node() == value.node)
            {
                match self.reattach(mine, &state, &value, &body, lease)? {
                    Some(done) => return Ok(done),
                    // Changed under us (released or expired): compete like anyone.
                    None => {
                        state = self.state()?;
                        continue;
                    }
                }
            }
            if state.held() >= state.limit(self.slots) as usize {
                return Ok(Acquire::Busy(state.holders()));
            }
            let Some(i) = (0..self.slots).find(|i| state.slots.iter().all(|s| s.index != *i))
            else {
                return Ok(Acquire::Busy(state.holders()));
            };
            let key = self.slot_key(i);
            let txn = Txn {
                compare: vec![
                    Compare::create_revision(&key, CmpResult::Equal, 0),
                    Compare::mod_revision(&self.range(), CmpResult::Less, state.revision + 1)
                        .with_prefix(),
                ],
                success: vec![Op::put(&key, body.as_bytes(), Some(lease)), Op::get(&key)],
                failure: vec![Op::get(&key)],
            };
            if let Some(slot) = self.ours_after(&self.client.txn(&txn)?, lease) {
                return Ok(Acquire::Held(slot));
            }
            log::debug!(
                "the lock changed since revision {}; counting again",
                state.revision
            );
            state = self.state()?;
        }
        log::info!(
            "the lock below {} kept changing during {ACQUIRE_ATTEMPTS} attempts; trying again at the next pass",
            self.lock_key
        );
        Ok(Acquire::Busy(state.holders()))
    }

    /// The part of [`Lock::acquire`] for a node that already holds `mine`:
    /// `Some` when decided, `None` when the slot changed under us.
    fn reattach(
        &self,
        mine: &Slot,
        state: &LockState,
        value: &SlotValue,
        body: &str,
        lease: i64,
    ) -> Result<Option<Acquire>> {
        if mine.phase() == Some(SlotPhase::Rebooting) {
            return Err(Error::Runtime(format!(
                "{} already holds {} in phase rebooting; it must complete its post-reboot check first",
                value.node, mine.key
            )));
        }
        let another_agent = mine.value.as_ref().is_some_and(|v| {
            // Another machine under the same name, or another live
            // agent process of this very boot.
            !crate::cluster::records::same_machine(&v.machine_id, &value.machine_id)
                || (v.boot_id == value.boot_id && v.pid != value.pid && pid_alive(v.pid))
        });
        if another_agent {
            log::warn!(
                "another rebootctl of this node (pid {}) holds {}; not taking it over",
                mine.value.as_ref().map(|v| v.pid).unwrap_or(0),
                mine.key
            );
            return Ok(Some(Acquire::Busy(state.holders())));
        }
        let others = state.held() - 1;
        if others >= state.limit_without(self.slots, Some(&mine.key)) as usize {
            // Taken under a larger limit; the others fill the one in force.
            log::warn!(
                "giving back {}: the other holders already fill the limit in force",
                mine.key
            );
            let resp = self.client.txn(&Txn {
                compare: vec![Compare::mod_revision(
                    &mine.key,
                    CmpResult::Equal,
                    mine.mod_revision,
                )],
                success: vec![Op::delete(&mine.key)],
                failure: vec![],
            })?;
            if !resp.succeeded {
                return Ok(None);
            }
            self.note_own_delete(&mine.key, resp.revision);
            let mut holders = state.holders();
            holders.retain(|s| s.key != mine.key);
            return Ok(Some(Acquire::Busy(holders)));
        }
        let txn = Txn {
            compare: vec![Compare::mod_revision(
                &mine.key,
                CmpResult::Equal,
                mine.mod_revision,
            )],
            success: vec![
                Op::put(&mine.key, body.as_bytes(), Some(lease)),
                Op::get(&mine.key),
            ],
            failure: vec![Op::get(&mine.key)],
        };
        Ok(self
            .ours_after(&self.client.txn(&txn)?, lease)
            .map(Acquire::Held))
    }

    /// Switches `slot` to phase rebooting on `reboot_lease`, atomically
    /// proving it is still ours: the same holding (create revision),
    /// unchanged since we read it (mod revision) and still on the lease we
    /// took it with (a lease that was revoked or expired deleted the key).
    /// Returns the updated slot, or `None` when it is no longer ours.
    pub fn to_rebooting(
        &self,
        slot: &Slot,
        value: &SlotValue,
        reboot_lease: i64,
    ) -> Result<Option<Slot>> {
        let body = to_json(&SlotValue {
            limit: self.slots,
            ..value.clone()
        })?;
        let txn = Txn {
            compare: vec![
                Compare::create_revision(&slot.key, CmpResult::Equal, slot.create_revision),
                Compare::mod_revision(&slot.key, CmpResult::Equal, slot.mod_revision),
                Compare::lease(&slot.key, CmpResult::Equal, slot.lease),
            ],
            success: vec![
                Op::put(&slot.key, body.as_bytes(), Some(reboot_lease)),
                Op::get(&slot.key),
            ],
            failure: vec![Op::get(&slot.key)],
        };
        Ok(self.ours_after(&self.client.txn(&txn)?, reboot_lease))
    }

    /// The slot a put-then-get txn left, when it is on `lease`: the success
    /// branch's read-back, or the failure branch's read when an earlier
    /// attempt of the same write (retried on another endpoint after a
    /// timeout) had already been applied.
    fn ours_after(&self, resp: &TxnResponse, lease: i64) -> Option<Slot> {
        let read = if resp.succeeded {
            resp.responses.get(1)
        } else {
            resp.responses.first()
        };
        match read {
            Some(OpResponse::Range { kvs, .. }) => kvs
                .first()
                .filter(|kv| kv.lease == lease)
                .and_then(|kv| Slot::from_kv(kv, &self.lock_key)),
            _ => None,
        }
    }

    /// Releases `slot` if it is still the same holding: same create
    /// revision and same lease (a slot re-attached by another agent
    /// process, or switched to phase rebooting, is not this holding any
    /// more). Returns whether it was deleted.
    pub fn release(&self, slot: &Slot) -> Result<bool> {
        let txn = Txn {
            compare: vec![
                Compare::create_revision(&slot.key, CmpResult::Equal, slot.create_revision),
                Compare::lease(&slot.key, CmpResult::Equal, slot.lease),
            ],
            success: vec![Op::delete(&slot.key)],
            failure: vec![],
        };
        let resp = self.client.txn(&txn)?;
        if resp.succeeded {
            self.note_own_delete(&slot.key, resp.revision);
        }
        Ok(resp.succeeded)
    }

    /// True when the deletion of `key` at `revision` (a watch event) was
    /// made by this process through this lock (or a clone of it): such an
    /// event frees nothing the process did not just give back itself.
    pub fn caused_by_me(&self, key: &str, revision: i64) -> bool {
        self.own_deletes
            .lock()
            .map(|v| v.iter().any(|(k, r)| k == key && *r == revision))
            .unwrap_or(false)
    }

    fn note_own_delete(&self, key: &str, revision: i64) {
        if let Ok(mut v) = self.own_deletes.lock() {
            if v.len() == OWN_WRITES_KEPT {
                v.pop_front();
            }
            v.push_back((key.to_string(), revision));
        }
    }
}

/// Every slot of every lock key below `prefix` (`<prefix>slot-<i>` and
/// `<prefix><group>/slot-<i>`), sorted by key: the admin view of all lock
/// groups, FleetLock groups included.
pub fn slots_below(client: &Client, prefix: &str) -> Result<Vec<Slot>> {
    let (kvs, _) = client.get_prefix(prefix)?;
    let mut slots: Vec<Slot> = kvs
        .iter()
        .filter_map(|kv| {
            let (lock_key, _) = kv.key.rsplit_once("/slot-")?;
            Slot::from_kv(kv, lock_key)
        })
        .collect();
    slots.sort_by(|a, b| (a.lock_key(), a.index).cmp(&(b.lock_key(), b.index)));
    Ok(slots)
}

/// True while process `pid` exists (meaningful for a slot of this boot).
fn pid_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(p) if p > 0 => !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
            Err(nix::errno::Errno::ESRCH)
        ),
        _ => false,
    }
}

fn to_json(value: &SlotValue) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Runtime(format!("encoding the slot value: {e}")))
}

/// Keeps a lease alive from its own thread until dropped; notices when the
/// lease is gone. With a deadline ([`Keepalive::with_deadline`]) it gives
/// the lease up once the deadline passes: it stops renewing it and revokes
/// it, so whatever the lease holds is freed even when the thread that owns
/// the keepalive is stuck.
pub struct Keepalive {
    lost: Arc<AtomicBool>,
    deadline: Arc<Mutex<Option<Instant>>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Keepalive {
    /// Starts renewing `lease` every `ttl / 3`.
    pub fn start(client: Client, lease: i64, ttl: Duration) -> Keepalive {
        let lost = Arc::new(AtomicBool::new(false));
        let deadline = Arc::new(Mutex::new(None::<Instant>));
        let (stop, stopped) = mpsc::channel::<()>();
        let flag = Arc::clone(&lost);
        let until = Arc::clone(&deadline);
        let interval = (ttl / 3).max(Duration::from_millis(500));
        let thread = std::thread::Builder::new()
            .name("keepalive".into())
            .spawn(move || {
                let mut next_renewal = Instant::now() + interval;
                loop {
                    let now = Instant::now();
                    let deadline = *until.lock().unwrap_or_else(PoisonError::into_inner);
                    if deadline.is_some_and(|d| now >= d) {
                        log::error!(
                            event = "lease_deadline";
                            "lease {lease:x} is past its deadline: no longer renewed, revoked so the slot it holds is freed"
                        );
                        flag.store(true, Ordering::SeqCst);
                        if let Err(e) = client.lease_revoke(lease) {
                            log::warn!("cannot revoke lease {lease:x} (it expires by itself): {e}");
                        }
                        return;
                    }
                    let wake = deadline.map_or(next_renewal, |d| d.min(next_renewal));
                    // A message: the deadline changed; the sender dropped: stop.
                    match stopped.recv_timeout(wake.saturating_duration_since(now)) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if Instant::now() < next_renewal {
                        continue;
                    }
                    next_renewal = Instant::now() + interval;
                    match client.lease_keepalive(lease) {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            log::warn!("lease {lease:x} is gone; the slot it held is lost");
                            flag.store(true, Ordering::SeqCst);
                            return;
                        }
                        // Transient: try again at the next tick; the TTL leaves room for two misses.
                        Err(e) => log::warn!("lease keepalive failed: {e}"),
                    }
                }
            })
            .ok();
        Keepalive {
            lost,
            deadline,
            stop: Some(stop),
            thread,
        }
    }

    /// Gives the lease up at `deadline`: from then on it is not renewed but
    /// revoked, and [`Keepalive::lost`] is true.
    pub fn with_deadline(self, deadline: Instant) -> Keepalive {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = Some(deadline);
        if let Some(tx) = &self.stop {
            // The thread may be asleep until its next renewal: wake it to
            // re-check. It has ended if this fails; nothing to do then.
            let _ = tx.send(());
        }
        self
    }

    /// True once the deadline has passed (the lease is, or is being, given up).
    pub fn past_deadline(&self) -> bool {
        self.deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|d| Instant::now() >= d)
    }

    /// True once the lease was found gone or given up at the deadline.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst) || self.past_deadline()
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create_revision: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision,
            mod_revision: create_revision,
            version: 1,
            lease: 0x694d7c8e8f3a2b04,
        }
    }

    fn agent(node: &str, limit: u32) -> String {
        format!(
            r#"{{"kind":"agent","node":"{node}","pid":1,"boot_id":"b","machine_id":"m","phase":"rebooting","acquired_at":"2026-01-01T00:00:00Z","limit":{limit}}}"#
        )
    }

    #[test]
    fn holders_are_every_slot_and_the_lowest_mutex_key() {
        let kvs = [
            kv("/rebootctl/lock/pause", r#"{"at":"x"}"#, 2),
            kv("/rebootctl/lock/cooldown", r#"{"node":"a"}"#, 3),
            kv("/rebootctl/lock/web/slot-0", &agent("w", 5), 4),
            kv("/rebootctl/lock/slot-7", &agent("far", 8), 9),
            kv("/rebootctl/lock/slot-0", &agent("near", 3), 5),
            kv("/rebootctl/lock/694d7c8e8f3a2b05", "", 12),
            kv(
                "/rebootctl/lock/694d7c8e8f3a2b04",
                r#"{"node":"legacy","pid":9,"acquired_at":"t"}"#,
                11,
            ),
        ];
        let s = LockState::from_kvs("/rebootctl/lock/", &kvs, 20);
        assert_eq!(s.slots.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 7]);
        let owner = s.mutex_owner.as_ref().unwrap();
        assert_eq!(owner.key, "/rebootctl/lock/694d7c8e8f3a2b04");
        assert_eq!(owner.node(), "legacy");
        assert!(owner.is_mutex());
        assert!(s.mutex_owner_waits, "a slot is older than the owner");
        assert_eq!(s.mutex_waiters, 1);
        assert_eq!(s.held(), 3);
        assert_eq!(s.holders().len(), 3);
        // The smallest recorded limit, with this host's own.
        assert_eq!(s.limit(10), 3);
        assert_eq!(s.limit(2), 2);
        assert_eq!(s.limit_without(10, Some("/rebootctl/lock/slot-0")), 8);
    }

    #[test]
    fn values_without_kind_or_limit_are_agents_without_a_constraint() {
        let old = r#"{"node":"a","pid":1,"boot_id":"b","phase":"checking","acquired_at":"t"}"#;
        let s = LockState::from_kvs("/l", &[kv("/l/slot-1", old, 3)], 4);
        let v = s.slots[0].value.as_ref().unwrap();
        assert_eq!(v.kind, SlotKind::Agent);
        assert_eq!(v.limit, 0);
        assert_eq!(s.limit(2), 2);
        assert!(s.mutex_owner.is_none());
        let fleetlock = r#"{"kind":"fleetlock","node":"zincati-1","group":"default","phase":"rebooting","acquired_at":"t"}"#;
        let s = LockState::from_kvs("/l", &[kv("/l/slot-0", fleetlock, 3)], 4);
        assert_eq!(s.slots[0].value.as_ref().unwrap().kind, SlotKind::Fleetlock);
    }
}

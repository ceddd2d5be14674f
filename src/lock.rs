//! The fleet-wide reboot lock (SPEC §6): `max_concurrent_reboots` slot keys
//! `<lock_key>/slot-<i>`, each taken with a txn on `create_revision == 0`
//! and held on a lease — kept alive while checking, switched atomically to
//! a `reboot_timeout_sec` lease for the reboot, released only after the
//! node is back and healthy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::etcd::{Client, CmpResult, Compare, KeyValue, Op, OpResponse, Txn, TxnResponse};

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

/// The JSON value of a slot key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotValue {
    /// The holder's node name.
    pub node: String,
    /// The holder's agent pid.
    pub pid: u32,
    /// The holder's boot id when it took the slot.
    pub boot_id: String,
    /// Checking or rebooting.
    pub phase: SlotPhase,
    /// When the slot was taken (RFC 3339).
    pub acquired_at: String,
    /// The holder's machine id (empty when unknown).
    #[serde(default)]
    pub machine_id: String,
}

/// A held slot as read from etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The slot key.
    pub key: String,
    /// The slot index.
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

impl Slot {
    /// The holder's node name, or `?` for an unreadable value.
    pub fn node(&self) -> &str {
        self.value.as_ref().map(|v| v.node.as_str()).unwrap_or("?")
    }

    /// The holder's phase, if readable.
    pub fn phase(&self) -> Option<SlotPhase> {
        self.value.as_ref().map(|v| v.phase)
    }

    fn from_kv(kv: &KeyValue, lock_key: &str) -> Option<Slot> {
        let index = kv
            .key
            .strip_prefix(lock_key)?
            .strip_prefix("/slot-")?
            .parse()
            .ok()?;
        Some(Slot {
            key: kv.key.clone(),
            index,
            value: serde_json::from_slice(&kv.value).ok(),
            raw: String::from_utf8_lossy(&kv.value).into_owned(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            lease: kv.lease,
        })
    }
}

/// The result of trying to take a slot.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Acquire {
    /// This node holds the slot (newly taken or already held).
    Held(Slot),
    /// Every slot is held by other nodes.
    Busy(Vec<Slot>),
}

/// The lock slots below one `lock_key`.
#[derive(Clone)]
pub struct Lock {
    client: Client,
    lock_key: String,
    slots: u32,
}

impl Lock {
    /// The lock over `slots` slots below `lock_key`.
    pub fn new(client: Client, lock_key: &str, slots: u32) -> Lock {
        Lock {
            client,
            lock_key: lock_key.trim_end_matches('/').to_string(),
            slots,
        }
    }

    /// The key of slot `i`.
    pub fn slot_key(&self, i: u32) -> String {
        format!("{}/slot-{i}", self.lock_key)
    }

    /// The prefix every slot key starts with (for the watch).
    pub fn prefix(&self) -> String {
        format!("{}/slot-", self.lock_key)
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u32 {
        self.slots
    }

    /// Every held slot (also slots beyond the configured count, left over
    /// from a larger `max_concurrent_reboots`), with the read revision.
    pub fn holders(&self) -> Result<(Vec<Slot>, i64)> {
        let (kvs, rev) = self.client.get_prefix(&self.prefix())?;
        let mut slots: Vec<Slot> = kvs
            .iter()
            .filter_map(|kv| Slot::from_kv(kv, &self.lock_key))
            .collect();
        slots.sort_by_key(|s| s.index);
        Ok((slots, rev))
    }

    /// The slot `node` holds, if any.
    pub fn find(&self, node: &str) -> Result<Option<Slot>> {
        Ok(self.holders()?.0.into_iter().find(|s| s.node() == node))
    }

    /// Takes a free slot for `value.node` on `lease`, or reports the
    /// holders. A node that already holds a slot in phase checking gets it
    /// back, re-attached to `lease` (idempotent), unless another live agent
    /// of the same host is working under it. Slots held beyond the
    /// configured count (left from a larger `max_concurrent_reboots`) count
    /// against the limit.
    pub fn acquire(&self, value: &SlotValue, lease: i64) -> Result<Acquire> {
        let body = to_json(value)?;
        let (holders, _) = self.holders()?;
        if let Some(mine) = holders.iter().find(|s| s.node() == value.node) {
            if mine.phase() == Some(SlotPhase::Rebooting) {
                return Err(Error::Runtime(format!(
                    "{} already holds {} in phase rebooting; it must complete its post-reboot check first",
                    value.node, mine.key
                )));
            }
            let another_agent = mine.value.as_ref().is_some_and(|v| {
                // Another machine under the same name, or another live
                // agent process of this very boot.
                !crate::coordinator::same_machine(&v.machine_id, &value.machine_id)
                    || (v.boot_id == value.boot_id && v.pid != value.pid && pid_alive(v.pid))
            });
            if another_agent {
                log::warn!(
                    "another rebootctl of this node (pid {}) holds {}; not taking it over",
                    mine.value.as_ref().map(|v| v.pid).unwrap_or(0),
                    mine.key
                );
                return Ok(Acquire::Busy(holders));
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
            if let Some(slot) = self.ours_after(&self.client.txn(&txn)?, lease) {
                return Ok(Acquire::Held(slot));
            }
            // Changed under us (released or expired): compete like anyone.
        }
        let others = holders.iter().filter(|s| s.node() != value.node).count();
        if others >= self.slots as usize {
            return Ok(Acquire::Busy(holders));
        }
        for i in 0..self.slots {
            let key = self.slot_key(i);
            let txn = Txn {
                compare: vec![Compare::create_revision(&key, CmpResult::Equal, 0)],
                success: vec![Op::put(&key, body.as_bytes(), Some(lease)), Op::get(&key)],
                failure: vec![Op::get(&key)],
            };
            if let Some(slot) = self.ours_after(&self.client.txn(&txn)?, lease) {
                return Ok(Acquire::Held(slot));
            }
        }
        Ok(Acquire::Busy(self.holders()?.0))
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
        let body = to_json(value)?;
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
        Ok(self.client.txn(&txn)?.succeeded)
    }
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

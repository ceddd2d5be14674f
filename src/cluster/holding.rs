//! What this node holds in the lock, as values that own their leases:
//! [`Holding`], a slot in phase checking with its lease and keepalive,
//! released when dropped unless [`Holding::into_rebooting`] turned it into
//! phase rebooting, and given up (its lease revoked) once it stayed in
//! phase checking past its deadline, even while the pass is stuck; and the lease of a slot in phase rebooting, renewed
//! after the reboot and read before it ([`Cluster::renew_slot`],
//! [`Cluster::slot_time_left`]). The pass takes, switches and gives back
//! slots only through these, never through leases or the raw client.

use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::cluster::lock::{Acquire, Keepalive, Lock, Slot, SlotPhase, SlotValue};
use crate::error::{Error, Result};
use crate::etcd::Client;

/// The result of [`Cluster::take_slot`].
#[must_use]
pub enum Taken {
    /// This node holds a slot in phase checking (boxed: it is large).
    Held(Box<Holding>),
    /// Every slot is held by other nodes (the holders as read).
    Busy(Vec<Slot>),
}

/// A slot in phase checking, with its kept-alive lease and, once reserved,
/// the lease it will be rebooting on. Dropping it gives the slot back and
/// revokes both leases; [`Holding::into_rebooting`] is the one way to keep
/// the slot.
#[must_use = "dropping a Holding releases its slot"]
pub struct Holding {
    client: Client,
    lock: Lock,
    slot: Slot,
    lease: i64,
    keepalive: Option<Keepalive>,
    /// How long the slot may stay in phase checking (the checking deadline).
    budget: Duration,
    reboot_lease: Option<i64>,
    /// Set by a successful switch: nothing is released on drop.
    rebooting: bool,
}

/// A switch to phase rebooting that did not happen: the error, and the
/// slot still held in phase checking (released when dropped), so that the
/// caller can undo the `pre_reboot` hook before anyone else takes it.
pub struct NotSwitched {
    /// The slot, still in phase checking.
    pub holding: Holding,
    /// Why it was not switched.
    pub error: Error,
}

impl Cluster {
    /// Takes a free slot for `value.node` in phase checking on a new lease
    /// of `ttl`, kept alive from its own thread until the [`Holding`] is
    /// dropped or switched, or until `deadline` from now has passed: then
    /// the keepalive revokes the lease (the slot is freed even if this
    /// process is stuck) and the holding can no longer be switched to phase
    /// rebooting. Or reports the holders.
    pub fn take_slot(&self, value: &SlotValue, ttl: Duration, deadline: Duration) -> Result<Taken> {
        let lease = self.client.lease_grant(ttl)?.id;
        let acquired = match self.lock.acquire(value, lease) {
            Ok(a) => a,
            Err(e) => {
                revoke(&self.client, lease);
                return Err(e);
            }
        };
        match acquired {
            Acquire::Held(slot) => Ok(Taken::Held(Box::new(Holding {
                keepalive: Some(
                    Keepalive::start(self.client.clone(), lease, ttl)
                        .with_deadline(Instant::now() + deadline),
                ),
                budget: deadline,
                client: self.client.clone(),
                lock: self.lock.clone(),
                slot,
                lease,
                reboot_lease: None,
                rebooting: false,
            }))),
            Acquire::Busy(holders) => {
                revoke(&self.client, lease);
                Ok(Taken::Busy(holders))
            }
        }
    }

    /// Renews the lease of this node's slot in phase rebooting to its full
    /// TTL (`reboot_timeout_sec`): a node that is back but not yet healthy
    /// still counts as down. False when the lease is gone.
    pub fn renew_slot(&self, slot: &Slot) -> Result<bool> {
        Ok(self.client.lease_keepalive(slot.lease)?.is_some())
    }

    /// The time left on the lease of `slot`, as etcd counts it (zero when
    /// the lease is gone); None for a slot without a lease. This is the
    /// clock that gives up a reboot that never happened in cluster mode: no
    /// host's clock is involved.
    pub fn slot_time_left(&self, slot: &Slot) -> Result<Option<Duration>> {
        if slot.lease == 0 {
            return Ok(None);
        }
        let ttl = self.client.lease_time_to_live(slot.lease)?;
        Ok(Some(Duration::from_secs(
            ttl.unwrap_or(0).max(0).unsigned_abs(),
        )))
    }
}

impl Holding {
    /// The held slot.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// True once the keepalive found the slot's lease gone, or gave it up
    /// at the checking deadline.
    pub fn lost(&self) -> bool {
        self.keepalive.as_ref().is_some_and(Keepalive::lost)
    }

    /// True once the slot stayed in phase checking past its deadline.
    pub fn past_deadline(&self) -> bool {
        self.keepalive
            .as_ref()
            .is_some_and(Keepalive::past_deadline)
    }

    /// Why the slot is no longer ours, once [`Holding::lost`]: the checking
    /// deadline passed ([`Error::CheckingDeadline`]), or the lease was
    /// found gone ([`Error::LeaseLost`], `during` what).
    pub fn lost_error(&self, during: &'static str) -> Option<Error> {
        if self.past_deadline() {
            Some(Error::CheckingDeadline {
                budget: self.budget,
            })
        } else if self.lost() {
            Some(Error::LeaseLost {
                lease: "the lock slot's lease",
                during,
            })
        } else {
            None
        }
    }

    /// Grants the lease of `ttl` (`reboot_timeout_sec`) the slot will be
    /// rebooting on, before the `pre_reboot` hook, so nothing that can fail
    /// on etcd's side is left between the hook and the switch. Revoked on
    /// drop unless the switch used it.
    pub fn reserve_reboot_lease(&mut self, ttl: Duration) -> Result<()> {
        if self.reboot_lease.is_none() {
            self.reboot_lease = Some(self.client.lease_grant(ttl)?.id);
        }
        Ok(())
    }

    /// Turns the slot into phase rebooting on the reserved lease (renewed
    /// first to its full TTL: the hook's time must not shorten it), in a txn
    /// that proves the slot is still ours (same holding, same lease), then
    /// revokes the checking lease. Refused once the slot is lost or past
    /// its checking deadline. The returned slot stays held through the
    /// reboot. On failure the slot comes back in phase checking inside
    /// [`NotSwitched`].
    pub fn into_rebooting(mut self) -> std::result::Result<Slot, Box<NotSwitched>> {
        match self.switch() {
            Ok(slot) => {
                self.rebooting = true;
                // The slot now lives on the reboot lease: stop renewing the
                // old one, and give it back.
                drop(self.keepalive.take());
                revoke(&self.client, self.lease);
                log::info!(event = "slot_rebooting"; "lock slot {} is now in phase rebooting", slot.key);
                Ok(slot)
            }
            Err(error) => Err(Box::new(NotSwitched {
                holding: self,
                error,
            })),
        }
    }

    fn switch(&mut self) -> Result<Slot> {
        let Some(reboot_lease) = self.reboot_lease else {
            return Err(Error::Runtime(
                "no reboot lease was reserved before the switch to phase rebooting".into(),
            ));
        };
        if self.client.lease_keepalive(reboot_lease)?.is_none() {
            return Err(Error::LeaseLost {
                lease: "the reboot lease",
                during: " during the pre_reboot hook",
            });
        }
        if let Some(e) = self.lost_error("") {
            return Err(e);
        }
        let Some(held) = &self.slot.value else {
            return Err(Error::SlotChanged {
                key: self.slot.key.clone(),
            });
        };
        let value = SlotValue {
            phase: SlotPhase::Rebooting,
            ..held.clone()
        };
        match self.lock.to_rebooting(&self.slot, &value, reboot_lease)? {
            Some(slot) => Ok(slot),
            None => Err(Error::SlotChanged {
                key: self.slot.key.clone(),
            }),
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if self.rebooting {
            return;
        }
        drop(self.keepalive.take());
        match self.lock.release(&self.slot) {
            Ok(true) => log::info!(event = "slot_released"; "released lock slot {}", self.slot.key),
            Ok(false) => log::warn!("lock slot {} was no longer ours", self.slot.key),
            Err(e) => log::warn!(
                "cannot release lock slot {} (its lease will expire): {e}",
                self.slot.key
            ),
        }
        revoke(&self.client, self.lease);
        if let Some(lease) = self.reboot_lease.take() {
            revoke(&self.client, lease);
        }
    }
}

/// Revokes a lease that is no longer used; a failure only delays its expiry.
fn revoke(client: &Client, lease: i64) {
    if let Err(e) = client.lease_revoke(lease) {
        log::warn!("cannot revoke lease {lease:x} (it expires by itself): {e}");
    }
}

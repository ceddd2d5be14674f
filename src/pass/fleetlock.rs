//! The pass with `lock_backend: fleetlock` (issue 13): the lock belongs to a
//! FleetLock server, and with it the gates it decides for its clients (the
//! cluster pause, the cluster cooldown, the cluster policies and the
//! group's windows). Step 6 asks it (`pre-reboot`); a grant the pass does
//! not turn into a reboot is given back (`steady-state`) on every path, as
//! a slot held while checking is: it is a [`Grant`], released when dropped
//! like a [`crate::cluster::holding::Holding`], and the commit
//! ([`super::commit`]) keeps it only once the reboot command is next.
//! After a reboot, `steady-state` follows the post-reboot health check and
//! hook; a reboot given up, or a commit cut short and undone, gives the
//! hold back too. The hooks in `pass/mod.rs` are a few lines marked
//! "FleetLock client".
//!
//! A refusal whose kind is one of rebootctl's gates blocks the pass at that
//! gate (same exit code as in cluster mode); a refusal that means the
//! request or the server is wrong (`unauthorized`, `unknown_group`,
//! `unavailable`, …), or no answer at all, is an error: the agent backs
//! off and asks again. Kinds of other servers block as `fleetlock` (exit
//! 4), except 5xx answers, which are errors.

use std::time::{Duration, Instant};

use super::Pass;
use super::outcome::Block;
use super::report::{PassEvent, StepState};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleetlock::client::{Answer, Client, Refused};
use crate::fleetlock::protocol::Kind;
use crate::host::state;

/// A slot the FleetLock server granted to this host in this pass. Dropped,
/// it is given back (`steady-state`; a failure is logged and the server
/// frees the hold after its max hold), unless [`Grant::keep`] handed it to
/// the reboot.
#[derive(Debug)]
#[must_use]
pub struct Grant {
    client: Option<Client>,
}

impl Grant {
    /// The reboot goes ahead under this grant: it stays held until the
    /// post-reboot check gives it back.
    pub fn keep(mut self) {
        self.client = None;
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            give_back(&client);
        }
    }
}

/// `steady-state` for a hold no reboot uses; a failure is only logged.
fn give_back(client: &Client) {
    match client.steady_state() {
        Ok(Answer::Ok) => log::info!(
            event = "slot_released";
            "gave the FleetLock slot of {} back to {}", client.id(), client.url()
        ),
        Ok(Answer::Refused(r)) => log::warn!(
            "the FleetLock server {} refused steady-state (it frees the hold after its max hold): {r}",
            client.url()
        ),
        Err(e) => log::warn!(
            "cannot give the FleetLock slot back (the server frees it after its max hold): {e}"
        ),
    }
}

impl Pass<'_> {
    /// The FleetLock client of this host, when `lock_backend: fleetlock`.
    fn fleetlock(&self) -> Option<Result<Client>> {
        self.cfg
            .fleetlock_client
            .as_ref()
            .map(|fl| Client::new(fl, &self.cfg.machine_id_file))
    }

    /// Step 6 with a FleetLock server. Returns true when the pass must stop.
    pub(super) fn fleetlock_lock(&mut self) -> Result<bool> {
        let Some(client) = self.fleetlock().transpose()? else {
            return Ok(false);
        };
        let started = Instant::now();
        match client.pre_reboot()? {
            Answer::Ok => {
                let took = started.elapsed();
                self.events.push(PassEvent::SlotAcquired(took));
                log::info!(
                    event = "slot_acquired", lock_wait_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
                    "the FleetLock server {} granted a slot to {} (group {})",
                    client.url(), client.id(), client.group()
                );
                self.step(
                    "lock",
                    StepState::Ok,
                    format!(
                        "granted by the FleetLock server {} to {} (group {})",
                        client.url(),
                        client.id(),
                        client.group()
                    ),
                );
                self.fleetlock_grant = Some(Grant {
                    client: Some(client),
                });
                Ok(false)
            }
            Answer::Refused(r) => match refusal_block(&r, client.url()) {
                Some(block) => Ok(self.block("lock", block)),
                None => Err(Error::Runtime(format!(
                    "the FleetLock server {} refused pre-reboot: {r}",
                    client.url()
                ))),
            },
        }
    }

    /// Gives back a hold of this host that no reboot will use (a reboot
    /// given up, a commit cut short and undone); a no-op without
    /// `lock_backend: fleetlock`. A failure is only logged: the server
    /// frees the hold after its max hold.
    pub(super) fn fleetlock_give_back(&self) {
        match self.fleetlock() {
            None => {}
            Some(Ok(client)) => give_back(&client),
            Some(Err(e)) => log::warn!("cannot give the FleetLock slot back: {e}"),
        }
    }

    /// `steady-state` once this host's reboot is complete; a no-op without
    /// `lock_backend: fleetlock`. An error keeps the reboot record, so the
    /// next pass tries again.
    pub(super) fn fleetlock_steady_state(&mut self) -> Result<()> {
        let Some(client) = self.fleetlock().transpose()? else {
            return Ok(());
        };
        match client.steady_state()? {
            Answer::Ok => {
                log::info!(
                    event = "slot_released";
                    "gave the FleetLock slot of {} back to {}", client.id(), client.url()
                );
                Ok(())
            }
            Answer::Refused(r) => Err(Error::Runtime(format!(
                "the FleetLock server {} refused steady-state: {r}",
                client.url()
            ))),
        }
    }

    /// `status`: the lock and the gates the server owns; it is not asked
    /// (a pre-reboot would take a slot).
    pub(super) fn fleetlock_show(&mut self) {
        let Some(fl) = &self.cfg.fleetlock_client else {
            return;
        };
        let id = match fl.id.clone() {
            Some(id) => id,
            None => crate::fleetlock::client::client_id(fl, &self.cfg.machine_id_file)
                .unwrap_or_else(|e| format!("(cannot derive: {e})")),
        };
        self.step(
            "lock",
            StepState::Info,
            format!(
                "lock_backend fleetlock: the FleetLock server {} (group {}, id {id}) owns the lock, the cluster pause, the cluster cooldown, the cluster policies and the group's windows; not asked here (a pre-reboot would take a slot)",
                fl.url, fl.group
            ),
        );
    }
}

/// The gate a refusal stands for, or `None` when it is an error.
fn refusal_block(r: &Refused, url: &str) -> Option<Block> {
    let text = format!(
        "{} ({url})",
        if r.value.is_empty() {
            &r.kind
        } else {
            &r.value
        }
    );
    match Kind::parse(&r.kind) {
        Some(Kind::Paused) => Some(Block::Paused(text)),
        Some(Kind::OutsideWindow) => Some(Block::Window(text)),
        Some(Kind::Cooldown) => Some(Block::Cooldown(r.retry_after.unwrap_or(Duration::ZERO))),
        Some(Kind::ClusterUnhealthy) => Some(Block::Policy(text)),
        Some(Kind::SemaphoreFull) => Some(Block::NoSlot(text)),
        Some(_) => None,
        None if r.status == 423 => Some(Block::NoSlot(text)),
        None if r.status >= 500 => None,
        None => Some(Block::FleetLock(format!("{}: {text}", r.kind))),
    }
}

/// `rebootctl run` starting with `lock_backend: fleetlock`: a
/// `steady-state` first, as Zincati sends on start, so a hold left by a
/// crash before the reboot is given back. Skipped while a reboot of this
/// host is pending (the post-reboot check releases that hold once the host
/// is healthy) and while the intent of a commit cut short is left (the
/// first pass undoes its `pre_reboot` hook, then gives the hold back: a
/// drained host keeps its slot until it is undrained). A failure is only
/// logged: a later grant to the same id is recursive, and the server frees
/// a stale hold after its max hold.
pub fn steady_state_on_start(cfg: &Config) {
    let Some(fl) = &cfg.fleetlock_client else {
        return;
    };
    let pending = state::read_record(&cfg.state_dir)
        .map(|r| r.is_some())
        .and_then(|rec| Ok(rec || state::read_intent(&cfg.state_dir)?.is_some()));
    match pending {
        Ok(false) => {}
        Ok(true) => return,
        Err(e) => {
            log::warn!("not sending the FleetLock steady-state on start: {e}");
            return;
        }
    }
    let result = Client::new(fl, &cfg.machine_id_file).and_then(|c| c.steady_state());
    match result {
        Ok(Answer::Ok) => log::info!(
            event = "fleetlock_steady_state";
            "FleetLock server {}: steady-state confirmed", fl.url
        ),
        Ok(Answer::Refused(r)) => {
            log::warn!(
                "FleetLock server {}: steady-state on start refused: {r}",
                fl.url
            )
        }
        Err(e) => log::warn!("FleetLock steady-state on start failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, kind: &str) -> Refused {
        Refused {
            status,
            kind: kind.into(),
            value: "why".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
    }

    #[test]
    fn refusals_map_onto_the_gates_or_errors() {
        let cases: [(u16, &str, Option<&str>); 10] = [
            (409, "paused", Some("paused")),
            (409, "outside_window", Some("window")),
            (409, "cooldown", Some("cooldown")),
            (409, "cluster_unhealthy", Some("policy")),
            (423, "semaphore_full", Some("lock")),
            (503, "unavailable", None),
            (401, "unauthorized", None),
            (423, "lock_held", Some("lock")),
            (500, "failed_lock", None),
            (409, "other_servers_kind", Some("fleetlock")),
        ];
        for (status, kind, label) in cases {
            let got = refusal_block(&refused(status, kind), "http://x/");
            assert_eq!(got.as_ref().map(Block::label), label, "{kind}");
        }
        assert_eq!(
            refusal_block(&refused(409, "cooldown"), "u"),
            Some(Block::Cooldown(Duration::from_secs(7)))
        );
    }
}

//! Step 8 of the pass: the commit to a reboot, in the one order that leaves
//! nothing behind on a path that does not reboot:
//!
//! 1. the reboot lease (cluster mode), reserved before anything runs;
//! 2. the intent, written durably into `state_dir`: while it exists the
//!    reboot command has not run, so a `pre_reboot` hook that this process
//!    does not live to undo is undone by the next start;
//! 3. the Alertmanager silences of `alerts.silence_during_reboot` (before
//!    the hook: the alerts a drain causes are the reboot's too), then the
//!    `pre_reboot` hook;
//! 4. the reboot record (what the next boot completes), with the
//!    boot-time clock that gives it up if the reboot never happens;
//! 5. the switch of the slot to phase rebooting, in one txn that proves it
//!    is still ours ([`Holding::into_rebooting`]);
//! 6. the intent removed, durably: only now may the reboot command run;
//! 7. the reboot command.
//!
//! A failure before 7 undoes what was done, in reverse: the record is
//! cleared, the silences are expired, the `post_reboot` hook undoes the `pre_reboot` hook while the
//! slot is still held (nobody else goes down while this node is drained),
//! the intent is cleared last (a crash during the undo leaves it for the
//! next start), then the slot is released.
//!
//! With `lock_backend: fleetlock` (issue 13) there is no etcd and no
//! [`Holding`]: the FleetLock server's [`Grant`] stands in for the slot. It
//! has no reboot lease and no switch (the server holds it in phase
//! rebooting from the start); it is kept once the intent is gone (step 6)
//! and given back, after the undo, on every path that does not reboot.

use crate::cluster::Cluster;
use crate::cluster::holding::{Holding, NotSwitched};
use crate::cluster::lock::Slot;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::host::actions::{self, Vars};
use crate::host::detector::Evidence;
use crate::host::notify::Notifier;
use crate::host::process;
use crate::host::reboot_log;
use crate::host::state::{self, Intent, RebootRecord};
use crate::pass::fleetlock::Grant;
use crate::pass::progress;
use crate::pass::report::PassEvent;

/// What the commit needs from the pass.
pub struct Commit<'a> {
    /// The running configuration.
    pub cfg: &'a Config,
    /// The etcd connection (cluster mode).
    pub cluster: Option<&'a Cluster>,
    /// Where `reboot_started` and `reboot_failed` go.
    pub notifier: &'a Notifier,
    /// This boot's id.
    pub boot_id: &'a str,
    /// The detectors that require the reboot.
    pub reason: &'a [String],
    /// Placeholders and environment of the hook and the command.
    pub vars: &'a Vars,
    /// What the detectors saw, kept in the record: the same evidence after
    /// the reboot does not cause another one.
    pub evidence: Vec<Evidence>,
}

/// How the commit ended when no error stopped it.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Committed {
    /// The reboot command ran and returned success.
    RebootIssued,
    /// The `pre_reboot` hook failed; it was undone and the slot released.
    HookFailed(String),
    /// The intent could not be written: nothing ran, the slot was released.
    StateDir(String),
    /// The reboot's alert silence could not be created under
    /// `silence_failure: block`: nothing ran, the slot was released.
    SilenceFailed(String),
}

impl Commit<'_> {
    /// Runs the commit with the slot held in phase checking (None in local
    /// mode and with a FleetLock server), or with the FleetLock server's
    /// `grant` (None but with `lock_backend: fleetlock`). Every return but
    /// [`Committed::RebootIssued`] has given the slot or the grant back and
    /// undone the hook, except a failed reboot command, after which both
    /// stay held as for a reboot; no error path runs the reboot command.
    pub fn run(
        &self,
        mut holding: Option<Holding>,
        grant: Option<Grant>,
        events: &mut Vec<PassEvent>,
    ) -> Result<Committed> {
        if process::cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(h) = holding.as_mut() {
            h.reserve_reboot_lease(self.cfg.reboot_timeout)?;
        }
        let intent = Intent {
            node: self.cfg.node_name.clone(),
            boot_id: self.boot_id.to_string(),
            pid: std::process::id(),
            at: crate::time::timestamp_now(),
            reason: self.reason.to_vec(),
        };
        if let Err(e) = state::write_intent(&self.cfg.state_dir, &intent) {
            // Nothing ran yet; the slot goes back with `holding` (or
            // `grant`). An intent renamed into place before a failed sync
            // must not make the next start undo a hook that never ran.
            let _ = state::clear_intent(&self.cfg.state_dir);
            return Ok(Committed::StateDir(e.to_string()));
        }
        let silences = match self.silence() {
            Ok(ids) => ids,
            Err(reason) => {
                // Nothing ran yet; the slot goes back with `holding` (or `grant`).
                if let Err(e) = state::clear_intent(&self.cfg.state_dir) {
                    log::error!("{e}");
                }
                return Ok(Committed::SilenceFailed(reason));
            }
        };
        if let Some(hook) = &self.cfg.hooks.pre_reboot {
            if let Err(e) =
                actions::run_hook("pre_reboot hook", hook, self.vars, self.cfg.hooks.timeout)
            {
                log::warn!("{e}; not rebooting");
                // A half-done drain must not stay: undo it as after an abort.
                self.abandon(false, &silences);
                drop(holding);
                drop(grant);
                return Ok(Committed::HookFailed(e.to_string()));
            }
        }
        let slot = holding
            .as_ref()
            .map(|h| (h.slot().key.clone(), h.slot().create_revision));
        let written = self.write_record(slot, &silences).and_then(|()| {
            if process::cancelled() {
                return Err(Error::Cancelled);
            }
            Ok(())
        });
        if let Err(e) = written {
            // Cleared even if the write failed: a rename that happened
            // before a failed directory sync leaves the record behind.
            self.abandon(true, &silences);
            drop(holding);
            drop(grant);
            return Err(e);
        }
        let rebooting = match holding.map(Holding::into_rebooting) {
            None => None,
            Some(Ok(slot)) => Some(slot),
            Some(Err(not)) => {
                let NotSwitched { holding, error } = *not;
                self.abandon(true, &silences);
                drop(holding);
                drop(grant);
                return Err(error);
            }
        };
        if let (Some(c), Some(_)) = (self.cluster, &rebooting) {
            if let Err(e) = c.record_history("reboot_started", self.boot_id) {
                log::warn!("cannot record the history entry: {e}");
            }
        }
        if let Err(e) = state::clear_intent(&self.cfg.state_dir) {
            // The reboot command must not run while the intent says it
            // has not: the next start would undo the hook of a host that
            // is going down.
            self.abandon(true, &silences);
            self.release_rebooting(rebooting.as_ref());
            drop(grant);
            return Err(e);
        }
        // FleetLock client: the grant now covers the reboot, given back
        // after the post-reboot check (or when the reboot is given up).
        if let Some(g) = grant {
            g.keep();
        }
        self.reboot(events)?;
        Ok(Committed::RebootIssued)
    }

    /// Step 3: creates the reboot's Alertmanager silences, long enough for
    /// the hook and the reboot; the error is the block's text under
    /// `silence_failure: block`.
    fn silence(&self) -> std::result::Result<Vec<String>, String> {
        let Some(alerts) = &self.cfg.alerts else {
            return Ok(Vec::new());
        };
        let hook = match self.cfg.hooks.pre_reboot {
            Some(_) => self.cfg.hooks.timeout,
            None => std::time::Duration::ZERO,
        };
        crate::alerts::silence_for_reboot(alerts, &self.vars.0, self.cfg.reboot_timeout + hook)
    }

    /// Step 4: the reboot record, with the boot-time clock and the ids of
    /// the silences to expire once back.
    fn write_record(&self, slot: Option<(String, i64)>, silences: &[String]) -> Result<()> {
        let (slot, slot_create_revision) = slot.unzip();
        state::write_record(
            &self.cfg.state_dir,
            &RebootRecord {
                node: self.cfg.node_name.clone(),
                boot_id: self.boot_id.to_string(),
                slot,
                at: crate::time::timestamp_now(),
                reason: self.reason.to_vec(),
                boottime_ms: Some(state::boottime_ms()?),
                completion: None,
                silences: silences.to_vec(),
                slot_create_revision,
                uptime_ms: reboot_log::uptime_ms(),
                evidence: self.evidence.clone(),
            },
        )
    }

    /// Step 7: notifies, then runs the reboot command.
    fn reboot(&self, events: &mut Vec<PassEvent>) -> Result<()> {
        let argv = actions::expand(&self.cfg.reboot_command, self.vars);
        events.push(PassEvent::RebootStarted);
        log::info!(
            event = "reboot_started";
            "rebooting (required by {}): running {argv:?}",
            self.reason.join(", ")
        );
        self.notifier.send_with(
            "reboot_started",
            &format!(
                "{} is rebooting (required by {})",
                self.cfg.node_name,
                self.reason.join(", ")
            ),
            &self.vars.as_pairs(),
        );
        // Give the notification its chance before the host goes down.
        if let Some(n) = &self.cfg.notify {
            self.notifier.flush(n.timeout);
        }
        // The host may go down before the pass ends: say so now.
        if let Some(c) = self.cluster {
            let facts = progress::Facts {
                reboot_required: Some(true),
                completed: false,
                block: None,
            };
            progress::publish(c, &facts);
        }
        if let Err(e) = actions::run_reboot_command(&self.cfg.reboot_command, self.vars) {
            events.push(PassEvent::RebootFailed);
            self.notifier.send_with(
                "reboot_failed",
                &format!("{}: the reboot command failed: {e}", self.cfg.node_name),
                &self.vars.as_pairs(),
            );
            return Err(e);
        }
        Ok(())
    }

    /// Undoes a commit that will not reboot: the record (when it may have
    /// been written), the silences, the `pre_reboot` hook, then the intent.
    /// The caller releases the slot afterwards.
    fn abandon(&self, record_written: bool, silences: &[String]) {
        if record_written {
            if let Err(e) = state::clear_record(&self.cfg.state_dir) {
                log::error!("{e}");
            }
        }
        crate::alerts::expire_silences(self.cfg.alerts.as_ref(), silences);
        undo_pre_reboot(self.cfg, self.vars);
        if let Err(e) = state::clear_intent(&self.cfg.state_dir) {
            log::error!("{e}; the next start undoes the pre_reboot hook again");
        }
    }

    /// Gives back a slot already switched to phase rebooting by a commit
    /// that will not reboot.
    fn release_rebooting(&self, slot: Option<&Slot>) {
        if let (Some(c), Some(slot)) = (self.cluster, slot) {
            match c.lock.release(slot) {
                Ok(_) => log::info!(event = "slot_released"; "released lock slot {}", slot.key),
                Err(e) => log::warn!(
                    "cannot release lock slot {} (its lease expires after reboot_timeout_sec): {e}",
                    slot.key
                ),
            }
        }
    }
}

/// What the systemd unit's `TimeoutStopSec` must allow beyond
/// `hooks.timeout_sec`: a stop during the `pre_reboot` hook waits for the
/// cancelled hook (its kill grace), the undo (its timeout and kill grace),
/// the release of the slot and the last notification.
pub const STOP_MARGIN_SECS: u64 = 60;

/// After an aborted reboot, runs the `post_reboot` hook to undo the
/// `pre_reboot` hook (a drained node must not stay drained). A stopping
/// agent does not cancel it; it is bounded by `hooks.timeout_sec`, and the
/// systemd unit's `TimeoutStopSec` is that plus [`STOP_MARGIN_SECS`].
pub fn undo_pre_reboot(cfg: &Config, vars: &Vars) {
    if cfg.hooks.pre_reboot.is_none() {
        return;
    }
    match &cfg.hooks.post_reboot {
        Some(argv) => {
            log::warn!(
                event = "pre_reboot_undone";
                "the reboot was aborted after the pre_reboot hook; running the post_reboot hook to undo it"
            );
            if let Err(e) =
                actions::run_hook_to_completion("post_reboot hook", argv, vars, cfg.hooks.timeout)
            {
                log::error!("{e}");
            }
        }
        None => log::warn!(
            "the reboot was aborted after the pre_reboot hook, and no post_reboot hook is configured to undo it"
        ),
    }
}

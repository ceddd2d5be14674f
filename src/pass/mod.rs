//! `pass/` — the pass: gather → decide → act. It may import `cluster/`,
//! `host/` and the top-level leaves (`config`, `error`, `time`, `window`,
//! `backoff`, `logging`); never `agent/` or `cli/`.
//!
//! One pass of the agent (SPEC §5), in the order the spec fixes: post-reboot
//! completion, kill switch and pause, detectors, window and cooldown, health
//! and policies, the lock, the re-check under the lock, then the reboot.
//!
//! The pass gathers a [`PassReport`] that `run` logs and `status` prints. In
//! status mode the pass never acts (no hook, no record, no reboot, no slot
//! taken, nothing written to etcd) and evaluates every gate so the operator
//! sees all of them, while the outcome is still the first gate that blocks.
//!
//! Every path that leaves the pass while a slot is held in phase checking
//! releases it (one place: [`run_pass`]); only the switch to phase
//! rebooting keeps it.

pub mod gates;
pub mod outcome;
pub mod post_reboot;
pub mod report;

use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::cluster::Cluster;
use crate::cluster::lock::{Acquire, Keepalive, Slot, SlotPhase, SlotValue};
use crate::cluster::records::HealthRecord;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::host::actions::{self, Vars};
use crate::host::detector::{self, DetectorReport, Need};
use crate::host::health::{self, HealthReport, Phase};
use crate::host::notify::Notifier;
use crate::time::{human_age, human_duration};
use outcome::{Block, Outcome};

use crate::host::state::{self, LastReboot, RebootRecord};
use gates::{Gates, Verdict};
use post_reboot::PostReboot;
use report::{PassEvent, PassReport, StepState};

/// How a pass is run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Do everything but the reboot command (and the hooks).
    pub dry_run: bool,
    /// `rebootctl status`: act on nothing, evaluate every gate.
    pub status: bool,
    /// `status --skip-health`: do not run the health script.
    pub skip_health: bool,
    /// `status --skip-lock`: do not contact etcd.
    pub skip_lock: bool,
    /// Consecutive passes that found no free slot (`RC_LOCK_ATTEMPTS`).
    pub lock_attempts: u32,
}

struct Pass<'a> {
    cfg: &'a Config,
    opts: Options,
    boot_id: String,
    machine_id: String,
    cluster: Option<&'a Cluster>,
    notifier: &'a Notifier,
    gates: Gates,
    detectors: Vec<DetectorReport>,
    reboot_required: Option<bool>,
    holders: Vec<Slot>,
    events: Vec<PassEvent>,
    /// The slot this pass holds in phase checking, with its lease.
    held: Option<Held>,
    /// Whether this node holds a slot in phase rebooting.
    holding: bool,
    alerts: Option<crate::alerts::AlertsVerdict>,
}

struct Held {
    slot: Slot,
    lease: i64,
    keepalive: Keepalive,
}

/// Runs one pass and reports what happened. `cluster` is the etcd
/// connection in cluster mode (None in local mode or with `--skip-lock`);
/// `notifier` gets the reboot events. Errors are runtime failures (exit 1);
/// no error path runs the reboot command, and a slot held in phase checking
/// is released on every path.
pub fn run_pass(
    cfg: &Config,
    opts: Options,
    cluster: Option<&Cluster>,
    notifier: &Notifier,
) -> Result<PassReport> {
    let boot_id = state::read_boot_id(&cfg.boot_id_file)?;
    let mut pass = Pass {
        cfg,
        opts: Options {
            dry_run: opts.dry_run || opts.status || cfg.dry_run,
            ..opts
        },
        boot_id,
        machine_id: state::read_machine_id(&cfg.machine_id_file),
        cluster,
        notifier,
        gates: Gates::new(opts.status),
        detectors: Vec::new(),
        reboot_required: None,
        holders: Vec::new(),
        events: Vec::new(),
        held: None,
        holding: false,
        alerts: None,
    };
    let result = pass.run();
    // The one place a slot held while checking is given back.
    pass.release_held();
    let outcome = result?;
    Ok(PassReport {
        node: cfg.node_name.clone(),
        cluster: cfg.is_cluster(),
        dry_run: pass.opts.dry_run,
        steps: pass.gates.into_steps(),
        detectors: pass.detectors,
        reboot_required: pass.reboot_required,
        holders: pass.holders,
        holding_slot: pass.holding,
        outcome,
        events: pass.events,
        alerts: pass.alerts,
    })
}

/// Describes the holders of the lock for people: "web-2 (rebooting, 3m 12s)".
pub fn describe_holders(slots: &[Slot]) -> String {
    let now = Timestamp::now();
    slots
        .iter()
        .map(|s| match &s.value {
            Some(v) => {
                let age = human_age(&v.acquired_at, now);
                format!("{} ({}, {age})", v.node, v.phase.as_str())
            }
            None => format!("{} (unreadable value)", s.key),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Pass<'_> {
    fn step(&mut self, name: &'static str, state: StepState, detail: impl Into<String>) {
        self.gates.step(name, state, detail);
    }

    /// Records a closed gate; true when the pass must stop here.
    fn block(&mut self, name: &'static str, block: Block) -> bool {
        self.gates.block(name, block)
    }

    fn stop(&mut self) -> Outcome {
        self.gates.stop()
    }

    fn health_context(&self, phase: Phase) -> health::Context {
        health::Context {
            phase: if self.opts.status {
                Phase::Status
            } else {
                phase
            },
            dry_run: self.opts.dry_run,
            lock_held: self.held.is_some(),
            lock_attempts: self.opts.lock_attempts,
            skip_health: self.opts.skip_health,
            skip_lock: self.opts.skip_lock,
        }
    }

    fn vars(&self, reason: &[String]) -> Vars {
        Vars(vec![
            ("RC_NODE_NAME".into(), self.cfg.node_name.clone()),
            ("RC_BOOT_ID".into(), self.boot_id.clone()),
            ("RC_REASON".into(), reason.join(",")),
            ("RC_DRY_RUN".into(), self.opts.dry_run.to_string()),
            (
                "RC_LOCK_KEY".into(),
                self.cfg
                    .etcd
                    .as_ref()
                    .map(|e| e.lock_key.clone())
                    .unwrap_or_default(),
            ),
        ])
    }

    fn slot_value(&self, phase: SlotPhase) -> SlotValue {
        SlotValue {
            node: self.cfg.node_name.clone(),
            pid: std::process::id(),
            boot_id: self.boot_id.clone(),
            phase,
            acquired_at: crate::time::timestamp_now(),
            machine_id: self.machine_id.clone(),
        }
    }

    fn run_health(&mut self, phase: Phase) -> Result<HealthReport> {
        let ctx = self.health_context(phase);
        let report = health::check(self.cfg, &ctx)?;
        if !self.opts.skip_health {
            self.events.push(PassEvent::HealthChecked {
                phase: ctx.phase.as_str(),
                healthy: report.healthy,
            });
        }
        Ok(report)
    }

    fn run(&mut self) -> Result<Outcome> {
        if let Some(c) = self.cluster {
            if !self.opts.status {
                c.register(&self.machine_id)?;
            }
        } else if self.cfg.is_cluster() {
            self.step(
                "cluster",
                StepState::Skipped,
                "--skip-lock: etcd not contacted",
            );
        }
        // 1. Back from a reboot of our own?
        if self.post_reboot()? {
            return Ok(self.stop());
        }
        // 2. Kill switch, then the cluster pause.
        if self.kill_switch() || self.pause()? {
            return Ok(self.stop());
        }
        // 3. Detectors.
        let Some(reason) = self.detect() else {
            // Nothing to do or a detector failed; status still shows the
            // gates, but they do not change the outcome.
            if self.opts.status {
                // Shown, but they do not change the outcome.
                let before = self.gates.take_first();
                self.gates()?;
                self.show_lock()?;
                self.gates.restore_first(before);
            }
            return Ok(self.stop());
        };
        // 4-5. Window, cooldown, health, policies.
        if self.gates()? {
            return Ok(self.stop());
        }
        if self.opts.status {
            self.show_lock()?;
            if self.gates.is_blocked() {
                return Ok(self.stop());
            }
            return self.reboot(&reason);
        }
        // 6. The lock.
        if self.cluster.is_some() {
            if self.acquire()? {
                return Ok(self.stop());
            }
            // 7. Under the lock: everything again.
            if let Some(outcome) = self.recheck_under_lock()? {
                return Ok(outcome);
            }
        } else if !self.cfg.is_cluster() {
            self.step("lock", StepState::Skipped, "local mode: no lock");
        }
        // 8. Reboot.
        self.reboot(&reason)
    }

    /// Step 1. Returns true when the pass must stop.
    fn post_reboot(&mut self) -> Result<bool> {
        let record = state::read_record(&self.cfg.state_dir)?;
        let slot = match self.cluster {
            Some(c) => c
                .lock
                .find(&self.cfg.node_name)?
                .filter(|s| s.phase() == Some(SlotPhase::Rebooting)),
            None => None,
        };
        let now = Timestamp::now();
        let went_down_at = match post_reboot::classify(
            record.as_ref(),
            slot.as_ref(),
            &self.boot_id,
            &self.machine_id,
            now,
            self.cfg.reboot_timeout,
        ) {
            PostReboot::Nothing => return Ok(false),
            // Never ours to complete (two hosts sharing a node_name;
            // register refuses that too).
            PostReboot::OtherMachine {
                key,
                node,
                machine_id,
            } => {
                return Err(Error::NameConflict {
                    node,
                    theirs: machine_id,
                    mine: self.machine_id.clone(),
                    slot: Some(key),
                });
            }
            // Same boot: the reboot has not happened. It may still (a slow
            // or delayed shutdown), so the slot and the record stay until
            // reboot_timeout_sec has passed; only then is it given up.
            PostReboot::NotYet { went_down_at, left } => {
                self.holding = slot.is_some();
                return Ok(self.block(
                    "post-reboot",
                    Block::RebootPending(format!(
                        "the reboot issued at {went_down_at} has not happened yet (same boot id); given up in {}",
                        human_duration(left)
                    )),
                ));
            }
            PostReboot::TimedOut { went_down_at } => {
                self.give_up(&went_down_at, record.as_ref(), slot.as_ref())?;
                return Ok(false);
            }
            PostReboot::Back { went_down_at } => went_down_at,
        };
        self.holding = slot.is_some();
        // Back, but not complete until healthy and the post_reboot hook
        // passed: the host still counts as down, so its slot stays held,
        // its lease renewed to a full reboot_timeout_sec on every pass.
        if let (Some(c), Some(s), false) = (self.cluster, &slot, self.opts.status) {
            match c.client.lease_keepalive(s.lease) {
                Ok(Some(_)) => {}
                Ok(None) => log::warn!("the lease of {} is gone; the slot was freed", s.key),
                Err(e) => log::warn!("cannot renew the lease of {}: {e}", s.key),
            }
        }
        let report = self.run_health(Phase::PostReboot)?;
        if !report.healthy {
            return Ok(self.block("post-reboot", Block::PostRebootHealth(report.reason)));
        }
        if self.opts.status {
            self.step(
                "post-reboot",
                StepState::Info,
                format!("back from the reboot issued at {went_down_at}; healthy, the next pass completes it"),
            );
            return Ok(false);
        }
        if let Some(argv) = &self.cfg.hooks.post_reboot {
            let reason = record
                .as_ref()
                .map(|r| r.reason.clone())
                .unwrap_or_default();
            if let Err(e) = actions::run_hook(
                "post_reboot hook",
                argv,
                &self.vars(&reason),
                self.cfg.hooks.timeout,
            ) {
                log::warn!("{e}; keeping the slot and the record, retrying next pass");
                return Ok(self.block("post-reboot", Block::PostRebootHealth(e.to_string())));
            }
        }
        if let Some(c) = self.cluster {
            // The cooldown starts before the slot is free, so a node woken
            // by the release already sees it.
            c.start_cooldown(self.cfg.min_reboot_interval)?;
            if let Some(s) = &slot {
                c.lock.release(s)?;
                self.holding = false;
            }
            if let Err(e) = c.record_history("reboot_completed", &self.boot_id) {
                log::warn!("cannot record the history entry: {e}");
            }
        }
        state::write_last_reboot(
            &self.cfg.state_dir,
            &LastReboot {
                completed_at: crate::time::timestamp_now(),
            },
        )?;
        state::clear_record(&self.cfg.state_dir)?;
        if let Some(r) = &record {
            crate::alerts::expire_silences(self.cfg.alerts.as_ref(), &r.silences);
        }
        log::info!(event = "reboot_completed"; "reboot completed: back since the reboot issued at {went_down_at} and healthy");
        self.events.push(PassEvent::RebootCompleted);
        self.notifier.send(
            "reboot_completed",
            &format!("{} is back from its reboot and healthy", self.cfg.node_name),
        );
        self.step(
            "post-reboot",
            StepState::Ok,
            format!(
                "reboot issued at {went_down_at} completed; healthy{}",
                if slot.is_some() {
                    ", slot released"
                } else {
                    ""
                }
            ),
        );
        Ok(false)
    }

    /// Step 1 for a reboot that never happened (same boot after
    /// `reboot_timeout_sec`): releases the slot, clears the record and
    /// undoes the pre_reboot hook; status only says so.
    fn give_up(
        &mut self,
        went_down_at: &str,
        record: Option<&RebootRecord>,
        slot: Option<&Slot>,
    ) -> Result<()> {
        if self.opts.status {
            self.step(
                "post-reboot",
                StepState::Info,
                format!(
                    "the reboot issued at {went_down_at} did not happen; the next pass gives it up"
                ),
            );
            return Ok(());
        }
        log::warn!(
            event = "reboot_given_up";
            "the reboot issued at {went_down_at} never happened (boot id {} is still current after reboot_timeout_sec); releasing and clearing the record",
            self.boot_id
        );
        if let (Some(c), Some(s)) = (self.cluster, slot) {
            c.lock.release(s)?;
        }
        state::clear_record(&self.cfg.state_dir)?;
        // The record proves the pre_reboot hook ran: undo it.
        if let Some(r) = record {
            self.undo_pre_reboot(&self.vars(&r.reason));
            crate::alerts::expire_silences(self.cfg.alerts.as_ref(), &r.silences);
        }
        self.step(
            "post-reboot",
            StepState::Info,
            "gave up a reboot that never happened: released and cleared",
        );
        Ok(())
    }

    /// The kill switch. Returns true when the pass must stop.
    fn kill_switch(&mut self) -> bool {
        let path = &self.cfg.kill_switch_file;
        let verdict = gates::kill_switch(path, &path.try_exists());
        self.gates.gate("kill switch", verdict)
    }

    /// The cluster pause. Returns true when the pass must stop.
    fn pause(&mut self) -> Result<bool> {
        let Some(c) = self.cluster else {
            return Ok(false);
        };
        let paused = c.pause()?;
        let verdict = gates::pause(paused.as_ref().map(|(rec, ttl)| (rec, *ttl)));
        Ok(self.gates.gate("pause", verdict))
    }

    /// Step 3. Returns the detectors that require a reboot, or None.
    fn detect(&mut self) -> Option<Vec<String>> {
        let env = vec![("RC_NODE_NAME".to_string(), self.cfg.node_name.clone())];
        self.detectors = detector::run_all(&self.cfg.detectors, &env);
        match detector::decide(&self.detectors) {
            Need::Required { by } => {
                self.reboot_required = Some(true);
                self.step(
                    "detectors",
                    StepState::Ok,
                    format!("reboot required by {}", by.join(", ")),
                );
                Some(by)
            }
            Need::NotRequired => {
                self.reboot_required = Some(false);
                self.step("detectors", StepState::Ok, "no reboot required");
                None
            }
            Need::Unknown { failed } => {
                let _ = self.block("detectors", Block::DetectorFailed(failed));
                None
            }
        }
    }

    /// The window. Returns true when the pass must stop.
    fn window(&mut self) -> bool {
        let verdict = gates::window(&self.cfg.windows, Timestamp::now());
        self.gates.gate("window", verdict)
    }

    /// Steps 4-5 (window, cooldown, health, policies). Returns true when the pass must stop.
    fn gates(&mut self) -> Result<bool> {
        if self.window() || self.cooldown()? {
            return Ok(true);
        }
        if self.health_gate(Phase::PreLock)? || self.alerts_gate() {
            return Ok(true);
        }
        self.policies(false)
    }

    fn cooldown(&mut self) -> Result<bool> {
        let verdict = if let Some(c) = self.cluster {
            gates::cluster_cooldown(c.cooldown()?.map(|(_, left)| left))
        } else {
            let interval = self.cfg.min_reboot_interval;
            // Read only when a cooldown is configured.
            let last = if interval.is_zero() {
                None
            } else {
                state::read_last_reboot(&self.cfg.state_dir)?
                    .and_then(|l| l.completed_at.parse::<Timestamp>().ok())
            };
            gates::local_cooldown(interval, last, Timestamp::now())
        };
        Ok(self.gates.gate("cooldown", verdict))
    }

    fn health_gate(&mut self, phase: Phase) -> Result<bool> {
        if self.opts.skip_health {
            self.step("health", StepState::Skipped, "--skip-health");
            return Ok(false);
        }
        let report = self.run_health(phase)?;
        self.publish_health(&report, phase);
        let verdict = gates::health(report.healthy, report.reason);
        Ok(self.gates.gate("health", verdict))
    }

    /// The alert gate (Alertmanager, PromQL), when configured. Returns true
    /// when the pass must stop.
    fn alerts_gate(&mut self) -> bool {
        let Some(cfg) = &self.cfg.alerts else {
            return false;
        };
        let verdict = crate::alerts::check(cfg, &self.vars(&[]).0);
        let (blocked, summary) = (verdict.blocked(), verdict.summary());
        self.alerts = Some(verdict);
        if blocked {
            self.block("alerts", Block::Alerts(summary))
        } else {
            self.step("alerts", StepState::Ok, summary);
            false
        }
    }

    /// Publishes this node's health record (cluster mode, not in status).
    /// A failure is logged: the record is advisory for other nodes.
    fn publish_health(&self, report: &HealthReport, phase: Phase) {
        let Some(c) = self.cluster else { return };
        if self.opts.status {
            return;
        }
        let rec = HealthRecord {
            node: self.cfg.node_name.clone(),
            healthy: report.healthy,
            phase: phase.as_str().to_string(),
            reason: report.reason.clone(),
            checked_at: crate::time::timestamp_now(),
            boot_id: self.boot_id.clone(),
            reboot_required: self.reboot_required,
        };
        if let Err(e) = c.publish_health(&rec, self.cfg.health_publish_interval * 3) {
            log::warn!("cannot publish the health record: {e}");
        }
    }

    /// The cluster policies. Under the lock (`under_lock`), every other
    /// slot holder counts as down, not only those already rebooting: with
    /// several slots, two nodes checking at once could otherwise each count
    /// the other as up and go down together. Returns true when the pass
    /// must stop.
    fn policies(&mut self, under_lock: bool) -> Result<bool> {
        let Some(c) = self.cluster else {
            return Ok(false);
        };
        let (slots, _) = c.lock.holders()?;
        self.holders = slots;
        if self.cfg.cluster_policies.is_empty() && !self.opts.status {
            // Nothing to decide: spare etcd two reads of every node's
            // records per pass (with N nodes waiting for a slot, each
            // release would otherwise cost N of them). `status` still
            // shows the count.
            return Ok(self.gates.gate(
                "policies",
                Verdict::Open("no cluster policy configured".into()),
            ));
        }
        let nodes = c.node_states(&self.holders)?;
        let verdict = gates::policies(
            &self.cfg.node_name,
            nodes,
            &self.cfg.cluster_policies,
            under_lock,
        );
        Ok(self.gates.gate("policies", verdict))
    }

    /// Status: shows the lock without taking it.
    fn show_lock(&mut self) -> Result<()> {
        let Some(c) = self.cluster else {
            if !self.cfg.is_cluster() {
                self.step("lock", StepState::Skipped, "local mode: no lock");
            }
            return Ok(());
        };
        let (slots, _) = c.lock.holders()?;
        let total = c.lock.slot_count() as usize;
        let mine = slots.iter().any(|s| s.node() == self.cfg.node_name);
        let others: Vec<Slot> = slots
            .iter()
            .filter(|s| s.node() != self.cfg.node_name)
            .cloned()
            .collect();
        if mine {
            self.step(
                "lock",
                StepState::Info,
                format!("this node holds a slot: {}", describe_holders(&slots)),
            );
        } else if others.len() >= total {
            let _ = self.block(
                "lock",
                Block::NoSlot(format!(
                    "{} of {total} held: {}",
                    others.len(),
                    describe_holders(&others)
                )),
            );
        } else if others.is_empty() {
            self.step(
                "lock",
                StepState::Ok,
                format!("{total} of {total} slots free"),
            );
        } else {
            self.step(
                "lock",
                StepState::Ok,
                format!(
                    "{} of {total} free; held: {}",
                    total - others.len(),
                    describe_holders(&others)
                ),
            );
        }
        self.holders = slots;
        Ok(())
    }

    /// Step 6. Returns true when the pass must stop (no free slot).
    fn acquire(&mut self) -> Result<bool> {
        let Some(c) = self.cluster else {
            return Ok(false);
        };
        let Some(etcd) = &self.cfg.etcd else {
            return Ok(false);
        };
        let started = Instant::now();
        let lease = c.client.lease_grant(etcd.lock_ttl)?.id;
        let acquired = match c.lock.acquire(&self.slot_value(SlotPhase::Checking), lease) {
            Ok(a) => a,
            Err(e) => {
                let _ = c.client.lease_revoke(lease);
                return Err(e);
            }
        };
        match acquired {
            Acquire::Held(slot) => {
                let took = started.elapsed();
                self.events.push(PassEvent::SlotAcquired(took));
                log::info!(
                    event = "slot_acquired", lock_wait_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    attempt = self.opts.lock_attempts;
                    "took lock slot {} (lease {lease:x})", slot.key
                );
                self.step("lock", StepState::Ok, format!("took {}", slot.key));
                self.held = Some(Held {
                    keepalive: Keepalive::start(c.client.clone(), lease, etcd.lock_ttl),
                    slot,
                    lease,
                });
                Ok(false)
            }
            Acquire::Busy(holders) => {
                let _ = c.client.lease_revoke(lease);
                let text = describe_holders(&holders);
                self.holders = holders;
                Ok(self.block("lock", Block::NoSlot(format!("held by {text}"))))
            }
        }
    }

    /// Step 7: the need, the kill switch, the pause, the window and the
    /// health again, now that the slot is ours. Some(outcome) ends the pass
    /// (the slot is released by [`run_pass`]).
    fn recheck_under_lock(&mut self) -> Result<Option<Outcome>> {
        let env = vec![("RC_NODE_NAME".to_string(), self.cfg.node_name.clone())];
        let again = detector::run_all(&self.cfg.detectors, &env);
        match detector::decide(&again) {
            Need::Required { .. } => {}
            Need::NotRequired => {
                log::info!(
                    event = "need_vanished";
                    "the reboot is no longer required (re-checked under the lock); releasing the slot"
                );
                self.reboot_required = Some(false);
                self.detectors = again;
                self.step(
                    "re-check",
                    StepState::Info,
                    "no reboot required any more; slot released",
                );
                return Ok(Some(Outcome::NeedVanished));
            }
            Need::Unknown { failed } => {
                self.detectors = again;
                let _ = self.block("re-check", Block::DetectorFailed(failed));
                return Ok(Some(self.stop()));
            }
        }
        if self.kill_switch() || self.pause()? || self.window() || self.cooldown()? {
            return Ok(Some(self.stop()));
        }
        if self.health_gate(Phase::PostLock)? || self.alerts_gate() || self.policies(true)? {
            return Ok(Some(self.stop()));
        }
        if self.held.as_ref().is_some_and(|h| h.keepalive.lost()) {
            return Err(Error::LeaseLost {
                lease: "the lock slot's lease",
                during: " during the checks",
            });
        }
        Ok(None)
    }

    /// Gives back a slot held in phase checking (no-op otherwise).
    fn release_held(&mut self) {
        let Some(held) = self.held.take() else { return };
        let Some(c) = self.cluster else { return };
        drop(held.keepalive);
        match c.lock.release(&held.slot) {
            Ok(true) => log::info!(event = "slot_released"; "released lock slot {}", held.slot.key),
            Ok(false) => log::warn!("lock slot {} was no longer ours", held.slot.key),
            Err(e) => log::warn!(
                "cannot release lock slot {} (its lease will expire): {e}",
                held.slot.key
            ),
        }
        if let Err(e) = c.client.lease_revoke(held.lease) {
            log::warn!("cannot revoke lease {:x}: {e}", held.lease);
        }
    }

    /// Step 8.
    fn reboot(&mut self, reason: &[String]) -> Result<Outcome> {
        let vars = self.vars(reason);
        let argv = actions::expand(&self.cfg.reboot_command, &vars);
        if self.opts.dry_run {
            let hook = match &self.cfg.hooks.pre_reboot {
                Some(h) => format!("run pre_reboot hook {:?}, then ", actions::expand(h, &vars)),
                None => String::new(),
            };
            let release = if self.held.is_some() {
                " (slot released)"
            } else {
                ""
            };
            let silence = match &self.cfg.alerts {
                Some(a) if !a.silence_during_reboot.is_empty() => "create the alert silence, ",
                _ => "",
            };
            self.step(
                "reboot",
                StepState::Skipped,
                format!("dry-run: would {silence}{hook}run {argv:?}{release}"),
            );
            if !self.opts.status {
                log::info!("dry-run: every gate is open; would run {argv:?}{release}");
            }
            return Ok(Outcome::WouldReboot);
        }
        if crate::host::process::cancelled() {
            return Err(Error::Cancelled);
        }
        // The reboot lease exists before the hook runs, so nothing that can
        // fail on etcd's side is left between the hook and the switch.
        let reboot_lease = match (self.cluster, &self.held) {
            (Some(c), Some(_)) => Some(c.client.lease_grant(self.cfg.reboot_timeout)?.id),
            _ => None,
        };
        // Before the hook: the alerts a drain causes are the reboot's too.
        let silences = match self.silence_for_reboot(&vars) {
            Ok(ids) => ids,
            Err(block) => {
                self.revoke(reboot_lease);
                let _ = self.block("silence", block);
                return Ok(self.stop());
            }
        };
        if let Some(hook) = &self.cfg.hooks.pre_reboot {
            if let Err(e) =
                actions::run_hook("pre_reboot hook", hook, &vars, self.cfg.hooks.timeout)
            {
                log::warn!("{e}; not rebooting");
                self.revoke(reboot_lease);
                // A half-done drain must not stay: undo it as after an abort.
                self.undo_pre_reboot(&vars);
                crate::alerts::expire_silences(self.cfg.alerts.as_ref(), &silences);
                let _ = self.block("pre-reboot hook", Block::Hook(e.to_string()));
                return Ok(self.stop());
            }
            self.step("pre-reboot hook", StepState::Ok, "succeeded");
        }
        if let Err(e) = self.commit_to_reboot(reason, reboot_lease, &silences) {
            // Not rebooting: undo what the pre_reboot hook did.
            self.revoke(reboot_lease);
            if let Err(clear) = state::clear_record(&self.cfg.state_dir) {
                log::error!("{clear}");
            }
            self.undo_pre_reboot(&vars);
            crate::alerts::expire_silences(self.cfg.alerts.as_ref(), &silences);
            return Err(e);
        }
        self.events.push(PassEvent::RebootStarted);
        log::info!(
            event = "reboot_started";
            "rebooting (required by {}): running {argv:?}",
            reason.join(", ")
        );
        self.notifier.send(
            "reboot_started",
            &format!(
                "{} is rebooting (required by {})",
                self.cfg.node_name,
                reason.join(", ")
            ),
        );
        // Give the notification its chance before the host goes down.
        if let Some(n) = &self.cfg.notify {
            self.notifier.flush(n.timeout);
        }
        if let Err(e) = actions::run_reboot_command(&self.cfg.reboot_command, &vars) {
            self.events.push(PassEvent::RebootFailed);
            self.notifier.send(
                "reboot_failed",
                &format!("{}: the reboot command failed: {e}", self.cfg.node_name),
            );
            return Err(e);
        }
        self.step("reboot", StepState::Ok, format!("ran {argv:?}"));
        Ok(Outcome::RebootIssued)
    }

    /// Writes the reboot record, then turns the held slot into phase
    /// rebooting on `reboot_lease`, renewed first to its full TTL (the
    /// hook's time must not shorten it). After this succeeds, only the
    /// reboot command is left.
    fn commit_to_reboot(
        &mut self,
        reason: &[String],
        reboot_lease: Option<i64>,
        silences: &[String],
    ) -> Result<()> {
        if let (Some(c), Some(lease)) = (self.cluster, reboot_lease) {
            if c.client.lease_keepalive(lease)?.is_none() {
                return Err(Error::LeaseLost {
                    lease: "the reboot lease",
                    during: " during the pre_reboot hook",
                });
            }
        }
        state::write_record(
            &self.cfg.state_dir,
            &RebootRecord {
                node: self.cfg.node_name.clone(),
                boot_id: self.boot_id.clone(),
                slot: self.held.as_ref().map(|h| h.slot.key.clone()),
                at: crate::time::timestamp_now(),
                reason: reason.to_vec(),
                silences: silences.to_vec(),
            },
        )?;
        if crate::host::process::cancelled() {
            return Err(Error::Cancelled);
        }
        match reboot_lease {
            Some(lease) => self.switch_to_rebooting(lease),
            None => Ok(()),
        }
    }

    /// Creates the reboot's Alertmanager silences
    /// (`alerts.silence_during_reboot`), long enough for the hook and the
    /// reboot; a failure under `silence_failure: block` is the block.
    fn silence_for_reboot(&self, vars: &Vars) -> std::result::Result<Vec<String>, Block> {
        let Some(alerts) = &self.cfg.alerts else {
            return Ok(Vec::new());
        };
        let hook = match self.cfg.hooks.pre_reboot {
            Some(_) => self.cfg.hooks.timeout,
            None => Duration::ZERO,
        };
        crate::alerts::silence_for_reboot(alerts, &vars.0, self.cfg.reboot_timeout + hook)
            .map_err(Block::Alerts)
    }

    /// Revokes a lease this pass granted and will not use.
    fn revoke(&self, lease: Option<i64>) {
        if let (Some(c), Some(lease)) = (self.cluster, lease) {
            if let Err(e) = c.client.lease_revoke(lease) {
                log::warn!("cannot revoke lease {lease:x} (it expires by itself): {e}");
            }
        }
    }

    /// After an aborted reboot, runs the `post_reboot` hook to undo the
    /// `pre_reboot` hook (a drained node must not stay drained).
    fn undo_pre_reboot(&self, vars: &Vars) {
        if self.cfg.hooks.pre_reboot.is_none() {
            return;
        }
        match &self.cfg.hooks.post_reboot {
            Some(argv) => {
                log::warn!(
                    "the reboot was aborted after the pre_reboot hook; running the post_reboot hook to undo it"
                );
                // Not cancellable: a stopping agent must still undo a drain.
                if let Err(e) = actions::run_hook_to_completion(
                    "post_reboot hook",
                    argv,
                    vars,
                    self.cfg.hooks.timeout,
                ) {
                    log::error!("{e}");
                }
            }
            None => log::warn!(
                "the reboot was aborted after the pre_reboot hook, and no post_reboot hook is configured to undo it"
            ),
        }
    }

    /// Turns the held slot into phase rebooting on `lease` (of
    /// `reboot_timeout_sec`), in a txn that proves it is still ours.
    fn switch_to_rebooting(&mut self, lease: i64) -> Result<()> {
        let (Some(c), Some(held)) = (self.cluster, self.held.as_ref()) else {
            return Ok(());
        };
        if held.keepalive.lost() {
            return Err(Error::LeaseLost {
                lease: "the lock slot's lease",
                during: "",
            });
        }
        let value = SlotValue {
            acquired_at: held
                .slot
                .value
                .as_ref()
                .map(|v| v.acquired_at.clone())
                .unwrap_or_default(),
            ..self.slot_value(SlotPhase::Rebooting)
        };
        match c.lock.to_rebooting(&held.slot, &value, lease) {
            Ok(Some(slot)) => {
                // The slot now lives on the reboot lease: stop renewing the old one.
                if let Some(held) = self.held.take() {
                    drop(held.keepalive);
                    if let Err(e) = c.client.lease_revoke(held.lease) {
                        log::warn!("cannot revoke lease {:x}: {e}", held.lease);
                    }
                }
                log::info!(event = "slot_rebooting"; "lock slot {} is now in phase rebooting", slot.key);
                self.holding = true;
                if let Err(e) = c.record_history("reboot_started", &self.boot_id) {
                    log::warn!("cannot record the history entry: {e}");
                }
                Ok(())
            }
            // The caller revokes the unused lease.
            Ok(None) => Err(Error::SlotChanged {
                key: held.slot.key.clone(),
            }),
            Err(e) => Err(e),
        }
    }
}

//! `pass/` — the pass: gather → decide → act. It may import `cluster/`,
//! `host/`, `alerts/`, the FleetLock client of `fleetlock/` and the
//! top-level leaves (`config`, `error`, `time`, `window`, `backoff`,
//! `logging`, `matcher`, `exposition`); never `agent/` or `cli/`.
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
//! A slot held in phase checking is a [`Holding`]: every path that leaves
//! the pass drops it, which releases it; only the commit's switch to phase
//! rebooting ([`commit`]) keeps it.
//!
//! What the pass leaves in `state_dir` is what makes it safe to die at any
//! moment: the intent of the commit (a `pre_reboot` hook that no reboot
//! followed is undone by the next pass) and the reboot record with the
//! progress of its completion (a retried completion repeats nothing that
//! was done). A `state_dir` that cannot be written blocks the pass
//! (`state_dir`, exit 1) before anything is run or started.

pub mod commit;
pub mod fleetlock;
pub mod gates;
pub mod outcome;
pub mod post_reboot;
pub mod progress;
pub mod report;

use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::cluster::holding::{Holding, Taken};
use crate::cluster::lock::{Slot, SlotKind, SlotPhase, SlotValue};
use crate::cluster::records::HealthRecord;
use crate::cluster::{Cluster, CooldownStart};
use crate::config::{Config, DetectorKind};
use crate::error::{Error, Result};
use crate::host::actions::{self, Vars};
use crate::host::detector::{self, DetectorReport, Evidence, Need};
use crate::host::health::{self, HealthReport, Phase};
use crate::host::notify::Notifier;
use crate::host::process;
use crate::host::sessions::{self, LoggedIn};
use crate::time::{human_age, human_duration};
use outcome::{Block, Outcome};

use crate::host::reboot_log::{self, CompletedReboot, Moment};
use crate::host::state::{self, Completion, Intent, LastReboot, RebootRecord};
use commit::{Commit, Committed};
use gates::{Gates, Verdict};
use post_reboot::{Clocks, PostReboot};
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
    /// The slot this pass holds in phase checking; released when dropped.
    held: Option<Holding>,
    /// Whether this node holds a slot in phase rebooting.
    holding: bool,
    alerts: Option<crate::alerts::AlertsVerdict>,
    /// FleetLock client (issue 13): the slot the server granted this pass;
    /// given back when dropped, unless a reboot took it over.
    fleetlock_grant: Option<fleetlock::Grant>,
    users: Option<LoggedIn>,
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
        fleetlock_grant: None,
        users: None,
    };
    let result = pass.run();
    // The one place a slot held while checking is given back (the commit
    // takes it over when it gets that far); a FleetLock grant likewise.
    drop(pass.held.take());
    drop(pass.fleetlock_grant.take());
    let outcome = result?;
    let report = PassReport {
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
        users: pass.users,
    };
    // The one place this node's progress reaches its registry record.
    if let (Some(c), false) = (cluster, opts.status) {
        progress::publish(c, &progress::Facts::of(&report));
    }
    Ok(report)
}

/// Time a slot in phase checking may take on top of the lock TTL and of
/// what runs under it: the etcd reads and writes of the re-check and of
/// the switch to phase rebooting.
pub const CHECKING_MARGIN: Duration = Duration::from_secs(30);

/// How long this node may hold a slot in phase checking before it is given
/// up (its lease no longer renewed but revoked, the pass failed): the lock
/// TTL, plus every child that runs under the slot — the command detectors
/// of the re-check, the post-lock health script, the `pre_reboot` hook —
/// each with its timeout and the most [`process::run`] overruns it, plus
/// every request of the alert gate and of the reboot's silences (with
/// `alerts.timeout_sec`), plus [`CHECKING_MARGIN`]. A pass that takes
/// longer is stuck, and must not wedge the fleet.
pub fn checking_deadline(cfg: &Config) -> Duration {
    let overrun = process::MAX_OVERRUN;
    let children = cfg
        .detectors
        .iter()
        .filter_map(|d| match &d.kind {
            DetectorKind::Command { timeout, .. } => Some(*timeout),
            // A preset runs at most one command (needs-restarting, dnf or
            // zypper) besides its file and kernel checks.
            DetectorKind::Distro { timeout, .. } => Some(*timeout),
            DetectorKind::File { .. } | DetectorKind::Kernel { .. } => None,
        })
        .chain(cfg.health_script.as_ref().map(|_| cfg.health_timeout))
        .chain(cfg.hooks.pre_reboot.as_ref().map(|_| cfg.hooks.timeout));
    let lock_ttl = cfg.etcd.as_ref().map(|e| e.lock_ttl).unwrap_or_default();
    let children = children.fold(lock_ttl.saturating_add(CHECKING_MARGIN), |sum, t| {
        sum.saturating_add(t).saturating_add(overrun)
    });
    let alerts = cfg.alerts.as_ref().map_or(Duration::ZERO, |a| {
        a.timeout.saturating_mul(alert_requests(a))
    });
    children.saturating_add(alerts)
}

/// The most HTTP requests the alert gate and the reboot's silences make
/// under a slot: per `block_on` entry (or the one "any alert" query) one
/// query and one per `ignore` entry; one query per `block_if` expression;
/// per silence its creation and, when a later one fails, its expiry.
fn alert_requests(a: &crate::config::AlertsConfig) -> u32 {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let alertmanager = if a.alertmanager_url.is_some() {
        let queries = count(a.block_on.len().max(1)).saturating_mul(count(a.ignore.len() + 1));
        queries.saturating_add(count(a.silence_during_reboot.len()).saturating_mul(2))
    } else {
        0
    };
    let prometheus = if a.prometheus_url.is_some() {
        count(a.block_if.len())
    } else {
        0
    };
    alertmanager.saturating_add(prometheus)
}

/// The log entry of the reboot `record` describes, completed now in boot
/// `boot_id`.
fn completed_reboot(record: &RebootRecord, boot_id: &str) -> CompletedReboot {
    CompletedReboot {
        issued: Moment {
            boot_id: record.boot_id.clone(),
            at: record.at.clone(),
            uptime_ms: record.uptime_ms,
        },
        completed: Moment::now(boot_id),
        evidence: record.evidence.clone(),
        ineffective_notified: false,
        need_gone: false,
        given_up: false,
    }
}

/// Describes the holders of the lock for people: "web-2 (rebooting, 3m 12s)".
pub fn describe_holders(slots: &[Slot]) -> String {
    let now = Timestamp::now();
    slots
        .iter()
        .map(|s| match &s.value {
            Some(v) if v.kind == SlotKind::Mutex => {
                let who = if v.node.is_empty() { &s.key } else { &v.node };
                match v.acquired_at.as_str() {
                    "" => format!("{who} (mutex owner)"),
                    at => format!("{who} (mutex owner, {})", human_age(at, now)),
                }
            }
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
            lock_held: self.held.is_some() || self.fleetlock_grant.is_some(),
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
            kind: SlotKind::Agent,
            limit: 0, // the lock writes its own
            node: self.cfg.node_name.clone(),
            pid: std::process::id(),
            boot_id: self.boot_id.clone(),
            phase,
            acquired_at: crate::time::timestamp_now(),
            machine_id: self.machine_id.clone(),
            group: String::new(),
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
        // Another machine registered this node's name: still complete a
        // reboot of our own (step 1 proves it), then stop.
        let mut registered_elsewhere = None;
        if let Some(c) = self.cluster {
            if !self.opts.status {
                match c.register(&self.machine_id) {
                    Ok(()) => {}
                    Err(e @ Error::NameConflict { .. }) => {
                        registered_elsewhere = Some(e.to_string())
                    }
                    Err(e) => return Err(e),
                }
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
        // 1b. Another host claiming this node's name?
        if self.name_conflict(registered_elsewhere)? {
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
        // 3b. The same need again after a reboot, or too many reboots.
        if self.loop_guard()? {
            return Ok(self.stop());
        }
        // 4-5. Window, cooldown, health, policies; and a state_dir that
        // can take the intent and the record, before any slot is taken.
        if self.gates()? || self.state_dir_gate() {
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
        } else if self.cfg.fleetlock_client.is_some() {
            // FleetLock client (issue 13): the server's lock, then step 7.
            if self.fleetlock_lock()? {
                return Ok(self.stop());
            }
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
        let mut record = state::read_record(&self.cfg.state_dir)?;
        let mut slot = match self.cluster {
            Some(c) => c
                .lock
                .find(&self.cfg.node_name)?
                .filter(|s| s.phase() == Some(SlotPhase::Rebooting)),
            None => None,
        };
        // A commit cut short: its intent says the reboot command never ran.
        if let Some(intent) = state::read_intent(&self.cfg.state_dir)? {
            let rebooted = record.as_ref().is_some_and(|r| r.boot_id != self.boot_id);
            if !rebooted {
                if self.undo_interrupted(&intent, record.as_ref(), slot.as_ref())?
                    || self.opts.status
                {
                    return Ok(!self.opts.status);
                }
                // Undone: the record is cleared and a slot it owned
                // released. A slot in phase rebooting under this name that
                // it did not own is another host's: classified below (a
                // name conflict), never taken over by this pass.
                if slot
                    .as_ref()
                    .zip(record.as_ref())
                    .is_some_and(|(s, r)| post_reboot::owns(r, s))
                {
                    slot = None;
                }
                record = None;
            }
            // The host went down after the record was written, though not
            // by the reboot command: completed below like any reboot (its
            // post_reboot hook is the undo), which clears the intent too.
        }
        // etcd's clock for a reboot of this boot that has not happened.
        let slot_left = match (self.cluster, &slot) {
            (Some(c), Some(s)) if s.value.as_ref().is_some_and(|v| v.boot_id == self.boot_id) => {
                c.slot_time_left(s)?
            }
            _ => None,
        };
        let clocks = Clocks {
            cluster: self.cluster.is_some(),
            slot_left,
            boottime: state::boottime()?,
        };
        let went_down_at = match post_reboot::classify(
            record.as_ref(),
            slot.as_ref(),
            &self.boot_id,
            clocks,
            self.cfg.reboot_timeout,
        ) {
            PostReboot::Nothing => return Ok(false),
            // Never ours to complete or release: no health check, no hook.
            PostReboot::NotOurs {
                key,
                boot_id,
                machine_id,
            } => {
                let ends = slot
                    .as_ref()
                    .and_then(|s| self.cluster.map(|c| (c, s.lease)))
                    .and_then(|(c, lease)| c.client.lease_time_to_live(lease).ok().flatten())
                    .map(|t| {
                        format!(
                            "; its lease ends in {}",
                            human_duration(Duration::from_secs(t.max(0).unsigned_abs()))
                        )
                    })
                    .unwrap_or_default();
                return Ok(self.block(
                    "post-reboot",
                    Block::NameConflict(format!(
                        "{key} is in phase rebooting under node name {} (boot id {boot_id}, machine id {}), but this host has no record of that reboot: another host uses this node_name, or this host lost its state_dir; not touching it{ends}",
                        self.cfg.node_name,
                        if machine_id.is_empty() { "unknown" } else { &machine_id },
                    )),
                ));
            }
            // Same boot: the reboot has not happened. It may still (a slow
            // or delayed shutdown), so the slot and the record stay until
            // reboot_timeout_sec has passed; only then is it given up.
            PostReboot::NotYet { went_down_at, left } => {
                self.holding = slot.is_some();
                return Ok(self.reboot_pending(&went_down_at, left));
            }
            PostReboot::NoClock { went_down_at } => {
                self.holding = slot.is_some();
                return self.restart_the_wait(&went_down_at, record);
            }
            PostReboot::TimedOut { went_down_at } => {
                return self.give_up(&went_down_at, record.as_ref(), slot.as_ref());
            }
            PostReboot::Back { went_down_at } => went_down_at,
        };
        self.holding = slot.is_some();
        // Back, but not complete until healthy and the post_reboot hook
        // passed: the host still counts as down, so its slot stays held,
        // its lease renewed to a full reboot_timeout_sec on every pass.
        if let (Some(c), Some(s), false) = (self.cluster, &slot, self.opts.status) {
            match c.renew_slot(s) {
                Ok(true) => {}
                Ok(false) => log::warn!("the lease of {} is gone; the slot was freed", s.key),
                Err(e) => log::warn!("cannot renew the lease of {}: {e}", s.key),
            }
        }
        if let Some((rec, done)) = record
            .as_ref()
            .and_then(|r| r.completion.clone().map(|d| (r.clone(), d)))
        {
            if let Some(problem) = self.state_dir_problem() {
                return Ok(self.block("post-reboot", Block::StateDir(problem)));
            }
            if self.opts.status {
                self.step(
                    "post-reboot",
                    StepState::Info,
                    format!(
                        "back from the reboot issued at {went_down_at}; its post_reboot hook ran at {}, the next pass finishes the completion",
                        done.at
                    ),
                );
                return Ok(false);
            }
            log::info!(
                "resuming the completion of the reboot issued at {went_down_at}: its post_reboot hook already ran at {}",
                done.at
            );
            return self.finish_completion(rec, done, slot.as_ref(), &went_down_at);
        }
        let report = self.run_health(Phase::PostReboot)?;
        if !report.healthy {
            return Ok(self.block("post-reboot", Block::PostRebootHealth(report.reason)));
        }
        // Nothing runs before state_dir is known to take the progress: a
        // completion that cannot be recorded would repeat itself (hook,
        // cooldown) on every retry.
        if let Some(problem) = self.state_dir_problem() {
            return Ok(self.block("post-reboot", Block::StateDir(problem)));
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
        // The hook is done: from here on a retry resumes, never repeats it.
        // The cooldown's lease is granted now and recorded with it, so a
        // retry puts the cooldown on this lease or on none.
        let mut done = Completion {
            at: crate::time::timestamp_now(),
            cooldown_lease: None,
        };
        let mut granted = Ok(());
        if let (Some(c), false) = (self.cluster, self.cfg.min_reboot_interval.is_zero()) {
            match c.cooldown_lease(self.cfg.min_reboot_interval) {
                Ok(lease) => done.cooldown_lease = Some(lease),
                Err(e) => granted = Err(e),
            }
        }
        // Back comes only with a record (a slot alone is never ours).
        let Some(record) = record else {
            return Ok(false);
        };
        let rec = RebootRecord {
            completion: Some(done.clone()),
            ..record
        };
        if let Err(e) = state::write_record(&self.cfg.state_dir, &rec) {
            log::error!(
                "{e}: the post_reboot hook ran but its completion cannot be recorded; it runs again once state_dir can be written"
            );
            return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
        }
        granted?;
        self.finish_completion(rec, done, slot.as_ref(), &went_down_at)
    }

    /// The rest of a completion once the `post_reboot` hook is done (`done`
    /// is in `record`), in the order that makes a retry repeat nothing:
    /// the cooldown on its one recorded lease (never a new one, never
    /// extended), the release, the history entry keyed by the recorded
    /// time, `last-reboot.json` with that time, then the intent and the
    /// record cleared. Returns true when the pass must stop.
    fn finish_completion(
        &mut self,
        mut record: RebootRecord,
        done: Completion,
        slot: Option<&Slot>,
        went_down_at: &str,
    ) -> Result<bool> {
        if let Some(c) = self.cluster {
            let interval = self.cfg.min_reboot_interval;
            let lease = match (done.cooldown_lease, interval.is_zero()) {
                (Some(lease), _) => Some(lease),
                (None, true) => None,
                // Granting failed after the hook: once, now, recorded first.
                (None, false) => {
                    let lease = c.cooldown_lease(interval)?;
                    record.completion = Some(Completion {
                        cooldown_lease: Some(lease),
                        ..done.clone()
                    });
                    if let Err(e) = state::write_record(&self.cfg.state_dir, &record) {
                        return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
                    }
                    Some(lease)
                }
            };
            // The cooldown starts before the slot is free, so a node woken
            // by the release already sees it.
            if let Some(lease) = lease {
                match c.start_cooldown_on(lease, &done.at, interval)? {
                    CooldownStart::Started => log::info!(
                        event = "cooldown_started";
                        "cluster cooldown of {} started", human_duration(interval)
                    ),
                    CooldownStart::AlreadyRunning => {}
                    CooldownStart::Over => log::info!(
                        "the cluster cooldown started at {} is already over; not starting another",
                        done.at
                    ),
                }
            }
            if let Some(s) = slot {
                c.lock.release(s)?;
                self.holding = false;
            }
            if let Err(e) = c.record_history_at("reboot_completed", &self.boot_id, &done.at) {
                log::warn!("cannot record the history entry: {e}");
            }
        }
        // FleetLock client (issue 13): the slot goes back here, as an
        // agent's does above; an error keeps the record, so the next pass
        // resumes the completion (steady-state is idempotent).
        self.fleetlock_steady_state()?;
        // Expiring twice is harmless (a retry after a failed clear); the
        // reboot log keeps one entry per reboot (keyed by when it was issued).
        crate::alerts::expire_silences(self.cfg.alerts.as_ref(), &record.silences);
        if let Err(e) = reboot_log::append(
            &self.cfg.state_dir,
            completed_reboot(&record, &self.boot_id),
        ) {
            return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
        }
        let cleared = state::write_last_reboot(
            &self.cfg.state_dir,
            &LastReboot {
                completed_at: done.at.clone(),
            },
        )
        .and_then(|()| state::clear_intent(&self.cfg.state_dir))
        .and_then(|()| state::clear_record(&self.cfg.state_dir));
        if let Err(e) = cleared {
            return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
        }
        log::info!(event = "reboot_completed"; "reboot completed: back since the reboot issued at {went_down_at} and healthy");
        self.events.push(PassEvent::RebootCompleted);
        self.notifier.send(
            "reboot_completed",
            &format!("{} is back from its reboot and healthy", self.cfg.node_name),
        );
        self.notify_node_back(went_down_at, slot.is_some(), Some(&record));
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

    /// Step 1 while the reboot of this boot may still happen; true.
    fn reboot_pending(&mut self, went_down_at: &str, left: std::time::Duration) -> bool {
        self.block(
            "post-reboot",
            Block::RebootPending(format!(
                "the reboot issued at {went_down_at} has not happened yet (same boot id); given up in {}",
                human_duration(left)
            )),
        )
    }

    /// Step 1 for a reboot of this boot with no clock to measure the wait
    /// by: stamps the record with the boot-time clock, so the full
    /// `reboot_timeout_sec` is counted from now (never given up at once).
    fn restart_the_wait(
        &mut self,
        went_down_at: &str,
        record: Option<RebootRecord>,
    ) -> Result<bool> {
        // Only a record has no clock (a slot without one is not ours).
        if let (Some(record), false) = (record, self.opts.status) {
            let rec = RebootRecord {
                boottime_ms: Some(state::boottime_ms()?),
                ..record
            };
            if let Err(e) = state::write_record(&self.cfg.state_dir, &rec) {
                return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
            }
            log::warn!(
                "the reboot issued at {went_down_at} has no usable boot-time stamp in its record; it is given up after a full reboot_timeout_sec from now"
            );
        }
        Ok(self.reboot_pending(went_down_at, self.cfg.reboot_timeout))
    }

    /// `node_back`: the node is back, healthy, its slot released, and how
    /// long it was down (from the reboot's record to now).
    fn notify_node_back(&self, went_down_at: &str, released: bool, record: Option<&RebootRecord>) {
        let down = went_down_at
            .parse::<Timestamp>()
            .map(|t| crate::time::secs_between(t, Timestamp::now()))
            .ok();
        let text = format!(
            "{} is back{}: healthy{}",
            self.cfg.node_name,
            down.map(|d| format!(" after {} down", human_duration(d)))
                .unwrap_or_default(),
            if released { ", slot released" } else { "" }
        );
        let mut vars = vec![(
            "RC_REASON",
            record.map(|r| r.reason.join(",")).unwrap_or_default(),
        )];
        vars.push(("RC_BOOT_ID", self.boot_id.clone()));
        if let Some(d) = down {
            vars.push(("RC_DOWN_SEC", d.as_secs().to_string()));
        }
        self.notifier.send_with("node_back", &text, &vars);
    }

    /// Step 1 for a reboot that never happened (same boot after
    /// `reboot_timeout_sec`; the reboot command failed, or succeeded
    /// without taking the host down): counts it in the reboot log as a
    /// given-up attempt (the daily cap), undoes the pre_reboot hook while
    /// the slot is still held, releases the slot and clears the record;
    /// then the pass ends (`reboot_given_up`): the next pass decides
    /// afresh, not this one that just drained and undrained the node.
    /// Status only says so. Returns true when the pass must stop.
    fn give_up(
        &mut self,
        went_down_at: &str,
        record: Option<&RebootRecord>,
        slot: Option<&Slot>,
    ) -> Result<bool> {
        if self.opts.status {
            self.step(
                "post-reboot",
                StepState::Info,
                format!(
                    "the reboot issued at {went_down_at} did not happen; the next pass gives it up"
                ),
            );
            return Ok(false);
        }
        // Not undone on every retry because the record cannot be cleared.
        if let Some(problem) = self.state_dir_problem() {
            self.holding = slot.is_some();
            return Ok(self.block("post-reboot", Block::StateDir(problem)));
        }
        log::warn!(
            event = "reboot_given_up";
            "the reboot issued at {went_down_at} never happened (boot id {} is still current after reboot_timeout_sec); releasing and clearing the record",
            self.boot_id
        );
        // Counted first (once: keyed by when it was issued), so that an
        // attempt that cannot be counted is not undone either, and a retry
        // of a give-up cut short is not counted twice.
        if let Some(r) = record {
            let attempt = CompletedReboot {
                given_up: true,
                ..completed_reboot(r, &self.boot_id)
            };
            if let Err(e) = reboot_log::append(&self.cfg.state_dir, attempt) {
                self.holding = slot.is_some();
                return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
            }
        }
        // The record proves the pre_reboot hook ran: undo it.
        if let Some(r) = record {
            commit::undo_pre_reboot(self.cfg, &self.vars(&r.reason));
            crate::alerts::expire_silences(self.cfg.alerts.as_ref(), &r.silences);
        }
        if let (Some(c), Some(s)) = (self.cluster, slot) {
            // Its lease has run out: a failure only leaves it to etcd.
            if let Err(e) = c.lock.release(s) {
                log::warn!("cannot release lock slot {}: {e}", s.key);
            }
        }
        // FleetLock client (issue 13): the hold goes back too; a failure
        // leaves it to the server's max hold (the hook is not undone twice).
        self.fleetlock_give_back();
        if let Err(e) = state::clear_record(&self.cfg.state_dir) {
            return Ok(self.block("post-reboot", Block::StateDir(e.to_string())));
        }
        Ok(self.block(
            "post-reboot",
            Block::RebootGivenUp(format!(
                "the reboot issued at {went_down_at} never happened within reboot_timeout_sec; \
                 gave it up (pre_reboot hook undone, slot released); it counts toward max_reboots_per_day"
            )),
        ))
    }

    /// Step 1 for a commit cut short (the agent killed or stopped between
    /// the intent and the reboot command, on this boot or before a reboot
    /// that was not ours): undoes the pre_reboot hook, releases a slot the
    /// commit had switched (one its record owns, [`post_reboot::owns`];
    /// never one that only carries our name and machine id), clears the
    /// record and the intent. Returns true when the pass must stop; else
    /// it goes on (a rebooting slot left under our name is not ours: a
    /// name conflict).
    fn undo_interrupted(
        &mut self,
        intent: &Intent,
        record: Option<&RebootRecord>,
        slot: Option<&Slot>,
    ) -> Result<bool> {
        if self.opts.status {
            self.step(
                "pre-reboot",
                StepState::Info,
                format!(
                    "a reboot commit started at {} (pid {}) has not reached the reboot command; unless it is still running, the next pass undoes its pre_reboot hook",
                    intent.at, intent.pid
                ),
            );
            return Ok(false);
        }
        if let Some(problem) = self.state_dir_problem() {
            return Ok(self.block("pre-reboot", Block::StateDir(problem)));
        }
        log::warn!(
            event = "pre_reboot_interrupted";
            "the reboot commit started at {} by pid {} was cut short before the reboot command; undoing its pre_reboot hook",
            intent.at, intent.pid
        );
        commit::undo_pre_reboot(self.cfg, &self.vars(&intent.reason));
        // Only a slot our record names: the commit writes the record before
        // it switches the slot, so without one no rebooting slot is ours.
        // A slot under our name on the same machine id is not proof (cloned
        // images share both): it may be another host's reboot.
        if let (Some(c), Some(s), Some(r)) = (self.cluster, slot, record) {
            if post_reboot::owns(r, s) {
                match c.lock.release(s) {
                    Ok(_) => log::info!(event = "slot_released"; "released lock slot {}", s.key),
                    Err(e) => log::warn!(
                        "cannot release lock slot {} (its lease expires after reboot_timeout_sec): {e}",
                        s.key
                    ),
                }
            }
        }
        // FleetLock client (issue 13): the grant the commit held goes back
        // after the undo, as a slot does.
        self.fleetlock_give_back();
        let cleared = match record {
            Some(_) => state::clear_record(&self.cfg.state_dir),
            None => Ok(()),
        }
        .and_then(|()| state::clear_intent(&self.cfg.state_dir));
        if let Err(e) = cleared {
            return Ok(self.block("pre-reboot", Block::StateDir(e.to_string())));
        }
        self.step(
            "pre-reboot",
            StepState::Info,
            format!(
                "undid the pre_reboot hook of a reboot commit cut short at {}",
                intent.at
            ),
        );
        Ok(false)
    }

    /// Whether `state_dir` can take the intent and the record now: None,
    /// or the problem with its path and errno. `run` proves it with a
    /// small write; `status` only checks, writing nothing.
    fn state_dir_problem(&self) -> Option<String> {
        let checked = if self.opts.status {
            state::check_writable_without_writing(&self.cfg.state_dir)
        } else {
            state::check_writable(&self.cfg.state_dir)
        };
        checked.err().map(|e| e.to_string())
    }

    /// The state_dir gate before the lock. Returns true when the pass must stop.
    fn state_dir_gate(&mut self) -> bool {
        match self.state_dir_problem() {
            None => {
                let dir = self.cfg.state_dir.display().to_string();
                self.step("state dir", StepState::Ok, format!("{dir} writable"));
                false
            }
            Some(problem) => self.block("state dir", Block::StateDir(problem)),
        }
    }

    /// Step 1b (cluster mode): another host claims this node's name — it
    /// registered the name from another machine (`registered_elsewhere`),
    /// or it publishes this node's health record beside this agent
    /// ([`Cluster::name_conflict`]); `status` reads both from etcd. Returns
    /// true when the pass must stop.
    fn name_conflict(&mut self, registered_elsewhere: Option<String>) -> Result<bool> {
        let Some(c) = self.cluster else {
            return Ok(false);
        };
        let seen = match registered_elsewhere {
            Some(text) => Some(text),
            None if self.opts.status => c.name_conflict_seen(&self.machine_id)?,
            None => c.name_conflict(),
        };
        Ok(self.gates.gate("name conflict", gates::name_conflict(seen)))
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
                // A need seen after this is a new one (the loop guard).
                // Advisory: at worst a later need waits for clear-loop.
                if !self.opts.status {
                    if let Err(e) = reboot_log::mark_need_gone(&self.cfg.state_dir) {
                        log::warn!("{e}");
                    }
                }
                None
            }
            Need::Unknown { failed } => {
                let _ = self.block("detectors", Block::DetectorFailed(failed));
                None
            }
        }
    }

    /// What the detectors that require a reboot saw.
    fn evidence(&self) -> Vec<Evidence> {
        self.detectors
            .iter()
            .filter_map(|d| d.evidence.clone())
            .collect()
    }

    /// Step 3b: the reboot-loop guard and the daily cap, from the log of
    /// completed (and, for the cap, given-up) reboots in `state_dir`. Notifies `reboot_ineffective`
    /// once per completed reboot. Returns true when the pass must stop.
    fn loop_guard(&mut self) -> Result<bool> {
        let dir = &self.cfg.state_dir;
        let log = reboot_log::read(dir)?;
        let last = log.last_completed();
        let cleared = match (last, reboot_log::read_cleared(dir)?) {
            (Some(r), Some(c)) => c.reboot == r.id(),
            _ => false,
        };
        let verdict = gates::reboot_loop(&self.evidence(), last, cleared);
        if let (gates::Verdict::Closed(block), Some(r)) = (&verdict, last) {
            if !self.opts.status && !r.ineffective_notified {
                log::warn!(event = "reboot_ineffective"; "{block}");
                self.notifier.send(
                    "reboot_ineffective",
                    &format!("{}: {block}", self.cfg.node_name),
                );
                // Advisory: at worst it is notified again next pass.
                if let Err(e) = reboot_log::mark_notified(dir) {
                    log::warn!("{e}");
                }
            }
        }
        if self.gates.gate("reboot loop", verdict) {
            return Ok(true);
        }
        let ages = reboot_log::ages(&log.reboots, &Moment::now(&self.boot_id));
        let verdict = gates::reboot_cap(&ages, self.cfg.max_reboots_per_day);
        Ok(self.gates.gate("reboot cap", verdict))
    }

    /// The window. Returns true when the pass must stop.
    fn window(&mut self) -> bool {
        let verdict = gates::window(&self.cfg.windows, Timestamp::now());
        self.gates.gate("window", verdict)
    }

    /// Steps 4-5 (window, cooldown, health, policies). Returns true when the pass must stop.
    fn gates(&mut self) -> Result<bool> {
        if self.window() || self.cooldown()? || self.users_gate() {
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

    /// The logged-in users gate; in status mode the sessions are shown even
    /// when the gate is off. The postponement starts (in `state_dir`) when
    /// the gate first finds someone, and ends when it finds nobody.
    /// Returns true when the pass must stop.
    fn users_gate(&mut self) -> bool {
        let gate = &self.cfg.users;
        if !gate.block && !self.opts.status {
            return false;
        }
        let found = sessions::read(&gate.utmp_file);
        let now = Timestamp::now();
        let dir = &self.cfg.state_dir;
        let nobody = matches!(&found, Ok(s) if s.is_empty());
        let mut since = state::read_users_postponed(dir, &self.boot_id);
        if gate.block && !self.opts.status {
            if nobody && since.is_some() {
                if let Err(e) = state::clear_users_postponed(dir) {
                    log::warn!("{e}");
                }
                since = None;
            } else if !nobody && since.is_none() {
                let stamp = state::UsersPostponed {
                    since: now.to_string(),
                    boot_id: self.boot_id.clone(),
                };
                // Unrecorded, the postponement restarts next pass: logged,
                // never a reason to reboot sooner.
                if let Err(e) = state::write_users_postponed(dir, &stamp) {
                    log::warn!("{e}");
                }
                since = Some(now);
            }
        }
        self.users = Some(LoggedIn {
            gate: gate.block,
            utmp_file: gate.utmp_file.clone(),
            sessions: found.clone().unwrap_or_default(),
            error: found.as_ref().err().cloned(),
            waiting_since: since.filter(|_| !nobody).map(|t| t.to_string()),
            max_postpone_sec: gate.max_postpone.as_secs(),
        });
        if !gate.block {
            let who = match &found {
                Ok(s) if s.is_empty() => "nobody logged in".to_string(),
                Ok(s) => s
                    .iter()
                    .map(|s| s.describe(now))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => e.clone(),
            };
            self.step(
                "users",
                StepState::Info,
                format!("{who} (block_if_users_logged_in is off)"),
            );
            return false;
        }
        let verdict = gates::users(&found, gate.max_postpone, since.unwrap_or(now), now);
        if let (gates::Verdict::Open(why), false, false) = (&verdict, nobody, self.opts.status) {
            log::warn!(event = "users_postpone_expired"; "logged-in users: {why}");
        }
        self.gates.gate("users", verdict)
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
            // Stamped by publish_health.
            pid: 0,
            machine_id: self.machine_id.clone(),
            name_conflict: None,
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
            if self.cfg.fleetlock_client.is_some() {
                self.fleetlock_show(); // FleetLock client (issue 13)
            } else if !self.cfg.is_cluster() {
                self.step("lock", StepState::Skipped, "local mode: no lock");
            }
            return Ok(());
        };
        let state = c.lock.state()?;
        let total = state.limit(c.lock.slot_count()) as usize;
        let slots = state.holders();
        let is_mine = |s: &Slot| !s.is_mutex() && s.node() == self.cfg.node_name;
        let mine = slots.iter().any(is_mine);
        let others: Vec<Slot> = slots.iter().filter(|s| !is_mine(s)).cloned().collect();
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
        let budget = checking_deadline(self.cfg);
        match c.take_slot(&self.slot_value(SlotPhase::Checking), etcd.lock_ttl, budget)? {
            Taken::Held(holding) => {
                let took = started.elapsed();
                self.events.push(PassEvent::SlotAcquired(took));
                log::info!(
                    event = "slot_acquired", lock_wait_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    attempt = self.opts.lock_attempts;
                    "took lock slot {}", holding.slot().key
                );
                log::debug!(
                    "{} may stay in phase checking for {} at most",
                    holding.slot().key,
                    human_duration(budget)
                );
                self.step(
                    "lock",
                    StepState::Ok,
                    format!("took {}", holding.slot().key),
                );
                self.held = Some(*holding);
                Ok(false)
            }
            Taken::Busy(holders) => {
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
            // The evidence the reboot record keeps is the latest.
            Need::Required { .. } => self.detectors = again,
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
        if self.name_conflict(None)? || self.loop_guard()? {
            return Ok(Some(self.stop()));
        }
        if self.kill_switch() || self.pause()? || self.window() || self.cooldown()? {
            return Ok(Some(self.stop()));
        }
        if self.users_gate() {
            return Ok(Some(self.stop()));
        }
        if self.health_gate(Phase::PostLock)? || self.alerts_gate() || self.policies(true)? {
            return Ok(Some(self.stop()));
        }
        if let Some(e) = self
            .held
            .as_ref()
            .and_then(|h| h.lost_error(" during the checks"))
        {
            return Err(e);
        }
        Ok(None)
    }

    /// Step 8: the commit ([`commit`]), or in dry-run what it would do.
    fn reboot(&mut self, reason: &[String]) -> Result<Outcome> {
        let vars = self.vars(reason);
        let argv = actions::expand(&self.cfg.reboot_command, &vars);
        if self.opts.dry_run {
            let hook = match &self.cfg.hooks.pre_reboot {
                Some(h) => format!("run pre_reboot hook {:?}, then ", actions::expand(h, &vars)),
                None => String::new(),
            };
            let release = if self.held.is_some() || self.fleetlock_grant.is_some() {
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
        let commit = Commit {
            cfg: self.cfg,
            cluster: self.cluster,
            notifier: self.notifier,
            boot_id: &self.boot_id,
            reason,
            vars: &vars,
            evidence: self.evidence(),
        };
        let held = self.held.take();
        // FleetLock client (issue 13): no Holding, the server's grant instead.
        let grant = self.fleetlock_grant.take();
        let holds = held.is_some() || grant.is_some();
        match commit.run(held, grant, &mut self.events)? {
            Committed::RebootIssued => {
                if self.cfg.hooks.pre_reboot.is_some() {
                    self.step("pre-reboot hook", StepState::Ok, "succeeded");
                }
                self.holding = holds;
                self.step("reboot", StepState::Ok, format!("ran {argv:?}"));
                Ok(Outcome::RebootIssued)
            }
            Committed::HookFailed(e) => {
                let _ = self.block("pre-reboot hook", Block::Hook(e));
                Ok(self.stop())
            }
            Committed::StateDir(e) => {
                let _ = self.block("state dir", Block::StateDir(e));
                Ok(self.stop())
            }
            Committed::SilenceFailed(e) => {
                let _ = self.block("silence", Block::Alerts(e));
                Ok(self.stop())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> Config {
        let text = format!(
            "node_name: web-1\netcd_endpoints: [\"http://127.0.0.1:2379\"]\nlock_ttl_sec: 90\n{extra}"
        );
        crate::config::parse(&text, Path::new("/t.yaml")).expect("valid test config")
    }

    #[test]
    fn the_checking_deadline_covers_everything_that_runs_under_the_slot() {
        let secs = Duration::from_secs;
        let overrun = process::MAX_OVERRUN;
        let file_only = config(
            "reboot_required_detectors: [{type: file, path: /run/reboot-required}, {type: kernel}]\n",
        );
        assert_eq!(checking_deadline(&file_only), secs(90) + CHECKING_MARGIN);
        let everything = config(
            "reboot_required_detectors: [{type: command, cmd: [/bin/true], timeout_sec: 20}, \
             {type: command, cmd: [/bin/false]}]\n\
             health_script: /usr/local/bin/health\nhealth_timeout_sec: 30\n\
             hooks: {pre_reboot: [/bin/drain], timeout_sec: 120}\n",
        );
        // Two detectors (20 s and the default 10 s), the health script, the hook.
        assert_eq!(
            checking_deadline(&everything),
            secs(90 + 20 + 10 + 30 + 120) + CHECKING_MARGIN + overrun * 4
        );
        // A post_reboot hook does not run under a checking slot.
        let post_only = config(
            "reboot_required_detectors: [{type: file, path: /x}]\nhooks: {post_reboot: [/bin/undrain]}\n",
        );
        assert_eq!(checking_deadline(&post_only), secs(90) + CHECKING_MARGIN);
    }

    #[test]
    fn the_checking_deadline_counts_every_request_of_the_alert_gate_and_the_silences() {
        let alerts = config(
            "reboot_required_detectors: [{type: file, path: /x}]\n\
             alerts:\n  alertmanager_url: http://am:9093\n  prometheus_url: http://prom:9090\n\
             \x20 block_on: ['severity=\"critical\"', 'team=\"db\"']\n  ignore: ['alertname=\"Watchdog\"']\n\
             \x20 block_if: ['up == 0']\n  silence_during_reboot: ['instance=\"${RC_NODE_NAME}\"']\n\
             \x20 timeout_sec: 5\n",
        );
        // 2 entries × (1 + 1 ignore) + 1 PromQL + 1 silence created and expired.
        assert_eq!(
            checking_deadline(&alerts),
            Duration::from_secs(90 + 5 * (4 + 1 + 2)) + CHECKING_MARGIN
        );
    }
}

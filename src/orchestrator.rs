//! One pass of the agent (SPEC §5), in the order the spec fixes: post-reboot
//! completion, kill switch and pause, detectors, window and cooldown, health
//! and policies, the lock, the re-check under the lock, then the reboot.
//!
//! The pass gathers a [`PassReport`] that `run --once` logs and `status`
//! prints. In status mode the pass never acts (no hook, no record, no
//! reboot, no lock taken) and evaluates every gate so the operator sees all
//! of them, while the outcome is still the first gate that blocks.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;
use crate::detector::{self, DetectorReport, Need};
use crate::error::Result;
use crate::health::{self, Phase};
use crate::outcome::{Block, Outcome};
use crate::reboot::{self, Vars};
use crate::state::{self, LastReboot, RebootRecord};
use crate::window::WindowVerdict;

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
}

/// The state of one step of the pass, for humans and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// The gate is open or the step succeeded.
    Ok,
    /// The gate is closed.
    Blocked,
    /// The step did not run.
    Skipped,
    /// Informational only.
    Info,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The step's name ("kill switch", "health").
    pub name: &'static str,
    /// Its state.
    pub state: StepState,
    /// One human line.
    pub detail: String,
}

/// Something that happened in a pass that the daemon turns into
/// notifications and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassEvent {
    /// The reboot command is about to run.
    RebootStarted,
    /// The node came back and passed its post-reboot check.
    RebootCompleted,
    /// The reboot command failed.
    RebootFailed,
}

/// Everything a pass found and did.
#[derive(Debug, Clone)]
pub struct PassReport {
    /// This node.
    pub node: String,
    /// Cluster mode or local mode.
    pub cluster: bool,
    /// Whether the pass ran in dry-run.
    pub dry_run: bool,
    /// The steps in pass order.
    pub steps: Vec<Step>,
    /// Every detector's report (empty when the pass stopped before them).
    pub detectors: Vec<DetectorReport>,
    /// What happened.
    pub outcome: Outcome,
    /// Events for notifications and metrics.
    pub events: Vec<PassEvent>,
}

struct Pass<'a> {
    cfg: &'a Config,
    opts: Options,
    boot_id: String,
    steps: Vec<Step>,
    detectors: Vec<DetectorReport>,
    blocked: Option<Block>,
    events: Vec<PassEvent>,
}

/// Runs one pass and reports what happened. Errors are runtime failures
/// (exit 1); no error path runs the reboot command.
pub fn run_pass(cfg: &Config, opts: Options) -> Result<PassReport> {
    let boot_id = state::read_boot_id(&cfg.boot_id_file)?;
    let mut pass = Pass {
        cfg,
        opts: Options {
            dry_run: opts.dry_run || opts.status || cfg.dry_run,
            ..opts
        },
        boot_id,
        steps: Vec::new(),
        detectors: Vec::new(),
        blocked: None,
        events: Vec::new(),
    };
    let outcome = pass.run()?;
    Ok(PassReport {
        node: cfg.node_name.clone(),
        cluster: cfg.is_cluster(),
        dry_run: pass.opts.dry_run,
        steps: pass.steps,
        detectors: pass.detectors,
        outcome,
        events: pass.events,
    })
}

impl Pass<'_> {
    fn step(&mut self, name: &'static str, state: StepState, detail: impl Into<String>) {
        self.steps.push(Step {
            name,
            state,
            detail: detail.into(),
        });
    }

    /// Records a closed gate; returns true when the pass must stop here
    /// (always, except in status mode where every gate is evaluated).
    fn block(&mut self, name: &'static str, block: Block) -> bool {
        self.step(name, StepState::Blocked, block.to_string());
        if self.blocked.is_none() {
            self.blocked = Some(block);
        }
        !self.opts.status
    }

    fn stop(&mut self) -> Outcome {
        match self.blocked.take() {
            Some(b) => Outcome::Blocked(b),
            None => Outcome::NothingToDo,
        }
    }

    fn health_context(&self, phase: Phase) -> health::Context {
        health::Context {
            phase: if self.opts.status {
                Phase::Status
            } else {
                phase
            },
            dry_run: self.opts.dry_run,
            lock_held: false,
            lock_attempts: 0,
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

    fn run(&mut self) -> Result<Outcome> {
        // 1. Back from a reboot of our own?
        if self.post_reboot()? {
            return Ok(self.stop());
        }
        // 2. Kill switch (then, in cluster mode, the pause).
        if self.kill_switch() {
            return Ok(self.stop());
        }
        // 3. Detectors.
        let reason = match self.detect() {
            Some(reason) => reason,
            None => {
                // Nothing to do or a detector failed; status still shows the gates.
                if self.opts.status {
                    self.gates()?;
                }
                return Ok(self.stop());
            }
        };
        // 4-5. Window, cooldown, health.
        if self.gates()? {
            return Ok(self.stop());
        }
        if let Some(b) = self.blocked.take() {
            return Ok(Outcome::Blocked(b));
        }
        // 6-7. The lock: local mode has none.
        if !self.cfg.is_cluster() {
            self.step("lock", StepState::Skipped, "local mode: no lock");
        }
        // 8. Reboot.
        self.reboot(&reason)
    }

    /// Step 1. Returns true when the pass must stop.
    fn post_reboot(&mut self) -> Result<bool> {
        let Some(record) = state::read_record(&self.cfg.state_dir)? else {
            return Ok(false);
        };
        if record.boot_id == self.boot_id {
            if self.opts.status {
                self.step(
                    "post-reboot",
                    StepState::Info,
                    format!(
                        "a reboot issued at {} did not happen (same boot id); the next pass clears it",
                        record.at
                    ),
                );
                return Ok(false);
            }
            log::warn!(
                "the reboot issued at {} never happened (boot id {} is still current); clearing the record",
                record.at,
                record.boot_id
            );
            state::clear_record(&self.cfg.state_dir)?;
            self.step(
                "post-reboot",
                StepState::Info,
                "cleared the record of a reboot that never happened",
            );
            return Ok(false);
        }
        let report = health::check(self.cfg, &self.health_context(Phase::PostReboot))?;
        if !report.healthy {
            return Ok(self.block("post-reboot", Block::PostRebootHealth(report.reason)));
        }
        if self.opts.status {
            self.step(
                "post-reboot",
                StepState::Info,
                format!(
                    "back from the reboot issued at {}; healthy, the next pass completes it",
                    record.at
                ),
            );
            return Ok(false);
        }
        if let Some(argv) = &self.cfg.hooks.post_reboot {
            if let Err(e) = reboot::run_hook(
                "post_reboot hook",
                argv,
                &self.vars(&record.reason),
                self.cfg.hooks.timeout,
            ) {
                log::warn!("{e}; keeping the reboot record and retrying next pass");
                return Ok(self.block("post-reboot", Block::PostRebootHealth(e.to_string())));
            }
        }
        state::write_last_reboot(
            &self.cfg.state_dir,
            &LastReboot {
                completed_at: Timestamp::now().to_string(),
            },
        )?;
        state::clear_record(&self.cfg.state_dir)?;
        log::info!(
            "reboot completed: back since the reboot issued at {} and healthy",
            record.at
        );
        self.events.push(PassEvent::RebootCompleted);
        self.step(
            "post-reboot",
            StepState::Ok,
            format!("reboot issued at {} completed; healthy", record.at),
        );
        Ok(false)
    }

    /// Step 2. Returns true when the pass must stop.
    fn kill_switch(&mut self) -> bool {
        let path = &self.cfg.kill_switch_file;
        match path.try_exists() {
            Ok(false) => {
                self.step(
                    "kill switch",
                    StepState::Ok,
                    format!("off ({} absent)", path.display()),
                );
                false
            }
            Ok(true) => self.block(
                "kill switch",
                Block::KillSwitch(format!("{} exists", path.display())),
            ),
            // Cannot tell: treat it as set, never as absent.
            Err(e) => self.block(
                "kill switch",
                Block::KillSwitch(format!("cannot check {}: {e}", path.display())),
            ),
        }
    }

    /// Step 3. Returns the detectors that require a reboot, or None.
    fn detect(&mut self) -> Option<Vec<String>> {
        let env = vec![("RC_NODE_NAME".to_string(), self.cfg.node_name.clone())];
        self.detectors = detector::run_all(&self.cfg.detectors, &env);
        for r in &self.detectors {
            log::debug!("detector {}: {:?} ({})", r.name, r.verdict, r.detail);
        }
        match detector::decide(&self.detectors) {
            Need::Required { by } => {
                self.step(
                    "detectors",
                    StepState::Ok,
                    format!("reboot required by {}", by.join(", ")),
                );
                Some(by)
            }
            Need::NotRequired => {
                self.step("detectors", StepState::Ok, "no reboot required");
                None
            }
            Need::Unknown { failed } => {
                self.block("detectors", Block::DetectorFailed(failed));
                None
            }
        }
    }

    /// Steps 4-5 (window, cooldown, health). Returns true when the pass must stop.
    fn gates(&mut self) -> Result<bool> {
        let now = Timestamp::now();
        match self.cfg.windows.verdict(now) {
            WindowVerdict::Open => {
                let detail = if self.cfg.windows.allow_entries().is_empty()
                    && self.cfg.windows.deny_entries().is_empty()
                {
                    "open (no windows configured)".to_string()
                } else {
                    "open".to_string()
                };
                self.step("window", StepState::Ok, detail);
            }
            verdict => {
                let why = match verdict {
                    WindowVerdict::Denied { entry } => format!("inside deny window {entry:?}"),
                    _ => "outside every allow window".to_string(),
                };
                let next = match self.cfg.windows.next_open(now) {
                    Some(t) => format!(
                        "; next opening in {}",
                        humantime::format_duration(Duration::from_secs(
                            t.duration_since(now).as_secs().max(0).unsigned_abs()
                        ))
                    ),
                    None => "; no opening within 8 days".to_string(),
                };
                if self.block("window", Block::Window(format!("{why}{next}"))) {
                    return Ok(true);
                }
            }
        }
        if self.cooldown()? {
            return Ok(true);
        }
        self.health_gate(Phase::PreLock)
    }

    fn cooldown(&mut self) -> Result<bool> {
        if self.cfg.min_reboot_interval.is_zero() {
            self.step("cooldown", StepState::Ok, "none configured");
            return Ok(false);
        }
        let last = state::read_last_reboot(&self.cfg.state_dir)?;
        let Some(at) = last.and_then(|l| l.completed_at.parse::<Timestamp>().ok()) else {
            self.step("cooldown", StepState::Ok, "no previous reboot recorded");
            return Ok(false);
        };
        let elapsed = Timestamp::now()
            .duration_since(at)
            .as_secs()
            .max(0)
            .unsigned_abs();
        let interval = self.cfg.min_reboot_interval.as_secs();
        if elapsed < interval {
            return Ok(self.block(
                "cooldown",
                Block::Cooldown(Duration::from_secs(interval - elapsed)),
            ));
        }
        self.step("cooldown", StepState::Ok, "over");
        Ok(false)
    }

    fn health_gate(&mut self, phase: Phase) -> Result<bool> {
        if self.opts.skip_health {
            self.step("health", StepState::Skipped, "--skip-health");
            return Ok(false);
        }
        let report = health::check(self.cfg, &self.health_context(phase))?;
        if report.healthy {
            self.step("health", StepState::Ok, report.reason);
            Ok(false)
        } else {
            Ok(self.block("health", Block::Health(report.reason)))
        }
    }

    /// Step 8.
    fn reboot(&mut self, reason: &[String]) -> Result<Outcome> {
        let vars = self.vars(reason);
        let argv = reboot::expand(&self.cfg.reboot_command, &vars);
        if self.opts.dry_run {
            let hook = match &self.cfg.hooks.pre_reboot {
                Some(h) => format!("run pre_reboot hook {:?}, then ", reboot::expand(h, &vars)),
                None => String::new(),
            };
            self.step(
                "reboot",
                StepState::Skipped,
                format!("dry-run: would {hook}run {argv:?}"),
            );
            log::info!("dry-run: every gate is open; would run {argv:?}");
            return Ok(Outcome::WouldReboot);
        }
        if let Some(hook) = &self.cfg.hooks.pre_reboot {
            if let Err(e) = reboot::run_hook("pre_reboot hook", hook, &vars, self.cfg.hooks.timeout)
            {
                log::warn!("{e}; not rebooting");
                let _ = self.block("pre-reboot hook", Block::Hook(e.to_string()));
                return Ok(self.stop());
            }
            self.step("pre-reboot hook", StepState::Ok, "succeeded");
        }
        state::write_record(
            &self.cfg.state_dir,
            &RebootRecord {
                node: self.cfg.node_name.clone(),
                boot_id: self.boot_id.clone(),
                slot: None,
                at: Timestamp::now().to_string(),
                reason: reason.to_vec(),
            },
        )?;
        self.events.push(PassEvent::RebootStarted);
        log::info!(
            "rebooting (required by {}): running {argv:?}",
            reason.join(", ")
        );
        if let Err(e) = reboot::run_reboot_command(&self.cfg.reboot_command, &vars) {
            self.events.push(PassEvent::RebootFailed);
            return Err(e);
        }
        self.step("reboot", StepState::Ok, format!("ran {argv:?}"));
        Ok(Outcome::RebootIssued)
    }
}

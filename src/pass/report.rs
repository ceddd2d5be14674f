//! What a pass reports: its steps, the events the daemon turns into
//! notifications and metrics, and the whole report that `status`, the
//! daemon and the renderers read. Plain data, no decisions.

use std::time::Duration;

use serde::Serialize;

use crate::cluster::lock::Slot;
use crate::host::detector::DetectorReport;
use crate::pass::outcome::Outcome;

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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassEvent {
    /// The reboot command is about to run.
    RebootStarted,
    /// The node came back and passed its post-reboot check.
    RebootCompleted,
    /// The reboot command failed.
    RebootFailed,
    /// A health script ran.
    HealthChecked {
        /// The phase.
        phase: &'static str,
        /// Healthy or not.
        healthy: bool,
    },
    /// A slot was taken after this long.
    SlotAcquired(Duration),
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
    /// Whether the detectors said a reboot is required (None: not run or undecided).
    pub reboot_required: Option<bool>,
    /// The lock slots as last seen (cluster mode).
    pub holders: Vec<Slot>,
    /// Whether this node holds a slot after the pass (phase rebooting).
    pub holding_slot: bool,
    /// What happened.
    pub outcome: Outcome,
    /// Events for notifications and metrics.
    pub events: Vec<PassEvent>,
    /// The alert gate's last verdict (None: not configured or not reached).
    pub alerts: Option<crate::alerts::AlertsVerdict>,
    /// Who is logged in, as the users gate (or `status`) last saw it
    /// (None: the gate is off, or not reached).
    pub users: Option<crate::host::sessions::LoggedIn>,
}

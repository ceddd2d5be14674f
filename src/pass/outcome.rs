//! The result of one pass (SPEC §5): what happened, or the gate that stopped
//! it. Each outcome maps to an exit code (SPEC §2) and a short reason label
//! used in metrics and JSON output.

use std::fmt;
use std::time::Duration;

use crate::error::{
    EXIT_CONFIG, EXIT_DETECTOR, EXIT_HEALTH, EXIT_KILL_SWITCH, EXIT_LOCK, EXIT_OK, EXIT_RUNTIME,
    EXIT_WINDOW,
};

/// How a pass ended.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Outcome {
    /// No detector says a reboot is required.
    NothingToDo,
    /// The need was gone when re-checked under the lock; the slot was released.
    NeedVanished,
    /// Every gate was open; in dry-run the reboot command was not run.
    WouldReboot,
    /// The reboot command was run.
    RebootIssued,
    /// A gate stopped the pass.
    Blocked(Block),
}

/// The gate that stopped a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// The reboot command ran but the host has not rebooted yet (same boot
    /// id); the slot stays held until `reboot_timeout_sec` has passed.
    RebootPending(String),
    /// The reboot command ran (or failed) but the host did not reboot
    /// within `reboot_timeout_sec`: given up and counted toward
    /// `max_reboots_per_day`; this pass ends, the next one decides afresh.
    RebootGivenUp(String),
    /// This node rebooted and its post-reboot health check has not passed yet.
    PostRebootHealth(String),
    /// The kill switch file exists.
    KillSwitch(String),
    /// The cluster is paused.
    Paused(String),
    /// A detector could not decide.
    DetectorFailed(Vec<String>),
    /// A deny window covers now, or no allow window does.
    Window(String),
    /// The cluster-wide (or local) cooldown is running.
    Cooldown(Duration),
    /// The health script failed.
    Health(String),
    /// A cluster policy forbids the reboot.
    Policy(String),
    /// Every lock slot is held by another node.
    NoSlot(String),
    /// The `pre_reboot` hook failed.
    Hook(String),
    /// The alert gate: a matching alert, a non-empty PromQL result, a
    /// server that could not be asked, or a silence that could not be created.
    Alerts(String),
    /// Someone is logged in (`block_if_users_logged_in`), or utmp cannot
    /// be read, and `users_max_postpone_sec` has not run out.
    UsersLoggedIn(String),
    /// `state_dir` cannot be written (read-only, full, immutable): nothing
    /// is run or started until it can (exit 1, a runtime failure).
    StateDir(String),
    /// The need survived the last completed reboot with the same evidence:
    /// another reboot would not help (until the evidence changes or
    /// `rebootctl clear-loop`).
    RebootIneffective(String),
    /// `max_reboots_per_day` reboots (completed or given up) in the last 24 hours.
    RebootLimit(String),
    /// Another host claims this node's name (or holds a slot under it that
    /// this host has no record of): neither reboots until it is resolved.
    NameConflict(String),
    /// The FleetLock server refused the lock for a reason the pass does not
    /// map to one of its own gates (issue 13).
    FleetLock(String),
}

impl Block {
    /// The exit code of this block (SPEC §2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Block::RebootPending(_)
            | Block::RebootGivenUp(_)
            | Block::PostRebootHealth(_)
            | Block::Health(_)
            | Block::Policy(_)
            | Block::Hook(_)
            | Block::Alerts(_)
            | Block::RebootIneffective(_)
            | Block::UsersLoggedIn(_) => EXIT_HEALTH,
            Block::KillSwitch(_) | Block::Paused(_) => EXIT_KILL_SWITCH,
            Block::DetectorFailed(_) => EXIT_DETECTOR,
            Block::Window(_) | Block::Cooldown(_) | Block::RebootLimit(_) => EXIT_WINDOW,
            Block::NoSlot(_) | Block::FleetLock(_) => EXIT_LOCK,
            Block::StateDir(_) => EXIT_RUNTIME,
            Block::NameConflict(_) => EXIT_CONFIG,
        }
    }

    /// A stable label for metrics (`rebootctl_blocked{reason}`) and JSON.
    pub fn label(&self) -> &'static str {
        match self {
            Block::RebootPending(_) => "reboot_pending",
            Block::RebootGivenUp(_) => "reboot_given_up",
            Block::PostRebootHealth(_) => "post_reboot_health",
            Block::KillSwitch(_) => "kill_switch",
            Block::Paused(_) => "paused",
            Block::DetectorFailed(_) => "detector",
            Block::Window(_) => "window",
            Block::Cooldown(_) => "cooldown",
            Block::Health(_) => "health",
            Block::Policy(_) => "policy",
            Block::NoSlot(_) => "lock",
            Block::Hook(_) => "hook",
            Block::Alerts(_) => "alerts",
            Block::UsersLoggedIn(_) => "users_logged_in",
            Block::StateDir(_) => "state_dir",
            Block::RebootIneffective(_) => "reboot_ineffective",
            Block::RebootLimit(_) => "reboot_limit",
            Block::NameConflict(_) => "name_conflict",
            Block::FleetLock(_) => "fleetlock",
        }
    }

    /// Every label, for metrics that list all reasons.
    pub const LABELS: [&'static str; 19] = [
        "reboot_pending",
        "reboot_given_up",
        "post_reboot_health",
        "kill_switch",
        "paused",
        "detector",
        "window",
        "cooldown",
        "health",
        "policy",
        "lock",
        "hook",
        "alerts",
        "users_logged_in",
        "state_dir",
        "reboot_ineffective",
        "reboot_limit",
        "name_conflict",
        "fleetlock",
    ];
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::RebootPending(r) => write!(f, "reboot pending: {r}"),
            Block::RebootGivenUp(r) => write!(f, "reboot given up: {r}"),
            Block::PostRebootHealth(r) => write!(f, "back from reboot, waiting for health: {r}"),
            Block::KillSwitch(r) => write!(f, "kill switch: {r}"),
            Block::Paused(r) => write!(f, "cluster paused: {r}"),
            Block::DetectorFailed(names) => {
                write!(f, "a detector could not decide: {}", names.join(", "))
            }
            Block::Window(r) => write!(f, "maintenance window: {r}"),
            Block::Cooldown(left) => write!(
                f,
                "cooldown: {} left",
                crate::time::human_duration(Duration::from_secs(left.as_secs()))
            ),
            Block::Health(r) => write!(f, "health gate: {r}"),
            Block::Policy(r) => write!(f, "cluster policy: {r}"),
            Block::NoSlot(r) => write!(f, "no free lock slot: {r}"),
            Block::Hook(r) => write!(f, "pre_reboot hook: {r}"),
            Block::Alerts(r) => write!(f, "alert gate: {r}"),
            Block::UsersLoggedIn(r) => write!(f, "users logged in: {r}"),
            Block::StateDir(r) => write!(f, "state_dir: {r}"),
            Block::RebootIneffective(r) => write!(f, "reboot ineffective: {r}"),
            Block::RebootLimit(r) => write!(f, "reboot limit: {r}"),
            Block::NameConflict(r) => write!(f, "name conflict: {r}"),
            Block::FleetLock(r) => write!(f, "FleetLock server: {r}"),
        }
    }
}

impl Outcome {
    /// The exit code of this outcome (SPEC §2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Blocked(b) => b.exit_code(),
            _ => EXIT_OK,
        }
    }

    /// A stable label for JSON output and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::NothingToDo => "nothing_to_do",
            Outcome::NeedVanished => "need_vanished",
            Outcome::WouldReboot => "would_reboot",
            Outcome::RebootIssued => "reboot_issued",
            Outcome::Blocked(_) => "blocked",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::NothingToDo => {
                write!(f, "nothing to do: no detector says a reboot is required")
            }
            Outcome::NeedVanished => write!(
                f,
                "nothing to do: the need was gone when re-checked under the lock (slot released)"
            ),
            Outcome::WouldReboot => write!(f, "every gate is open: would reboot now (dry-run)"),
            Outcome::RebootIssued => write!(f, "reboot command issued"),
            Outcome::Blocked(b) => write!(f, "blocked: {b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        let cases = [
            (Outcome::NothingToDo, 0),
            (Outcome::WouldReboot, 0),
            (Outcome::RebootIssued, 0),
            (Outcome::NeedVanished, 0),
            (Outcome::Blocked(Block::Health("x".into())), 3),
            (Outcome::Blocked(Block::Policy("x".into())), 3),
            (Outcome::Blocked(Block::Hook("x".into())), 3),
            (Outcome::Blocked(Block::Alerts("x".into())), 3),
            (Outcome::Blocked(Block::UsersLoggedIn("x".into())), 3),
            (Outcome::Blocked(Block::PostRebootHealth("x".into())), 3),
            (Outcome::Blocked(Block::NoSlot("x".into())), 4),
            (Outcome::Blocked(Block::FleetLock("x".into())), 4),
            (Outcome::Blocked(Block::KillSwitch("x".into())), 5),
            (Outcome::Blocked(Block::Paused("x".into())), 5),
            (Outcome::Blocked(Block::DetectorFailed(vec![])), 6),
            (Outcome::Blocked(Block::Window("x".into())), 7),
            (Outcome::Blocked(Block::Cooldown(Duration::from_secs(3))), 7),
            (Outcome::Blocked(Block::StateDir("x".into())), 1),
            (Outcome::Blocked(Block::RebootIneffective("x".into())), 3),
            (Outcome::Blocked(Block::RebootGivenUp("x".into())), 3),
            (Outcome::Blocked(Block::RebootLimit("x".into())), 7),
            (Outcome::Blocked(Block::NameConflict("x".into())), 2),
        ];
        for (o, code) in cases {
            assert_eq!(o.exit_code(), code, "{o:?}");
        }
    }

    #[test]
    fn labels_are_listed() {
        for b in [
            Block::Cooldown(Duration::ZERO),
            Block::RebootIneffective(String::new()),
            Block::RebootGivenUp(String::new()),
            Block::RebootLimit(String::new()),
            Block::NameConflict(String::new()),
        ] {
            assert!(Block::LABELS.contains(&b.label()), "{b:?}");
        }
    }
}

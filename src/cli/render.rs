//! Rendering for people and machines: the `status` report, the `simulate`
//! table, and their `--json` documents. Human output fits an 80-column ssh
//! session; JSON field names are stable (documented in rebootctl(8)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cluster::NodeSummary;
use crate::cluster::lock::{LockState, Slot, SlotKind};
use crate::host::detector::{DetectorReport, Need, Verdict};
use crate::pass::outcome::Outcome;
use crate::pass::report::{PassReport, StepState};
use crate::time::{human_age, human_duration};

/// Width human output is laid out for.
pub const WIDTH_COLUMNS: usize = 80;

fn verdict_label(v: &Verdict) -> &'static str {
    match v {
        Verdict::Required => "required",
        Verdict::NotRequired => "not required",
        Verdict::Failed(_) => "FAILED",
    }
}

fn verdict_json(v: &Verdict) -> &'static str {
    match v {
        Verdict::Required => "required",
        Verdict::NotRequired => "not_required",
        Verdict::Failed(_) => "failed",
    }
}

/// Appends `label` and `text` wrapped to the width, continuation lines
/// indented under the text.
fn push_wrapped(out: &mut String, label: &str, text: &str) {
    let indent = label.chars().count();
    let room = WIDTH_COLUMNS.saturating_sub(indent).max(20);
    let mut line = String::new();
    let mut first = true;
    let flush = |out: &mut String, line: &str, first: bool| {
        if first {
            let _ = writeln!(out, "{label}{line}");
        } else {
            let _ = writeln!(out, "{:indent$}{line}", "");
        }
    };
    // Words longer than a line (paths) are cut into line-sized pieces.
    let pieces = text.split(' ').flat_map(|word| {
        let chars: Vec<char> = word.chars().collect();
        if chars.is_empty() {
            vec![String::new()]
        } else {
            chars
                .chunks(room)
                .map(|c| c.iter().collect::<String>())
                .collect()
        }
    });
    for word in pieces {
        let word = word.as_str();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > room {
            flush(out, &line, first);
            first = false;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    flush(out, &line, first);
}

/// The human `status` report.
pub fn status_text(r: &PassReport) -> String {
    let mut out = String::new();
    let mode = if r.cluster {
        "cluster mode"
    } else {
        "local mode"
    };
    let _ = writeln!(out, "node {} ({mode}, status is always a dry-run)", r.node);
    for s in &r.steps {
        let state = match s.state {
            StepState::Ok => "ok",
            StepState::Blocked => "BLOCKED",
            StepState::Skipped => "skipped",
            StepState::Info => "note",
        };
        push_wrapped(
            &mut out,
            &format!("  {:<12} {:<8} ", s.name, state),
            &s.detail,
        );
        if let (Some(a), "alerts") = (&r.alerts, s.name) {
            for (label, text) in a.status_lines() {
                push_wrapped(&mut out, &label, &text);
            }
        }
        if s.name == "detectors" {
            for d in &r.detectors {
                let label = format!(
                    "    {:<21} {:<12} ",
                    truncate(&d.name, 21),
                    verdict_label(&d.verdict)
                );
                push_wrapped(&mut out, &label, &detector_detail(d));
            }
        }
    }
    let summary = match &r.outcome {
        Outcome::WouldReboot => "every gate is open: this node would reboot now".to_string(),
        other => other.to_string(),
    };
    out.push('\n');
    push_wrapped(&mut out, "=> ", &summary);
    out
}

fn detector_detail(d: &DetectorReport) -> String {
    match &d.verdict {
        Verdict::Failed(e) if !d.detail.contains(e.as_str()) => format!("{}: {e}", d.detail),
        _ => d.detail.clone(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// One detector as JSON (stable fields).
pub fn detector_json(d: &DetectorReport) -> Value {
    json!({
        "name": d.name,
        "type": d.kind,
        "verdict": verdict_json(&d.verdict),
        "detail": d.detail,
        "error": match &d.verdict { Verdict::Failed(e) => Value::from(e.as_str()), _ => Value::Null },
        "output": d.output,
        "duration_ms": u64::try_from(d.duration.as_millis()).unwrap_or(u64::MAX),
    })
}

/// The outcome as JSON (stable fields).
pub fn outcome_json(o: &Outcome) -> Value {
    json!({
        "result": o.label(),
        "exit_code": o.exit_code(),
        "blocked_by": match o { Outcome::Blocked(b) => Value::from(b.label()), _ => Value::Null },
        "message": o.to_string(),
    })
}

/// The `status --json` document.
pub fn status_json(r: &PassReport) -> Value {
    json!({
        "node": r.node,
        "mode": if r.cluster { "cluster" } else { "local" },
        "dry_run": r.dry_run,
        "outcome": outcome_json(&r.outcome),
        "steps": r.steps,
        "detectors": r.detectors.iter().map(detector_json).collect::<Vec<_>>(),
        "alerts": r.alerts,
    })
}

/// The human `simulate` table.
pub fn simulate_text(reports: &[DetectorReport], need: &Need) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<13} {:>7}  DETAIL",
        "DETECTOR", "VERDICT", "TIME"
    );
    for d in reports {
        let label = format!(
            "{:<24} {:<13} {:>7}  ",
            truncate(&d.name, 24),
            verdict_label(&d.verdict),
            human_duration(d.duration)
        );
        push_wrapped(&mut out, &label, &detector_detail(d));
        for line in d.output.lines().filter(|l| !l.trim().is_empty()) {
            push_wrapped(&mut out, "    | ", line);
        }
    }
    out.push('\n');
    let summary = match need {
        Need::Required { by } => format!("=> reboot required (by {})", by.join(", ")),
        Need::NotRequired => "=> no reboot required".to_string(),
        Need::Unknown { failed } => format!(
            "=> cannot decide: {} failed (a failure never counts as \"required\")",
            failed.join(", ")
        ),
    };
    out.push_str(&summary);
    out.push('\n');
    out
}

/// The `simulate --json` document.
pub fn simulate_json(reports: &[DetectorReport], need: &Need) -> Value {
    json!({
        "need": match need {
            Need::Required { .. } => "required",
            Need::NotRequired => "not_required",
            Need::Unknown { .. } => "unknown",
        },
        "detectors": reports.iter().map(detector_json).collect::<Vec<_>>(),
    })
}

/// What `rebootctl lock` shows: the agents' lock (its slots and the owner
/// of a mutex below it) and every other lock below `<ns>/lock/` (FleetLock
/// groups, other lock groups), with the time left on the lease of each
/// FleetLock hold.
#[derive(Debug, Clone)]
pub struct LockView {
    /// The agents' lock as read.
    pub state: LockState,
    /// This host's `max_concurrent_reboots`.
    pub own: u32,
    /// Slots of other lock keys (FleetLock groups), sorted by key.
    pub others: Vec<Slot>,
    /// Seconds left on the lease of each FleetLock hold, by slot key.
    pub expires_in: BTreeMap<String, i64>,
}

impl LockView {
    /// The other lock keys, in order, each with its slots.
    fn other_locks(&self) -> Vec<(&str, Vec<&Slot>)> {
        let mut out: Vec<(&str, Vec<&Slot>)> = Vec::new();
        for s in &self.others {
            match out.last_mut() {
                Some((key, slots)) if *key == s.lock_key() => slots.push(s),
                _ => out.push((s.lock_key(), vec![s])),
            }
        }
        out
    }
}

/// The human `lock` listing: the count against the limit in force, one
/// row per slot, and the owner of a mutex below the lock key
/// (clusterrebootd, `etcdctl lock`) when there is one; then the other lock
/// keys below `<ns>/lock/` (FleetLock groups) with their slots.
pub fn lock_text(view: &LockView) -> String {
    let mut out = String::new();
    let state = &view.state;
    let own = view.own;
    let limit = state.limit(own);
    let _ = write!(
        out,
        "{} of {limit} lock slot{} held",
        state.held(),
        if limit == 1 { "" } else { "s" }
    );
    if limit != own {
        let _ = write!(
            out,
            " (limit {limit} recorded by a holder; max_concurrent_reboots here is {own})"
        );
    }
    out.push('\n');
    if state.held() > 0 {
        slot_header(&mut out);
    }
    let all: Vec<&Slot> = state.slots.iter().collect();
    slot_rows(&mut out, &all, view);
    if let Some(m) = &state.mutex_owner {
        let v = m.value.as_ref();
        let node = v.map(|v| v.node.as_str()).filter(|n| !n.is_empty());
        let pid = v.map(|v| v.pid).filter(|p| *p > 0);
        let since = v
            .map(|v| v.acquired_at.as_str())
            .filter(|a| !a.is_empty())
            .map(|a| human_age(a, jiff::Timestamp::now()));
        let _ = writeln!(
            out,
            "{:<5} {:<NODE_COLUMNS$} {:<10} {:>8} {:<12} {}",
            "mutex",
            truncate(node.unwrap_or("?"), NODE_COLUMNS),
            if state.mutex_owner_waits {
                "waiting"
            } else {
                "owner"
            },
            pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            since.unwrap_or_else(|| "?".into()),
            if node.is_some() {
                "clusterrebootd"
            } else {
                "no annotation (etcdctl lock?)"
            }
        );
        push_wrapped(&mut out, "      ", &format!("key {}", m.key));
    }
    if state.mutex_waiters > 0 {
        let _ = writeln!(
            out,
            "{} more mutex contender{} waiting (not counted)",
            state.mutex_waiters,
            if state.mutex_waiters == 1 { "" } else { "s" }
        );
    }
    for (key, slots) in view.other_locks() {
        let groups: BTreeSet<&str> = slots
            .iter()
            .filter_map(|s| s.value.as_ref())
            .filter(|v| !v.group.is_empty())
            .map(|v| v.group.as_str())
            .collect();
        let _ = writeln!(
            out,
            "\n{key}: {} slot{} held{}",
            slots.len(),
            if slots.len() == 1 { "" } else { "s" },
            if groups.is_empty() {
                String::new()
            } else {
                format!(
                    " (FleetLock group {})",
                    groups.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        );
        slot_header(&mut out);
        slot_rows(&mut out, &slots, view);
    }
    out
}

/// The width of the node column of the `lock` and `nodes` tables.
const NODE_COLUMNS: usize = 16;

/// The header line of a `lock` table.
fn slot_header(out: &mut String) {
    let _ = writeln!(
        out,
        "{:<5} {:<NODE_COLUMNS$} {:<10} {:>8} {:<12} BOOT ID",
        "SLOT", "NODE", "PHASE", "PID", "HELD FOR"
    );
}

/// The rows of `slots`: agents with their pid and boot id, FleetLock
/// clients with the time left on their hold and a second line with their
/// group and full id (a FleetLock id is 32 digits, wider than the column;
/// `unlock` needs all of it).
fn slot_rows(out: &mut String, slots: &[&Slot], view: &LockView) {
    let now = jiff::Timestamp::now();
    for s in slots {
        let Some(v) = &s.value else {
            push_wrapped(
                out,
                &format!("{:<5} ", s.index),
                &format!("unreadable value: {}", s.raw),
            );
            continue;
        };
        let fleetlock = s.is_fleetlock();
        let (pid, last) = if fleetlock {
            let left = view
                .expires_in
                .get(&s.key)
                .map(|t| {
                    format!(
                        "expires in {}",
                        human_duration(std::time::Duration::from_secs(t.max(&0).unsigned_abs()))
                    )
                })
                .unwrap_or_default();
            ("-".to_string(), left)
        } else {
            (v.pid.to_string(), truncate(&v.boot_id, 24))
        };
        let _ = writeln!(
            out,
            "{:<5} {:<NODE_COLUMNS$} {:<10} {:>8} {:<12} {last}",
            s.index,
            truncate(&v.node, NODE_COLUMNS),
            v.phase.as_str(),
            pid,
            human_age(&v.acquired_at, now),
        );
        if fleetlock {
            push_wrapped(
                out,
                "      ",
                &format!("FleetLock client {} (group {})", v.node, v.group),
            );
        }
    }
}

/// One holder of the `lock --json` document.
fn holder_json(s: &Slot, view: &LockView) -> Value {
    json!({
        "slot": s.index,
        "key": s.key,
        "kind": s.value.as_ref().map(|v| v.kind.as_str()),
        "node": s.value.as_ref().map(|v| v.node.clone()),
        "pid": s.value.as_ref().map(|v| v.pid),
        "boot_id": s.value.as_ref().map(|v| v.boot_id.clone()),
        "phase": s.value.as_ref().map(|v| v.phase.as_str()),
        "acquired_at": s.value.as_ref().map(|v| v.acquired_at.clone()),
        "machine_id": s.value.as_ref().map(|v| v.machine_id.clone()),
        "limit": s.value.as_ref().map(|v| v.limit),
        "group": s.value.as_ref().filter(|v| !v.group.is_empty()).map(|v| v.group.clone()),
        "expires_in_sec": view.expires_in.get(&s.key),
        "raw": if s.value.is_none() { Value::from(s.raw.as_str()) } else { Value::Null },
    })
}

/// The `lock --json` document.
pub fn lock_json(view: &LockView) -> Value {
    let state = &view.state;
    let own = view.own;
    json!({
        "slots_total": own,
        "limit": state.limit(own),
        "held": state.held(),
        "slots_held": state.slots.len(),
        "holders": state.slots.iter().map(|s| holder_json(s, view)).collect::<Vec<_>>(),
        "mutex_owner": state.mutex_owner.as_ref().map(|m| {
            let v = m.value.as_ref();
            let text = |s: Option<&String>| s.filter(|s| !s.is_empty()).cloned();
            json!({
                "key": m.key,
                "node": text(v.map(|v| &v.node)),
                "pid": v.map(|v| v.pid).filter(|p| *p > 0),
                "acquired_at": text(v.map(|v| &v.acquired_at)),
                "lease": format!("{:x}", m.lease),
                "waiting": state.mutex_owner_waits,
            })
        }),
        "mutex_waiters": state.mutex_waiters,
        "other_locks": view.other_locks().into_iter().map(|(key, slots)| json!({
            "lock_key": key,
            "holders": slots.iter().map(|s| holder_json(s, view)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The human `nodes` listing: registered agents, then the FleetLock clients
/// that hold a slot (HEALTH `fleetlock`: they report none).
pub fn nodes_text(nodes: &[NodeSummary]) -> String {
    let mut out = String::new();
    if nodes.is_empty() {
        out.push_str("no registered nodes\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<NODE_COLUMNS$} {:<10} {:>7} {:<8} {:<10} LAST REBOOT",
        "NODE", "HEALTH", "AGE", "NEEDS", "SLOT"
    );
    for n in nodes {
        let health = match n.healthy {
            _ if n.kind == SlotKind::Fleetlock => "fleetlock",
            Some(true) => "healthy",
            Some(false) => "UNHEALTHY",
            None => "unknown",
        };
        let health_age = n
            .health_age_sec
            .map(|s| human_duration(std::time::Duration::from_secs(s.max(0).unsigned_abs())))
            .unwrap_or_else(|| "-".into());
        let needs = match n.reboot_required {
            Some(true) => "reboot",
            Some(false) => "-",
            None => "?",
        };
        let slot = n.slot_phase.as_deref().unwrap_or("-");
        let last = n
            .last_reboot
            .as_deref()
            .map(|t| format!("{} ago", human_age(t, jiff::Timestamp::now())))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<NODE_COLUMNS$} {:<10} {:>7} {:<8} {:<10} {last}",
            truncate(&n.node, NODE_COLUMNS),
            health,
            health_age,
            needs,
            slot
        );
        if let (Some(group), true) = (&n.group, n.node.chars().count() > NODE_COLUMNS) {
            push_wrapped(
                &mut out,
                "  ",
                &format!("FleetLock client {} (group {group})", n.node),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_lines_within_the_width() {
        let mut out = String::new();
        let long = "word ".repeat(60);
        push_wrapped(&mut out, "  label        ", long.trim());
        push_wrapped(&mut out, "  label        ", &"/very/long/path".repeat(20));
        for line in out.lines() {
            assert!(line.chars().count() <= WIDTH_COLUMNS, "{line:?}");
        }
        assert!(out.lines().count() > 3);
    }
}

//! Step 1 of a pass as a pure decision: is this node back from a reboot of
//! its own, still waiting for it, or past the point of giving it up? The
//! inputs are the local reboot record, the slot of this node's name in
//! phase rebooting, this boot's and machine's ids, `now` and
//! `reboot_timeout_sec`; the pass acts on the answer.

use std::time::Duration;

use jiff::Timestamp;

use crate::cluster::lock::Slot;
use crate::cluster::records::same_machine;
use crate::host::state::RebootRecord;
use crate::time::secs_between;

/// Where this node stands with a reboot it started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum PostReboot {
    /// Neither a record nor a slot in phase rebooting: nothing to complete.
    Nothing,
    /// The slot of this node's name belongs to another machine: never ours
    /// to complete (two hosts sharing a `node_name`).
    OtherMachine {
        /// The slot's key.
        key: String,
        /// The node name in the slot.
        node: String,
        /// The machine id in the slot.
        machine_id: String,
    },
    /// Same boot, and the reboot may still happen (a slow shutdown).
    NotYet {
        /// When the reboot was issued (RFC 3339, as recorded).
        went_down_at: String,
        /// How long until it is given up.
        left: Duration,
    },
    /// Same boot after `reboot_timeout_sec` (or an unreadable time): the
    /// reboot never happened and is given up.
    TimedOut {
        /// When the reboot was issued.
        went_down_at: String,
    },
    /// A new boot: back from the reboot, complete once healthy.
    Back {
        /// When the reboot was issued.
        went_down_at: String,
    },
}

/// Classifies step 1. The slot's values win over the record's (the boot
/// id of the slot, the time of the record) as the pass always did; either
/// one alone is enough.
pub fn classify(
    record: Option<&RebootRecord>,
    slot: Option<&Slot>,
    boot_id: &str,
    machine_id: &str,
    now: Timestamp,
    timeout: Duration,
) -> PostReboot {
    if let Some((key, v)) = slot.and_then(|s| s.value.as_ref().map(|v| (&s.key, v))) {
        if !same_machine(&v.machine_id, machine_id) {
            return PostReboot::OtherMachine {
                key: key.clone(),
                node: v.node.clone(),
                machine_id: v.machine_id.clone(),
            };
        }
    }
    if record.is_none() && slot.is_none() {
        return PostReboot::Nothing;
    }
    let went_down_at = record
        .map(|r| r.at.clone())
        .or_else(|| slot.and_then(|s| s.value.as_ref().map(|v| v.acquired_at.clone())))
        .unwrap_or_default();
    let recorded_boot = slot
        .and_then(|s| s.value.as_ref().map(|v| v.boot_id.clone()))
        .or_else(|| record.map(|r| r.boot_id.clone()))
        .unwrap_or_default();
    if recorded_boot != boot_id {
        return PostReboot::Back { went_down_at };
    }
    let since = went_down_at
        .parse::<Timestamp>()
        .map(|t| secs_between(t, now))
        .unwrap_or(Duration::MAX);
    if since < timeout {
        PostReboot::NotYet {
            left: timeout - since,
            went_down_at,
        }
    } else {
        PostReboot::TimedOut { went_down_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::lock::{SlotPhase, SlotValue};

    const NOW: &str = "2026-11-27T12:00:00Z";
    const TIMEOUT: Duration = Duration::from_secs(600);

    fn record(boot: &str, at: &str) -> RebootRecord {
        RebootRecord {
            node: "web-1".into(),
            boot_id: boot.into(),
            slot: Some("/rebootctl/lock/slot-0".into()),
            at: at.into(),
            reason: vec!["marker".into()],
            silences: Vec::new(),
            slot_create_revision: Some(3),
            uptime_ms: None,
            evidence: Vec::new(),
        }
    }

    fn slot(boot: &str, machine: &str, at: &str) -> Slot {
        Slot {
            key: "/rebootctl/lock/slot-0".into(),
            index: 0,
            raw: String::new(),
            create_revision: 3,
            value: Some(SlotValue {
                node: "web-1".into(),
                pid: 42,
                boot_id: boot.into(),
                phase: SlotPhase::Rebooting,
                acquired_at: at.into(),
                machine_id: machine.into(),
            }),
            lease: 7,
            mod_revision: 3,
        }
    }

    fn back(at: &str) -> PostReboot {
        PostReboot::Back {
            went_down_at: at.into(),
        }
    }

    fn not_yet(at: &str, left_secs: u64) -> PostReboot {
        PostReboot::NotYet {
            went_down_at: at.into(),
            left: Duration::from_secs(left_secs),
        }
    }

    fn timed_out(at: &str) -> PostReboot {
        PostReboot::TimedOut {
            went_down_at: at.into(),
        }
    }

    #[test]
    fn every_case() {
        let t5 = "2026-11-27T11:55:00Z"; // 5 min ago
        let t20 = "2026-11-27T11:40:00Z"; // 20 min ago
        let other = PostReboot::OtherMachine {
            key: "/rebootctl/lock/slot-0".into(),
            node: "web-1".into(),
            machine_id: "m-other".into(),
        };
        // (case, record, slot, expected); this boot is "b-now" on "m-1".
        let cases: Vec<(&str, Option<RebootRecord>, Option<Slot>, PostReboot)> = vec![
            ("nothing", None, None, PostReboot::Nothing),
            (
                "new boot, both",
                Some(record("b-old", t5)),
                Some(slot("b-old", "m-1", t5)),
                back(t5),
            ),
            (
                "same boot, not yet",
                Some(record("b-now", t5)),
                Some(slot("b-now", "m-1", t5)),
                not_yet(t5, 300),
            ),
            (
                "same boot, timed out",
                Some(record("b-now", t20)),
                Some(slot("b-now", "m-1", t20)),
                timed_out(t20),
            ),
            (
                "record without slot, new boot",
                Some(record("b-old", t5)),
                None,
                back(t5),
            ),
            (
                "record without slot, same boot",
                Some(record("b-now", t5)),
                None,
                not_yet(t5, 300),
            ),
            (
                "slot without record, new boot",
                None,
                Some(slot("b-old", "m-1", t5)),
                back(t5),
            ),
            (
                "slot without record, same boot, timed out",
                None,
                Some(slot("b-now", "m-1", t20)),
                timed_out(t20),
            ),
            (
                "other machine",
                None,
                Some(slot("b-old", "m-other", t5)),
                other.clone(),
            ),
            (
                "other machine wins over a record",
                Some(record("b-old", t5)),
                Some(slot("b-old", "m-other", t5)),
                other,
            ),
            (
                "unknown machine id in the slot is ours",
                None,
                Some(slot("b-old", "", t5)),
                back(t5),
            ),
            // The slot's boot id wins over the record's, the record's time over the slot's.
            (
                "slot boot id wins",
                Some(record("b-old", t20)),
                Some(slot("b-now", "m-1", t5)),
                timed_out(t20),
            ),
            (
                "record time wins",
                Some(record("b-now", t5)),
                Some(slot("b-now", "m-1", t20)),
                not_yet(t5, 300),
            ),
            (
                "unreadable time is timed out",
                Some(record("b-now", "garbage")),
                None,
                timed_out("garbage"),
            ),
            (
                "exactly at the timeout",
                Some(record("b-now", "2026-11-27T11:50:00Z")),
                None,
                timed_out("2026-11-27T11:50:00Z"),
            ),
        ];
        let now: Timestamp = NOW.parse().unwrap();
        for (name, rec, s, want) in cases {
            let got = classify(rec.as_ref(), s.as_ref(), "b-now", "m-1", now, TIMEOUT);
            assert_eq!(got, want, "{name}");
        }
    }
}

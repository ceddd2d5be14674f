//! Step 1 of a pass as a pure decision: is this node back from a reboot of
//! its own, still waiting for it, or past the point of giving it up? The
//! inputs are the local reboot record, the slot of this node's name in
//! phase rebooting, this boot's id, `now` and `reboot_timeout_sec`; the
//! pass acts on the answer.
//!
//! Only the local record proves a reboot is this host's own: a slot in
//! phase rebooting under this node's name is completed (health check,
//! hook, release) only when the record names it — same key, same create
//! revision, same boot id before the reboot. Machine ids cannot prove it:
//! cloned images share theirs, and an unknown one matches anything
//! (issue 10.5).

use std::time::Duration;

use jiff::Timestamp;

use crate::cluster::lock::Slot;
use crate::host::state::RebootRecord;
use crate::time::secs_between;

/// Where this node stands with a reboot it started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum PostReboot {
    /// Neither a record nor a slot in phase rebooting: nothing to complete.
    Nothing,
    /// A slot in phase rebooting under this node's name that the local
    /// record does not prove to be this host's (no record, or one for
    /// another slot, holding or boot): another host uses the name, or this
    /// host lost its `state_dir`. Never completed or released here; it
    /// frees itself when its lease (`reboot_timeout_sec`) ends.
    NotOurs {
        /// The slot's key.
        key: String,
        /// The boot id in the slot.
        boot_id: String,
        /// The machine id in the slot (empty when unknown).
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

/// Whether `record` proves `slot` to be the holding this host went down
/// with: the same key, the same boot id, and the same create revision
/// (records of older versions have none: key and boot id then).
pub fn owns(record: &RebootRecord, slot: &Slot) -> bool {
    record.slot.as_deref() == Some(slot.key.as_str())
        && slot
            .value
            .as_ref()
            .is_some_and(|v| v.boot_id == record.boot_id)
        && record
            .slot_create_revision
            .is_none_or(|rev| rev == slot.create_revision)
}

/// Classifies step 1 from the local record; a slot matters only when the
/// record owns it ([`owns`]), else it is [`PostReboot::NotOurs`].
pub fn classify(
    record: Option<&RebootRecord>,
    slot: Option<&Slot>,
    boot_id: &str,
    now: Timestamp,
    timeout: Duration,
) -> PostReboot {
    if let Some(s) = slot {
        if !record.is_some_and(|r| owns(r, s)) {
            let v = s.value.as_ref();
            return PostReboot::NotOurs {
                key: s.key.clone(),
                boot_id: v.map(|v| v.boot_id.clone()).unwrap_or_default(),
                machine_id: v.map(|v| v.machine_id.clone()).unwrap_or_default(),
            };
        }
    }
    let Some(record) = record else {
        return PostReboot::Nothing;
    };
    let went_down_at = record.at.clone();
    if record.boot_id != boot_id {
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

    fn not_ours(boot: &str, machine: &str) -> PostReboot {
        PostReboot::NotOurs {
            key: "/rebootctl/lock/slot-0".into(),
            boot_id: boot.into(),
            machine_id: machine.into(),
        }
    }

    #[test]
    fn every_case() {
        let t5 = "2026-11-27T11:55:00Z"; // 5 min ago
        let t20 = "2026-11-27T11:40:00Z"; // 20 min ago
        let with = |r: RebootRecord, f: fn(&mut RebootRecord)| {
            let mut r = r;
            f(&mut r);
            r
        };
        // (case, record, slot, expected); this boot is "b-now".
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
            // Without a record nothing proves the slot is this host's:
            // another host may use the name (the same or no machine id).
            (
                "slot without record, new boot",
                None,
                Some(slot("b-old", "m-1", t5)),
                not_ours("b-old", "m-1"),
            ),
            (
                "slot without record, same boot",
                None,
                Some(slot("b-now", "m-1", t20)),
                not_ours("b-now", "m-1"),
            ),
            (
                "slot without record, unknown machine id",
                None,
                Some(slot("b-old", "", t5)),
                not_ours("b-old", ""),
            ),
            (
                "the record names another holding (create revision)",
                Some(with(record("b-old", t5), |r| {
                    r.slot_create_revision = Some(9)
                })),
                Some(slot("b-old", "m-1", t5)),
                not_ours("b-old", "m-1"),
            ),
            (
                "the record names another slot",
                Some(with(record("b-old", t5), |r| {
                    r.slot = Some("/rebootctl/lock/slot-1".into())
                })),
                Some(slot("b-old", "m-1", t5)),
                not_ours("b-old", "m-1"),
            ),
            (
                "the record is of another boot than the slot",
                Some(record("b-old", t20)),
                Some(slot("b-other", "m-1", t5)),
                not_ours("b-other", "m-1"),
            ),
            (
                "a record of an older version (no create revision) owns by key and boot",
                Some(with(record("b-old", t5), |r| r.slot_create_revision = None)),
                Some(slot("b-old", "m-1", t5)),
                back(t5),
            ),
            (
                "an owned slot's machine id does not matter",
                Some(record("b-old", t5)),
                Some(slot("b-old", "m-changed", t5)),
                back(t5),
            ),
            (
                "the record's time counts",
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
            let got = classify(rec.as_ref(), s.as_ref(), "b-now", now, TIMEOUT);
            assert_eq!(got, want, "{name}");
        }
    }
}

//! Step 1 of a pass as a pure decision: is this node back from a reboot of
//! its own, still waiting for it, or past the point of giving it up? The
//! inputs are the local reboot record, the slot of this node's name in
//! phase rebooting, this boot's id, the [`Clocks`] and `reboot_timeout_sec`;
//! the pass acts on the answer.
//!
//! Only the local record proves a reboot is this host's own: a slot in
//! phase rebooting under this node's name is completed (health check,
//! hook, release) only when the record names it — same key, same create
//! revision, same boot id before the reboot. Machine ids cannot prove it:
//! cloned images share theirs, and an unknown one matches anything
//! (issue 10.5).
//!
//! No wall clock is involved in giving a reboot up: an NTP step must not
//! give it up early, and a time that does not parse must never count as
//! expired. In cluster mode the slot's etcd lease (of `reboot_timeout_sec`,
//! never renewed before the reboot) is the clock; without a slot, the
//! record's `CLOCK_BOOTTIME` stamp is, which compares with now because a
//! reboot that never happened means the same boot.

use std::time::Duration;

use crate::cluster::lock::Slot;
use crate::host::state::RebootRecord;

/// The clocks that give up a reboot that never happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    /// Cluster mode: a slot named in the record that is gone has expired
    /// with its lease (or was released by an operator).
    pub cluster: bool,
    /// The time left on the lease of the slot in phase rebooting, as etcd
    /// counts it (zero once it is gone); None without a slot or a lease.
    pub slot_left: Option<Duration>,
    /// `CLOCK_BOOTTIME` now, compared with the record's `boottime_ms`.
    pub boottime: Duration,
}

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
        /// When the reboot was issued (RFC 3339, as recorded; display only).
        went_down_at: String,
        /// How long until it is given up.
        left: Duration,
    },
    /// Same boot, and no clock to measure the wait with (a record of an
    /// older version, or a boot-time stamp ahead of now): the wait starts
    /// now, a full `reboot_timeout_sec`; never given up at once.
    NoClock {
        /// When the reboot was issued, as recorded (display only).
        went_down_at: String,
    },
    /// Same boot after `reboot_timeout_sec`: the reboot never happened and
    /// is given up.
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
    clocks: Clocks,
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
    let left = match (slot, clocks.slot_left) {
        // etcd's clock: the slot's lease.
        (Some(_), Some(left)) => left,
        // The slot the record names is gone: its lease ran out.
        (None, _) if clocks.cluster && record.slot.is_some() => Duration::ZERO,
        // The record's boot-time clock.
        _ => match record.boottime_ms {
            Some(ms) if Duration::from_millis(ms) <= clocks.boottime => {
                timeout.saturating_sub(clocks.boottime - Duration::from_millis(ms))
            }
            _ => return PostReboot::NoClock { went_down_at },
        },
    };
    if left.is_zero() {
        PostReboot::TimedOut { went_down_at }
    } else {
        PostReboot::NotYet { went_down_at, left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::lock::{SlotKind, SlotPhase, SlotValue};

    const TIMEOUT: Duration = Duration::from_secs(600);
    /// CLOCK_BOOTTIME now in every case: one hour into this boot.
    const NOW_MS: u64 = 3_600_000;

    fn record(boot: &str, at: &str, boottime_ms: Option<u64>) -> RebootRecord {
        RebootRecord {
            node: "web-1".into(),
            boot_id: boot.into(),
            slot: Some("/rebootctl/lock/slot-0".into()),
            at: at.into(),
            reason: vec!["marker".into()],
            silences: Vec::new(),
            boottime_ms,
            completion: None,
            slot_create_revision: Some(3),
            uptime_ms: None,
            evidence: Vec::new(),
        }
    }

    fn local(boot: &str, at: &str, boottime_ms: Option<u64>) -> RebootRecord {
        RebootRecord {
            slot: None,
            ..record(boot, at, boottime_ms)
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
                kind: SlotKind::Agent,
                limit: 1,
                group: String::new(),
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

    fn with(mut r: RebootRecord, f: impl FnOnce(&mut RebootRecord)) -> RebootRecord {
        f(&mut r);
        r
    }

    fn no_clock(at: &str) -> PostReboot {
        PostReboot::NoClock {
            went_down_at: at.into(),
        }
    }

    #[test]
    fn every_case() {
        let t = "2026-11-27T11:55:00Z";
        let u = "2026-11-27T11:40:00Z";
        let ago = |secs: u64| Some(NOW_MS - secs * 1000);
        let cluster = |left: Option<u64>| Clocks {
            cluster: true,
            slot_left: left.map(Duration::from_secs),
            boottime: Duration::from_millis(NOW_MS),
        };
        let local_mode = Clocks {
            cluster: false,
            slot_left: None,
            boottime: Duration::from_millis(NOW_MS),
        };
        // (case, record, slot, clocks, expected); this boot is "b-now" on "m-1".
        type Case = (
            &'static str,
            Option<RebootRecord>,
            Option<Slot>,
            Clocks,
            PostReboot,
        );
        let cases: Vec<Case> = vec![
            ("nothing", None, None, cluster(None), PostReboot::Nothing),
            (
                "new boot, both",
                Some(record("b-old", t, ago(300))),
                Some(slot("b-old", "m-1", t)),
                cluster(Some(300)),
                back(t),
            ),
            (
                "same boot: the slot's lease decides",
                Some(record("b-now", t, ago(300))),
                Some(slot("b-now", "m-1", t)),
                cluster(Some(120)),
                not_yet(t, 120),
            ),
            (
                "same boot: the slot's lease ran out",
                Some(record("b-now", t, ago(60))),
                Some(slot("b-now", "m-1", t)),
                cluster(Some(0)),
                timed_out(t),
            ),
            (
                "same boot: the slot the record names is gone",
                Some(record("b-now", t, ago(60))),
                None,
                cluster(None),
                timed_out(t),
            ),
            (
                "record without slot, new boot",
                Some(record("b-old", t, ago(300))),
                None,
                cluster(None),
                back(t),
            ),
            (
                "local: boot-time clock, not yet",
                Some(local("b-now", t, ago(300))),
                None,
                local_mode,
                not_yet(t, 300),
            ),
            (
                "local: boot-time clock, timed out",
                Some(local("b-now", t, ago(900))),
                None,
                local_mode,
                timed_out(t),
            ),
            (
                "local: an unparsable time is never expired",
                Some(local("b-now", "garbage", ago(5))),
                None,
                local_mode,
                not_yet("garbage", 595),
            ),
            (
                "local: a wall-clock time far in the past does not count",
                Some(local("b-now", "1999-01-01T00:00:00Z", ago(5))),
                None,
                local_mode,
                not_yet("1999-01-01T00:00:00Z", 595),
            ),
            (
                "local: no boot-time stamp (older record): no clock",
                Some(local("b-now", u, None)),
                None,
                local_mode,
                no_clock(u),
            ),
            (
                "local: a boot-time stamp ahead of now: no clock",
                Some(local("b-now", t, Some(NOW_MS + 1))),
                None,
                local_mode,
                no_clock(t),
            ),
            (
                "slot without record, new boot: not ours",
                None,
                Some(slot("b-old", "m-1", t)),
                cluster(Some(300)),
                not_ours("b-old", "m-1"),
            ),
            (
                "slot without record, same boot: not ours",
                None,
                Some(slot("b-now", "m-1", u)),
                cluster(Some(30)),
                not_ours("b-now", "m-1"),
            ),
            (
                "slot of another machine without record: not ours",
                None,
                Some(slot("b-old", "m-other", t)),
                cluster(Some(300)),
                not_ours("b-old", "m-other"),
            ),
            (
                "unknown machine id in the slot proves nothing",
                None,
                Some(slot("b-old", "", t)),
                cluster(Some(300)),
                not_ours("b-old", ""),
            ),
            (
                "a matching record is ours, whatever the slot's machine id",
                Some(record("b-old", t, ago(1))),
                Some(slot("b-old", "m-changed", t)),
                cluster(Some(300)),
                back(t),
            ),
            (
                "the record names another slot: not ours",
                Some(with(record("b-old", t, ago(1)), |r| {
                    r.slot = Some("/rebootctl/lock/slot-1".into())
                })),
                Some(slot("b-old", "m-1", t)),
                cluster(Some(300)),
                not_ours("b-old", "m-1"),
            ),
            (
                "another holding of the same slot (create revision): not ours",
                Some(with(record("b-old", t, ago(1)), |r| {
                    r.slot_create_revision = Some(99)
                })),
                Some(slot("b-old", "m-1", t)),
                cluster(Some(300)),
                not_ours("b-old", "m-1"),
            ),
            (
                "a record of an older version (no create revision): key and boot id",
                Some(with(record("b-old", t, ago(1)), |r| {
                    r.slot_create_revision = None
                })),
                Some(slot("b-old", "m-1", t)),
                cluster(Some(300)),
                back(t),
            ),
            (
                "a slot with another boot id than the record: not ours",
                Some(record("b-old", u, ago(1))),
                Some(slot("b-now", "m-1", t)),
                cluster(Some(0)),
                not_ours("b-now", "m-1"),
            ),
            (
                "exactly at the timeout",
                Some(local("b-now", t, ago(600))),
                None,
                local_mode,
                timed_out(t),
            ),
        ];
        for (name, rec, s, clocks, want) in cases {
            let got = classify(rec.as_ref(), s.as_ref(), "b-now", clocks, TIMEOUT);
            assert_eq!(got, want, "{name}");
        }
    }
}

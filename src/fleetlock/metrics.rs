//! The FleetLock server's metrics, rendered in the Prometheus text format
//! on `GET /metrics` of the server's own port: requests by operation and
//! kind, and per group the holders of its lock (agents and FleetLock
//! clients), its slots, the holds about to expire, and whether etcd
//! answered the last time it was asked.

use std::collections::BTreeMap;

use crate::exposition::{bool_value, family, sample};
use crate::fleetlock::protocol::{Kind, Operation};

/// The `kind` label of a request that succeeded (200).
pub const KIND_OK: &str = "ok";
/// The `operation` label of a request for neither operation (404, 405, /metrics).
pub const OPERATION_NONE: &str = "none";

/// What one group's lock looked like at the last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupGauge {
    /// Slots held by rebootctl agents.
    pub agents: u64,
    /// Slots held by FleetLock clients.
    pub fleetlock: u64,
    /// FleetLock holds whose lease ends within `hold_warning_sec`.
    pub expiring: u64,
}

/// The server's metric values.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `(operation, kind)` → requests answered.
    requests: BTreeMap<(String, String), u64>,
    /// group → (slots, last gauge).
    groups: BTreeMap<String, (u32, GroupGauge)>,
    /// Whether the last etcd read or write succeeded.
    etcd_up: bool,
}

impl Metrics {
    /// Every counter at zero, for the `groups` (name, slots) served; each
    /// operation starts with every kind at 0 so rates work from the start.
    pub fn new(groups: &[(String, u32)]) -> Metrics {
        let mut requests = BTreeMap::new();
        for op in Operation::ALL {
            let kinds = Kind::ALL.iter().map(|k| k.as_str()).chain([KIND_OK]);
            for kind in kinds {
                requests.insert((op.as_str().to_string(), kind.to_string()), 0);
            }
        }
        Metrics {
            requests,
            groups: groups
                .iter()
                .map(|(g, slots)| (g.clone(), (*slots, GroupGauge::default())))
                .collect(),
            etcd_up: true,
        }
    }

    /// Counts one answered request.
    pub fn count(&mut self, operation: &str, kind: &str) {
        *self
            .requests
            .entry((operation.to_string(), kind.to_string()))
            .or_insert(0) += 1;
    }

    /// Records the last read of `group`'s lock.
    pub fn set_group(&mut self, group: &str, gauge: GroupGauge) {
        if let Some(entry) = self.groups.get_mut(group) {
            entry.1 = gauge;
        }
    }

    /// Records whether etcd answered.
    pub fn set_etcd_up(&mut self, up: bool) {
        self.etcd_up = up;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let name = "rebootctl_fleetlock_requests_total";
        family(
            &mut out,
            name,
            "counter",
            "FleetLock requests answered, by operation and kind (ok for a 200).",
        );
        for ((op, kind), n) in &self.requests {
            sample(
                &mut out,
                name,
                &[("operation", op), ("kind", kind)],
                *n as f64,
            );
        }
        let name = "rebootctl_fleetlock_holders";
        family(
            &mut out,
            name,
            "gauge",
            "Slots of the group's lock held, by holder kind (agent, fleetlock), at the last read.",
        );
        for (group, (_, g)) in &self.groups {
            sample(
                &mut out,
                name,
                &[("group", group), ("kind", "agent")],
                g.agents as f64,
            );
            sample(
                &mut out,
                name,
                &[("group", group), ("kind", "fleetlock")],
                g.fleetlock as f64,
            );
        }
        let name = "rebootctl_fleetlock_slots";
        family(&mut out, name, "gauge", "Slots of the group's lock.");
        for (group, (slots, _)) in &self.groups {
            sample(&mut out, name, &[("group", group)], f64::from(*slots));
        }
        let name = "rebootctl_fleetlock_holds_expiring";
        family(
            &mut out,
            name,
            "gauge",
            "FleetLock holds of the group whose lease ends within hold_warning_sec (the client has not come back).",
        );
        for (group, (_, g)) in &self.groups {
            sample(&mut out, name, &[("group", group)], g.expiring as f64);
        }
        let name = "rebootctl_fleetlock_etcd_up";
        family(
            &mut out,
            name,
            "gauge",
            "1 if etcd answered the server's last request, else 0 (every pre-reboot is refused then).",
        );
        sample(&mut out, name, &[], bool_value(self.etcd_up));
        let name = "rebootctl_build_info";
        family(
            &mut out,
            name,
            "gauge",
            "Always 1; the version is in the label.",
        );
        sample(
            &mut out,
            name,
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_kind_starts_at_zero_and_counts() {
        let mut m = Metrics::new(&[("default".to_string(), 2)]);
        m.count("pre-reboot", "semaphore_full");
        m.count(OPERATION_NONE, "not_found");
        m.set_group(
            "default",
            GroupGauge {
                agents: 1,
                fleetlock: 1,
                expiring: 1,
            },
        );
        m.set_etcd_up(false);
        let text = m.render();
        for line in [
            "rebootctl_fleetlock_requests_total{operation=\"pre-reboot\",kind=\"semaphore_full\"} 1",
            "rebootctl_fleetlock_requests_total{operation=\"steady-state\",kind=\"ok\"} 0",
            "rebootctl_fleetlock_requests_total{operation=\"none\",kind=\"not_found\"} 1",
            "rebootctl_fleetlock_holders{group=\"default\",kind=\"fleetlock\"} 1",
            "rebootctl_fleetlock_slots{group=\"default\"} 2",
            "rebootctl_fleetlock_holds_expiring{group=\"default\"} 1",
            "rebootctl_fleetlock_etcd_up 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn promtool_accepts_the_exposition() {
        let mut m = Metrics::new(&[("default".to_string(), 1), ("wor\"kers".to_string(), 2)]);
        m.count("pre-reboot", "ok");
        crate::exposition::assert_promtool_accepts(&m.render());
    }
}

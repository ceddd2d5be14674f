//! The cluster policies (SPEC §6): a pure decision over the registered
//! nodes, their health records and the slots they hold.

use crate::cluster::lock::SlotPhase;
use crate::cluster::records::HealthRecord;
use crate::config::ClusterPolicies;

/// What the policy needs to know of one registered node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// Its health record, if one is fresh (records live on a lease, so an
    /// expired record is simply absent).
    pub health: Option<HealthRecord>,
    /// The phase of the slot it holds, if any.
    pub slot: Option<SlotPhase>,
}

impl NodeState {
    /// Healthy for the policies: a fresh record that says healthy, and not
    /// rebooting.
    pub fn counts_as_healthy(&self) -> bool {
        self.health.as_ref().is_some_and(|h| h.healthy) && self.slot != Some(SlotPhase::Rebooting)
    }
}

/// The verdict of the cluster policies.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum PolicyVerdict {
    /// The reboot may go ahead; the string summarises the counts.
    Allowed(String),
    /// A policy forbids it; the string says which and why.
    Forbidden(String),
}

/// Decides whether `me` may go down now (SPEC §6). `nodes` are the
/// registered nodes (`me` is counted as registered even when missing);
/// `me` counts as down.
pub fn policy_allows(me: &str, nodes: &[NodeState], policy: &ClusterPolicies) -> PolicyVerdict {
    let mut total = nodes.len();
    if !nodes.iter().any(|n| n.name == me) {
        total += 1;
    }
    let healthy: Vec<&NodeState> = nodes
        .iter()
        .filter(|n| n.name != me && n.counts_as_healthy())
        .collect();
    let healthy_count = healthy.len();
    let summary = format!("{healthy_count} of {total} registered nodes healthy without this one");
    if let Some(min) = policy.min_healthy_absolute {
        if healthy_count < min as usize {
            return PolicyVerdict::Forbidden(format!("min_healthy_absolute {min}: only {summary}"));
        }
    }
    if let Some(fraction) = policy.min_healthy_fraction {
        // Compare in integers: healthy / total >= fraction.
        let needed = (fraction * total as f64 - 1e-9).ceil().max(0.0) as usize;
        if healthy_count < needed {
            return PolicyVerdict::Forbidden(format!(
                "min_healthy_fraction {fraction}: {summary}, {needed} needed"
            ));
        }
    }
    if policy.forbid_if_only_fallback_left && policy.fallback_nodes.iter().any(|f| f == me) {
        let others = healthy
            .iter()
            .filter(|n| policy.fallback_nodes.contains(&n.name))
            .count();
        if others == 0 {
            return PolicyVerdict::Forbidden(format!(
                "forbid_if_only_fallback_left: {me} is the only healthy fallback node ({})",
                policy.fallback_nodes.join(", ")
            ));
        }
    }
    PolicyVerdict::Allowed(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, healthy: Option<bool>, slot: Option<SlotPhase>) -> NodeState {
        NodeState {
            name: name.to_string(),
            health: healthy.map(|h| HealthRecord {
                node: name.to_string(),
                healthy: h,
                phase: "heartbeat".into(),
                reason: String::new(),
                checked_at: "2026-01-01T00:00:00Z".into(),
                boot_id: "b".into(),
                reboot_required: None,
                pid: 0,
                machine_id: String::new(),
                name_conflict: None,
            }),
            slot,
        }
    }

    fn policy(fraction: Option<f64>, absolute: Option<u32>, fallback: &[&str]) -> ClusterPolicies {
        ClusterPolicies {
            min_healthy_fraction: fraction,
            min_healthy_absolute: absolute,
            forbid_if_only_fallback_left: !fallback.is_empty(),
            fallback_nodes: fallback.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn allowed(v: &PolicyVerdict) -> bool {
        matches!(v, PolicyVerdict::Allowed(_))
    }

    #[test]
    fn policies_table() {
        use SlotPhase::*;
        let h = Some(true);
        let sick = Some(false);
        let expired = None;
        // (case, me, nodes, policy, allowed)
        let cases: Vec<(&str, &str, Vec<NodeState>, ClusterPolicies, bool)> = vec![
            (
                "no policy",
                "a",
                vec![node("a", h, None)],
                policy(None, None, &[]),
                true,
            ),
            (
                "fraction met: 3 of 5 without me",
                "a",
                vec![
                    node("a", h, None),
                    node("b", h, None),
                    node("c", h, None),
                    node("d", h, None),
                    node("e", sick, None),
                ],
                policy(Some(0.6), None, &[]),
                true,
            ),
            (
                "fraction missed: 2 of 5 without me",
                "a",
                vec![
                    node("a", h, None),
                    node("b", h, None),
                    node("c", h, None),
                    node("d", sick, None),
                    node("e", sick, None),
                ],
                policy(Some(0.6), None, &[]),
                false,
            ),
            (
                "fraction 1.0 can never be met by a node that counts itself down",
                "a",
                vec![node("a", h, None), node("b", h, None)],
                policy(Some(1.0), None, &[]),
                false,
            ),
            (
                "absolute met",
                "a",
                vec![
                    node("a", h, None),
                    node("b", h, None),
                    node("c", h, None),
                    node("d", h, None),
                ],
                policy(None, Some(3), &[]),
                true,
            ),
            (
                "absolute missed",
                "a",
                vec![node("a", h, None), node("b", h, None), node("c", h, None)],
                policy(None, Some(3), &[]),
                false,
            ),
            (
                "expired records do not count",
                "a",
                vec![
                    node("a", h, None),
                    node("b", expired, None),
                    node("c", expired, None),
                    node("d", h, None),
                ],
                policy(None, Some(2), &[]),
                false,
            ),
            (
                "a node mid-reboot does not count even with a healthy record",
                "a",
                vec![
                    node("a", h, None),
                    node("b", h, Some(Rebooting)),
                    node("c", h, None),
                ],
                policy(None, Some(2), &[]),
                false,
            ),
            (
                "a node checking under the lock still counts",
                "a",
                vec![
                    node("a", h, None),
                    node("b", h, Some(Checking)),
                    node("c", h, None),
                ],
                policy(None, Some(2), &[]),
                true,
            ),
            (
                "unregistered me counts in the total",
                "a",
                vec![node("b", h, None)],
                policy(Some(0.5), None, &[]),
                true,
            ),
            (
                "only fallback left",
                "lb-1",
                vec![
                    node("lb-1", h, None),
                    node("lb-2", sick, None),
                    node("web", h, None),
                ],
                policy(None, None, &["lb-1", "lb-2"]),
                false,
            ),
            (
                "another fallback healthy",
                "lb-1",
                vec![node("lb-1", h, None), node("lb-2", h, None)],
                policy(None, None, &["lb-1", "lb-2"]),
                true,
            ),
            (
                "other fallback rebooting",
                "lb-1",
                vec![node("lb-1", h, None), node("lb-2", h, Some(Rebooting))],
                policy(None, None, &["lb-1", "lb-2"]),
                false,
            ),
            (
                "non-fallback node is not bound by the fallback rule",
                "web",
                vec![
                    node("lb-1", h, None),
                    node("lb-2", sick, None),
                    node("web", h, None),
                ],
                policy(None, None, &["lb-1", "lb-2"]),
                true,
            ),
        ];
        for (case, me, nodes, p, want) in cases {
            let v = policy_allows(me, &nodes, &p);
            assert_eq!(allowed(&v), want, "{case}: {v:?}");
        }
    }

    #[test]
    fn forbidden_names_the_policy() {
        let v = policy_allows(
            "a",
            &[node("a", Some(true), None)],
            &policy(None, Some(1), &[]),
        );
        match v {
            PolicyVerdict::Forbidden(r) => assert!(r.starts_with("min_healthy_absolute 1"), "{r}"),
            other => panic!("{other:?}"),
        }
    }
}

//! Issue 10.12: the fleet on a real three-member etcd cluster (three
//! processes on loopback), with the chaos a cluster sees: the leader killed
//! during a handoff, a member frozen (SIGSTOP: cut off from the other
//! members and silent to the agents that talk to it, as behind a dead
//! link) while agents wait on watches through it, a member restarted while
//! a node is down. Agents are the real binary with a fake power cycle
//! (`rebootctl::testing::fleet`); each node lists every member, starting with
//! its own, so some agents always talk to the member that is hit and must
//! fail over. `check_interval_sec` is five minutes: a waiting node moves
//! only when its watch wakes it, so a watch stuck on a dead member shows as
//! a fleet that does not finish. After every scenario the invariant
//! checker: never more than the limit down, every node rebooted exactly
//! once (no reboot on an error path), the fleet finished.

use crate::common;

use std::time::Duration;

use common::fixture::binary;
use rebootctl::testing::etcd::EtcdCluster;
use rebootctl::testing::fleet::{Event, Fleet, FleetSpec, Kind, Report};

const DONE: Duration = Duration::from_secs(90);
const MEMBERS: usize = 3;

/// A fleet of `nodes` on a fresh three-member cluster, started, every
/// node needing a reboot.
fn fleet_on_a_cluster(nodes: usize) -> Fleet {
    let cluster = EtcdCluster::start(MEMBERS);
    assert!(cluster.leader().is_some(), "the cluster has no leader");
    let mut f = Fleet::with_cluster(
        binary(),
        FleetSpec {
            nodes,
            slots: 1,
            // Room for one renewal that hangs on an unresponsive member
            // for the whole request timeout (10 s) before failing over.
            lock_ttl_secs: 20,
            check_interval_secs: 300,
            ..FleetSpec::default()
        },
        cluster,
    );
    // A watch on a member that went silent is replaced within 3 s.
    f.set_all("etcd_watch_idle_timeout_sec", "3");
    // Needs first: with a five-minute interval, an agent whose first pass
    // found none would not look again during the test.
    f.need_all();
    f.start_all();
    f
}

/// Safe, finished, and every node rebooted exactly once.
fn assert_finished(f: &Fleet, r: &Report) {
    assert!(
        r.done(),
        "violations: {:?}, pending: {:?}\n{}",
        r.violations,
        r.pending,
        f.diagnostics()
    );
    assert!(r.max_down <= 1, "{r:?}");
    assert_eq!(r.reboots.len(), f.nodes.len(), "{r:?}\n{}", f.diagnostics());
    assert!(
        r.reboots.values().all(|&n| n == 1),
        "{:?}\n{}",
        r.reboots,
        f.diagnostics()
    );
}

/// Whether a node that listed member `m` first logged a failover.
fn failed_over_from(f: &Fleet, m: usize) -> bool {
    f.nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| i % MEMBERS == m)
        .any(|(_, n)| {
            std::fs::read_to_string(n.path("agent.log"))
                .unwrap_or_default()
                .contains("etcd: now using endpoint")
        })
}

fn first(events: &[Event], kind: Kind) -> Option<&Event> {
    events.iter().find(|e| e.kind == kind)
}

#[test]
fn the_leader_killed_during_a_handoff() {
    let mut f = fleet_on_a_cluster(4);
    // The first holder passed its post-reboot check: it is releasing its
    // slot and the next node is about to take it.
    assert!(
        f.wait_for(DONE, |ev| first(ev, Kind::Healthy).is_some()),
        "nobody completed a reboot\n{}",
        f.diagnostics()
    );
    let leader = f.leader().expect("a leader");
    f.note(&format!("killing the leader m{leader}"));
    f.member(leader).kill();
    let r = f.wait_done(DONE);
    assert_finished(&f, &r);
    assert!(
        failed_over_from(&f, leader),
        "no agent of m{leader} failed over\n{}",
        f.diagnostics()
    );
}

#[test]
fn a_member_frozen_while_waiting_agents_watch_through_it() {
    let mut f = fleet_on_a_cluster(3);
    for i in 0..f.nodes.len() {
        // Each holder checks for a while: time to see the others waiting.
        f.post_lock_sleep(i, 1.5);
    }
    let mut holder = 0;
    assert!(
        f.wait_for(DONE, |ev| match first(ev, Kind::SlotTaken) {
            Some(e) => {
                holder = e.node.trim_start_matches("node-").parse().unwrap_or(0);
                true
            }
            None => false,
        }),
        "nobody took the slot\n{}",
        f.diagnostics()
    );
    // A waiting node, whose watch runs on its first member (not the
    // holder's): once it waits, that member is frozen. It answers no one
    // and the other two go on without it (electing a new leader if it led);
    // the waiting node's watch on it goes silent without a word.
    let waiter = (holder + 1) % f.nodes.len();
    let member = waiter % MEMBERS;
    assert!(
        f.wait_for(DONE, |_| f.nodes[waiter]
            .log_tail(20)
            .contains("no free lock slot")),
        "node-{waiter} is not waiting\n{}",
        f.diagnostics()
    );
    f.note(&format!(
        "node-{waiter} waits; freezing m{member} until the fleet is done"
    ));
    f.member(member).pause();
    let r = f.wait_done(DONE);
    f.member(member).resume();
    assert_finished(&f, &r);
    assert!(
        failed_over_from(&f, member),
        "no agent of m{member} failed over\n{}",
        f.diagnostics()
    );
}

#[test]
fn a_member_restarted_while_a_node_is_down() {
    let mut f = fleet_on_a_cluster(3);
    let mut down = 0;
    assert!(
        f.wait_for(DONE, |ev| match first(ev, Kind::Rebooting) {
            Some(e) => {
                down = e.node.trim_start_matches("node-").parse().unwrap_or(0);
                true
            }
            None => false,
        }),
        "nobody rebooted\n{}",
        f.diagnostics()
    );
    // The member the rebooting node will talk to first when it is back.
    let member = down % MEMBERS;
    f.note(&format!("restarting m{member}"));
    f.member(member).restart();
    f.note(&format!("m{member} back"));
    let r = f.wait_done(DONE);
    assert_finished(&f, &r);
    assert!(f.leader().is_some(), "no leader after the restart");
}

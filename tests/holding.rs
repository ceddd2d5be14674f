//! The `Holding` guard (issue 11) against a real etcd: a slot in phase
//! checking is given back when the guard is dropped, on any path; only
//! `into_rebooting` keeps it, and a failed switch hands the slot back still
//! held, so the caller can undo its hook before anyone else takes it. A
//! holding past its checking deadline is given up (its lease revoked) and
//! can never be switched. An agent's own slot is a slot of kind agent: a
//! FleetLock client's slot under the same name is never adopted (issue 13).

use std::path::Path;
use std::time::{Duration, Instant};

use rebootctl::cluster::Cluster;
use rebootctl::cluster::holding::{Holding, Taken};
use rebootctl::cluster::lock::{Acquire, SlotKind, SlotPhase, SlotValue};
use rebootctl::error::Error;
use rebootctl::testing::etcd::{EtcdServer, poll_until};

/// A checking deadline no test here reaches.
const DEADLINE: Duration = Duration::from_secs(600);

fn cluster(etcd: &EtcdServer, node: &str) -> Cluster {
    cluster_of(etcd, node, 1)
}

fn cluster_of(etcd: &EtcdServer, node: &str, limit: u32) -> Cluster {
    let text = format!(
        "node_name: {node}\n\
         reboot_required_detectors: [{{type: file, path: /run/reboot-required}}]\n\
         etcd_endpoints: [\"{}\"]\n\
         max_concurrent_reboots: {limit}\n",
        etcd.endpoint
    );
    let cfg = rebootctl::config::parse(&text, Path::new("/holding-test.yaml")).unwrap();
    Cluster::connect(&cfg).unwrap()
}

fn value(node: &str) -> SlotValue {
    SlotValue {
        node: node.into(),
        pid: std::process::id(),
        boot_id: "boot-1".into(),
        phase: SlotPhase::Checking,
        acquired_at: "2026-11-27T10:00:00Z".into(),
        machine_id: String::new(),
        kind: SlotKind::Agent,
        limit: 1,
        group: String::new(),
    }
}

fn take(c: &Cluster, node: &str) -> Holding {
    match c
        .take_slot(&value(node), Duration::from_secs(30), DEADLINE)
        .unwrap()
    {
        Taken::Held(h) => *h,
        Taken::Busy(holders) => panic!("busy: {holders:?}"),
    }
}

fn phases(c: &Cluster) -> Vec<(String, Option<SlotPhase>)> {
    let (slots, _) = c.lock.holders().unwrap();
    slots
        .iter()
        .map(|s| (s.node().to_string(), s.phase()))
        .collect()
}

#[test]
fn the_holding_guard_releases_on_drop_and_only_the_switch_keeps_the_slot() {
    let etcd = EtcdServer::start();
    let c = cluster(&etcd, "g");
    // Dropped: released, its lease revoked.
    let h = take(&c, "g");
    let lease = h.slot().lease;
    assert_eq!(phases(&c), [("g".into(), Some(SlotPhase::Checking))]);
    assert!(matches!(
        c.take_slot(&value("other"), Duration::from_secs(30), DEADLINE)
            .unwrap(),
        Taken::Busy(_)
    ));
    drop(h);
    assert!(phases(&c).is_empty());
    assert_eq!(c.client.lease_time_to_live(lease).unwrap(), None);
    // Switched: kept in phase rebooting on the reboot lease; the checking
    // lease is revoked and nothing is released when the guard goes.
    let mut h = take(&c, "g");
    let checking_lease = h.slot().lease;
    h.reserve_reboot_lease(Duration::from_secs(60)).unwrap();
    let slot = h.into_rebooting().unwrap_or_else(|e| panic!("{}", e.error));
    assert_eq!(phases(&c), [("g".into(), Some(SlotPhase::Rebooting))]);
    assert_ne!(slot.lease, checking_lease);
    assert_eq!(c.client.lease_time_to_live(checking_lease).unwrap(), None);
    assert!(c.slot_time_left(&slot).unwrap().unwrap() > Duration::from_secs(50));
    assert!(c.renew_slot(&slot).unwrap());
    assert!(c.lock.release(&slot).unwrap());
    // A slot changed under us (an operator's unlock): the switch fails
    // and hands the guard back; dropping it then touches nothing new.
    let mut h = take(&c, "g");
    h.reserve_reboot_lease(Duration::from_secs(60)).unwrap();
    let other = cluster(&etcd, "operator");
    c.client.delete(&h.slot().key).unwrap();
    let Taken::Held(theirs) = other
        .take_slot(&value("operator"), Duration::from_secs(30), DEADLINE)
        .unwrap()
    else {
        panic!("the operator's node did not get the freed slot");
    };
    let not = h.into_rebooting().expect_err("the switch must fail");
    assert!(
        matches!(not.error, Error::SlotChanged { .. }),
        "{}",
        not.error
    );
    drop(not);
    assert_eq!(phases(&c), [("operator".into(), Some(SlotPhase::Checking))]);
    drop(theirs);
    assert!(phases(&c).is_empty());
}

#[test]
fn a_holding_past_its_checking_deadline_is_given_up_and_never_switched() {
    let etcd = EtcdServer::start();
    let c = cluster(&etcd, "g");
    let deadline = Duration::from_millis(1500);
    let taken = Instant::now();
    let Taken::Held(h) = c
        .take_slot(&value("g"), Duration::from_secs(30), deadline)
        .unwrap()
    else {
        panic!("the slot is free");
    };
    let mut h = *h;
    let lease = h.slot().lease;
    h.reserve_reboot_lease(Duration::from_secs(60)).unwrap();
    assert!(!h.lost() && h.lost_error("").is_none());
    // Revoked at the deadline (the pass may be stuck): freed at once, not
    // 30 s later as an expiry would.
    let freed = poll_until(Duration::from_secs(10), || {
        phases(&c).is_empty().then(Instant::now)
    })
    .expect("the slot was never freed");
    assert!(freed >= taken + deadline, "freed before the deadline");
    assert!(
        freed < taken + deadline + Duration::from_secs(3),
        "freed {:?} after the deadline: revoked, not left to expire",
        freed - (taken + deadline)
    );
    assert_eq!(c.client.lease_time_to_live(lease).unwrap(), None);
    assert!(h.lost() && h.past_deadline());
    // The pass, once unstuck, cannot switch it to rebooting.
    let not = h.into_rebooting().expect_err("switched past the deadline");
    assert!(
        matches!(not.error, Error::CheckingDeadline { budget } if budget == deadline),
        "{}",
        not.error
    );
    assert!(not.error.to_string().contains("deadline"), "{}", not.error);
    drop(not);
    assert!(phases(&c).is_empty());
}

#[test]
fn an_agent_never_adopts_a_fleetlock_slot_of_its_name() {
    let etcd = EtcdServer::start();
    let c = cluster_of(&etcd, "c988d2509fdf4cdcbed39037c56406fb", 2);
    let id = "c988d2509fdf4cdcbed39037c56406fb";
    // A FleetLock client holds a slot under the very name of this agent.
    let lease = c.client.lease_grant(Duration::from_secs(60)).unwrap().id;
    let client = SlotValue::fleetlock(id, "default", "2026-11-27T10:00:00Z", 2);
    let Ok(Acquire::Held(theirs)) = c.lock.acquire(&client, lease) else {
        panic!("the FleetLock client did not get a slot");
    };
    assert!(theirs.is_fleetlock());
    assert!(!theirs.is_agent(id));
    // Not the agent's: `find` does not return it ...
    assert_eq!(c.lock.find(id).unwrap(), None);
    // ... and acquiring takes another slot, leaving the client's alone.
    let mine = take(&c, id);
    assert_ne!(mine.slot().key, theirs.key);
    assert_eq!(mine.slot().kind(), Some(SlotKind::Agent));
    assert_eq!(
        c.lock.find(id).unwrap().map(|s| s.key),
        Some(mine.slot().key.clone())
    );
    let (slots, _) = c.lock.holders().unwrap();
    let still = slots.iter().find(|s| s.key == theirs.key).unwrap();
    assert_eq!(still.value, theirs.value);
    assert_eq!(still.mod_revision, theirs.mod_revision);
    assert_eq!(still.lease, lease);
    drop(mine);
    // With one slot in force, the client's slot makes the lock busy for
    // the agent of the same name (it is counted, not adopted).
    let one = cluster_of(&etcd, id, 1);
    let Taken::Busy(holders) = one
        .take_slot(&value(id), Duration::from_secs(30), DEADLINE)
        .unwrap()
    else {
        panic!("the agent took a second slot beyond the limit");
    };
    assert_eq!(holders.len(), 1);
    assert!(holders[0].is_fleetlock());
    assert!(c.lock.release(&theirs).unwrap());
}

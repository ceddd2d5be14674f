//! The atomic limit (issue 10 item 7, DESIGN §2 "ATOMIC LIMIT") through
//! the real binary against a real etcd: hosts that disagree on
//! `max_concurrent_reboots`, a limit lowered while slots beyond it are
//! held, and hosts racing for the last slot. The invariant checked
//! everywhere: every host that is down (holds a slot) had a limit of at
//! least the number of hosts down.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::fixture::{Fixture, Run, wait_until};
use rebootctl::testing::etcd::{EtcdServer, TempDir};

fn host(name: &str, etcd: &EtcdServer, limit: u32) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(&etcd.endpoint);
    fx.set("max_concurrent_reboots", &limit.to_string());
    fx
}

/// Starts `run --once` on every host at the same moment and waits for all.
fn run_together(hosts: &[&Fixture]) -> Vec<Run> {
    let children: Vec<_> = hosts
        .iter()
        .map(|fx| fx.spawn(&["run", "--once"]))
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .collect()
}

/// A health script that holds every host in its pre-lock check until `n`
/// hosts are inside it, so they count the holders at the same moment.
fn barrier(fx: &mut Fixture, dir: &Path, n: usize) {
    let d = dir.display();
    let h = fx.script(
        "health",
        &format!(
            "if [ \"$RC_PHASE\" = pre-lock ]; then\n  touch {d}/$RC_NODE_NAME\n  i=0\n  while [ \"$(ls {d} | wc -l)\" -lt {n} ] && [ $i -lt 400 ]; do sleep 0.02; i=$((i+1)); done\nfi\nexit 0\n"
        ),
    );
    fx.set("health_script", &h.display().to_string());
}

/// The host comes back from its (fake) reboot without a need and completes
/// it: its slot is released.
fn complete(fx: &Fixture, boot: &str) {
    let _ = std::fs::remove_file(fx.path("need-reboot"));
    fx.new_boot(boot);
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "completing the reboot: {r:?}");
}

/// Asserts the invariant over the current holders: each holder's limit
/// (from `limits`, by node name) is at least the number of holders.
fn assert_within_every_limit(reader: &Fixture, limits: &[(&str, u32)]) -> usize {
    let holders = reader.holders();
    for (node, _) in &holders {
        let limit = limits
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, l)| *l)
            .unwrap_or_else(|| panic!("unknown holder {node}"));
        assert!(
            holders.len() <= limit as usize,
            "{} hosts down, but {node} allows only {limit}: {holders:?}",
            holders.len()
        );
    }
    holders.len()
}

#[test]
fn hosts_with_different_limits_never_exceed_the_smallest_held() {
    let etcd = EtcdServer::start();
    let one = host("strict", &etcd, 1);
    let wide: Vec<Fixture> = (0..3)
        .map(|i| host(&format!("wide-{i}"), &etcd, 3))
        .collect();
    let limits = [("strict", 1), ("wide-0", 3), ("wide-1", 3), ("wide-2", 3)];
    for fx in std::iter::once(&one).chain(&wide) {
        fx.need_reboot();
    }
    // The strict host goes first: nobody may join it.
    assert_eq!(one.rebootctl(&["run", "--once"]).code, 0);
    let runs = run_together(&wide.iter().collect::<Vec<_>>());
    for r in &runs {
        assert_eq!(r.code, 4, "a host joined one that allows 1: {r:?}");
        assert!(r.stderr.contains("strict"), "{r:?}");
    }
    assert_eq!(assert_within_every_limit(&one, &limits), 1);
    assert!(wide.iter().all(|fx| fx.reboots().is_empty()));
    // `lock` shows the limit in force, recorded by the holder.
    let text = one.rebootctl(&["lock"]);
    assert!(
        text.stdout.starts_with("1 of 1 lock slot held"),
        "{}",
        text.stdout
    );
    let shown = wide[0].rebootctl(&["lock", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(v["limit"], 1, "{v}");
    assert_eq!(v["slots_total"], 3, "{v}");
    assert_eq!(v["holders"][0]["limit"], 1, "{v}");

    // The strict host is back; a wide one goes, then the strict one may
    // not join the wide one, while another wide one may.
    complete(&one, "boot-2");
    assert_eq!(wide[0].rebootctl(&["run", "--once"]).code, 0);
    one.need_reboot();
    let r = one.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(wide[1].rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(assert_within_every_limit(&one, &limits), 2);
    assert_eq!(one.reboots().len(), 1);
}

#[test]
fn a_lowered_limit_counts_the_slots_held_beyond_it() {
    let etcd = EtcdServer::start();
    // Three hosts went down under a limit of 3 (slots 0, 1, 2).
    let old: Vec<Fixture> = (0..3)
        .map(|i| host(&format!("old-{i}"), &etcd, 3))
        .collect();
    for fx in &old {
        fx.need_reboot();
        assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    }
    // The first is back: slots 1 and 2 stay held, beyond the new limit 1.
    complete(&old[0], "boot-2");
    assert_eq!(old[0].holders().len(), 2);

    // A host whose own checking slot survived a crash (its lease not yet
    // expired) starts again with the lowered limit: it must not take its
    // old slot back while the others already fill the limit.
    let mut z = host("lowered", &etcd, 3);
    z.set("lock_ttl_sec", "30");
    z.need_reboot();
    let pid_file = z.path("hook.pid");
    let hook = z.script(
        "hook",
        &format!("echo $$ > {}\nexec sleep 60\n", pid_file.display()),
    );
    z.set(
        "hooks",
        &format!("{{pre_reboot: [\"{}\"]}}", hook.display()),
    );
    let mut child = z.spawn(&["run", "--once"]);
    assert!(
        wait_until(Duration::from_secs(15), || pid_file.exists()),
        "the host never reached its pre_reboot hook"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    assert!(
        z.holders()
            .contains(&("lowered".to_string(), "checking".to_string()))
    );
    z.set("max_concurrent_reboots", "1");
    z.set("hooks", "{}");
    let r = z.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(z.reboots().is_empty(), "{r:?}");
    let holders = z.holders();
    assert_eq!(
        holders.len(),
        2,
        "its stale slot was given back: {holders:?}"
    );

    // A fresh host with the lowered limit waits while any of them is down.
    let fresh = host("fresh", &etcd, 1);
    fresh.need_reboot();
    assert_eq!(fresh.rebootctl(&["run", "--once"]).code, 4);
    let status = fresh.rebootctl(&["status"]);
    assert_eq!(status.code, 4, "{status:?}");
    complete(&old[1], "boot-2");
    assert_eq!(fresh.rebootctl(&["run", "--once"]).code, 4);
    complete(&old[2], "boot-2");
    assert_eq!(fresh.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(fresh.holders().len(), 1);
}

#[test]
fn concurrent_acquirers_with_mixed_limits_stay_within_every_limit() {
    // Whoever counts first decides how many may join; with the count
    // outside the txn, the hosts allowing 3 joined one allowing 1 or 2 in
    // most rounds.
    let limits = [("c-0", 1), ("c-1", 1), ("c-2", 2), ("c-3", 3), ("c-4", 3)];
    for round in 0..4 {
        let etcd = EtcdServer::start();
        let dir = TempDir::new("barrier");
        let mut hosts: Vec<Fixture> = limits
            .iter()
            .map(|(name, limit)| host(name, &etcd, *limit))
            .collect();
        for fx in &mut hosts {
            fx.need_reboot();
            barrier(fx, dir.path(), limits.len());
        }
        let runs = run_together(&hosts.iter().collect::<Vec<_>>());
        let down = assert_within_every_limit(&hosts[0], &limits);
        assert!(down >= 1, "round {round}: nobody got a slot: {runs:?}");
        let rebooted = hosts.iter().filter(|fx| !fx.reboots().is_empty()).count();
        assert_eq!(rebooted, down, "round {round}: {runs:?}");
        for r in &runs {
            assert!(r.code == 0 || r.code == 4, "round {round}: {r:?}");
        }
    }
}

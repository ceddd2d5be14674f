//! `rebootctl rollout` against a simulated fleet (real agents, a fake
//! power cycle, a real etcd) at several stages of one round: nothing
//! needed, some nodes finished while others are blocked by the kill switch,
//! a deny window and the health gate, and a node rebooting.

use crate::common;

use std::time::{Duration, Instant};

use common::fixture::binary;
use rebootctl::config::EtcdConfig;
use rebootctl::etcd::Client;
use rebootctl::testing::fleet::{Fleet, FleetSpec, Kind};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

fn rollout(f: &Fleet, args: &[&str]) -> Value {
    let mut all = vec!["rollout", "--json"];
    all.extend_from_slice(args);
    let out = f.admin(&all);
    assert_eq!(out.code, 0, "rollout --json: {}", out.stderr);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("rollout --json is not JSON ({e}): {}", out.stdout))
}

/// Polls `rollout --json <args>` until `cond` holds; the last document.
fn rollout_until(f: &Fleet, args: &[&str], what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = rollout(f, args);
        if cond(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "rollout never showed {what}:\n{r:#}\n{}",
            f.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn node<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == name))
        .unwrap_or_else(|| panic!("{name} not in {r:#}"))
}

fn stage(r: &Value, name: &str) -> String {
    node(r, name)["stage"].as_str().unwrap_or("?").to_string()
}

fn group(r: &Value, reason: &str) -> Vec<String> {
    r["blocked_by"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["reason"] == reason))
        .map(|g| {
            g["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn text_fits(f: &Fleet) -> String {
    let out = f.admin(&["rollout", "--laggard-after", "1s"]);
    assert_eq!(out.code, 0, "rollout: {}", out.stderr);
    for line in out.stdout.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line}");
    }
    // Rows compared with single spaces: the columns are the renderer's business.
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn registry_revision(f: &Fleet, name: &str) -> i64 {
    let cfg = EtcdConfig {
        endpoints: vec![f.etcd.endpoint.clone()],
        namespace: "/rebootctl".into(),
        lock_key: "/rebootctl/lock".into(),
        lock_ttl: Duration::from_secs(5),
        max_concurrent_reboots: 1,
        tls: None,
        auth: None,
        clusterrebootd: None,
        watch_idle_timeout: Duration::from_secs(60),
    };
    let client = Client::new(&cfg).expect("etcd client");
    client
        .get(&format!("/rebootctl/nodes/{name}"))
        .expect("read the registry")
        .expect("registered")
        .mod_revision
}

#[test]
fn a_round_at_several_stages() {
    let mut f = Fleet::new(
        binary(),
        FleetSpec {
            nodes: 5,
            slots: 1,
            ..FleetSpec::default()
        },
    );
    f.nodes[3].set("windows", "{deny: [\"* 00:00-24:00\"], timezone: UTC}");
    f.kill_switch(2, true);
    f.set_unhealthy(4, true);
    f.start_all();

    // 1. Registered, nothing needed: no round; the kill switch shows anyway.
    let r = rollout_until(&f, &[], "5 nodes with node-2 blocked", |r| {
        r["counts"]["nodes"] == 5 && stage(r, "node-2") == "blocked"
    });
    assert_eq!(r["round_started_at"], Value::Null, "{r:#}");
    assert_eq!(r["counts"]["needs_reboot"], 0);
    assert_eq!(r["counts"]["up_to_date"], 4);
    assert_eq!(group(&r, "kill_switch"), ["node-2"]);

    // 2. Every node needs a reboot: two go through, three are held back.
    f.need_all();
    assert!(
        f.wait_for(DEADLINE, |ev| [0, 1].iter().all(|i| ev
            .iter()
            .any(|e| e.node == format!("node-{i}") && e.kind == Kind::Healthy))),
        "node-0 and node-1 did not finish\n{}",
        f.diagnostics()
    );
    let r = rollout_until(
        &f,
        &["--laggard-after", "1s"],
        "two finished, three blocked",
        |r| {
            r["counts"]["finished"] == 2
                && r["counts"]["blocked"] == 3
                && r["counts"]["laggards"] == 2
        },
    );
    assert_eq!(group(&r, "kill_switch"), ["node-2"], "{r:#}");
    assert_eq!(group(&r, "window"), ["node-3"], "{r:#}");
    assert_eq!(group(&r, "health"), ["node-4"], "{r:#}");
    assert_eq!(r["round_open"], true);
    assert_eq!(
        r["counts"]["needs_reboot"], 2,
        "node-2 never ran its detectors"
    );
    for n in ["node-0", "node-1"] {
        let done = &node(&r, n)["last_reboot"];
        assert!(done["completed_at"].is_string(), "{r:#}");
        assert!(done["needed_since"].is_string(), "{r:#}");
        assert_eq!(node(&r, n)["needs_reboot_since"], Value::Null);
    }
    for n in ["node-3", "node-4"] {
        assert_eq!(node(&r, n)["laggard"], true, "{r:#}");
        assert!(node(&r, n)["needs_reboot_since"].is_string(), "{r:#}");
    }
    let text = text_fits(&f);
    assert!(
        text.contains("\nfinished this round 2 node-0 node-1\n"),
        "{text}"
    );
    assert!(text.contains("\nwindow 1 node-3\n"), "{text}");
    assert!(text.contains("\nlaggards (> 1s) 2 node-"), "{text}");

    // A blocked node writes its record when the reason changes, not every pass.
    let before = registry_revision(&f, "node-3");
    std::thread::sleep(Duration::from_secs(3 * f.spec.check_interval_secs));
    assert_eq!(
        registry_revision(&f, "node-3"),
        before,
        "rewritten without a change"
    );

    // 3. node-2 is let go and stays down: rebooting, holding the slot.
    f.no_return(2);
    f.kill_switch(2, false);
    let r = rollout_until(&f, &[], "node-2 rebooting", |r| {
        stage(r, "node-2") == "rebooting"
    });
    assert_eq!(node(&r, "node-2")["slot_phase"], "rebooting");
    assert_eq!(r["counts"]["rebooting"], 1);
    assert!(text_fits(&f).contains("\nrebooting 1 node-2 ("));
    assert!(
        f.check().violations.is_empty(),
        "{:?}",
        f.check().violations
    );
}

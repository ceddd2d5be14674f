//! Cluster mode through the real binary against a real etcd (issue 3):
//! lock slots taken under contention and held through the reboot, expiry of
//! dead holders, the admin commands, TLS and auth, and etcd failing
//! mid-pass. Every reboot command is a fake that records its arguments.

use crate::common;

use std::time::{Duration, Instant};

use common::fixture::{Fixture, Run, wait_until};
use rebootctl::testing::etcd::{EtcdServer, TestPki, etcd_binary};

/// A health script that holds every node in its pre-lock check until `n`
/// nodes are inside it, so they race for the lock at the same moment.
fn barrier_health(fx: &Fixture, barrier: &std::path::Path, n: usize) -> String {
    let b = barrier.display();
    fx.script(
        "health",
        &format!(
            "if [ \"$RC_PHASE\" = pre-lock ]; then\n  touch {b}/$RC_NODE_NAME\n  i=0\n  while [ \"$(ls {b} | wc -l)\" -lt {n} ] && [ $i -lt 400 ]; do sleep 0.02; i=$((i+1)); done\nfi\nexit 0\n"
        ),
    )
    .display()
    .to_string()
}

fn cluster_node(name: &str, etcd: &EtcdServer) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(&etcd.endpoint);
    fx
}

fn race(n: usize, slots: u32) -> (Vec<Fixture>, Vec<Run>) {
    let etcd = EtcdServer::start();
    let barrier = rebootctl::testing::etcd::TempDir::new("barrier");
    let mut nodes: Vec<Fixture> = (0..n)
        .map(|i| cluster_node(&format!("node-{i}"), &etcd))
        .collect();
    for fx in &mut nodes {
        fx.need_reboot();
        fx.set("max_concurrent_reboots", &slots.to_string());
        let h = barrier_health(fx, barrier.path(), n);
        fx.set("health_script", &h);
    }
    let children: Vec<_> = nodes
        .iter()
        .map(|fx| fx.spawn(&["run", "--once"]))
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .collect();
    // Every holder is now in phase rebooting.
    let h = nodes[0].holders();
    assert_eq!(h.len(), slots as usize, "{h:?}");
    assert!(h.iter().all(|(_, phase)| phase == "rebooting"), "{h:?}");
    drop(etcd);
    (nodes, runs)
}

#[test]
fn two_agents_one_slot_exactly_one_reboots() {
    let (nodes, runs) = race(2, 1);
    let rebooted: Vec<usize> = (0..2).filter(|&i| !nodes[i].reboots().is_empty()).collect();
    assert_eq!(rebooted.len(), 1, "{runs:?}");
    let other = 1 - rebooted[0];
    assert_eq!(runs[rebooted[0]].code, 0, "{:?}", runs[rebooted[0]]);
    assert_eq!(runs[other].code, 4, "{:?}", runs[other]);
    assert_eq!(nodes[rebooted[0]].reboots().len(), 1);
}

#[test]
fn three_agents_two_slots_exactly_two_reboot() {
    let (nodes, runs) = race(3, 2);
    let rebooted = nodes.iter().filter(|fx| fx.reboots().len() == 1).count();
    assert_eq!(rebooted, 2, "{runs:?}");
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 4).count(), 1, "{runs:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 2, "{runs:?}");
}

#[test]
fn a_killed_holder_frees_its_slot_when_the_lease_expires() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("holder", &etcd);
    a.need_reboot();
    a.set("lock_ttl_sec", "4");
    a.set("health_timeout_sec", "2");
    let pid_file = a.path("hook.pid");
    let hook = a.script(
        "hook",
        &format!("echo $$ > {}\nexec sleep 60\n", pid_file.display()),
    );
    a.set(
        "hooks",
        &format!("{{pre_reboot: [\"{}\"]}}", hook.display()),
    );
    let mut child = a.spawn(&["run", "--once"]);
    assert!(
        wait_until(Duration::from_secs(15), || pid_file.exists()),
        "the holder never reached its pre_reboot hook"
    );
    assert_eq!(
        a.holders(),
        [("holder".to_string(), "checking".to_string())]
    );
    child.kill().unwrap();
    child.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let killed_at = Instant::now();
    let b = cluster_node("waiter", &etcd);
    b.need_reboot();
    let first = b.rebootctl(&["run", "--once"]);
    assert_eq!(first.code, 4, "{first:?}");
    assert!(first.stderr.contains("holder"), "{first:?}");
    let mut last = first;
    let got_it = wait_until(Duration::from_secs(15), || {
        last = b.rebootctl(&["run", "--once"]);
        last.code == 0
    });
    assert!(got_it, "the slot was never freed: {last:?}");
    assert!(killed_at.elapsed() < Duration::from_secs(12));
    assert_eq!(b.reboots().len(), 1);
    assert!(a.reboots().is_empty());
}

#[test]
fn the_slot_is_held_through_the_reboot_until_post_reboot_health_passes() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("a", &etcd);
    let b = cluster_node("b", &etcd);
    a.need_reboot();
    b.need_reboot();
    let gate = a.healthy_after_boot_when();
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(a.reboots().len(), 1);
    assert_eq!(a.holders(), [("a".to_string(), "rebooting".to_string())]);
    // While a is down, b waits.
    let r = b.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    let status = b.rebootctl(&["status"]);
    assert_eq!(status.code, 4, "{status:?}");
    assert!(status.stdout.contains("a (rebooting"), "{}", status.stdout);
    // a comes back with a new boot id but is not healthy yet: slot kept.
    std::fs::remove_file(a.path("need-reboot")).unwrap();
    a.new_boot("boot-2");
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(a.holders(), [("a".to_string(), "rebooting".to_string())]);
    assert_eq!(b.rebootctl(&["run", "--once"]).code, 4);
    // Healthy: released, and b goes next.
    std::fs::write(&gate, "").unwrap();
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(a.holders().is_empty());
    let r = b.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(b.reboots().len(), 1);
    assert_eq!(a.reboots().len(), 1);
    // The history and the registry saw it all.
    let nodes = a.rebootctl(&["nodes", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&nodes.stdout).unwrap();
    let a_row = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "a")
        .unwrap()
        .clone();
    assert!(a_row["last_reboot"].is_string(), "{a_row}");
    assert_eq!(a_row["holding_slot"], false);
}

#[test]
fn a_node_that_never_comes_back_frees_the_slot_after_reboot_timeout() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("lost", &etcd);
    a.need_reboot();
    a.set("reboot_timeout_sec", "3");
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    let b = cluster_node("next", &etcd);
    b.need_reboot();
    assert_eq!(b.rebootctl(&["run", "--once"]).code, 4);
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(12), || {
            let r = b.rebootctl(&["run", "--once"]);
            let ok = r.code == 0;
            last = Some(r);
            ok
        }),
        "{last:?}"
    );
    assert_eq!(b.reboots().len(), 1);
}

#[test]
fn a_need_that_vanishes_under_the_lock_releases_without_rebooting() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("vanish", &etcd);
    a.need_reboot();
    let marker = a.path("need-reboot");
    // The pre-lock check "installs" nothing but removes the need, as if the
    // update was rolled back between the two detector runs.
    let h = a.script(
        "health",
        &format!(
            "[ \"$RC_PHASE\" != pre-lock ] || rm -f {}\n",
            marker.display()
        ),
    );
    a.set("health_script", &h.display().to_string());
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("no longer required"), "{r:?}");
    assert!(a.reboots().is_empty());
    assert!(a.holders().is_empty());
}

#[test]
fn admin_commands_do_what_they_say() {
    let etcd = EtcdServer::start();
    let a = cluster_node("web-1", &etcd);
    let b = cluster_node("web-2", &etcd);
    a.need_reboot();
    b.need_reboot();
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    // unlock refuses without --yes when stdin is not a terminal.
    let r = b.rebootctl(&["unlock", "web-1"]);
    assert_eq!(r.code, 64, "{r:?}");
    assert_eq!(b.holders().len(), 1);
    let r = b.rebootctl(&["unlock", "web-1", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(b.holders().is_empty());
    let r = b.rebootctl(&["unlock", "web-1", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("holds no lock slot"), "{r:?}");
    // pause --for 2s blocks with 5, then expires by itself.
    let r = b.rebootctl(&["pause", "--reason", "db migration", "--for", "2s"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = b.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 5, "{r:?}");
    let s = b.rebootctl(&["status", "--skip-health"]);
    assert!(s.stdout.contains("db migration"), "{}", s.stdout);
    assert!(
        wait_until(Duration::from_secs(10), || b
            .rebootctl(&["status", "--skip-health"])
            .code
            != 5),
        "the pause did not expire"
    );
    // pause without --for lasts until resume.
    assert_eq!(b.rebootctl(&["pause"]).code, 0);
    assert_eq!(b.rebootctl(&["run", "--once"]).code, 5);
    let r = b.rebootctl(&["resume"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("resumed"));
    assert_eq!(b.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(b.reboots().len(), 1);
    // nodes lists both; forget removes one that holds nothing.
    let r = a.rebootctl(&["nodes", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);
    let r = a.rebootctl(&["nodes"]);
    assert!(r.stdout.contains("web-2"), "{r:?}");
    let r = a.rebootctl(&["forget", "web-2"]);
    assert_eq!(r.code, 1, "web-2 holds a slot: {r:?}");
    assert!(r.stderr.contains("unlock"), "{r:?}");
    assert_eq!(a.rebootctl(&["unlock", "web-2", "--yes"]).code, 0);
    assert_eq!(a.rebootctl(&["forget", "web-2"]).code, 0);
    let r = a.rebootctl(&["nodes", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    // lock in human form.
    let r = a.rebootctl(&["lock"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.starts_with("0 of 1 lock slot held"),
        "{}",
        r.stdout
    );
}

#[test]
fn admin_commands_need_cluster_mode() {
    let fx = Fixture::new("local");
    let r = fx.rebootctl(&["lock"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("etcd_endpoints"), "{r:?}");
}

#[test]
fn policies_block_with_3() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("only", &etcd);
    a.need_reboot();
    a.set("cluster_policies", "{min_healthy_absolute: 1}");
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("min_healthy_absolute"), "{r:?}");
    // A healthy peer makes room.
    let peer = cluster_node("peer", &etcd);
    assert_eq!(peer.rebootctl(&["run", "--once"]).code, 0);
    // peer has no need, so it published no health record: still blocked.
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 3);
    peer.need_reboot();
    let mut p = peer;
    p.set("windows", "{timezone: UTC, deny: [\"* 00:00-24:00\"]}");
    // Blocked by its window after its health check ran and was published.
    let r = p.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(a.reboots().is_empty());
}

#[test]
fn tls_with_client_certificates_and_prefix_only_auth() {
    let pki = TestPki::generate();
    let etcd = EtcdServer::start_tls(&etcd_binary(), &pki);
    etcd.enable_auth("rootpw", "agent", "s3cret", "/rebootctl/");
    let mut a = Fixture::new("tls");
    let pw = a.path("password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    a.join(&etcd.endpoint);
    a.set(
        "etcd_tls",
        &format!(
            "{{enabled: true, ca_file: {}, cert_file: {}, key_file: {}}}",
            pki.path("ca.crt").display(),
            pki.path("client.crt").display(),
            pki.path("client.key").display()
        ),
    );
    a.set(
        "etcd_auth",
        &format!("{{username: agent, password_file: {}}}", pw.display()),
    );
    a.need_reboot();
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(a.reboots().len(), 1);
    assert_eq!(a.holders().len(), 1);
    // Wrong password: a clear error, exit 1, no reboot, no secret printed.
    std::fs::write(&pw, "wrong\n").unwrap();
    a.new_boot("boot-2");
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("authentication"), "{r:?}");
    assert!(!r.stderr.contains("wrong"), "{r:?}");
    // Wrong CA: a clear TLS error.
    std::fs::write(&pw, "s3cret\n").unwrap();
    let other = TestPki::generate();
    a.set(
        "etcd_tls",
        &format!(
            "{{enabled: true, ca_file: {}, cert_file: {}, key_file: {}}}",
            other.path("ca.crt").display(),
            pki.path("client.crt").display(),
            pki.path("client.key").display()
        ),
    );
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("TLS") || r.stderr.contains("certificate"),
        "{r:?}"
    );
    assert_eq!(a.reboots().len(), 1);
}

#[test]
fn etcd_stopped_mid_pass_means_exit_1_and_no_reboot() {
    let mut etcd = EtcdServer::start();
    let mut a = cluster_node("cut", &etcd);
    a.need_reboot();
    let (inside, go) = a.gated_health();
    let child = a.spawn(&["run", "--once"]);
    assert!(wait_until(Duration::from_secs(15), || inside.exists()));
    etcd.stop();
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("etcd") && stderr.contains(&etcd.endpoint),
        "{stderr}"
    );
    assert!(a.reboots().is_empty());
    assert!(!a.path("state/reboot-record.json").exists());
}

#[test]
fn two_fallback_nodes_with_two_slots_never_go_down_together() {
    let etcd = EtcdServer::start();
    let barrier = rebootctl::testing::etcd::TempDir::new("barrier");
    let mut nodes: Vec<Fixture> = ["lb-1", "lb-2"]
        .iter()
        .map(|n| cluster_node(n, &etcd))
        .collect();
    for fx in &mut nodes {
        fx.set("max_concurrent_reboots", "2");
        fx.set(
            "cluster_policies",
            "{forbid_if_only_fallback_left: true, fallback_nodes: [lb-1, lb-2]}",
        );
        fx.set("health_publish_interval_sec", "20");
    }
    // Both publish a healthy record first (a dry-run pass with a need).
    for fx in &nodes {
        fx.need_reboot();
        let r = fx.rebootctl(&["run", "--once", "--dry-run"]);
        assert!(r.code == 0 || r.code == 3, "{r:?}");
    }
    for fx in &mut nodes {
        let h = barrier_health(fx, barrier.path(), 2);
        fx.set("health_script", &h);
    }
    let children: Vec<_> = nodes
        .iter()
        .map(|fx| fx.spawn(&["run", "--once"]))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        assert!(
            code == 0 || code == 3,
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rebooted = nodes.iter().filter(|fx| !fx.reboots().is_empty()).count();
    assert!(rebooted <= 1, "both fallback nodes rebooted together");
}

#[test]
fn two_machines_sharing_a_node_name_never_touch_each_others_slot() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("twin", &etcd);
    let mut b = cluster_node("twin", &etcd);
    std::fs::write(a.path("machine-id"), "aaaa\n").unwrap();
    std::fs::write(b.path("machine-id"), "bbbb\n").unwrap();
    for fx in [&mut a, &mut b] {
        let id = fx.path("machine-id").display().to_string();
        fx.set("machine_id_file", &id);
        fx.need_reboot();
    }
    b.new_boot("boot-of-b");
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(a.holders(), [("twin".to_string(), "rebooting".to_string())]);
    // b has another boot id: without the machine id it would take a's
    // rebooting slot for its own completed reboot and release it.
    let r = b.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("name conflict"), "{r:?}");
    assert_eq!(a.holders(), [("twin".to_string(), "rebooting".to_string())]);
    assert!(b.reboots().is_empty());
    // a is back and done; b is still not the machine that registered the name.
    std::fs::remove_file(a.path("need-reboot")).unwrap();
    a.new_boot("boot-2");
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    assert!(a.holders().is_empty());
    let r = b.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("registered by another machine"), "{r:?}");
    assert!(b.reboots().is_empty());
}

#[test]
fn slots_beyond_the_configured_count_still_count() {
    use base64::Engine;
    let etcd = EtcdServer::start();
    // A node rebooting in slot-1 from the time the fleet had two slots.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let value = r#"{"node":"old","pid":1,"boot_id":"x","phase":"rebooting","acquired_at":"2026-01-01T00:00:00Z"}"#;
    etcd.post(
        "/v3/kv/put",
        serde_json::json!({"key": b64("/rebootctl/lock/slot-1"), "value": b64(value)}),
        None,
    );
    let mut fx = cluster_node("new", &etcd);
    fx.need_reboot();
    fx.set("max_concurrent_reboots", "1");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn an_abort_after_the_pre_reboot_hook_undoes_it() {
    let etcd = EtcdServer::start();
    let mut fx = cluster_node("undo", &etcd);
    fx.need_reboot();
    let log = fx.path("reboots.log");
    let started = fx.path("drain-started");
    let go = fx.path("go");
    let drain = fx.script(
        "drain",
        &format!(
            "echo drain >> {log}\ntouch {s}\ni=0; while [ ! -e {g} ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n",
            log = log.display(),
            s = started.display(),
            g = go.display()
        ),
    );
    let undrain = fx.script("undrain", &format!("echo undrain >> {}\n", log.display()));
    fx.set(
        "hooks",
        &format!(
            "{{pre_reboot: [\"{}\"], post_reboot: [\"{}\"]}}",
            drain.display(),
            undrain.display()
        ),
    );
    let child = fx.spawn(&["run", "--once"]);
    assert!(wait_until(Duration::from_secs(15), || started.exists()));
    // An operator releases the slot while the node drains: the switch to
    // rebooting must fail, and the drain must be undone.
    let other = cluster_node("operator", &etcd);
    assert_eq!(other.rebootctl(&["unlock", "undo", "--yes"]).code, 0);
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("changed under us"), "{stderr}");
    assert_eq!(fx.reboots(), ["drain", "undrain"]);
    assert!(!fx.path("state/reboot-record.json").exists());
    assert!(fx.holders().is_empty());
}

#[test]
fn the_health_record_keeps_one_lease_and_is_written_only_when_it_changes() {
    use rebootctl::cluster::{Cluster, Published, records::HealthRecord};
    let etcd = EtcdServer::start();
    let fx = cluster_node("beat", &etcd);
    let cfg = rebootctl::config::load(&fx.write_config()).expect("config");
    let cluster = Cluster::connect(&cfg).expect("connect");
    let ttl = Duration::from_secs(6);
    let rec = |healthy: bool, at: &str| HealthRecord {
        node: "beat".into(),
        healthy,
        phase: "heartbeat".into(),
        reason: String::new(),
        checked_at: at.into(),
        boot_id: "boot-1".into(),
        reboot_required: Some(false),
        pid: 0,
        machine_id: String::new(),
        name_conflict: None,
    };
    let key = "/rebootctl/health/beat";
    let read = || {
        cluster
            .client
            .get(key)
            .expect("get")
            .expect("the record exists")
    };

    assert_eq!(
        cluster
            .publish_health(&rec(true, "t1"), ttl)
            .expect("first"),
        Published::Written
    );
    let first = read();
    assert_ne!(first.lease, 0);
    // Same content, later check: the lease is renewed, the key untouched.
    for t in ["t2", "t3"] {
        assert_eq!(
            cluster.publish_health(&rec(true, t), ttl).expect("again"),
            Published::Renewed
        );
    }
    // Another phase (a pre-lock check) with the same verdict: no write either.
    let pre_lock = HealthRecord {
        phase: "pre-lock".into(),
        ..rec(true, "t3")
    };
    assert_eq!(
        cluster.publish_health(&pre_lock, ttl).expect("pre-lock"),
        Published::Renewed
    );
    let same = read();
    assert_eq!(same.mod_revision, first.mod_revision);
    assert_eq!(same.lease, first.lease);
    // New content: written on the same lease.
    assert_eq!(
        cluster
            .publish_health(&rec(false, "t4"), ttl)
            .expect("change"),
        Published::Written
    );
    let changed = read();
    assert!(changed.mod_revision > first.mod_revision);
    assert_eq!(changed.lease, first.lease);
    assert!(
        !serde_json::from_slice::<HealthRecord>(&changed.value)
            .unwrap()
            .healthy
    );
    // The lease gone (etcd unreachable for 3 intervals, say): the record
    // went with it and the next publish writes it again on a new lease.
    cluster.client.lease_revoke(first.lease).expect("revoke");
    assert!(cluster.client.get(key).expect("get").is_none());
    assert_eq!(
        cluster
            .publish_health(&rec(false, "t5"), ttl)
            .expect("after loss"),
        Published::Written
    );
    let again = read();
    assert_ne!(again.lease, first.lease);
    // A new interval (a reload) means a new lease too.
    assert_eq!(
        cluster
            .publish_health(&rec(false, "t6"), Duration::from_secs(9))
            .expect("new ttl"),
        Published::Written
    );
    assert_ne!(read().lease, again.lease);
}

//! Issue 10, item 5: two hosts with one identity. Cloned images share their
//! machine id and hostname, so two hosts can claim one `node_name` with the
//! same (or no) machine id. A host must never complete, run the
//! `post_reboot` hook for, or release a slot in phase rebooting that its
//! own reboot record does not name; and two live agents under one name are
//! reported (status, log, metric) and neither reboots until it is resolved.
//! Real etcd, the real binary.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use common::fixture::{Fixture, wait_until};
use rebootctl::testing::etcd::{EtcdServer, free_port};

/// A host named `name` in the cluster at `endpoint`, with a need, whose
/// `post_reboot` hook and post-reboot health checks leave traces.
fn host(name: &str, endpoint: &str, machine_id: Option<&str>) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(endpoint);
    let id_file = fx.path("machine-id");
    if let Some(id) = machine_id {
        std::fs::write(&id_file, format!("{id}\n")).unwrap();
    }
    fx.set("machine_id_file", &id_file.display().to_string());
    let log = fx.path("reboots.log");
    let undrain = fx.script("undrain", &format!("echo undrain >> {}\n", log.display()));
    fx.set(
        "hooks",
        &format!("{{post_reboot: [\"{}\"]}}", undrain.display()),
    );
    let phases = fx.path("phases");
    let h = fx.script(
        "health",
        &format!("echo $RC_PHASE >> {}\n", phases.display()),
    );
    fx.set("health_script", &h.display().to_string());
    fx.need_reboot();
    fx
}

#[test]
fn a_host_without_the_reboot_record_never_completes_or_releases_its_twins_slot() {
    let etcd = EtcdServer::start();
    // Cloned machine ids, and hosts without one.
    for (name, machine_id) in [
        ("twin-a", Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0")),
        ("twin-b", None),
    ] {
        let h2 = host(name, &etcd.endpoint, machine_id);
        let h1 = host(name, &etcd.endpoint, machine_id);
        h1.new_boot("boot-of-h1");
        let rebooting = [(name.to_string(), "rebooting".to_string())];
        // H2 reboots and holds its slot through the reboot.
        let r = h2.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(h2.holders(), rebooting);
        // H1, same name, another boot, no record of that reboot.
        for _ in 0..2 {
            let r = h1.rebootctl(&["run", "--once"]);
            assert_eq!(r.code, 2, "{name}: {r:?}");
            assert!(r.stderr.contains("name conflict"), "{r:?}");
            assert!(r.stderr.contains("no record of that reboot"), "{r:?}");
        }
        let r = h1.rebootctl(&["status", "--json"]);
        assert_eq!(r.code, 2, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["outcome"]["blocked_by"], "name_conflict", "{v}");
        assert_eq!(h2.holders(), rebooting, "{name}: H1 released H2's slot");
        // No post-reboot check, no hook, no reboot on H1.
        assert!(h1.reboots().is_empty(), "{:?}", h1.reboots());
        let phases = std::fs::read_to_string(h1.path("phases")).unwrap_or_default();
        assert!(!phases.contains("post-reboot"), "{phases}");
        // H2 comes back: it completes and releases its own slot.
        std::fs::remove_file(h2.path("need-reboot")).unwrap();
        h2.new_boot("boot-2");
        let r = h2.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(h2.holders().is_empty());
        assert_eq!(
            h2.reboots(),
            ["--node=".to_string() + name + " now", "undrain".into()]
        );
    }
}

/// A daemon, killed on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[test]
fn two_live_agents_under_one_node_name_are_reported_and_neither_reboots() {
    let etcd = EtcdServer::start();
    let port = free_port();
    let mut hosts: Vec<Fixture> = (0..2)
        .map(|i| {
            // The same machine id (this machine's): a clone.
            let mut fx = Fixture::new("dup");
            fx.join(&etcd.endpoint);
            fx.set("check_interval_sec", "1");
            fx.set("backoff_min_sec", "1");
            fx.new_boot(&format!("boot-of-host-{i}"));
            fx.need_reboot();
            std::fs::write(fx.path("disable"), "").unwrap();
            fx
        })
        .collect();
    hosts[0].set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    let agent0 = Agent(hosts[0].spawn_logged(&["run"]));
    let agent1 = Agent(hosts[1].spawn_logged(&["run"]));
    for fx in &hosts {
        assert!(
            wait_until(Duration::from_secs(20), || fx
                .agent_log()
                .contains("blocked: name conflict")),
            "{}",
            fx.agent_log()
        );
        assert!(
            fx.agent_log()
                .contains("another host publishes as node dup"),
            "{}",
            fx.agent_log()
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || scrape(port)
            .contains("\nrebootctl_name_conflict 1")),
        "{}",
        scrape(port)
    );
    // `status` reads it from the agents' health record (one heartbeat later).
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = hosts[0].rebootctl(&["status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
            let blocked = r.code == 2 && v["outcome"]["blocked_by"] == "name_conflict";
            last = Some(r);
            blocked
        }),
        "{last:?}"
    );
    // Every gate but the conflict open: still no reboot, on either host.
    for fx in &hosts {
        std::fs::remove_file(fx.path("disable")).unwrap();
    }
    let quiet = !wait_until(Duration::from_secs(6), || {
        hosts.iter().any(|fx| !fx.reboots().is_empty())
    });
    assert!(quiet, "a host rebooted during a name conflict");
    assert!(hosts[0].holders().is_empty());
    // The second host goes away: the conflict is over and the first reboots.
    drop(agent1);
    assert!(
        wait_until(Duration::from_secs(30), || hosts[0].reboots().len() == 1),
        "{}",
        hosts[0].agent_log()
    );
    assert!(hosts[0].agent_log().contains("name conflict over"));
    assert!(hosts[1].reboots().is_empty());
    drop(agent0);
}

/// The health record etcd holds for `node`, decoded.
fn health_record(etcd: &EtcdServer, node: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let resp = etcd.post(
        "/v3/kv/range",
        serde_json::json!({ "key": b64.encode(format!("/rebootctl/health/{node}")) }),
        None,
    );
    let value = resp["kvs"][0]["value"].as_str()?;
    serde_json::from_slice(&b64.decode(value).ok()?).ok()
}

#[test]
fn an_agent_restart_or_a_reboot_is_not_a_name_conflict() {
    let etcd = EtcdServer::start();
    let mut fx = Fixture::new("solo");
    fx.join(&etcd.endpoint);
    fx.set("health_publish_interval_sec", "1");
    fx.need_reboot();
    std::fs::write(fx.path("disable"), "").unwrap();
    // Three agents one after the other: a restart, then one after a reboot.
    for (round, boot) in [(0, "boot-1"), (1, "boot-1"), (2, "boot-2")] {
        fx.new_boot(boot);
        let agent = Agent(fx.spawn_logged(&["run"]));
        let pid = agent.0.id();
        // Its own record, written once and then kept on its lease by every
        // heartbeat (a record is rewritten only when its verdict changes);
        // over four more heartbeats no conflict may be seen.
        assert!(
            wait_until(Duration::from_secs(20), || {
                health_record(&etcd, "solo")
                    .is_some_and(|rec| rec["pid"] == pid && rec["boot_id"] == boot)
            }),
            "round {round}: {}",
            fx.agent_log()
        );
        assert!(
            !wait_until(Duration::from_secs(4), || fx
                .agent_log()
                .contains("name conflict")),
            "round {round}: {}",
            fx.agent_log()
        );
        drop(agent);
    }
    let log = fx.agent_log();
    assert!(!log.contains("name conflict"), "{log}");
    assert!(!log.contains("another host publishes"), "{log}");
}

/// A commit cut short on H1 (its intent, no reboot record) is undone by
/// H1's next pass; but the slot in phase rebooting under the shared name is
/// H2's (a clone: the same node name and machine id), and H1's record does
/// not name it: H1 must neither release it nor complete it.
#[test]
fn undoing_a_commit_cut_short_never_releases_the_twins_rebooting_slot() {
    let etcd = EtcdServer::start();
    let machine_id = Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    let h2 = host("clone", &etcd.endpoint, machine_id);
    let mut h1 = host("clone", &etcd.endpoint, machine_id);
    h1.new_boot("boot-of-h1");
    let log = h1.path("reboots.log");
    let drain = h1.script("drain", &format!("echo drain >> {}\n", log.display()));
    let undrain = h1.path("undrain");
    h1.set(
        "hooks",
        &format!(
            "{{pre_reboot: [\"{}\"], post_reboot: [\"{}\"]}}",
            drain.display(),
            undrain.display()
        ),
    );
    let rebooting = [("clone".to_string(), "rebooting".to_string())];
    let r = h2.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(h2.holders(), rebooting);
    // H1 was killed between its intent and its reboot record.
    let intent = serde_json::json!({
        "node": "clone",
        "boot_id": "boot-of-h1",
        "pid": 999_999,
        "at": "2026-11-27T10:00:00Z",
        "reason": ["marker"],
    });
    let intent_path = h1.path("state/pre-reboot-intent.json");
    std::fs::write(&intent_path, intent.to_string()).unwrap();
    let r = h1.rebootctl(&["run", "--once"]);
    assert!(r.stderr.contains("cut short"), "{r:?}");
    assert!(!intent_path.exists(), "{r:?}");
    // Its own undo ran (the post_reboot hook); the twin's slot stays.
    assert_eq!(h1.reboots(), ["undrain"], "{r:?}");
    assert_eq!(h2.holders(), rebooting, "H1 released H2's slot: {r:?}");
    // Then the slot that is not ours is a name conflict, as without an intent.
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no record of that reboot"), "{r:?}");
}

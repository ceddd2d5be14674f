//! The etcd keyspace and the one watch stream (issue 16 item 1, DESIGN §2)
//! through the real binary against a real etcd: the pause and the cooldown
//! live under the control prefix `<ns>/lock/`, an idle agent holds exactly
//! one watch stream and at most one request connection, and an agent is
//! woken neither by its own writes (issue 10 item 1) nor by keys that are
//! not its group's.

use crate::common;
use crate::daemon::Agent;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::fixture::{Fixture, wait_until};
use rebootctl::testing::etcd::EtcdServer;
use serde_json::json;

/// Every key in etcd.
pub(crate) fn all_keys(etcd: &EtcdServer) -> Vec<String> {
    let v = etcd.post(
        "/v3/kv/range",
        json!({"key": "AA==", "range_end": "AA==", "keys_only": true}),
        None,
    );
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    String::from_utf8_lossy(&B64.decode(kv["key"].as_str().unwrap()).unwrap())
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `key` = `value` (no lease).
pub(crate) fn put(etcd: &EtcdServer, key: &str, value: &str) {
    etcd.post(
        "/v3/kv/put",
        json!({"key": B64.encode(key), "value": B64.encode(value)}),
        None,
    );
}

/// Deletes `key`.
pub(crate) fn delete(etcd: &EtcdServer, key: &str) {
    etcd.post("/v3/kv/deleterange", json!({"key": B64.encode(key)}), None);
}

/// A gauge or counter of etcd's own `/metrics`.
pub(crate) fn etcd_metric(etcd: &EtcdServer, name: &str) -> f64 {
    let text = ureq::get(format!("{}/metrics", etcd.endpoint))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("etcd has no metric {name}"))
}

/// The TCP connections of process `pid` to `port` on loopback that are
/// established, read from `/proc/<pid>/fd` (socket inodes) and
/// `/proc/<pid>/net/tcp`.
pub(crate) fn connections_to(pid: i32, port: u16) -> usize {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            f.len() > 9
                && f[3] == "01"
                && f[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
                && inodes.contains(f[9])
        })
        .count()
}

fn idle_host(name: &str, etcd: &EtcdServer) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(&etcd.endpoint);
    fx.set("check_interval_sec", "3600");
    // Wake-ups bring a pass forward no closer than the minimum spacing,
    // max(backoff_min_sec, 2 s), to the last one.
    fx.set("backoff_min_sec", "1");
    fx
}

#[test]
fn an_idle_agent_holds_one_watch_stream_and_at_most_one_request_connection() {
    let etcd = EtcdServer::start();
    let fx = idle_host("idle", &etcd);
    let agent = Agent::start(&fx);
    assert!(
        wait_until(Duration::from_secs(15), || fx
            .agent_log()
            .contains("nothing_to_do")),
        "{}",
        fx.agent_log()
    );
    // Sample for a while: the heartbeat publishes every 2 s meanwhile.
    let until = Instant::now() + Duration::from_secs(5);
    let mut samples = 0;
    while Instant::now() < until {
        let watchers = etcd_metric(&etcd, "etcd_debugging_mvcc_watcher_total");
        let streams = etcd_metric(&etcd, "etcd_debugging_mvcc_watch_stream_total");
        let conns = connections_to(agent.pid(), etcd.client_port());
        assert_eq!(watchers, 1.0, "watchers in etcd: {}", fx.agent_log());
        assert_eq!(streams, 1.0, "watch streams in etcd");
        assert!(
            (1..=2).contains(&conns),
            "{conns} connections: one watch stream and at most one request connection expected"
        );
        samples += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(samples >= 10);
    drop(agent);
}

#[test]
fn the_pause_and_the_cooldown_live_under_the_control_prefix_and_wake_a_waiting_agent() {
    let etcd = EtcdServer::start();
    let mut fx = idle_host("keys", &etcd);
    fx.set("min_reboot_interval_sec", "3600");
    let r = fx.rebootctl(&["pause", "--reason", "test"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        all_keys(&etcd).contains(&"/rebootctl/lock/pause".to_string()),
        "{:?}",
        all_keys(&etcd)
    );
    // A paused agent with a need waits for an hour, unless the watch on
    // the control prefix sees the pause go.
    fx.need_reboot();
    let agent = Agent::start(&fx);
    assert!(
        wait_until(Duration::from_secs(15), || fx
            .agent_log()
            .contains("paused")),
        "{}",
        fx.agent_log()
    );
    assert_eq!(fx.rebootctl(&["resume"]).code, 0);
    assert!(
        wait_until(Duration::from_secs(5), || fx.reboots().len() == 1),
        "resuming did not wake the agent: {}",
        fx.agent_log()
    );
    drop(agent);
    // Back, healthy: the cooldown starts, under the control prefix.
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    let keys = all_keys(&etcd);
    assert!(
        keys.contains(&"/rebootctl/lock/cooldown".to_string()),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k == "/rebootctl/pause" || k == "/rebootctl/cooldown")
    );
    // The registry records the host's limit.
    let r = fx.rebootctl(&["nodes", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["nodes"][0]["max_concurrent_reboots"], 1, "{v}");
}

#[test]
fn an_agent_is_woken_neither_by_its_own_release_nor_by_other_groups() {
    let etcd = EtcdServer::start();
    let mut dry = idle_host("dry", &etcd);
    dry.set("dry_run", "true");
    dry.need_reboot();
    let would = |fx: &Fixture| {
        fx.agent_log()
            .matches("dry-run: every gate is open")
            .count()
    };
    let agent = Agent::start(&dry);
    assert!(
        wait_until(Duration::from_secs(15), || would(&dry) >= 1),
        "{}",
        dry.agent_log()
    );
    // Each dry-run pass takes a slot and gives it back; the release must
    // not start the next pass (it used to, tens of thousands per minute).
    // Keys of another lock group and health records do not wake it either.
    put(&etcd, "/rebootctl/lock/other/slot-0", "{}");
    delete(&etcd, "/rebootctl/lock/other/slot-0");
    put(&etcd, "/rebootctl/health/x", "{}");
    delete(&etcd, "/rebootctl/health/x");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(would(&dry), 1, "{}", dry.agent_log());
    // Nor does a release by another host: with every gate open it waits
    // for nothing (a waiting node that found no free slot does wake: see
    // the daemon's handoff test).
    let other = idle_host("other", &etcd);
    other.need_reboot();
    assert_eq!(other.rebootctl(&["run", "--once"]).code, 0);
    std::fs::remove_file(other.path("need-reboot")).unwrap();
    other.new_boot("boot-2");
    assert_eq!(other.rebootctl(&["run", "--once"]).code, 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(would(&dry), 1, "{}", dry.agent_log());
    drop(agent);
}

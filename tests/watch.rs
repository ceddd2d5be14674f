//! Issue 10.11 and the watch part of 10.1, through the real binary and a
//! loopback TCP proxy in front of a real etcd: a watch stream that a proxy
//! silently stops forwarding (half-open) is noticed and re-opened from the
//! last revision, so a waiting node still takes a released slot at once;
//! a watch that is cut right after every open backs off instead of
//! hammering etcd.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::fixture::{Fixture, wait_until};
use rebootctl::testing::etcd::{EtcdServer, etcd_binary};
use rebootctl::testing::proxy::Proxy;
use serde_json::json;

/// Kills a `rebootctl run` on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Puts a slot held by another node, in phase rebooting, on a long lease.
fn hold_slot(etcd: &EtcdServer, key: &str) {
    let lease = etcd.post("/v3/lease/grant", json!({"TTL": 600}), None)["ID"].clone();
    let value = json!({
        "node": "other", "pid": 1, "boot_id": "b", "phase": "rebooting",
        "acquired_at": "2026-01-01T00:00:00Z", "machine_id": "m-other"
    });
    etcd.post(
        "/v3/kv/put",
        json!({"key": B64.encode(key), "value": B64.encode(value.to_string()), "lease": lease}),
        None,
    );
}

#[test]
fn a_half_open_watch_is_replaced_and_the_waiting_node_takes_the_released_slot() {
    // Progress notifications every 500 ms keep a healthy idle stream
    // talking, well inside the agent's 2 s idle timeout.
    let etcd = EtcdServer::start_with(
        &etcd_binary(),
        &["--experimental-watch-progress-notify-interval", "500ms"],
    );
    let proxy = Proxy::start(etcd.client_port());
    let mut fx = Fixture::new("half-open");
    fx.join(&proxy.endpoint);
    fx.set("check_interval_sec", "3600");
    fx.set("etcd_watch_idle_timeout_sec", "2");
    fx.need_reboot();
    hold_slot(&etcd, "/rebootctl/lock/slot-0");
    let _agent = Agent(fx.spawn_logged(&["run"]));
    assert!(
        wait_until(Duration::from_secs(15), || fx
            .agent_log()
            .contains("no free lock slot")),
        "{}",
        fx.agent_log()
    );
    assert!(wait_until(Duration::from_secs(5), || !proxy
        .watch_opens()
        .is_empty()));
    // A healthy idle stream is not churned: progress notifications arrive.
    let opens = proxy.watch_opens().len();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        proxy.watch_opens().len(),
        opens,
        "healthy idle streams were re-opened: {:?}",
        proxy.watch_opens()
    );
    // The proxy drops every watch stream without a word, then the slot is
    // released: only a re-opened watch can tell the agent.
    assert!(proxy.blackhole_watches() > 0);
    let released = Instant::now();
    etcd.post(
        "/v3/kv/deleterange",
        json!({"key": B64.encode("/rebootctl/lock/slot-0")}),
        None,
    );
    assert!(
        wait_until(Duration::from_secs(20), || fx.reboots().len() == 1),
        "the waiting node never noticed the release (check_interval_sec is an hour); log:\n{}",
        fx.agent_log()
    );
    let took = released.elapsed();
    eprintln!("half-open watch: the released slot was taken after {took:?}");
    // The 2 s idle timeout, the re-open from the last revision, one pass.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(proxy.watch_opens().len() > opens);
}

#[test]
fn a_watch_cut_right_after_it_opens_backs_off() {
    let etcd = EtcdServer::start();
    let proxy = Proxy::start(etcd.client_port());
    proxy.cut_watches_after_created(true);
    let mut fx = Fixture::new("cut-watch");
    fx.join(&proxy.endpoint);
    fx.set("check_interval_sec", "3600");
    // No need: no pass runs, only the watch threads talk to etcd.
    let started = Instant::now();
    let _agent = Agent(fx.spawn_logged(&["run"]));
    let window = Duration::from_secs(10);
    assert!(wait_until(Duration::from_secs(10), || !proxy
        .watch_opens()
        .is_empty()));
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    let mut per_key: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for (at, key) in proxy.watch_opens() {
        per_key.entry(key).or_default().push(at);
    }
    assert!(!per_key.is_empty());
    for (key, opens) in &per_key {
        let key = String::from_utf8_lossy(&B64.decode(key).unwrap_or_default()).into_owned();
        // 200 ms doubling (jittered down to half) to 30 s: at most 8 opens
        // in 10 s. Resetting the backoff on every open made it ~50.
        assert!(
            opens.len() <= 10,
            "the watch on {key} was opened {} times in {window:?}; log:\n{}",
            opens.len(),
            fx.agent_log()
        );
        let gaps: Vec<Duration> = opens.windows(2).map(|w| w[1] - w[0]).collect();
        eprintln!(
            "watch on {key}: {} opens in {window:?}, gaps {gaps:?}",
            opens.len()
        );
        assert!(
            gaps.last()
                .is_some_and(|g| *g >= Duration::from_millis(1500)),
            "the delay between opens of {key} did not grow: {gaps:?}"
        );
    }
}

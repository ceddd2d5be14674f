//! Issue 10, item 1: a dry-run daemon in cluster mode with a need and a
//! free slot must not spin. Its pass takes a real slot and gives it back;
//! that release must not wake the daemon for another pass at once, and no
//! wake-up may start passes closer together than the minimum spacing. The
//! etcd requests are counted on etcd's own `/metrics`
//! (`grpc_server_started_total`, every unary call and stream the JSON
//! gateway forwards), so nothing in rebootctl is trusted for the figure.

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::fixture::{Fixture, wait_until};
use rebootctl::testing::etcd::EtcdServer;

/// Every gRPC call etcd has started so far (all methods, all codes).
fn etcd_requests(etcd: &EtcdServer) -> u64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", etcd.client_port())).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("grpc_server_started_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A cluster node at the default timers, except that `join` shortens some.
fn node(name: &str, etcd: &EtcdServer) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(&etcd.endpoint);
    // The defaults an operator runs with (join shortens them for other tests).
    fx.set("health_publish_interval_sec", "15");
    fx.set("lock_ttl_sec", "90");
    fx.need_reboot();
    fx
}

#[test]
fn dry_run_daemons_with_a_need_and_a_free_slot_neither_spin_nor_starve_a_real_node() {
    let etcd = EtcdServer::start();
    let mut dry = node("dry-0", &etcd);
    dry.set("dry_run", "true");
    let before = etcd_requests(&etcd);
    let started = Instant::now();
    let agent = dry.spawn_logged(&["run"]);
    let _agent = Killed(agent);
    // The first pass reaches the (skipped) reboot.
    assert!(
        wait_until(Duration::from_secs(15), || dry
            .agent_log()
            .contains("would reboot")),
        "{}",
        dry.agent_log()
    );
    // Measure 20 s of its life (a measurement window, not a wait for an event).
    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
    let requests = etcd_requests(&etcd) - before;
    let lines = dry.agent_log().lines().count();
    // One pass (~20 requests), the watch, and the heartbeat every 15 s;
    // the spin this guards against made thousands.
    assert!(
        requests <= 60,
        "{requests} etcd requests in 20 s; log:\n{}",
        dry.agent_log()
    );
    assert!(
        lines <= 20,
        "{lines} log lines in 20 s:\n{}",
        dry.agent_log()
    );

    // Two more dry-run nodes, then a real one with a need: it gets the slot.
    // (agent, host): the agent is killed before its directory goes.
    let mut others = Vec::new();
    for name in ["dry-1", "dry-2"] {
        let mut fx = node(name, &etcd);
        fx.set("dry_run", "true");
        others.push((Killed(fx.spawn_logged(&["run"])), fx));
    }
    let real = node("real", &etcd);
    let t = Instant::now();
    let _real_agent = Killed(real.spawn_logged(&["run"]));
    assert!(
        wait_until(Duration::from_secs(20), || real.reboots().len() == 1),
        "the real node never got the slot; log:\n{}",
        real.agent_log()
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(dry.reboots().is_empty());
    assert!(others.iter().all(|(_, fx)| fx.reboots().is_empty()));
}

/// A child killed (and reaped) on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

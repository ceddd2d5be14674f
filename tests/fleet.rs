//! End-to-end fleet tests (SPEC §10): N real agents (`rebootctl run`) on
//! one real etcd, fake power cycles, and the invariant checker over the
//! shared timeline after every scenario: never more than
//! `max_concurrent_reboots` nodes down, every node with a need rebooted
//! exactly once, none without a need. Each scenario has deadlines; the
//! harness kills every agent, helper and etcd on drop, also on panic (and
//! prints the timeline and the agents' log tails then).

use crate::common;

use std::time::{Duration, Instant};

use common::fixture::binary;
use rebootctl::testing::fleet::{Event, Fleet, FleetSpec, Kind, check, parse_timeline};

const DONE: Duration = Duration::from_secs(120);

fn fleet(spec: FleetSpec) -> Fleet {
    Fleet::new(binary(), spec)
}

/// Asserts the run finished and was safe, with the diagnostics otherwise.
fn assert_done(f: &Fleet, report: &rebootctl::testing::fleet::Report) {
    assert!(
        report.done(),
        "violations: {:?}, pending: {:?}\n{}",
        report.violations,
        report.pending,
        f.diagnostics()
    );
}

fn has(events: &[Event], node: &str, kind: Kind) -> bool {
    events.iter().any(|e| e.node == node && e.kind == kind)
}

fn first(events: &[Event], node: &str, kind: Kind) -> Option<u64> {
    events
        .iter()
        .find(|e| e.node == node && e.kind == kind)
        .map(|e| e.t_us)
}

fn note_time(events: &[Event], text: &str) -> u64 {
    events
        .iter()
        .find(|e| e.kind == Kind::Note && e.detail == text)
        .map(|e| e.t_us)
        .unwrap_or_else(|| panic!("no note {text:?}"))
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

// ---------------------------------------------------------------------------
// The scenarios

#[test]
fn every_node_needs_a_reboot_at_once_one_slot() {
    let f = fleet(FleetSpec {
        nodes: 4,
        slots: 1,
        ..FleetSpec::default()
    });
    f.start_all();
    f.need_all();
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
    assert_eq!(r.max_down, 1);
    assert!(r.reboots.values().all(|&n| n == 1), "{:?}", r.reboots);
    assert_eq!(r.reboots.len(), 4);
}

#[test]
fn every_node_needs_a_reboot_at_once_two_slots() {
    let f = fleet(FleetSpec {
        nodes: 5,
        slots: 2,
        ..FleetSpec::default()
    });
    f.start_all();
    f.need_all();
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
    assert!(r.max_down <= 2);
    assert_eq!(r.reboots.len(), 5);
    if r.max_down < 2 {
        eprintln!("note: the two slots were never both in use (max_down 1)");
    }
}

#[test]
fn a_failing_health_gate_holds_one_node_back() {
    let f = fleet(FleetSpec {
        nodes: 3,
        ..FleetSpec::default()
    });
    f.set_unhealthy(1, true);
    f.start_all();
    f.need_all();
    assert!(
        f.wait_for(DONE, |ev| has(ev, "node-0", Kind::Healthy)
            && has(ev, "node-2", Kind::Healthy)),
        "the healthy nodes did not finish\n{}",
        f.diagnostics()
    );
    // Two more passes of the blocked node.
    std::thread::sleep(Duration::from_secs(2 * f.spec.check_interval_secs));
    assert!(!has(&f.events(), "node-1", Kind::Rebooting));
    assert!(!has(&f.events(), "node-1", Kind::SlotTaken));
    f.note("node-1 healthy again");
    f.set_unhealthy(1, false);
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
    let ev = f.events();
    assert!(first(&ev, "node-1", Kind::Rebooting) > Some(note_time(&ev, "node-1 healthy again")));
}

#[test]
fn the_only_healthy_fallback_node_waits() {
    let mut f = fleet(FleetSpec {
        nodes: 4,
        ..FleetSpec::default()
    });
    f.set_all(
        "cluster_policies",
        "{forbid_if_only_fallback_left: true, fallback_nodes: [node-0, node-1]}",
    );
    // node-1, the other fallback node, is down: its agent does not run.
    for i in [0, 2, 3] {
        f.need_reboot(i);
        f.start(i);
    }
    assert!(
        f.wait_for(DONE, |ev| has(ev, "node-2", Kind::Healthy)
            && has(ev, "node-3", Kind::Healthy)),
        "the other nodes did not finish\n{}",
        f.diagnostics()
    );
    std::thread::sleep(Duration::from_secs(2 * f.spec.check_interval_secs));
    assert!(
        !has(&f.events(), "node-0", Kind::Rebooting),
        "node-0 rebooted while the only healthy fallback node\n{}",
        f.diagnostics()
    );
    let log = f.nodes[0].log_tail(50);
    assert!(
        log.contains("only healthy fallback"),
        "node-0's log does not say why it waits:\n{log}"
    );
    f.note("node-1 up");
    f.start(1);
    let rebooted = f.wait_for(Duration::from_secs(30), |ev| {
        has(ev, "node-0", Kind::Healthy)
    });
    let r = f.check();
    assert!(
        r.violations.is_empty(),
        "{:?}\n{}",
        r.violations,
        f.diagnostics()
    );
    // node-1 has no need; its heartbeat publishes its health, which frees node-0.
    assert!(
        rebooted,
        "node-1 is up but node-0 did not reboot\n{}",
        f.diagnostics()
    );
    let ev = f.events();
    assert!(first(&ev, "node-0", Kind::Rebooting) > Some(note_time(&ev, "node-1 up")));
    assert_done(&f, &r);
}

#[test]
fn a_holder_killed_while_checking_delays_the_fleet_by_its_lease_at_most() {
    let f = fleet(FleetSpec {
        nodes: 3,
        ..FleetSpec::default()
    });
    for i in 0..3 {
        f.post_lock_sleep(i, 2.5);
    }
    f.start_all();
    f.need_all();
    let mut victim = String::new();
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| {
            match ev.iter().find(|e| e.kind == Kind::SlotTaken) {
                Some(e) => {
                    victim = e.node.clone();
                    true
                }
                None => false,
            }
        }),
        "nobody took the slot\n{}",
        f.diagnostics()
    );
    let vi = f.index(&victim);
    f.kill_agent(vi);
    let killed = rebootctl::testing::fleet::now_us();
    let mut next = 0;
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| {
            match ev
                .iter()
                .find(|e| e.kind == Kind::SlotTaken && e.node != victim && e.t_us > killed)
            {
                Some(e) => {
                    next = e.t_us;
                    true
                }
                None => false,
            }
        }),
        "nobody took the slot after the holder died\n{}",
        f.diagnostics()
    );
    let bound = f.spec.lock_ttl_secs + f.spec.check_interval_secs + 3;
    let gap = secs(next - killed);
    assert!(
        gap <= bound as f64,
        "the dead holder delayed the fleet by {gap:.1} s (bound {bound} s)\n{}",
        f.diagnostics()
    );
    assert!(!has(&f.events(), &victim, Kind::Rebooting));
    f.note("victim restarted");
    f.start(vi);
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
}

#[test]
fn a_need_that_disappears_under_the_lock_means_no_reboot() {
    let mut f = fleet(FleetSpec {
        nodes: 2,
        ..FleetSpec::default()
    });
    // A detector that takes 1.5 s: the re-check under the lock gives the
    // test time to remove the marker while the slot is held.
    let marker = f.nodes[0].path("need-reboot");
    let detector = f.nodes[0].script(
        "slow-detector",
        &format!("sleep 1.5\n[ -e {} ]\n", marker.display()),
    );
    f.nodes[0].set(
        "reboot_required_detectors",
        &format!(
            "[{{name: slow, type: command, cmd: [\"{}\"], timeout_sec: 5}}]",
            detector.display()
        ),
    );
    f.start_all();
    f.need_reboot(0);
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| has(
            ev,
            "node-0",
            Kind::SlotTaken
        )),
        "node-0 never took the slot\n{}",
        f.diagnostics()
    );
    f.clear_need(0);
    assert!(
        f.wait_for(Duration::from_secs(15), |ev| has(
            ev,
            "node-0",
            Kind::Released
        )),
        "node-0 kept the slot\n{}",
        f.diagnostics()
    );
    std::thread::sleep(Duration::from_secs(2 * f.spec.check_interval_secs));
    let r = f.check();
    assert_done(&f, &r);
    assert!(r.reboots.is_empty(), "{:?}\n{}", r.reboots, f.diagnostics());
}

#[test]
fn etcd_restarted_mid_run() {
    let mut f = fleet(FleetSpec {
        nodes: 4,
        ..FleetSpec::default()
    });
    f.start_all();
    f.need_all();
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| ev
            .iter()
            .any(|e| e.kind == Kind::Rebooting)),
        "nobody rebooted\n{}",
        f.diagnostics()
    );
    f.note("etcd restarting");
    f.etcd.restart();
    f.note("etcd back");
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
}

#[test]
fn etcd_frozen_longer_than_the_lease() {
    let f = fleet(FleetSpec {
        nodes: 4,
        ..FleetSpec::default()
    });
    for i in 0..4 {
        f.post_lock_sleep(i, 1.0);
    }
    f.start_all();
    f.need_all();
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| ev
            .iter()
            .any(|e| e.kind == Kind::SlotTaken)),
        "nobody took the slot\n{}",
        f.diagnostics()
    );
    f.note("etcd frozen (SIGSTOP)");
    f.etcd.pause();
    std::thread::sleep(Duration::from_secs(f.spec.lock_ttl_secs + 3));
    f.etcd.resume();
    f.note("etcd resumed");
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
}

#[test]
fn a_node_that_never_comes_back_frees_its_slot_after_reboot_timeout() {
    let f = fleet(FleetSpec {
        nodes: 3,
        reboot_timeout_secs: 8,
        ..FleetSpec::default()
    });
    f.no_return(0);
    f.start_all();
    f.need_all();
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
    let ev = f.events();
    assert!(!has(&ev, "node-0", Kind::Back));
    let down = first(&ev, "node-0", Kind::Rebooting).expect("node-0 rebooted");
    let freed = ev
        .iter()
        .find(|e| e.node == "node-0" && e.kind == Kind::Released && e.t_us > down)
        .map(|e| e.t_us)
        .expect("node-0's slot freed");
    let held = secs(freed - down);
    assert!(
        (6.5..=8.0 + 3.0).contains(&held),
        "node-0's slot was held {held:.1} s after it went down (reboot_timeout_sec 8)\n{}",
        f.diagnostics()
    );
}

#[test]
fn kill_switch_and_pause_set_mid_run() {
    let f = fleet(FleetSpec {
        nodes: 4,
        reboot_secs: 3.0,
        ..FleetSpec::default()
    });
    f.start_all();
    f.need_all();
    let mut holder = String::new();
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| {
            match ev.iter().find(|e| e.kind == Kind::Rebooting) {
                Some(e) => {
                    holder = e.node.clone();
                    true
                }
                None => false,
            }
        }),
        "nobody rebooted\n{}",
        f.diagnostics()
    );
    let out = f.admin(&["pause", "--reason", "fleet test"]);
    assert_eq!(out.code, 0, "pause: {}{}", out.stdout, out.stderr);
    for i in 0..4 {
        f.kill_switch(i, true);
    }
    f.note("paused, kill switch on");
    // The node that was down completes (step 1 comes before the gates).
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| has(
            ev,
            &holder,
            Kind::Released
        )),
        "{holder} did not complete its reboot\n{}",
        f.diagnostics()
    );
    std::thread::sleep(Duration::from_secs(3 * f.spec.check_interval_secs));
    for i in 0..4 {
        f.kill_switch(i, false);
    }
    f.note("kill switch off, still paused");
    std::thread::sleep(Duration::from_secs(3 * f.spec.check_interval_secs));
    let ev = f.events();
    let paused = note_time(&ev, "paused, kill switch on");
    let during: Vec<&Event> = ev
        .iter()
        .filter(|e| e.t_us > paused && matches!(e.kind, Kind::SlotTaken | Kind::Rebooting))
        .collect();
    assert!(
        during.is_empty(),
        "slots taken or reboots while paused: {during:?}\n{}",
        f.diagnostics()
    );
    let out = f.admin(&["resume"]);
    assert_eq!(out.code, 0, "resume: {}{}", out.stdout, out.stderr);
    f.note("resumed");
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
}

/// Dropping a fleet mid-reboot leaves no process and no directory behind.
#[test]
fn harness_cleans_up_after_itself() {
    let started = Instant::now();
    let dir;
    let pids: Vec<i32>;
    {
        let f = fleet(FleetSpec {
            nodes: 2,
            reboot_secs: 30.0,
            ..FleetSpec::default()
        });
        dir = f.dir().to_path_buf();
        f.start_all();
        f.need_reboot(0);
        // node-0 goes down and its helper sleeps 30 s: drop must kill it.
        assert!(f.wait_for(Duration::from_secs(30), |ev| has(
            ev,
            "node-0",
            Kind::Rebooting
        )));
        pids = f
            .nodes
            .iter()
            .filter_map(|n| n.agent_pid())
            .chain(
                f.nodes
                    .iter()
                    .filter_map(|n| std::fs::read_to_string(n.path("helper.pid")).ok())
                    .filter_map(|s| s.trim().parse().ok()),
            )
            .collect();
        assert!(!pids.is_empty());
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "pid {pid} still running: {stat}"
        );
    }
    eprintln!("cleanup test took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// The checker, on hand-made logs

fn log(lines: &str) -> Vec<Event> {
    parse_timeline(lines)
}

#[test]
fn checker_accepts_a_clean_sequential_run() {
    let ev = log(
        "1 a need_set\n2 b need_set\n3 a slot_taken\n4 a rebooting\n5 a back\n\
                  6 a healthy\n7 a released\n8 b slot_taken\n9 b rebooting\n10 b back\n\
                  11 b healthy\n12 b released\n",
    );
    let r = check(&ev, 1);
    assert!(r.done(), "{r:?}");
    assert_eq!(r.max_down, 1);
}

#[test]
fn checker_flags_two_nodes_down_with_one_slot() {
    let ev = log(
        "1 a need_set\n2 b need_set\n4 a rebooting\n5 b rebooting\n6 a healthy\n\
                  7 b healthy\n",
    );
    let r = check(&ev, 1);
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert!(r.violations[0].contains("2 nodes down at once (a, b)"));
    // The same log is fine with two slots.
    assert!(check(&ev, 2).done());
}

#[test]
fn checker_flags_three_down_with_two_slots() {
    let ev = log(
        "1 a need_set\n1 b need_set\n1 c need_set\n2 a rebooting\n3 b rebooting\n\
                  4 c rebooting\n",
    );
    let r = check(&ev, 2);
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert!(r.violations[0].contains("3 nodes down"));
}

#[test]
fn checker_flags_a_reboot_without_a_need() {
    let r = check(&log("1 a rebooting\n2 a back\n"), 1);
    assert!(
        r.violations[0].contains("a rebooted without a need"),
        "{r:?}"
    );
    // A need cleared before the reboot is no need either.
    let r = check(&log("1 a need_set\n2 a need_cleared\n3 a rebooting\n"), 1);
    assert!(r.violations[0].contains("without a need"), "{r:?}");
}

#[test]
fn checker_flags_a_second_reboot_for_one_need() {
    // Back from the first reboot, the need is met: another reboot has none.
    let r = check(
        &log("1 a need_set\n2 a rebooting\n3 a back\n4 a healthy\n5 a rebooting\n"),
        1,
    );
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert!(r.violations[0].contains("without a need"));
    // Twice without coming back in between.
    let r = check(&log("1 a need_set\n2 a rebooting\n3 a rebooting\n"), 1);
    assert!(r.violations.iter().any(|v| v.contains("2 times")), "{r:?}");
    assert!(
        r.violations.iter().any(|v| v.contains("still down")),
        "{r:?}"
    );
}

#[test]
fn checker_reports_needs_never_met() {
    let r = check(
        &log("1 a need_set\n2 b need_set\n3 a rebooting\n4 a back\n"),
        1,
    );
    assert!(r.violations.is_empty());
    assert_eq!(r.pending, ["b"]);
    assert!(!r.done());
    // A need that went away is not pending.
    assert!(check(&log("1 b need_set\n2 b need_cleared\n"), 1).done());
}

#[test]
fn checker_counts_a_dead_node_down_until_its_slot_expires() {
    // a never comes back; its slot expires at 10; b may go after that only.
    let ok = "1 a need_set\n1 b need_set\n2 a rebooting\n10 a released\n11 b slot_taken\n\
              12 b rebooting\n13 b back\n14 b healthy\n";
    assert!(check(&log(ok), 1).done());
    let bad = "1 a need_set\n1 b need_set\n2 a rebooting\n9 b rebooting\n10 a released\n";
    assert!(!check(&log(bad), 1).violations.is_empty());
}

#[test]
fn checker_sorts_by_time_and_skips_torn_lines() {
    let ev = log("5 a healthy\n1 a need_set\ngarbage\n3 a rebooting\n4 a back\n6 a bogus_event\n7");
    assert_eq!(ev.len(), 4);
    assert!(ev.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    assert!(check(&ev, 1).done());
}

// ---------------------------------------------------------------------------
// A node cut off from etcd through a network namespace

/// A network namespace joined to the host by a veth pair
/// (`10.213.<n>.1` on the host, `.2` inside), with a TCP forwarder from
/// the host end to etcd on loopback; [`NetNs::cut`] takes the link down.
/// Needs root (`ip netns add`); everything is deleted on drop.
struct NetNs {
    name: String,
    host_if: String,
    /// `http://10.213.<n>.1:<port>`: etcd as seen from inside.
    endpoint: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetNs {
    fn create(etcd_port: u16) -> Result<NetNs, String> {
        let n = std::process::id() % 250 + 1;
        let name = format!("rcfleet-{}", std::process::id());
        let host_if = format!("rcfh{n}");
        let ns_if = format!("rcfn{n}");
        let (host_ip, ns_ip) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        ip(&["netns", "add", &name])?;
        let mut ns = NetNs {
            name: name.clone(),
            host_if: host_if.clone(),
            endpoint: String::new(),
            stop: Default::default(),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        inside(&["link", "set", &ns_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        let listener = std::net::TcpListener::bind((host_ip.as_str(), 0))
            .map_err(|e| format!("bind {host_ip}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = ns.stop.clone();
        std::thread::spawn(move || forward(listener, etcd_port, stop));
        ns.endpoint = format!("http://{host_ip}:{port}");
        Ok(ns)
    }

    /// Takes the host end of the link down (or up again).
    fn cut(&self, down: bool) {
        ip(&[
            "link",
            "set",
            &self.host_if,
            if down { "down" } else { "up" },
        ])
        .expect("toggle the veth link");
    }
}

/// Forwards every connection accepted on `listener` to 127.0.0.1:`port`.
fn forward(
    listener: std::net::TcpListener,
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::SeqCst) {
        let Ok((client, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = client.set_nonblocking(false);
        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        for (mut from, mut to) in [
            (client.try_clone(), server.try_clone()),
            (server.try_clone(), client.try_clone()),
        ]
        .into_iter()
        .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
        {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Both);
                let _ = from.shutdown(std::net::Shutdown::Both);
            });
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_node_cut_off_from_etcd_while_holding_the_slot() {
    let mut f = fleet(FleetSpec {
        nodes: 3,
        ..FleetSpec::default()
    });
    let ns = NetNs::create(f.etcd.client_port()).unwrap_or_else(|e| {
        panic!(
            "this test needs root to create a network namespace (ip netns add, veth): {e}; \
             skip it with `cargo test --test fleet -- --skip cut_off`"
        )
    });
    f.nodes[0].wrapper = vec!["ip".into(), "netns".into(), "exec".into(), ns.name.clone()];
    f.nodes[0].set("etcd_endpoints", &format!("[\"{}\"]", ns.endpoint));
    f.post_lock_sleep(0, 2.5);
    f.need_all();
    f.start(0);
    assert!(
        f.wait_for(Duration::from_secs(30), |ev| has(
            ev,
            "node-0",
            Kind::SlotTaken
        )),
        "node-0 (in {}) never took the slot through {}\n{}",
        ns.name,
        ns.endpoint,
        f.diagnostics()
    );
    ns.cut(true);
    f.note("node-0 cut off");
    let cut = rebootctl::testing::fleet::now_us();
    f.start(1);
    f.start(2);
    assert!(
        f.wait_for(DONE, |ev| has(ev, "node-1", Kind::Healthy)
            && has(ev, "node-2", Kind::Healthy)),
        "the connected nodes did not finish\n{}",
        f.diagnostics()
    );
    let ev = f.events();
    let next = ev
        .iter()
        .find(|e| e.kind == Kind::SlotTaken && e.node != "node-0" && e.t_us > cut)
        .map(|e| e.t_us)
        .expect("a slot taken after the cut");
    let bound = f.spec.lock_ttl_secs + f.spec.check_interval_secs + 3;
    assert!(
        secs(next - cut) <= bound as f64,
        "the cut-off holder delayed the fleet by {:.1} s (bound {bound} s)",
        secs(next - cut)
    );
    assert!(
        !has(&ev, "node-0", Kind::Rebooting),
        "node-0 rebooted while cut off\n{}",
        f.diagnostics()
    );
    ns.cut(false);
    f.note("node-0 reconnected");
    let r = f.wait_done(DONE);
    assert_done(&f, &r);
}

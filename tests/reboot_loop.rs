//! Issue 10, item 2: a need that survives the reboot must not cause another
//! reboot (a kernel that fell back, a pinned boot entry, a wrong detector),
//! and no node reboots more than `max_reboots_per_day` times in 24 hours.
//! Local mode through the real binary; a reboot is simulated by a new boot
//! id, as in `local_mode`.

use crate::common;

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use common::fixture::{Fixture, Run, wait_until};

fn status_json(fx: &Fixture) -> (i32, serde_json::Value) {
    let r = fx.rebootctl(&["status", "--json"]);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r.code, v)
}

/// `run --once`, then a simulated reboot (the next boot id).
fn pass_then_boot(fx: &Fixture, next_boot: u32) -> Run {
    let r = fx.rebootctl(&["run", "--once"]);
    fx.new_boot(&format!("boot-{next_boot}"));
    r
}

/// A webhook receiver on 127.0.0.1: the `event` of every request arrives
/// on the channel.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(mut rq) = server.recv() {
            let mut body = String::new();
            let _ = rq.as_reader().read_to_string(&mut body);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let _ = tx.send(v["event"].as_str().unwrap_or("?").to_string());
            let _ = rq.respond(tiny_http::Response::from_string("ok"));
        }
    });
    (format!("http://127.0.0.1:{port}/hook"), rx)
}

#[test]
fn a_need_that_survives_the_reboot_reboots_once_then_blocks_as_reboot_ineffective() {
    let mut fx = Fixture::new("loop");
    let (url, events) = receiver();
    fx.set("notify", &format!("{{url: \"{url}\", timeout_sec: 2}}"));
    std::fs::write(fx.path("need-reboot"), "linux-image-6.1.0-21\n").unwrap();
    let codes: Vec<i32> = (2..=5).map(|boot| pass_then_boot(&fx, boot).code).collect();
    assert_eq!(fx.reboots().len(), 1, "codes {codes:?}");
    assert_eq!(codes, [0, 3, 3, 3]);
    let (code, v) = status_json(&fx);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["outcome"]["blocked_by"], "reboot_ineffective", "{v}");
    let text = fx.rebootctl(&["status"]).stdout;
    assert!(text.contains("reboot ineffective"), "{text}");
    assert!(text.contains("rebootctl clear-loop"), "{text}");
    // Notified once: started, completed, ineffective; nothing more.
    let got: Vec<String> = events.try_iter().collect();
    let wait = |got: &mut Vec<String>| {
        while let Ok(e) = events.recv_timeout(Duration::from_secs(3)) {
            got.push(e);
        }
    };
    let mut got = got;
    wait(&mut got);
    assert_eq!(
        got,
        [
            "reboot_started",
            "reboot_completed",
            "node_back",
            "reboot_ineffective"
        ]
    );
    // The daemon shows it in its metrics, and does not notify again.
    let port = rebootctl::testing::etcd::free_port();
    fx.set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    let mut agent = fx.spawn_logged(&["run"]);
    let metric = "rebootctl_blocked{reason=\"reboot_ineffective\"} 1";
    let seen = wait_until(Duration::from_secs(10), || scrape(port).contains(metric));
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(seen, "{}", fx.agent_log());
    wait(&mut got);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(fx.reboots().len(), 1);
}

/// The metrics page on 127.0.0.1:`port` (empty while nothing listens).
fn scrape(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    use std::io::Write;
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[test]
fn a_changed_marker_is_new_evidence_and_reboots_again() {
    let fx = Fixture::new("loop-new");
    fx.need_reboot();
    assert_eq!(pass_then_boot(&fx, 2).code, 0);
    assert_eq!(pass_then_boot(&fx, 3).code, 3);
    assert_eq!(fx.reboots().len(), 1);
    // Another package asks for a reboot: the marker is written again.
    std::fs::write(fx.path("need-reboot"), "libc6\n").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 2);
}

#[test]
fn clear_loop_allows_exactly_one_more_reboot_in_local_and_cluster_mode() {
    let mut fx = Fixture::new("loop-clear");
    fx.need_reboot();
    let r = fx.rebootctl(&["clear-loop"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("nothing to clear"), "{r:?}");
    assert_eq!(pass_then_boot(&fx, 2).code, 0);
    assert_eq!(pass_then_boot(&fx, 3).code, 3);
    let r = fx.rebootctl(&["clear-loop"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("once more"), "{r:?}");
    let (code, v) = status_json(&fx);
    assert_eq!(
        (code, &v["outcome"]["result"]),
        (0, &"would_reboot".into()),
        "{v}"
    );
    // One more reboot; the need survives it too: blocked again.
    assert_eq!(pass_then_boot(&fx, 4).code, 0);
    assert_eq!(fx.reboots().len(), 2);
    assert_eq!(pass_then_boot(&fx, 5).code, 3);
    assert_eq!(fx.reboots().len(), 2);
    // The command reads local state only: no etcd needed in cluster mode.
    fx.set("etcd_endpoints", "[\"http://127.0.0.1:9\"]");
    let r = fx.rebootctl(&["clear-loop"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("once more"), "{r:?}");
}

#[test]
fn max_reboots_per_day_blocks_with_reboot_limit() {
    let mut fx = Fixture::new("loop-cap");
    fx.set("max_reboots_per_day", "2");
    // A detector that is new evidence on every boot (a marker rewritten
    // each time): only the cap stops it.
    for boot in 2..=4 {
        std::fs::write(fx.path("need-reboot"), format!("boot {boot}\n")).unwrap();
        pass_then_boot(&fx, boot);
    }
    assert_eq!(fx.reboots().len(), 2);
    std::fs::write(fx.path("need-reboot"), "boot 5\n").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(fx.reboots().len(), 2);
    let (code, v) = status_json(&fx);
    assert_eq!(code, 7, "{v}");
    assert_eq!(v["outcome"]["blocked_by"], "reboot_limit", "{v}");
    let text = fx.rebootctl(&["status"]).stdout;
    assert!(text.contains("max_reboots_per_day 2"), "{text}");
}

/// Runs `run --once` every 100 ms until it exits `until` or 30 s pass;
/// the exit codes seen, in order.
fn passes_until(fx: &Fixture, until: i32) -> Vec<i32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut codes = Vec::new();
    while std::time::Instant::now() < deadline {
        let r = fx.rebootctl(&["run", "--once"]);
        codes.push(r.code);
        if r.code == until {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    codes
}

/// A reboot command that never takes the host down (it succeeds, or it
/// fails every time) is given up after `reboot_timeout_sec`; each attempt
/// counts toward `max_reboots_per_day`, and the pass that gives one up
/// ends there: no reboot command every `reboot_timeout_sec` forever.
#[test]
fn a_reboot_that_never_happens_counts_toward_the_daily_cap() {
    for (tag, exit) in [("ineffective", 0), ("failing", 1)] {
        let mut fx = Fixture::new(&format!("loop-noop-{tag}"));
        let d = fx.dir.display().to_string();
        fx.script(
            "fake-reboot",
            &format!("printf '%s\\n' \"$*\" >> {d}/reboots.log\nexit {exit}\n"),
        );
        fx.set("reboot_timeout_sec", "1");
        fx.set("max_reboots_per_day", "2");
        fx.need_reboot();
        let codes = passes_until(&fx, 7);
        assert_eq!(codes.last(), Some(&7), "{tag}: codes {codes:?}");
        assert_eq!(fx.reboots().len(), 2, "{tag}: codes {codes:?}");
        let (code, v) = status_json(&fx);
        assert_eq!(code, 7, "{tag}: {v}");
        assert_eq!(v["outcome"]["blocked_by"], "reboot_limit", "{tag}: {v}");
        let text = v["outcome"]["message"].as_str().unwrap_or_default();
        assert!(text.contains("given up"), "{tag}: {v}");
        // Still capped a pass later: nothing else reboots the host.
        assert_eq!(fx.rebootctl(&["run", "--once"]).code, 7);
        assert_eq!(fx.reboots().len(), 2, "{tag}");
    }
}

/// A command detector whose output changes on every run (a timestamp) is
/// the same need after the reboot: its evidence is its exit code, so the
/// loop guard holds. A need that went away after the reboot and came
/// back is a new one, whatever its evidence.
#[test]
fn a_command_detector_printing_a_timestamp_does_not_defeat_the_loop_guard() {
    let mut fx = Fixture::new("loop-cmd");
    let marker = fx.path("need-reboot");
    let check = fx.script(
        "check",
        &format!("date +%s%N\n[ -e {} ]\n", marker.display()),
    );
    fx.set(
        "reboot_required_detectors",
        &format!(
            "[{{name: stamp, type: command, cmd: [\"{}\"]}}]",
            check.display()
        ),
    );
    fx.need_reboot();
    assert_eq!(pass_then_boot(&fx, 2).code, 0);
    assert_eq!(fx.reboots().len(), 1);
    // Back, the need survived: blocked, though the output differs.
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("reboot ineffective"), "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
    // The need goes away, then comes back: a new need, one more reboot.
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 2);
}

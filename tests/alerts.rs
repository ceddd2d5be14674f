//! The alert gate (issue 14) through the real binary against a real
//! Alertmanager and a real Prometheus (Debian's packages, started on free
//! loopback ports): matching alerts block with 3 and are named by `status`,
//! other alerts do not; a PromQL rule over a metric the test serves blocks;
//! a stopped, slow or nonsensical server blocks and never reboots; the
//! silence spans the (fake) reboot and is expired after the post-reboot
//! check. Every reboot command is a fake that records its arguments.

use std::time::{Duration, Instant};

use rebootctl::testing::etcd::{EtcdServer, TestPki, free_port};

use crate::common;
use common::fixture::{Fixture, Run, wait_until};
use common::monitoring::{
    Alertmanager, BASIC_PASSWORD, BASIC_USER, Exporter, FakeServer, Prometheus,
};
use serde_json::Value;

/// A host that needs a reboot, gated by `alerts` (a YAML flow mapping).
fn host(name: &str, alerts: &str) -> Fixture {
    let mut fx = Fixture::new(name);
    fx.need_reboot();
    fx.set("alerts", alerts);
    fx
}

/// `{alertmanager_url: "<url>", <rest>}`.
fn am_gate(url: &str, rest: &str) -> String {
    format!("{{alertmanager_url: \"{url}\", {rest}}}")
}

fn assert_fits_80_columns(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "longer than 80 columns: {line:?}\n{text}"
        );
    }
}

fn status_json(fx: &Fixture) -> Value {
    let r = fx.rebootctl(&["status", "--json"]);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn scrape(port: u16) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default()
}

#[test]
fn a_matching_alert_blocks_with_3_and_status_names_it() {
    let am = Alertmanager::start();
    am.push_alert(&[
        ("alertname", "DiskFull"),
        ("severity", "critical"),
        ("instance", "web-1:9100"),
        ("team", "storage"),
    ]);
    let fx = host(
        "web-1",
        &am_gate(
            am.url(),
            "block_on: ['severity=\"critical\"', 'alertname=\"Other\"']",
        ),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("alert gate: 1 matching alert"), "{r:?}");
    assert!(r.stderr.contains("(DiskFull)"), "{r:?}");
    assert!(fx.reboots().is_empty());

    let s = fx.rebootctl(&["status"]);
    assert_eq!(s.code, 3, "{s:?}");
    let line = s
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("DiskFull"))
        .unwrap_or_else(|| panic!("no DiskFull line:\n{}", s.stdout));
    // The labels that matched, not every label of the alert.
    assert!(line.contains("severity=\"critical\""), "{line}");
    assert!(!line.contains("team"), "{line}");
    assert!(s.stdout.contains("alerts       BLOCKED"), "{}", s.stdout);
    assert_fits_80_columns(&s.stdout);

    let v = status_json(&fx);
    assert_eq!(v["outcome"]["blocked_by"], "alerts", "{v}");
    assert_eq!(v["alerts"]["alertmanager"]["total"], 1, "{v}");
    assert_eq!(
        v["alerts"]["alertmanager"]["alerts"][0]["name"], "DiskFull",
        "{v}"
    );

    // The daemon reports the reason as rebootctl_blocked{reason="alerts"}.
    let port = free_port();
    let mut fx = fx;
    fx.set(
        "metrics",
        &format!("{{enabled: true, listen: \"127.0.0.1:{port}\"}}"),
    );
    fx.set("check_interval_sec", "3600");
    let mut agent = fx.spawn_logged(&["run"]);
    let mut text = String::new();
    let seen = wait_until(Duration::from_secs(20), || {
        text = scrape(port);
        text.lines()
            .any(|l| l == "rebootctl_blocked{reason=\"alerts\"} 1")
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(seen, "{text}\n{}", fx.agent_log());
    assert!(fx.reboots().is_empty());
}

#[test]
fn non_matching_ignored_and_silenced_alerts_do_not_block() {
    let am = Alertmanager::start();
    am.push_alert(&[("alertname", "Info"), ("severity", "warning")]);
    am.push_alert(&[("alertname", "Watchdog"), ("severity", "critical")]);
    am.push_alert(&[
        ("alertname", "DiskFull"),
        ("severity", "critical"),
        ("instance", "db-3"),
    ]);
    am.silence(&[("alertname", "DiskFull")]);
    am.wait_silenced("DiskFull");

    let rest = "block_on: ['{severity=\"critical\"}'], ignore: ['alertname=~\"Watch.*\"']";
    let gate = am_gate(am.url(), rest);
    // Counting silenced alerts: DiskFull blocks.
    let fx = host(
        "counting",
        &am_gate(am.url(), &format!("{rest}, count_silenced: true")),
    );
    let s = fx.rebootctl(&["status"]);
    assert_eq!(s.code, 3, "{s:?}");
    assert!(s.stdout.contains("DiskFull"), "{}", s.stdout);
    assert!(s.stdout.contains("(suppressed)"), "{}", s.stdout);

    let mut fx = host("web-2", &gate);
    let env = fx.path("env.txt");
    let h = fx.script("health", &format!("/usr/bin/env > {}\n", env.display()));
    fx.set("health_script", &h.display().to_string());
    let s = fx.rebootctl(&["status"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(s.stdout.contains("no matching alert"), "{}", s.stdout);
    assert!(s.stdout.contains("(1 ignored)"), "{}", s.stdout);
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
    let env = std::fs::read_to_string(env).unwrap();
    for want in [
        "RC_ALERTS_ENABLED=true".to_string(),
        format!("RC_ALERTS_ALERTMANAGER_URL={}", am.url()),
        "RC_ALERTS_BLOCK_ON={severity=\"critical\"}".to_string(),
        "RC_ALERTS_IGNORE={alertname=~\"Watch.*\"}".to_string(),
        "RC_ALERTS_COUNT_SILENCED=false".to_string(),
        "RC_ALERTS_PROMETHEUS_URL=".to_string(),
        "RC_ALERTS_SILENCE_FAILURE=block".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want:?} in\n{env}");
    }
}

#[test]
fn a_prometheus_rule_over_a_served_metric_blocks_through_promql() {
    let exporter = Exporter::start(5);
    let prom = Prometheus::start(&exporter.target);
    let firing = "ALERTS{alertname=\"TestBacklog\", alertstate=\"firing\"}";
    prom.wait_count(firing, 1);
    let fx = host(
        "web-3",
        &format!(
            "{{prometheus_url: \"{}\", block_if: ['{firing}', 'test_backlog > 100']}}",
            prom.url()
        ),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("returned 1 series"), "{r:?}");
    assert!(fx.reboots().is_empty());
    let s = fx.rebootctl(&["status"]);
    assert_eq!(s.code, 3, "{s:?}");
    // The expression, then its first series (wrapped: compare unwrapped).
    let flat = s.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let want = format!(
        "promql {firing} → 1 series (vector) ALERTS{{alertname=\"TestBacklog\", alertstate=\"firing\", instance=\"{}\", job=\"test\"}} 1",
        exporter.target
    );
    assert!(flat.contains(&want), "{}", s.stdout);
    assert!(
        flat.contains("promql test_backlog > 100 → empty"),
        "{}",
        s.stdout
    );
    assert_fits_80_columns(&s.stdout);

    // The metric drops to 0: the rule resolves, the query is empty, the reboot goes ahead.
    exporter.set(0);
    prom.wait_count(firing, 0);
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn a_stopped_alertmanager_or_prometheus_blocks_and_never_reboots() {
    let mut am = Alertmanager::start();
    let exporter = Exporter::start(0);
    let mut prom = Prometheus::start(&exporter.target);
    let fx_am = host("am-down", &am_gate(am.url(), "block_on: []"));
    let fx_prom = host(
        "prom-down",
        &format!(
            "{{prometheus_url: \"{}\", block_if: ['test_backlog > 0']}}",
            prom.url()
        ),
    );
    // Both up and quiet: no block (the next runs fail only because they stopped).
    assert_eq!(fx_am.rebootctl(&["status"]).code, 0);
    assert_eq!(fx_prom.rebootctl(&["status"]).code, 0);

    am.server.stop();
    prom.server.stop();
    let r = fx_am.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("cannot ask Alertmanager, so not rebooting"),
        "{r:?}"
    );
    assert!(r.stderr.contains("connection failed"), "{r:?}");
    assert!(fx_am.reboots().is_empty());
    let r = fx_prom.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("cannot judge PromQL `test_backlog > 0`"),
        "{r:?}"
    );
    assert!(fx_prom.reboots().is_empty());
}

#[test]
fn slow_nonsense_and_error_answers_block_and_the_token_never_shows() {
    let silent = FakeServer::silent();
    let mut fx = host("slow", &am_gate(&silent.url, "timeout_sec: 1"));
    let started = Instant::now();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("no complete answer within 1s (alerts.timeout_sec)"),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(fx.reboots().is_empty());

    let cases = [
        (
            FakeServer::answering(200, "{\"alerts\": []}"),
            true,
            "not a list of alerts but an object",
        ),
        (
            FakeServer::answering(200, "<html>hi</html>"),
            true,
            "the answer is not JSON",
        ),
        (
            FakeServer::answering(500, "\"storage broken\""),
            true,
            "HTTP 500: storage broken",
        ),
        (
            FakeServer::answering(302, ""),
            true,
            "redirects are not followed",
        ),
        (
            FakeServer::answering(
                200,
                "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"}}",
            ),
            false,
            "the answer has no result",
        ),
        (
            FakeServer::answering(
                400,
                "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error at char 3\"}",
            ),
            false,
            "HTTP 400: bad_data: parse error at char 3",
        ),
    ];
    for (server, alertmanager, want) in &cases {
        let gate = if *alertmanager {
            am_gate(&server.url, "block_on: []")
        } else {
            format!(
                "{{prometheus_url: \"{}\", block_if: ['up == 0']}}",
                server.url
            )
        };
        fx.set("alerts", &gate);
        let r = fx.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 3, "{want}: {r:?}");
        assert!(r.stderr.contains(want), "{want}: {r:?}");
        assert!(fx.reboots().is_empty());
    }

    // A bearer token goes to the server and nowhere else.
    let empty = FakeServer::answering(200, "[]");
    std::fs::write(fx.path("token"), "tok-3x4mpl3\n").unwrap();
    fx.set(
        "alerts",
        &am_gate(
            &empty.url,
            &format!("bearer_token_file: {}", fx.path("token").display()),
        ),
    );
    let s = fx.rebootctl(&["status", "--json"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert_eq!(
        empty.authorizations.lock().unwrap().as_slice(),
        ["Bearer tok-3x4mpl3"]
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
    for out in [&s.stdout, &s.stderr, &r.stdout, &r.stderr] {
        assert!(!out.contains("tok-3x4mpl3"), "{out}");
    }
}

#[test]
fn tls_and_basic_auth_reach_alertmanager_and_the_password_never_shows() {
    let pki = TestPki::generate();
    let am = Alertmanager::start_tls(&pki);
    am.push_alert(&[("alertname", "TlsAlert"), ("severity", "critical")]);
    let mut fx = Fixture::new("tls");
    fx.need_reboot();
    std::fs::write(fx.path("password"), format!("{BASIC_PASSWORD}\n")).unwrap();
    let gate = |ca: &str, password_file: &str| {
        am_gate(
            am.url(),
            &format!(
                "ca_file: {}, basic_auth_username: {BASIC_USER}, basic_auth_password_file: {password_file}",
                pki.path(ca).display()
            ),
        )
    };
    let password = fx.path("password").display().to_string();
    fx.set("alerts", &gate("ca.crt", &password));
    let s = fx.rebootctl(&["status"]);
    assert_eq!(s.code, 3, "{s:?}");
    assert!(s.stdout.contains("TlsAlert"), "{}", s.stdout);
    // A wrong CA and a wrong password are both clear blocks.
    fx.set("alerts", &gate("other-ca.crt", &password));
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot ask Alertmanager"), "{r:?}");
    std::fs::write(fx.path("wrong"), "not-the-password").unwrap();
    fx.set(
        "alerts",
        &gate("ca.crt", &fx.path("wrong").display().to_string()),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("HTTP 401"), "{r:?}");
    for out in [&s.stdout, &s.stderr, &r.stdout, &r.stderr] {
        assert!(
            !out.contains(BASIC_PASSWORD) && !out.contains("not-the-password"),
            "{out}"
        );
    }
    assert!(fx.reboots().is_empty());
}

/// A host whose reboot command also keeps the reboot record as it was when
/// the command ran.
fn host_keeping_the_record(name: &str, alerts: &str) -> Fixture {
    let mut fx = host(name, alerts);
    let d = fx.dir.display().to_string();
    let reboot = fx.script(
        "reboot-keeping-record",
        &format!(
            "cp {d}/state/reboot-record.json {d}/record-at-reboot.json\nprintf '%s\\n' \"$*\" >> {d}/reboots.log\n"
        ),
    );
    fx.set(
        "reboot_command",
        &format!("[\"{}\", \"now\"]", reboot.display()),
    );
    fx
}

/// The silence ids in the record the reboot command saw.
fn silences_at_reboot(fx: &Fixture) -> Vec<String> {
    let text = std::fs::read_to_string(fx.path("record-at-reboot.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["silences"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn the_silence_spans_the_reboot_and_is_expired_after_the_post_reboot_check() {
    let am = Alertmanager::start();
    let mut fx = host_keeping_the_record(
        "web-1",
        &am_gate(
            am.url(),
            "block_on: ['severity=\"critical\"'], silence_during_reboot: ['instance=~\"${RC_NODE_NAME}(:.*)?\"']",
        ),
    );
    let healthy = fx.healthy_after_boot_when();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots(), ["now"]);

    // Created before the reboot command ran: its id was in the record then.
    let ids = silences_at_reboot(&fx);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let s = am.silence_by_id(&ids[0]);
    assert_eq!(s["status"]["state"], "active", "{s}");
    assert_eq!(s["createdBy"], "rebootctl", "{s}");
    assert!(
        s["comment"]
            .as_str()
            .unwrap()
            .contains("web-1 is rebooting"),
        "{s}"
    );
    assert_eq!(
        s["matchers"],
        serde_json::json!([{"name": "instance", "value": "web-1(:.*)?", "isRegex": true, "isEqual": true}]),
        "{s}"
    );
    let starts: jiff::Timestamp = s["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: jiff::Timestamp = s["endsAt"].as_str().unwrap().parse().unwrap();
    let lasts = ends.duration_since(starts).as_secs();
    assert!(
        (1790..=1810).contains(&lasts),
        "reboot_timeout_sec is 1800, the silence lasts {lasts} s"
    );
    // The node's own alerts are silenced: nobody is paged.
    am.push_alert(&[("alertname", "NodeDown"), ("instance", "web-1:9100")]);
    am.wait_silenced("NodeDown");

    // Back on a new boot, not healthy yet: the silence stays.
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(am.silence_by_id(&ids[0])["status"]["state"], "active");
    // Healthy: the reboot completes and the silence is expired.
    std::fs::write(&healthy, "").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!("expired silence {}", ids[0])),
        "{r:?}"
    );
    assert_eq!(am.silence_by_id(&ids[0])["status"]["state"], "expired");
    assert!(!fx.path("state/reboot-record.json").exists());
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn a_silence_that_cannot_be_created_blocks_or_is_skipped_as_configured() {
    let am = Alertmanager::start();
    // Alertmanager refuses a silence whose every matcher matches the empty string.
    let gate = |failure: &str| {
        am_gate(
            am.url(),
            &format!("silence_during_reboot: ['instance=~\".*\"'], silence_failure: {failure}"),
        )
    };
    let mut fx = host_keeping_the_record("no-silence", &gate("block"));
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("cannot create the silence {instance=~\".*\"}"),
        "{r:?}"
    );
    assert!(fx.reboots().is_empty());
    assert!(!fx.path("state/reboot-record.json").exists());
    assert!(am.silences().is_empty(), "{:?}", am.silences());

    fx.set("alerts", &gate("continue"));
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("rebooting anyway (alerts.silence_failure: continue)"),
        "{r:?}"
    );
    assert_eq!(fx.reboots().len(), 1);
    assert!(silences_at_reboot(&fx).is_empty());
}

#[test]
fn a_silence_that_cannot_be_expired_is_left_to_end_by_itself() {
    let mut am = Alertmanager::start();
    let fx = host_keeping_the_record(
        "web-4",
        &am_gate(
            am.url(),
            "silence_during_reboot: ['node=\"${RC_NODE_NAME}\"']",
        ),
    );
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    let ids = silences_at_reboot(&fx);
    assert_eq!(ids.len(), 1);
    am.server.stop();
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "cannot expire silence {}, it is left to end by itself",
            ids[0]
        )),
        "{r:?}"
    );
    assert!(!fx.path("state/reboot-record.json").exists());
}

#[test]
fn an_alert_firing_while_checking_under_the_lock_blocks_and_releases_the_slot() {
    let etcd = EtcdServer::start();
    let am = Alertmanager::start();
    let mut fx = host(
        "web-5",
        &am_gate(am.url(), "block_on: ['severity=\"critical\"']"),
    );
    fx.join(&etcd.endpoint);
    fx.set("health_timeout_sec", "8");
    fx.set("lock_ttl_sec", "10");
    // The post-lock health check waits for the test: the alert fires then.
    let (inside, go) = (fx.path("inside"), fx.path("go"));
    let h = fx.script(
        "health",
        &format!(
            "[ \"$RC_PHASE\" = post-lock ] || exit 0\ntouch {}\ni=0; while [ ! -e {} ] && [ $i -lt 350 ]; do sleep 0.02; i=$((i+1)); done\n",
            inside.display(),
            go.display()
        ),
    );
    fx.set("health_script", &h.display().to_string());
    let child = fx.spawn(&["run", "--once"]);
    assert!(
        wait_until(Duration::from_secs(20), || inside.exists()),
        "never got the lock"
    );
    assert_eq!(
        fx.holders(),
        [("web-5".to_string(), "checking".to_string())]
    );
    am.push_alert(&[("alertname", "LateAlarm"), ("severity", "critical")]);
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("(LateAlarm)"), "{r:?}");
    assert!(fx.holders().is_empty(), "the slot must be released");
    assert!(fx.reboots().is_empty());
}

#[test]
fn a_failing_pre_reboot_hook_expires_the_silence_created_for_it() {
    let am = Alertmanager::start();
    let mut fx = host(
        "web-6",
        &am_gate(
            am.url(),
            "silence_during_reboot: ['node=\"${RC_NODE_NAME}\"']",
        ),
    );
    let drain = fx.script("drain", "echo 'cannot drain' >&2\nexit 1\n");
    fx.set(
        "hooks",
        &format!("{{pre_reboot: [\"{}\"]}}", drain.display()),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(fx.reboots().is_empty());
    let silences = am.silences();
    assert_eq!(silences.len(), 1, "{silences:?}");
    assert_eq!(silences[0]["status"]["state"], "expired", "{silences:?}");
    assert!(r.stderr.contains("expired silence"), "{r:?}");
}

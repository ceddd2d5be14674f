//! The configuration file's safety rules through the real binary (issue 10
//! items 3, 9 and 10; issue 17 item 1): an empty `etcd_endpoints` or a
//! cluster-only key without endpoints is an error, never local mode; secrets
//! (webhook URLs, the etcd password and token) never reach output or logs;
//! `reboot_timeout_sec` and `max_reboots_per_day` are bounded; and
//! clusterrebootd's own configuration files validate and mean the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rebootctl::testing::etcd::{EtcdServer, TempDir};

use crate::common;
use common::fixture::{Fixture, Run, run_binary, wait_until};
use rebootctl::config::SHORT_TIMEOUTS_ENV_VAR as SHORT_TIMEOUTS_VAR;
use serde_yaml::Value;

/// `rebootctl <args> --config <file>` with extra environment.
fn rebootctl_with(file: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = args.to_vec();
    let f = file.display().to_string();
    all.extend(["--config", &f]);
    run_binary(&all, env)
}

/// `validate-config --show`: the effective configuration as YAML (with the
/// verdict and notes as comments).
fn show(file: &Path) -> (Run, Value) {
    let r = rebootctl_with(file, &["validate-config", "--show"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_yaml::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("--show is not YAML ({e}):\n{}", r.stdout));
    (r, v)
}

fn notes(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter_map(|l| l.trim_start_matches("# ").strip_prefix("note: "))
        .collect()
}

// ---------------------------------------------------------------------------
// A. An empty etcd_endpoints never means local mode (issue 10 item 3).

#[test]
fn an_empty_etcd_endpoints_is_an_error_never_local_mode() {
    for empty in ["", "~", "null", "[]"] {
        let mut fx = Fixture::new("empty-endpoints");
        fx.need_reboot();
        fx.set("etcd_endpoints", empty);
        let r = fx.rebootctl(&["validate-config"]);
        assert_eq!(r.code, 2, "etcd_endpoints: {empty:?} {r:?}");
        assert!(
            r.stderr.contains("etcd_endpoints: is empty")
                && r.stderr.contains("never means local mode"),
            "etcd_endpoints: {empty:?} {r:?}"
        );
        assert!(!r.stdout.contains("valid"), "{r:?}");
        // The agent refuses to start: no pass without the lock.
        let r = fx.rebootctl(&["run", "--once"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(fx.reboots().is_empty());
    }
}

#[test]
fn cluster_only_keys_without_etcd_endpoints_are_errors() {
    let cluster_only = [
        ("etcd_namespace", "/prod"),
        ("lock_key", "/prod/lock"),
        ("lock_ttl_sec", "120"),
        ("max_concurrent_reboots", "2"),
        ("health_publish_interval_sec", "15"),
        ("etcd_tls", "{enabled: false}"),
        ("etcd_auth", "{username: agent, password_file: /etc/passwd}"),
        ("cluster_policies", "{min_healthy_absolute: 2}"),
        // A template whose variable was empty still names a cluster key.
        ("lock_key", "\"\""),
    ];
    for (key, value) in cluster_only {
        let mut fx = Fixture::new("orphan");
        fx.need_reboot();
        fx.set(key, value);
        let r = fx.rebootctl(&["validate-config"]);
        assert_eq!(r.code, 2, "{key}: {value} {r:?}");
        assert!(
            r.stderr
                .contains(&format!("{key}: only applies in cluster mode")),
            "{key}: {value} {r:?}"
        );
        assert!(r.stderr.contains("etcd_endpoints is not set"), "{r:?}");
        assert_eq!(fx.rebootctl(&["run", "--once"]).code, 2);
        assert!(fx.reboots().is_empty());
    }
    // All of them at once: every one is reported.
    let mut fx = Fixture::new("orphans");
    for (key, value) in &cluster_only[..8] {
        fx.set(key, value);
    }
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    for (key, _) in &cluster_only[..8] {
        assert!(
            r.stderr.contains(&format!("{key}: only applies")),
            "{key} {r:?}"
        );
    }
}

#[test]
fn local_mode_keys_stay_valid_without_etcd() {
    let mut fx = Fixture::new("local-keys");
    // The local cooldown and a health check longer than the default lock
    // TTL need no etcd (lock_ttl_sec only bounds checks under a slot).
    fx.set("min_reboot_interval_sec", "3600");
    fx.set("health_timeout_sec", "120");
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("valid (local mode"), "{r:?}");
}

// ---------------------------------------------------------------------------
// B. Secrets (issue 10 item 10).

const WEBHOOK_SECRETS: [&str; 3] = ["s3cr3t-path", "t0k3n-query", "pa55w0rd-user"];

#[test]
fn a_webhook_url_with_an_upper_case_scheme_is_accepted_and_never_printed() {
    let mut fx = Fixture::new("webhook-case");
    fx.set(
        "notify",
        "{url: \"HTTPS://bot:pa55w0rd-user@chat.example:8443/hooks/s3cr3t-path?k=t0k3n-query\"}",
    );
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (r, v) = show(&fx.write_config());
    assert_eq!(
        v["notify"]["url"].as_str(),
        Some("https://chat.example:8443/<redacted>"),
        "{}",
        r.stdout
    );
    for s in WEBHOOK_SECRETS {
        assert!(!r.stdout.contains(s) && !r.stderr.contains(s), "{s}: {r:?}");
    }
    // A URL that is not http(s) is an error that does not print it.
    for bad in [
        "FTP://bot:pa55w0rd-user@chat.example/hooks/s3cr3t-path?k=t0k3n-query",
        "HTTPS:/chat.example/hooks/s3cr3t-path?k=t0k3n-query",
        "chat.example/hooks/s3cr3t-path?k=t0k3n-query",
    ] {
        fx.set("notify", &format!("{{url: \"{bad}\"}}"));
        let r = fx.rebootctl(&["validate-config"]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(r.stderr.contains("notify.url: must be an http"), "{r:?}");
        for s in WEBHOOK_SECRETS {
            assert!(!r.stderr.contains(s), "{s} printed for {bad}: {r:?}");
        }
    }
}

#[test]
fn a_rejected_reload_never_logs_the_webhook_url() {
    let mut fx = Fixture::new("reload-secret");
    fx.set("check_interval_sec", "3600");
    let mut agent = fx.spawn_logged(&["run"]);
    assert!(
        wait_until(Duration::from_secs(10), || fx
            .agent_log()
            .contains("nothing to do")),
        "{}",
        fx.agent_log()
    );
    fx.set(
        "notify",
        "{url: \"HTTPS:/bot:pa55w0rd-user@chat.example/hooks/s3cr3t-path?k=t0k3n-query\"}",
    );
    fx.write_config();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let rejected = wait_until(Duration::from_secs(10), || {
        fx.agent_log().contains("reload rejected")
    });
    let _ = agent.kill();
    let _ = agent.wait();
    let log = fx.agent_log();
    assert!(rejected, "{log}");
    assert!(log.contains("notify.url"), "{log}");
    for s in WEBHOOK_SECRETS {
        assert!(!log.contains(s), "{s} in the log:\n{log}");
    }
}

#[test]
fn etcd_password_auth_without_transport_security_is_refused() {
    let dir = TempDir::new("auth-refused");
    let pw = dir.path().join("password");
    std::fs::write(&pw, "pw\n").unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let auth = format!("{{username: agent, password_file: {}}}", pw.display());
    let cases = [
        // (endpoints, etcd_tls, refused)
        ("[\"http://10.0.0.1:2379\"]", None, true),
        ("[\"10.0.0.1:2379\"]", None, true),
        (
            "[\"https://10.0.0.1:2379\"]",
            Some(format!(
                "{{enabled: true, ca_file: {}, insecure_skip_verify: true}}",
                ca.display()
            )),
            true,
        ),
        (
            "[\"10.0.0.1:2379\"]",
            Some(format!("{{enabled: true, ca_file: {}}}", ca.display())),
            false,
        ),
    ];
    for (endpoints, tls, refused) in cases {
        let mut fx = Fixture::new("auth-insecure");
        fx.set("etcd_endpoints", endpoints);
        fx.set("etcd_auth", &auth);
        if let Some(t) = &tls {
            fx.set("etcd_tls", t);
        }
        let r = fx.rebootctl(&["validate-config"]);
        if refused {
            assert_eq!(r.code, 2, "{endpoints} {tls:?}: {r:?}");
            assert!(r.stderr.contains("etcd_auth: refusing"), "{r:?}");
            assert!(r.stderr.contains("allow_insecure"), "{r:?}");
            // The documented key allows it.
            fx.set(
                "etcd_auth",
                &format!(
                    "{{username: agent, password_file: {}, allow_insecure: true}}",
                    pw.display()
                ),
            );
            let r = fx.rebootctl(&["validate-config"]);
            assert_eq!(r.code, 0, "{endpoints} {tls:?} with allow_insecure: {r:?}");
        } else {
            assert_eq!(r.code, 0, "{endpoints} {tls:?}: {r:?}");
        }
    }
}

/// Strings shaped like etcd's simple auth tokens (`<16 letters>.<index>`).
fn token_like(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (i, _) in text.match_indices('.') {
        let letters = bytes[..i]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let digits = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if letters == 16 && digits > 0 {
            found.push(text[i - 16..i + 1 + digits].to_string());
        }
    }
    found
}

/// A line of a hex dump of wire bytes (`7b22 6e61 6d65 …  {"name…`).
fn is_wire_dump(line: &str) -> bool {
    let groups: Vec<&str> = line.split_whitespace().collect();
    groups.windows(4).any(|w| {
        w.iter()
            .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
    })
}

#[test]
fn trace_logging_never_prints_the_etcd_password_or_token() {
    const PASSWORD: &str = "Tr4ceSecretPw";
    let etcd = EtcdServer::start();
    etcd.enable_auth("rootpw", "agent", PASSWORD, "/rebootctl/");
    let mut fx = Fixture::new("trace");
    let pw = fx.path("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    fx.join(&etcd.endpoint);
    fx.set(
        "etcd_auth",
        &format!(
            "{{username: agent, password_file: {}, allow_insecure: true}}",
            pw.display()
        ),
    );
    fx.need_reboot();
    let cfg = fx.write_config();
    for (args, code) in [
        (&["run", "--once"][..], 0),
        (&["lock"][..], 0),
        (&["nodes", "--json"][..], 0),
    ] {
        let r = rebootctl_with(&cfg, args, &[("RUST_LOG", "trace")]);
        assert_eq!(r.code, code, "{args:?}: {r:?}");
        // The level really was trace: rebootctl's own debug lines are there.
        assert!(r.stderr.contains("rebootctl: debug:"), "{args:?}: {r:?}");
        let lower = r.stderr.to_ascii_lowercase();
        assert!(
            !r.stderr.contains(PASSWORD),
            "{args:?}: password in\n{}",
            r.stderr
        );
        assert!(!lower.contains("authorization"), "{args:?}:\n{}", r.stderr);
        assert!(!lower.contains("\"token\""), "{args:?}:\n{}", r.stderr);
        assert_eq!(token_like(&r.stderr), Vec::<String>::new(), "{}", r.stderr);
        let dumps: Vec<&str> = r.stderr.lines().filter(|l| is_wire_dump(l)).collect();
        assert!(
            dumps.is_empty(),
            "{args:?}: wire dump lines:\n{}",
            dumps.join("\n")
        );
    }
    assert_eq!(fx.reboots().len(), 1);
}

// ---------------------------------------------------------------------------
// C. reboot_timeout_sec and max_reboots_per_day (issue 10 items 9 and 2).

#[test]
fn reboot_timeout_sec_is_bounded_to_one_minute_through_seven_days() {
    let mut fx = Fixture::new("timeout-bounds");
    // Without the test-suite switch, the production bounds apply.
    let off = [(SHORT_TIMEOUTS_VAR, "0")];
    for (secs, ok) in [
        ("1", false),
        ("59", false),
        ("60", true),
        ("1800", true),
        ("604800", true),
        ("604801", false),
    ] {
        fx.set("reboot_timeout_sec", secs);
        let r = rebootctl_with(&fx.write_config(), &["validate-config"], &off);
        if ok {
            assert_eq!(r.code, 0, "{secs}: {r:?}");
        } else {
            assert_eq!(r.code, 2, "{secs}: {r:?}");
            assert!(
                r.stderr.contains(
                    "reboot_timeout_sec: must be at least 60 (1 minute) and at most 604800 (7 days)"
                ),
                "{secs}: {r:?}"
            );
        }
    }
    // The test-suite switch relaxes only the lower bound, and says so.
    fx.set("reboot_timeout_sec", "2");
    let r = rebootctl_with(&fx.write_config(), &["validate-config"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(SHORT_TIMEOUTS_VAR), "{r:?}");
}

#[test]
fn max_reboots_per_day_defaults_to_3_and_rejects_0() {
    let mut fx = Fixture::new("per-day");
    let (_, v) = show(&fx.write_config());
    assert_eq!(v["max_reboots_per_day"].as_u64(), Some(3));
    fx.set("max_reboots_per_day", "5");
    let (_, v) = show(&fx.write_config());
    assert_eq!(v["max_reboots_per_day"].as_u64(), Some(5));
    for bad in ["0", "25"] {
        fx.set("max_reboots_per_day", bad);
        let r = fx.rebootctl(&["validate-config"]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(
            r.stderr
                .contains("max_reboots_per_day: must be at least 1 and at most 24"),
            "{r:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// D. clusterrebootd's configuration files (issue 17 item 1).

fn fixture_text(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clusterrebootd");
    std::fs::read_to_string(p.join(name)).unwrap()
}

/// clusterrebootd's examples/config.yaml, its TLS files moved into `dir`.
fn example_file(dir: &TempDir) -> PathBuf {
    let ssl = dir.path().join("ssl");
    std::fs::create_dir_all(&ssl).unwrap();
    for f in ["ca.crt", "node.crt", "node.key"] {
        std::fs::write(ssl.join(f), "placeholder\n").unwrap();
    }
    let text = fixture_text("examples-config.yaml")
        .replace("/etc/ssl/etcd/", &format!("{}/", ssl.display()));
    let p = dir.path().join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn clusterrebootd_example_config_validates_and_means_the_same() {
    let dir = TempDir::new("crd-example");
    let file = example_file(&dir);
    let ssl = dir.path().join("ssl");
    let r = rebootctl_with(&file, &["validate-config"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("valid (cluster mode, 3 endpoints"),
        "{r:?}"
    );
    let (r, v) = show(&file);
    let out = &r.stdout;
    assert_eq!(v["node_name"].as_str(), Some("node-a"), "{out}");
    let d = &v["reboot_required_detectors"];
    assert_eq!(d[0]["name"].as_str(), Some("debian-reboot-required"));
    assert_eq!(d[0]["type"].as_str(), Some("file"));
    assert_eq!(d[0]["path"].as_str(), Some("/var/run/reboot-required"));
    assert_eq!(d[1]["name"].as_str(), Some("rpm-needs-restarting"));
    assert_eq!(strs(&d[1]["cmd"]), ["/usr/sbin/needs-restarting", "-r"]);
    assert_eq!(d[1]["success_exit_codes"][0].as_u64(), Some(1));
    assert_eq!(d[1]["timeout_sec"].as_u64(), Some(10));
    assert_eq!(
        v["health_script"].as_str(),
        Some("/usr/local/bin/cluster-health-check.sh")
    );
    for (key, want) in [
        ("health_timeout_sec", 45),
        ("health_publish_interval_sec", 15),
        ("check_interval_sec", 300),
        ("backoff_min_sec", 5),
        ("backoff_max_sec", 60),
        ("min_reboot_interval_sec", 900),
        ("lock_ttl_sec", 120),
        // Defaults where the file is silent: rebootctl's names, same values.
        ("max_concurrent_reboots", 1),
    ] {
        assert_eq!(v[key].as_u64(), Some(want), "{key}: {out}");
    }
    assert_eq!(
        v["kill_switch_file"].as_str(),
        Some("/etc/clusterrebootd/disable")
    );
    // host:port endpoints are https because etcd_tls.enabled is true.
    assert_eq!(
        strs(&v["etcd_endpoints"]),
        [
            "https://10.0.0.10:2379",
            "https://10.0.0.11:2379",
            "https://10.0.0.12:2379"
        ]
    );
    assert_eq!(v["etcd_namespace"].as_str(), Some("/prod/clusterrebootd"));
    assert_eq!(v["etcd_tls"]["enabled"].as_bool(), Some(true));
    assert_eq!(
        v["etcd_tls"]["ca_file"].as_str(),
        Some(ssl.join("ca.crt").to_str().unwrap())
    );
    assert_eq!(v["etcd_tls"]["insecure_skip_verify"].as_bool(), Some(false));
    assert_eq!(
        strs(&v["reboot_command"]),
        [
            "/sbin/shutdown",
            "-r",
            "now",
            "coordinated reboot for ${RC_NODE_NAME}"
        ]
    );
    let p = &v["cluster_policies"];
    assert_eq!(p["min_healthy_fraction"].as_f64(), Some(0.6));
    assert_eq!(p["min_healthy_absolute"].as_u64(), Some(3));
    assert_eq!(p["forbid_if_only_fallback_left"].as_bool(), Some(true));
    assert_eq!(
        strs(&p["fallback_nodes"]),
        ["control-plane-a", "control-plane-b"]
    );
    assert_eq!(strs(&v["windows"]["deny"]), ["Fri 18:00-Mon 08:00"]);
    assert_eq!(strs(&v["windows"]["allow"]), ["Tue-Thu 22:00-04:00"]);
    assert_eq!(v["metrics"]["enabled"].as_bool(), Some(true));
    assert_eq!(v["metrics"]["listen"].as_str(), Some("0.0.0.0:9090"));
    assert_eq!(v["dry_run"].as_bool(), Some(false));
    // What behaves differently is named, one note each.
    let n = notes(&r);
    assert!(
        n.iter().any(|l| l.starts_with("lock_key:")
            && l.contains("/prod/clusterrebootd/prod/clusterrebootd/lock")
            && l.contains("/prod/clusterrebootd/lock/slot-")),
        "{out}"
    );
    assert!(n.iter().any(|l| l.starts_with("metrics:")), "{out}");
    assert!(
        n.iter().any(|l| l.starts_with("min_reboot_interval_sec:")),
        "{out}"
    );
    assert!(
        n.iter().any(|l| l.starts_with("cluster_policies:")),
        "{out}"
    );
    // Nothing the file sets the same way is noted.
    for quiet in [
        "node_name",
        "health_script",
        "kill_switch_file",
        "etcd_namespace",
    ] {
        assert!(
            !n.iter().any(|l| l.starts_with(&format!("{quiet}:"))),
            "{quiet}: {out}"
        );
    }
}

#[test]
fn clusterrebootd_packaged_config_validates_and_means_the_same() {
    let dir = TempDir::new("crd-packaged");
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, fixture_text("packaging-config.yaml")).unwrap();
    let r = rebootctl_with(&file, &["validate-config"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("dry_run"), "{r:?}");
    let (r, v) = show(&file);
    let out = &r.stdout;
    assert_eq!(v["node_name"].as_str(), Some("node-b"), "{out}");
    assert_eq!(strs(&v["etcd_endpoints"]), ["http://127.0.0.1:2379"]);
    // Empty strings and lists are clusterrebootd's "unset".
    assert_eq!(v["etcd_namespace"].as_str(), Some("/rebootctl"), "{out}");
    assert_eq!(v["lock_key"].as_str(), Some("/rebootctl/lock"), "{out}");
    assert_eq!(v["etcd_tls"]["enabled"].as_bool(), Some(false), "{out}");
    assert!(v["etcd_tls"].get("ca_file").is_none(), "{out}");
    let p = &v["cluster_policies"];
    assert!(p["min_healthy_fraction"].is_null(), "{out}");
    assert!(p["min_healthy_absolute"].is_null(), "{out}");
    assert_eq!(p["forbid_if_only_fallback_left"].as_bool(), Some(false));
    assert!(strs(&p["fallback_nodes"]).is_empty());
    assert!(strs(&v["windows"]["deny"]).is_empty());
    assert!(strs(&v["windows"]["allow"]).is_empty());
    assert_eq!(v["lock_ttl_sec"].as_u64(), Some(120));
    assert_eq!(v["health_timeout_sec"].as_u64(), Some(45));
    assert_eq!(v["check_interval_sec"].as_u64(), Some(300));
    assert_eq!(v["min_reboot_interval_sec"].as_u64(), Some(0));
    assert_eq!(v["metrics"]["enabled"].as_bool(), Some(false));
    assert_eq!(v["metrics"]["listen"].as_str(), Some("127.0.0.1:9090"));
    assert_eq!(v["dry_run"].as_bool(), Some(true));
    let n = notes(&r);
    // clusterrebootd keeps its keys at etcd's root when etcd_namespace is empty.
    assert!(
        n.iter()
            .any(|l| l.starts_with("etcd_namespace:") && l.contains("/rebootctl")),
        "{out}"
    );
    assert!(
        n.iter().any(|l| l.starts_with("lock_key:")
            && l.contains("/cluster/clusterrebootd/lock")
            && l.contains("/rebootctl/lock/slot-")),
        "{out}"
    );
}

#[test]
fn clusterrebootd_packaged_config_as_shipped_is_still_an_error() {
    // The template as shipped: endpoints empty, the rest of the cluster
    // configured. An explicit empty list never means local mode.
    let dir = TempDir::new("crd-shipped");
    let file = dir.path().join("config.yaml");
    let text = fixture_text("packaging-config.yaml").replace(
        "etcd_endpoints: [\"127.0.0.1:2379\"]  # filled in",
        "etcd_endpoints: []",
    );
    assert!(text.contains("etcd_endpoints: []"));
    std::fs::write(&file, text).unwrap();
    let r = rebootctl_with(&file, &["validate-config"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("etcd_endpoints: is empty"), "{r:?}");
}

#[test]
fn notes_name_what_clusterrebootd_would_read_differently() {
    let dir = TempDir::new("crd-notes");
    let file = dir.path().join("config.yaml");
    // Only clusterrebootd's keys, each difference once.
    std::fs::write(
        &file,
        "node_name: \"\"\n\
         reboot_required_detectors:\n\
         \x20 - type: command\n\
         \x20   cmd: [/usr/bin/needs-reboot]\n\
         health_script: \"\"\n\
         etcd_endpoints: [\"127.0.0.1:2379\"]\n\
         reboot_command: []\n\
         kill_switch_file: \"\"\n\
         metrics: {enabled: false, listen: \"\"}\n",
    )
    .unwrap();
    let (r, v) = show(&file);
    let out = &r.stdout;
    let n = notes(&r);
    for key in [
        "node_name:",
        "health_script:",
        "kill_switch_file:",
        "metrics.listen:",
        "etcd_namespace:",
        "lock_key:",
        "reboot_required_detectors[0]: no success_exit_codes",
        "reboot_required_detectors[0]: no timeout_sec",
        "reboot_required_detectors[0]: no name",
    ] {
        assert!(n.iter().any(|l| l.starts_with(key)), "{key}: {out}");
    }
    // reboot_command: [] is clusterrebootd's "unset": the default command.
    assert_eq!(strs(&v["reboot_command"])[0], "/sbin/shutdown", "{out}");
    // A rebootctl file (it uses rebootctl's own keys) gets no such notes.
    let mut fx = Fixture::new("native");
    fx.set("etcd_endpoints", "[\"http://127.0.0.1:2379\"]");
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(notes(&r).is_empty(), "{r:?}");
}

#[test]
fn show_prints_a_configuration_that_reads_back_the_same() {
    let dir = TempDir::new("crd-show");
    let file = example_file(&dir);
    let (_, first) = show(&file);
    let again = dir.path().join("shown.yaml");
    std::fs::write(&again, serde_yaml::to_string(&first).unwrap()).unwrap();
    let (_, second) = show(&again);
    assert_eq!(first, second);
}

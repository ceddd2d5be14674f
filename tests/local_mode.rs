//! Local mode through the real binary (issue 2): detectors, kill switch,
//! windows, health gate, hooks and the (fake) reboot command, with the exit
//! codes of SPEC §2. No test can run a real reboot command: every fixture's
//! reboot_command is a script that records its arguments.

use crate::common;

use common::fixture::{Fixture, run_binary, wait_until};
use std::time::Duration;

#[test]
fn marker_present_runs_the_fake_reboot_once_with_expanded_arguments() {
    let fx = Fixture::new("web-1");
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots(), ["--node=web-1 now"]);
    assert!(fx.path("state/reboot-record.json").exists());
}

#[test]
fn marker_absent_never_reboots() {
    let fx = Fixture::new("idle");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn dry_run_does_not_reboot() {
    let fx = Fixture::new("dry");
    fx.need_reboot();
    let r = fx.rebootctl(&["run", "--once", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(fx.reboots().is_empty());
    assert!(!fx.path("state/reboot-record.json").exists());
}

#[test]
fn kill_switch_blocks_with_5() {
    let fx = Fixture::new("ks");
    fx.need_reboot();
    std::fs::write(fx.path("disable"), "").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn outside_every_allow_window_blocks_with_7() {
    let mut fx = Fixture::new("win");
    fx.need_reboot();
    // An allow window on a weekday two days from now (UTC) never covers now.
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let today = usize::try_from(now.weekday().to_monday_zero_offset()).unwrap();
    let name = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today + 2) % 7];
    fx.set(
        "windows",
        &format!("{{timezone: UTC, allow: [\"{name} 00:00-23:59\"]}}"),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn deny_window_covering_now_blocks_with_7() {
    let mut fx = Fixture::new("deny");
    fx.need_reboot();
    fx.set("windows", "{timezone: UTC, deny: [\"* 00:00-24:00\"]}");
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn failing_health_script_blocks_with_3() {
    let mut fx = Fixture::new("sick");
    fx.need_reboot();
    let h = fx.script("health", "echo 'disk almost full' >&2\nexit 1\n");
    fx.set("health_script", &h.display().to_string());
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn timed_out_health_script_blocks_with_3() {
    let mut fx = Fixture::new("slow");
    fx.need_reboot();
    let h = fx.script("health", "sleep 30\n");
    fx.set("health_script", &h.display().to_string());
    fx.set("health_timeout_sec", "1");
    let started = std::time::Instant::now();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(fx.reboots().is_empty());
}

#[test]
fn healthy_script_sees_the_documented_environment() {
    let mut fx = Fixture::new("env");
    fx.need_reboot();
    let out = fx.path("env.txt");
    let h = fx.script("health", &format!("/usr/bin/env > {}\n", out.display()));
    fx.set("health_script", &h.display().to_string());
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    let env = std::fs::read_to_string(out).unwrap();
    assert!(env.contains("RC_PHASE=pre-lock"), "{env}");
    assert!(env.contains("RC_NODE_NAME=env"), "{env}");
    assert!(env.contains("RC_LOCK_ENABLED=false"), "{env}");
    assert!(!env.contains("CARGO"), "daemon environment leaked: {env}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn timed_out_detector_command_blocks_with_6() {
    let mut fx = Fixture::new("det-slow");
    let d = fx.script("detector", "sleep 30\n");
    fx.set(
        "reboot_required_detectors",
        &format!(
            "[{{type: command, cmd: [\"{}\"], timeout_sec: 1}}]",
            d.display()
        ),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn missing_detector_command_blocks_with_6() {
    let mut fx = Fixture::new("det-missing");
    fx.set(
        "reboot_required_detectors",
        "[{type: command, cmd: [\"/nonexistent/needs-restarting\", \"-r\"]}]",
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(fx.reboots().is_empty());
}

#[test]
fn detector_command_exit_code_decides() {
    let mut fx = Fixture::new("det-cmd");
    let d = fx.script("detector", "exit 1\n");
    fx.set(
        "reboot_required_detectors",
        &format!(
            "[{{type: command, cmd: [\"{}\"], success_exit_codes: [1]}}]",
            d.display()
        ),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn failing_pre_reboot_hook_prevents_the_reboot() {
    let mut fx = Fixture::new("hook");
    fx.need_reboot();
    let hook = fx.script("drain", "echo cannot drain >&2\nexit 1\n");
    let undo = fx.path("undone");
    let undrain = fx.script("undrain", &format!("touch {}\n", undo.display()));
    fx.set(
        "hooks",
        &format!(
            "{{pre_reboot: [\"{}\"], post_reboot: [\"{}\"]}}",
            hook.display(),
            undrain.display()
        ),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(fx.reboots().is_empty());
    assert!(!fx.path("state/reboot-record.json").exists());
    // A half-done drain is undone like an aborted reboot.
    assert!(undo.exists(), "{r:?}");
}

#[test]
fn pre_reboot_hook_runs_before_the_reboot() {
    let mut fx = Fixture::new("hook-ok");
    fx.need_reboot();
    let log = fx.path("reboots.log");
    let hook = fx.script(
        "drain",
        &format!("echo \"drain $1\" >> {}\n", log.display()),
    );
    fx.set(
        "hooks",
        &format!(
            "{{pre_reboot: [\"{}\", \"${{RC_NODE_NAME}}\"]}}",
            hook.display()
        ),
    );
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.reboots(), ["drain hook-ok", "--node=hook-ok now"]);
}

#[test]
fn after_the_reboot_post_reboot_health_completes_it() {
    let mut fx = Fixture::new("back");
    fx.need_reboot();
    let gate = fx.healthy_after_boot_when();
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    assert_eq!(fx.reboots().len(), 1);
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    fx.new_boot("boot-2");
    // Back, but not healthy yet: blocked with 3, record kept.
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(fx.path("state/reboot-record.json").exists());
    // Healthy: the reboot is completed and the record cleared.
    std::fs::write(&gate, "").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!fx.path("state/reboot-record.json").exists());
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn a_reboot_that_never_happened_is_given_up_after_reboot_timeout() {
    let mut fx = Fixture::new("never");
    fx.need_reboot();
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
    fx.set("reboot_timeout_sec", "2");
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    std::fs::remove_file(fx.path("need-reboot")).unwrap();
    // Same boot id: the reboot has not happened yet; it may still.
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("reboot pending"), "{r:?}");
    assert!(fx.path("state/reboot-record.json").exists());
    // After reboot_timeout_sec it is given up, and the drain undone.
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = fx.rebootctl(&["run", "--once"]);
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
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!fx.path("state/reboot-record.json").exists());
    assert_eq!(fx.reboots(), ["drain", "--node=never now", "undrain"]);
}

#[test]
fn cooldown_blocks_with_7_after_a_completed_reboot() {
    let mut fx = Fixture::new("cool");
    fx.need_reboot();
    fx.set("min_reboot_interval_sec", "3600");
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 0);
    fx.new_boot("boot-2");
    // A new need (the same one would be reboot_ineffective, exit 3).
    std::fs::write(fx.path("need-reboot"), "another package\n").unwrap();
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn config_with_three_mistakes_reports_all_three() {
    let mut fx = Fixture::new("bad");
    fx.set("check_interval_sec", "0");
    fx.set("reboot_command", "[reboot]");
    fx.set("backoff_min_sec", "100");
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    for want in [
        "check_interval_sec: must be greater than 0",
        "reboot_command[0]: must be an absolute path",
        "backoff_max_sec: must be at least backoff_min_sec (100)",
        "3 problems",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?} in {}", r.stderr);
    }
    // The same file stops run before anything happens.
    assert_eq!(fx.rebootctl(&["run", "--once"]).code, 2);
}

#[test]
fn unknown_key_suggests_the_nearest_valid_key() {
    let mut fx = Fixture::new("typo");
    fx.set("helth_script", "/bin/true");
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("helth_script: unknown key (did you mean `health_script`?)"),
        "{}",
        r.stderr
    );
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let fx = Fixture::new("syntax");
    let p = fx.path("broken.yaml");
    std::fs::write(&p, "node_name: a\nreboot_required_detectors: [\n").unwrap();
    let r = run_binary(
        &["validate-config", "--config", &p.display().to_string()],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("line 3 column"), "{}", r.stderr);
}

#[test]
fn missing_config_file_is_2_and_names_the_file() {
    let r = run_binary(&["status", "--config", "/nonexistent/rebootctl.yaml"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("/nonexistent/rebootctl.yaml"),
        "{}",
        r.stderr
    );
}

#[test]
fn config_path_comes_from_the_environment() {
    let fx = Fixture::new("envcfg");
    let cfg = fx.write_config();
    let r = run_binary(
        &["validate-config"],
        &[("REBOOTCTL_CONFIG", &cfg.display().to_string())],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("valid"), "{r:?}");
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["frobnicate"][..],
        &["run", "--bogus"],
        &[],
        &["status", "--config"],
    ] {
        let r = run_binary(args, &[]);
        assert_eq!(r.code, 64, "{args:?}: {r:?}");
        assert!(r.stderr.contains("Usage: rebootctl"), "{args:?}: {r:?}");
    }
    let r = run_binary(&["run", "--help"], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--once"));
}

#[test]
fn status_explains_in_one_line_and_fits_80_columns() {
    let mut fx = Fixture::new("status");
    fx.need_reboot();
    let h = fx.script("health", "echo 'replication lag 45s exceeds the 30s limit set by the operator for this database' >&2\nexit 1\n");
    fx.set("health_script", &h.display().to_string());
    let r = fx.rebootctl(&["status"]);
    assert_eq!(r.code, 3, "{r:?}");
    for line in r.stdout.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line:?}");
    }
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("=> blocked: health gate") || r.stdout.contains("=> blocked: health gate"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("marker"), "{}", r.stdout);
    assert!(fx.reboots().is_empty());
}

#[test]
fn status_with_nothing_to_do_says_so_even_outside_the_window() {
    let mut fx = Fixture::new("status-idle");
    fx.set("windows", "{timezone: UTC, deny: [\"* 00:00-24:00\"]}");
    let r = fx.rebootctl(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("inside deny window"), "{}", r.stdout);
    assert!(r.stdout.contains("=> nothing to do"), "{}", r.stdout);
}

#[test]
fn status_never_acts() {
    let fx = Fixture::new("status-ok");
    fx.need_reboot();
    let r = fx.rebootctl(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("would reboot"), "{}", r.stdout);
    assert!(fx.reboots().is_empty());
    assert!(!fx.path("state/reboot-record.json").exists());
}

#[test]
fn status_json_is_one_document() {
    let fx = Fixture::new("status-json");
    std::fs::write(fx.path("disable"), "").unwrap();
    let r = fx.rebootctl(&["status", "--json", "--skip-health"]);
    assert_eq!(r.code, 5, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["node"], "status-json");
    assert_eq!(v["mode"], "local");
    assert_eq!(v["outcome"]["blocked_by"], "kill_switch");
    assert_eq!(v["outcome"]["exit_code"], 5);
    assert_eq!(v["detectors"][0]["name"], "marker");
}

#[test]
fn simulate_prints_each_detector() {
    let mut fx = Fixture::new("sim");
    fx.need_reboot();
    let d = fx.script("detector", "echo checking things\nexit 0\n");
    let d2 = fx.path("missing-binary");
    fx.set(
        "reboot_required_detectors",
        &format!(
            "[{{name: marker, type: file, path: {}}}, {{name: cmd, type: command, cmd: [\"{}\"]}}, {{name: broken, type: command, cmd: [\"{}\"]}}]",
            fx.path("need-reboot").display(),
            d.display(),
            d2.display()
        ),
    );
    let r = fx.rebootctl(&["simulate"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("checking things"), "{}", r.stdout);
    let r = fx.rebootctl(&["simulate", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["need"], "required");
    assert_eq!(v["detectors"][0]["verdict"], "required");
    assert_eq!(v["detectors"][1]["verdict"], "required");
    assert_eq!(v["detectors"][2]["verdict"], "failed");
    assert!(fx.reboots().is_empty());
}

#[test]
fn examples_validate() {
    for f in ["examples/config.yaml", "examples/local.yaml"] {
        let path = format!("{}/{f}", env!("CARGO_MANIFEST_DIR"));
        let r = run_binary(&["validate-config", "--config", &path], &[]);
        assert_eq!(r.code, 0, "{f}: {r:?}");
    }
}

#[test]
fn version_names_commit_and_target() {
    let r = run_binary(&["version"], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("rebootctl "), "{}", r.stdout);
    assert!(r.stdout.contains("target"), "{}", r.stdout);
}

#[test]
fn a_second_agent_on_the_same_state_dir_is_refused() {
    let mut fx = Fixture::new("single");
    fx.need_reboot();
    let (inside, go) = fx.gated_health();
    let first = fx.spawn(&["run", "--once"]);
    assert!(wait_until(Duration::from_secs(15), || inside.exists()));
    let r = fx.rebootctl(&["run", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("another 'rebootctl run'"), "{r:?}");
    std::fs::write(&go, "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fx.reboots().len(), 1);
}

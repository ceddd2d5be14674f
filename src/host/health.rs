//! The health gate (SPEC §7): runs the operator's health script with the
//! documented `RC_*` environment and turns its exit into a [`HealthReport`].
//!
//! Exit 0 is healthy; any other exit, a signal or a timeout is unhealthy.
//! A script that cannot be started is an error, not a verdict, so the caller
//! can tell a broken installation from an unhealthy cluster. No script
//! configured means the gate is open.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::host::process::{self, Termination};

/// Characters of the script's output kept in the report and logged.
pub const OUTPUT_EXCERPT_CHARS: usize = 2000;
/// Characters of the last output line quoted in an unhealthy reason.
const REASON_LINE_CHARS: usize = 200;
/// What the health script is called in logs and errors.
const ROLE: &str = "health script";

/// Why the health script runs (`RC_PHASE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before trying to take a lock slot.
    PreLock,
    /// Holding a slot, just before the reboot.
    PostLock,
    /// After this node's own reboot, before releasing its slot.
    PostReboot,
    /// The periodic health report into etcd.
    Heartbeat,
    /// `rebootctl status`.
    Status,
}

impl Phase {
    /// The value of `RC_PHASE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreLock => "pre-lock",
            Phase::PostLock => "post-lock",
            Phase::PostReboot => "post-reboot",
            Phase::Heartbeat => "heartbeat",
            Phase::Status => "status",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The agent's situation, passed to the script in its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Why the script runs.
    pub phase: Phase,
    /// The agent will not reboot (`--dry-run`, `dry_run: true`, `status`).
    pub dry_run: bool,
    /// This node holds a lock slot now.
    pub lock_held: bool,
    /// Attempts to take a slot so far in this pass.
    pub lock_attempts: u32,
    /// `status --skip-health`: do not run the script at all.
    pub skip_health: bool,
    /// `status --skip-lock`: the lock is not consulted.
    pub skip_lock: bool,
}

impl Context {
    /// A context for `phase` with every flag false and no lock attempts.
    pub fn new(phase: Phase) -> Context {
        Context {
            phase,
            dry_run: false,
            lock_held: false,
            lock_attempts: 0,
            skip_health: false,
            skip_lock: false,
        }
    }
}

/// The verdict of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct HealthReport {
    /// True when the gate is open.
    pub healthy: bool,
    /// One human line: "exited 0", "exited with 2: etcd quorum lost", …
    pub reason: String,
    /// A bounded excerpt of the script's stdout and stderr.
    pub output: String,
    /// How long the script ran (zero when it did not run).
    pub duration: Duration,
}

impl HealthReport {
    fn open(reason: &str) -> HealthReport {
        HealthReport {
            healthy: true,
            reason: reason.to_string(),
            output: String::new(),
            duration: Duration::ZERO,
        }
    }
}

fn flag(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// The URL of the metrics endpoint as a local script reaches it: an
/// unspecified listen address (`0.0.0.0`, `::`) becomes loopback.
fn metrics_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/metrics", SocketAddr::new(ip, listen.port()))
}

/// The script's `RC_*` variables (SPEC §7); [`process::run`] adds `PATH`
/// and nothing else. `RC_METRICS_ENDPOINT` is present only when metrics are
/// enabled; every other variable is always set, empty when not configured.
pub fn environment(cfg: &Config, ctx: &Context) -> Vec<(String, String)> {
    let etcd = cfg.etcd.as_ref();
    let policies = &cfg.cluster_policies;
    let mut env = vec![
        ("RC_NODE_NAME", cfg.node_name.clone()),
        ("RC_PHASE", ctx.phase.as_str().to_string()),
        ("RC_DRY_RUN", flag(ctx.dry_run)),
        ("RC_LOCK_ENABLED", flag(cfg.is_cluster() && !ctx.skip_lock)),
        ("RC_LOCK_HELD", flag(ctx.lock_held)),
        ("RC_LOCK_ATTEMPTS", ctx.lock_attempts.to_string()),
        (
            "RC_LOCK_KEY",
            etcd.map(|e| e.lock_key.clone()).unwrap_or_default(),
        ),
        (
            "RC_ETCD_ENDPOINTS",
            etcd.map(|e| e.endpoints.join(",")).unwrap_or_default(),
        ),
        (
            "RC_KILL_SWITCH_FILE",
            cfg.kill_switch_file.display().to_string(),
        ),
        (
            "RC_CLUSTER_MIN_HEALTHY_FRACTION",
            policies
                .min_healthy_fraction
                .map(|f| f.to_string())
                .unwrap_or_default(),
        ),
        (
            "RC_CLUSTER_MIN_HEALTHY_ABSOLUTE",
            policies
                .min_healthy_absolute
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        (
            "RC_CLUSTER_FORBID_IF_ONLY_FALLBACK_LEFT",
            flag(policies.forbid_if_only_fallback_left),
        ),
        (
            "RC_CLUSTER_FALLBACK_NODES",
            policies.fallback_nodes.join(","),
        ),
        // Window entries contain commas ("Mon,Wed 22:00-04:00").
        ("RC_WINDOWS_ALLOW", cfg.windows.allow_entries().join("; ")),
        ("RC_WINDOWS_DENY", cfg.windows.deny_entries().join("; ")),
        ("RC_SKIP_HEALTH", flag(ctx.skip_health)),
        ("RC_SKIP_LOCK", flag(ctx.skip_lock)),
    ];
    if cfg.metrics.enabled {
        env.push(("RC_METRICS_ENDPOINT", metrics_url(cfg.metrics.listen)));
    }
    env.extend(crate::config::alerts_environment(cfg.alerts.as_ref()));
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The last non-empty line of `output`, cut to a readable length.
fn last_line(output: &str) -> Option<String> {
    let line = output.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    if line.chars().count() <= REASON_LINE_CHARS {
        return Some(line.to_string());
    }
    let cut: String = line.chars().take(REASON_LINE_CHARS).collect();
    Some(format!("{cut}…"))
}

/// Runs the health gate for `ctx`.
///
/// No script configured, or `ctx.skip_health`: healthy, with a reason
/// saying so. A script that cannot start is an
/// [`Error::Spawn`](crate::error::Error::Spawn) with role "health script";
/// a timeout (the process group is killed) is unhealthy.
pub fn check(cfg: &Config, ctx: &Context) -> Result<HealthReport> {
    if ctx.skip_health {
        log::debug!("health check ({}) skipped (--skip-health)", ctx.phase);
        return Ok(HealthReport::open("health check skipped (--skip-health)"));
    }
    let Some(script) = &cfg.health_script else {
        log::debug!("health check ({}): no health_script configured", ctx.phase);
        return Ok(HealthReport::open("no health_script configured"));
    };
    let env = environment(cfg, ctx);
    let argv = [script.to_string_lossy().into_owned()];
    let finished = process::run(&process::Command {
        role: ROLE,
        argv: &argv,
        env: &env,
        timeout: cfg.health_timeout,
        cancellable: true,
    })?;
    let output = finished.output_excerpt(OUTPUT_EXCERPT_CHARS);
    let healthy = finished.success();
    let reason = match finished.termination {
        Termination::Exited(0) => "exited 0".to_string(),
        Termination::Exited(_) | Termination::Signalled(_) => match last_line(&output) {
            Some(line) => format!("{}: {line}", finished.describe()),
            None => finished.describe(),
        },
        Termination::TimedOut | Termination::Cancelled => finished.describe(),
    };
    // One log line even for multi-line output (journald, JSON logs).
    let logged_output = if output.is_empty() {
        String::new()
    } else {
        format!(
            "; output: {}",
            output.lines().collect::<Vec<_>>().join(" | ")
        )
    };
    // The verdict reaches the operator through the pass outcome (logged on
    // change); the full output is for debugging.
    log::debug!(
        "health check ({}) {}: {reason}{logged_output}",
        ctx.phase,
        if healthy { "passed" } else { "failed" }
    );
    Ok(HealthReport {
        healthy,
        reason,
        output,
        duration: finished.duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::error::Error;
    use crate::host::process::test_support::{TempDir, process_gone, read_pid};
    use std::collections::BTreeMap;
    use std::path::Path;

    const DETECTORS: &str =
        "reboot_required_detectors:\n  - type: file\n    path: /run/reboot-required\n";

    fn local_config(script: Option<&Path>, extra: &str) -> Config {
        let script = script
            .map(|p| format!("health_script: {}\n", p.display()))
            .unwrap_or_default();
        let text = format!("node_name: web-1\n{DETECTORS}{script}{extra}");
        config::parse(&text, Path::new("/t.yaml")).expect("valid test config")
    }

    fn cluster_config(script: &Path) -> Config {
        local_config(
            Some(script),
            "etcd_endpoints: [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]\n\
             lock_key: /rebootctl/lock\n\
             kill_switch_file: /etc/rebootctl/disable\n\
             cluster_policies:\n  min_healthy_fraction: 0.6\n  min_healthy_absolute: 3\n  \
             forbid_if_only_fallback_left: true\n  fallback_nodes: [lb-1, lb-2]\n\
             windows:\n  timezone: UTC\n  allow: [\"Mon,Wed 22:00-04:00\", \"* 03:00-05:00\"]\n  \
             deny: [\"Fri 18:00-Mon 08:00\"]\n\
             metrics:\n  enabled: true\n  listen: 127.0.0.1:9746\n",
        )
    }

    /// `pairs` plus the `RC_ALERTS_*` variables of a configuration without
    /// an `alerts` section (tested in `alerts`).
    fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(
                crate::config::alerts_environment(None)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            )
            .collect()
    }

    #[test]
    fn phases_have_their_documented_names() {
        let names: Vec<&str> = [
            Phase::PreLock,
            Phase::PostLock,
            Phase::PostReboot,
            Phase::Heartbeat,
            Phase::Status,
        ]
        .into_iter()
        .map(Phase::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "pre-lock",
                "post-lock",
                "post-reboot",
                "heartbeat",
                "status"
            ]
        );
    }

    #[test]
    fn script_sees_exactly_the_documented_environment() {
        let dir = TempDir::new("health-env");
        let dump = dir.path().join("env.out");
        let script = dir.script("health", &format!("exec /usr/bin/env > {}", dump.display()));
        let cfg = cluster_config(&script);
        let ctx = Context {
            phase: Phase::PostLock,
            dry_run: true,
            lock_held: true,
            lock_attempts: 2,
            skip_health: false,
            skip_lock: false,
        };
        let report = check(&cfg, &ctx).expect("script starts");
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.reason, "exited 0");

        let text = std::fs::read_to_string(&dump).expect("env dump");
        let seen: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            // dash exports PWD on its own; it does not come from rebootctl.
            .filter(|(k, _)| k != "PWD")
            .collect();
        let want = expected(&[
            ("PATH", process::DEFAULT_PATH),
            ("RC_NODE_NAME", "web-1"),
            ("RC_PHASE", "post-lock"),
            ("RC_DRY_RUN", "true"),
            ("RC_LOCK_ENABLED", "true"),
            ("RC_LOCK_HELD", "true"),
            ("RC_LOCK_ATTEMPTS", "2"),
            ("RC_LOCK_KEY", "/rebootctl/lock"),
            (
                "RC_ETCD_ENDPOINTS",
                "https://10.0.0.1:2379,https://10.0.0.2:2379",
            ),
            ("RC_KILL_SWITCH_FILE", "/etc/rebootctl/disable"),
            ("RC_CLUSTER_MIN_HEALTHY_FRACTION", "0.6"),
            ("RC_CLUSTER_MIN_HEALTHY_ABSOLUTE", "3"),
            ("RC_CLUSTER_FORBID_IF_ONLY_FALLBACK_LEFT", "true"),
            ("RC_CLUSTER_FALLBACK_NODES", "lb-1,lb-2"),
            ("RC_WINDOWS_ALLOW", "Mon,Wed 22:00-04:00; * 03:00-05:00"),
            ("RC_WINDOWS_DENY", "Fri 18:00-Mon 08:00"),
            ("RC_METRICS_ENDPOINT", "http://127.0.0.1:9746/metrics"),
            ("RC_SKIP_HEALTH", "false"),
            ("RC_SKIP_LOCK", "false"),
        ]);
        assert_eq!(seen, want);
        // Nothing of the test process's own environment (HOME, CARGO_*, …)
        // leaks in; setting a SECRET_TOKEN here would need the unsafe
        // set_var while other test threads run, and the exact match above
        // already rules out every inherited name.
        assert!(std::env::vars().any(|(k, _)| !want.contains_key(&k)));
    }

    #[test]
    fn local_mode_environment_is_empty_where_unconfigured() {
        let cfg = local_config(None, "");
        let env: BTreeMap<String, String> = environment(&cfg, &Context::new(Phase::PreLock))
            .into_iter()
            .collect();
        let want = expected(&[
            ("RC_NODE_NAME", "web-1"),
            ("RC_PHASE", "pre-lock"),
            ("RC_DRY_RUN", "false"),
            ("RC_LOCK_ENABLED", "false"),
            ("RC_LOCK_HELD", "false"),
            ("RC_LOCK_ATTEMPTS", "0"),
            ("RC_LOCK_KEY", ""),
            ("RC_ETCD_ENDPOINTS", ""),
            ("RC_KILL_SWITCH_FILE", config::DEFAULT_KILL_SWITCH_FILE),
            ("RC_CLUSTER_MIN_HEALTHY_FRACTION", ""),
            ("RC_CLUSTER_MIN_HEALTHY_ABSOLUTE", ""),
            ("RC_CLUSTER_FORBID_IF_ONLY_FALLBACK_LEFT", "false"),
            ("RC_CLUSTER_FALLBACK_NODES", ""),
            ("RC_WINDOWS_ALLOW", ""),
            ("RC_WINDOWS_DENY", ""),
            ("RC_SKIP_HEALTH", "false"),
            ("RC_SKIP_LOCK", "false"),
        ]);
        assert_eq!(env, want);
    }

    #[test]
    fn skip_lock_disables_the_lock_in_cluster_mode() {
        let dir = TempDir::new("health-skip-lock");
        let cfg = cluster_config(&dir.path().join("unused"));
        let ctx = Context {
            skip_lock: true,
            ..Context::new(Phase::Status)
        };
        let env: BTreeMap<String, String> = environment(&cfg, &ctx).into_iter().collect();
        assert_eq!(env["RC_LOCK_ENABLED"], "false");
        assert_eq!(env["RC_SKIP_LOCK"], "true");
        assert_eq!(env["RC_PHASE"], "status");
    }

    #[test]
    fn metrics_endpoint_of_a_wildcard_listen_is_loopback() {
        assert_eq!(
            metrics_url("0.0.0.0:9746".parse().expect("addr")),
            "http://127.0.0.1:9746/metrics"
        );
        assert_eq!(
            metrics_url("[::]:9746".parse().expect("addr")),
            "http://[::1]:9746/metrics"
        );
        assert_eq!(
            metrics_url("[fd00::1]:80".parse().expect("addr")),
            "http://[fd00::1]:80/metrics"
        );
    }

    #[test]
    fn non_zero_exit_is_unhealthy_with_the_last_line_as_reason() {
        let dir = TempDir::new("health-fail");
        let script = dir.script(
            "health",
            "echo checking etcd\necho 'etcd quorum lost' >&2\nexit 2",
        );
        let report = check(
            &local_config(Some(&script), ""),
            &Context::new(Phase::PreLock),
        )
        .expect("script starts");
        assert!(!report.healthy);
        assert_eq!(report.reason, "exited with 2: etcd quorum lost");
        assert_eq!(report.output, "checking etcd\netcd quorum lost");

        let silent = dir.script("silent", "exit 1");
        let report = check(
            &local_config(Some(&silent), ""),
            &Context::new(Phase::PreLock),
        )
        .expect("script starts");
        assert!(!report.healthy);
        assert_eq!(report.reason, "exited with 1");
    }

    #[test]
    fn timeout_is_unhealthy_and_kills_the_group() {
        let dir = TempDir::new("health-timeout");
        let pidfile = dir.path().join("pid");
        let script = dir.script(
            "health",
            &format!("/bin/sleep 30 &\necho $! > {}\nwait", pidfile.display()),
        );
        let cfg = local_config(Some(&script), "health_timeout_sec: 1\n");
        let report = check(&cfg, &Context::new(Phase::Heartbeat)).expect("script starts");
        assert!(!report.healthy);
        assert_eq!(report.reason, "timed out after 1s");
        let grandchild = read_pid(&pidfile);
        assert!(process_gone(grandchild, Duration::from_secs(5)));
    }

    #[test]
    fn no_script_or_skip_health_is_healthy() {
        let report = check(&local_config(None, ""), &Context::new(Phase::PreLock))
            .expect("nothing to start");
        assert!(report.healthy);
        assert_eq!(report.reason, "no health_script configured");

        let dir = TempDir::new("health-skip");
        let marker = dir.path().join("ran");
        let script = dir.script("health", &format!("touch {}\nexit 1", marker.display()));
        let ctx = Context {
            skip_health: true,
            ..Context::new(Phase::Status)
        };
        let report = check(&local_config(Some(&script), ""), &ctx).expect("skipped");
        assert!(report.healthy);
        assert!(report.reason.contains("skipped"));
        assert!(!marker.exists(), "the script must not run");
    }

    #[test]
    fn a_script_that_cannot_start_is_an_error() {
        let cfg = local_config(Some(Path::new("/nonexistent/rebootctl-health")), "");
        match check(&cfg, &Context::new(Phase::PreLock)) {
            Err(Error::Spawn { role, program, .. }) => {
                assert_eq!(role, "health script");
                assert_eq!(program, Path::new("/nonexistent/rebootctl-health"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn long_last_lines_are_cut() {
        let long = "x".repeat(500);
        let line = last_line(&format!("first\n{long}\n\n")).expect("a line");
        assert_eq!(line.chars().count(), REASON_LINE_CHARS + 1);
        assert!(line.ends_with('…'));
        assert_eq!(last_line("  \n "), None);
    }
}

//! The configuration file (SPEC §3): parse the YAML into raw serde structs,
//! then validate into a [`Config`] that the rest of the program uses. Every
//! problem is collected with its key path; nothing else sees raw YAML.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::window::Windows;

/// Where the configuration is read from when neither `--config` nor `$REBOOTCTL_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rebootctl/config.yaml";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV_VAR: &str = "REBOOTCTL_CONFIG";
/// Upper bound of every `*_sec` key: ten years.
pub const MAX_SECS: u64 = 315_360_000;
/// Default timeout of a command detector.
pub const DEFAULT_DETECTOR_TIMEOUT_SECS: u64 = 10;
/// Default timeout of the health script.
pub const DEFAULT_HEALTH_TIMEOUT_SECS: u64 = 30;
/// Default interval of the health heartbeat.
pub const DEFAULT_HEALTH_PUBLISH_INTERVAL_SECS: u64 = 15;
/// Default interval between passes.
pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 60;
/// Default lower bound of the error backoff.
pub const DEFAULT_BACKOFF_MIN_SECS: u64 = 5;
/// Default upper bound of the error backoff.
pub const DEFAULT_BACKOFF_MAX_SECS: u64 = 60;
/// Default time a slot stays held across a reboot.
pub const DEFAULT_REBOOT_TIMEOUT_SECS: u64 = 1800;
/// Default lease TTL of a slot while checking.
pub const DEFAULT_LOCK_TTL_SECS: u64 = 90;
/// Default time a watch stream may stay silent before it is re-opened.
pub const DEFAULT_WATCH_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default timeout of the reboot hooks.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 300;
/// Default delay before `blocked_too_long` fires.
pub const DEFAULT_BLOCKED_AFTER_SECS: u64 = 86_400;
/// Default timeout of one webhook delivery.
pub const DEFAULT_NOTIFY_TIMEOUT_SECS: u64 = 5;
/// Default kill switch file.
pub const DEFAULT_KILL_SWITCH_FILE: &str = "/etc/rebootctl/disable";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rebootctl";
/// Default boot id file.
pub const DEFAULT_BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";
/// Default machine id file.
pub const DEFAULT_MACHINE_ID_FILE: &str = "/etc/machine-id";
/// Default etcd namespace.
pub const DEFAULT_ETCD_NAMESPACE: &str = "/rebootctl";
/// Default metrics listen address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9746";
/// Default reboot command.
pub const DEFAULT_REBOOT_COMMAND: [&str; 4] = [
    "/sbin/shutdown",
    "-r",
    "now",
    "rebootctl: coordinated reboot",
];
/// Notification events a webhook can subscribe to.
pub const NOTIFY_EVENTS: [&str; 4] = [
    "reboot_started",
    "reboot_completed",
    "reboot_failed",
    "blocked_too_long",
];

// ---------------------------------------------------------------------------
// Raw serde structs: the file as written, every field optional.

const TOP_KEYS: &[&str] = &[
    "node_name",
    "reboot_required_detectors",
    "health_script",
    "health_timeout_sec",
    "health_publish_interval_sec",
    "check_interval_sec",
    "backoff_min_sec",
    "backoff_max_sec",
    "min_reboot_interval_sec",
    "reboot_timeout_sec",
    "kill_switch_file",
    "state_dir",
    "boot_id_file",
    "machine_id_file",
    "etcd_endpoints",
    "etcd_namespace",
    "lock_key",
    "lock_ttl_sec",
    "max_concurrent_reboots",
    "etcd_tls",
    "etcd_auth",
    "etcd_watch_idle_timeout_sec",
    "reboot_command",
    "cluster_policies",
    "hooks",
    "notify",
    "windows",
    "metrics",
    "log_format",
    "dry_run",
];
const DETECTOR_KEYS: &[&str] = &[
    "name",
    "type",
    "path",
    "cmd",
    "success_exit_codes",
    "timeout_sec",
    "root",
];
const TLS_KEYS: &[&str] = &[
    "enabled",
    "ca_file",
    "cert_file",
    "key_file",
    "insecure_skip_verify",
];
const AUTH_KEYS: &[&str] = &["username", "password_file"];
const POLICY_KEYS: &[&str] = &[
    "min_healthy_fraction",
    "min_healthy_absolute",
    "forbid_if_only_fallback_left",
    "fallback_nodes",
];
const HOOK_KEYS: &[&str] = &["pre_reboot", "post_reboot", "timeout_sec"];
const NOTIFY_KEYS: &[&str] = &["url", "events", "blocked_after_sec", "timeout_sec"];
const WINDOW_KEYS: &[&str] = &["timezone", "deny", "allow"];
const METRICS_KEYS: &[&str] = &["enabled", "listen"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node_name: Option<String>,
    reboot_required_detectors: Option<Vec<RawDetector>>,
    health_script: Option<String>,
    health_timeout_sec: Option<u64>,
    health_publish_interval_sec: Option<u64>,
    check_interval_sec: Option<u64>,
    backoff_min_sec: Option<u64>,
    backoff_max_sec: Option<u64>,
    min_reboot_interval_sec: Option<u64>,
    reboot_timeout_sec: Option<u64>,
    kill_switch_file: Option<String>,
    state_dir: Option<String>,
    boot_id_file: Option<String>,
    machine_id_file: Option<String>,
    etcd_endpoints: Option<Vec<String>>,
    etcd_namespace: Option<String>,
    lock_key: Option<String>,
    lock_ttl_sec: Option<u64>,
    max_concurrent_reboots: Option<u32>,
    etcd_tls: Option<RawTls>,
    etcd_auth: Option<RawAuth>,
    etcd_watch_idle_timeout_sec: Option<u64>,
    reboot_command: Option<Vec<String>>,
    cluster_policies: Option<RawPolicies>,
    hooks: Option<RawHooks>,
    notify: Option<RawNotify>,
    windows: Option<RawWindows>,
    metrics: Option<RawMetrics>,
    log_format: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    cmd: Option<Vec<String>>,
    success_exit_codes: Option<Vec<i64>>,
    timeout_sec: Option<u64>,
    root: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    enabled: Option<bool>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    username: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    min_healthy_fraction: Option<f64>,
    min_healthy_absolute: Option<u32>,
    forbid_if_only_fallback_left: Option<bool>,
    fallback_nodes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    pre_reboot: Option<Vec<String>>,
    post_reboot: Option<Vec<String>>,
    timeout_sec: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: Option<String>,
    events: Option<Vec<String>>,
    blocked_after_sec: Option<u64>,
    timeout_sec: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindows {
    timezone: Option<String>,
    deny: Option<Vec<String>>,
    allow: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    listen: Option<String>,
}

// ---------------------------------------------------------------------------
// The validated configuration.

/// The validated configuration: every default applied, every path checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub source: PathBuf,
    /// This node's name in the cluster.
    pub node_name: String,
    /// The reboot-required detectors, at least one.
    pub detectors: Vec<DetectorSpec>,
    /// The operator's health script; `None` means the gate is open.
    pub health_script: Option<PathBuf>,
    /// Timeout of one health script run.
    pub health_timeout: Duration,
    /// Interval of the health heartbeat into etcd.
    pub health_publish_interval: Duration,
    /// Interval between passes.
    pub check_interval: Duration,
    /// Lower bound of the error backoff.
    pub backoff_min: Duration,
    /// Upper bound of the error backoff.
    pub backoff_max: Duration,
    /// Cluster-wide cooldown between reboots (zero: none).
    pub min_reboot_interval: Duration,
    /// How long a slot stays held across a reboot.
    pub reboot_timeout: Duration,
    /// The kill switch file: while it exists, no reboot.
    pub kill_switch_file: PathBuf,
    /// Directory that survives the reboot (the reboot record).
    pub state_dir: PathBuf,
    /// File holding the current boot id.
    pub boot_id_file: PathBuf,
    /// File holding this machine's id (tells hosts that share a `node_name` apart).
    pub machine_id_file: PathBuf,
    /// Cluster mode settings; `None` is local mode.
    pub etcd: Option<EtcdConfig>,
    /// The reboot command, argv with `${RC_…}` placeholders.
    pub reboot_command: Vec<String>,
    /// Cluster policies.
    pub cluster_policies: ClusterPolicies,
    /// Reboot hooks.
    pub hooks: Hooks,
    /// Webhook notifications, when configured.
    pub notify: Option<Notify>,
    /// Maintenance windows.
    pub windows: Windows,
    /// The metrics endpoint.
    pub metrics: Metrics,
    /// Log format.
    pub log_format: LogFormat,
    /// Do everything but the reboot.
    pub dry_run: bool,
}

/// One reboot-required detector.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSpec {
    /// Name shown in output and logs.
    pub name: String,
    /// What it checks.
    pub kind: DetectorKind,
}

/// The kinds of detector.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectorKind {
    /// A reboot is required while this file exists.
    File {
        /// The marker file.
        path: PathBuf,
    },
    /// A command whose exit code says whether a reboot is required.
    Command {
        /// argv, `cmd[0]` absolute.
        cmd: Vec<String>,
        /// Exit codes that mean "required".
        success_exit_codes: Vec<i32>,
        /// Timeout of one run.
        timeout: Duration,
    },
    /// The running kernel is older than the newest installed one.
    Kernel {
        /// Filesystem root to inspect (`/` on a real host, a fixture in tests).
        root: PathBuf,
    },
}

/// Cluster mode settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdConfig {
    /// Endpoints, tried in order.
    pub endpoints: Vec<String>,
    /// Prefix of every key, without a trailing slash.
    pub namespace: String,
    /// Prefix of the slot keys.
    pub lock_key: String,
    /// Lease TTL of a slot while checking.
    pub lock_ttl: Duration,
    /// Number of lock slots.
    pub max_concurrent_reboots: u32,
    /// TLS settings, when enabled.
    pub tls: Option<TlsConfig>,
    /// User/password authentication, when configured.
    pub auth: Option<AuthConfig>,
    /// A watch stream that delivers nothing (no event, no progress
    /// notification) for this long is presumed dropped and re-opened.
    pub watch_idle_timeout: Duration,
}

/// TLS settings of the etcd client.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// CA bundle to trust (system roots when absent).
    pub ca_file: Option<PathBuf>,
    /// Client certificate.
    pub cert_file: Option<PathBuf>,
    /// Client key.
    pub key_file: Option<PathBuf>,
    /// Skip server certificate verification (testing only).
    pub insecure_skip_verify: bool,
}

/// User/password authentication of the etcd client.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// etcd user name.
    pub username: String,
    /// File holding the password (read when connecting, never logged).
    pub password_file: PathBuf,
}

/// Cluster policies (SPEC §6).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterPolicies {
    /// Minimum fraction of registered nodes that must be healthy.
    pub min_healthy_fraction: Option<f64>,
    /// Minimum number of healthy nodes.
    pub min_healthy_absolute: Option<u32>,
    /// A fallback node may not reboot while it is the only healthy one.
    pub forbid_if_only_fallback_left: bool,
    /// The fallback nodes.
    pub fallback_nodes: Vec<String>,
}

/// Reboot hooks (actions, not gates).
#[derive(Debug, Clone, PartialEq)]
pub struct Hooks {
    /// Runs before the reboot, after the post-lock checks.
    pub pre_reboot: Option<Vec<String>>,
    /// Runs after the post-reboot health check, before release.
    pub post_reboot: Option<Vec<String>>,
    /// Timeout of one hook run.
    pub timeout: Duration,
}

/// Webhook notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// The incoming webhook URL.
    pub url: String,
    /// Events that are sent.
    pub events: Vec<String>,
    /// `blocked_too_long` fires once after this long.
    pub blocked_after: Duration,
    /// Timeout of one delivery.
    pub timeout: Duration,
}

/// The metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Serve metrics.
    pub enabled: bool,
    /// Listen address.
    pub listen: SocketAddr,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's text format.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// True when the configuration has etcd endpoints (cluster mode).
    pub fn is_cluster(&self) -> bool {
        self.etcd.is_some()
    }

    /// The keys whose change needs a restart and that differ between `self` and `new`.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.node_name != new.node_name {
            changed.push("node_name");
        }
        if self.etcd != new.etcd {
            changed.push("etcd_*");
        }
        if self.metrics.listen != new.metrics.listen || self.metrics.enabled != new.metrics.enabled
        {
            changed.push("metrics");
        }
        if self.state_dir != new.state_dir {
            changed.push("state_dir");
        }
        if self.boot_id_file != new.boot_id_file || self.machine_id_file != new.machine_id_file {
            changed.push("boot_id_file/machine_id_file");
        }
        changed
    }
}

/// Every key the file accepts, nested keys as `section.key` and detector
/// keys as `reboot_required_detectors[].key` (for documentation checks).
pub fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = TOP_KEYS.iter().map(|k| k.to_string()).collect();
    let nested: [(&str, &[&str]); 8] = [
        ("reboot_required_detectors[]", DETECTOR_KEYS),
        ("etcd_tls", TLS_KEYS),
        ("etcd_auth", AUTH_KEYS),
        ("cluster_policies", POLICY_KEYS),
        ("hooks", HOOK_KEYS),
        ("notify", NOTIFY_KEYS),
        ("windows", WINDOW_KEYS),
        ("metrics", METRICS_KEYS),
    ];
    for (section, list) in nested {
        keys.extend(list.iter().map(|k| format!("{section}.{k}")));
    }
    keys
}

/// Resolves the configuration path: the flag, else `$REBOOTCTL_CONFIG`, else the default.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(CONFIG_ENV_VAR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is used in messages and
/// to resolve nothing else (all paths in the file must be absolute).
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let invalid = |problems: Vec<String>| Error::ConfigInvalid {
        path: path.to_path_buf(),
        problems,
    };
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(invalid(vec![syntax_problem(&e)])),
    };
    let map = match value {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        other => {
            return Err(invalid(vec![format!(
                "the file must be a YAML mapping of keys, found {}",
                value_kind(&other)
            )]));
        }
    };
    let mut problems = Vec::new();
    let (raw, bad_keys) = raw_from_mapping(&map, &mut problems);
    let mut semantic = Vec::new();
    let config = validate(raw, path, &mut semantic);
    // A key that did not parse was left out; do not also report it as missing.
    problems.extend(
        semantic
            .into_iter()
            .filter(|p| !bad_keys.contains(top_key_of(p))),
    );
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
}

fn syntax_problem(e: &serde_yaml::Error) -> String {
    let msg = strip_location(&e.to_string());
    match e.location() {
        Some(loc) => format!(
            "YAML syntax error at line {} column {}: {msg}",
            loc.line(),
            loc.column()
        ),
        None => format!("YAML syntax error: {msg}"),
    }
}

/// serde_yaml appends " at line L column C" to messages; drop it where the
/// location would be wrong (re-serialised fragments) or is printed separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Walks the mapping for unknown keys (all of them, each with the nearest
/// known key), then deserialises each top-level key on its own so that type
/// errors in different keys are all reported.
fn raw_from_mapping(map: &Mapping, problems: &mut Vec<String>) -> (RawConfig, BTreeSet<String>) {
    let mut bad_top = BTreeSet::new();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            problems.push(format!("{}: keys must be strings", value_to_string(k)));
            continue;
        };
        let before = problems.len();
        if !TOP_KEYS.contains(&key) {
            problems.push(unknown_key(key, key, TOP_KEYS));
        } else {
            check_nested_keys(key, v, problems);
        }
        if problems.len() > before {
            bad_top.insert(key.to_string());
        }
    }
    // Each top-level key alone, re-serialised, so serde reports its path.
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        if bad_top.contains(key) {
            continue;
        }
        let mut single = Mapping::new();
        single.insert(k.clone(), v.clone());
        if let Err(e) = deserialize_fragment::<RawConfig>(&single) {
            problems.push(strip_location(&e));
            bad_top.insert(key.to_string());
        }
    }
    let mut good = Mapping::new();
    for (k, v) in map {
        if k.as_str().is_some_and(|key| !bad_top.contains(key)) {
            good.insert(k.clone(), v.clone());
        }
    }
    let raw = deserialize_fragment::<RawConfig>(&good).unwrap_or_default();
    (raw, bad_top)
}

/// The top-level key a problem line is about (`hooks` for `hooks.timeout_sec: …`).
fn top_key_of(problem: &str) -> &str {
    let end = problem.find(['.', '[', ':']).unwrap_or(problem.len());
    &problem[..end]
}

fn deserialize_fragment<T: DeserializeOwned>(map: &Mapping) -> std::result::Result<T, String> {
    let text = serde_yaml::to_string(map).map_err(|e| e.to_string())?;
    serde_yaml::from_str(&text).map_err(|e| e.to_string())
}

fn value_to_string(v: &Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

fn check_nested_keys(key: &str, v: &Value, problems: &mut Vec<String>) {
    let known: &[&str] = match key {
        "reboot_required_detectors" => {
            if let Value::Sequence(items) = v {
                for (i, item) in items.iter().enumerate() {
                    check_mapping_keys(&format!("{key}[{i}]"), item, DETECTOR_KEYS, problems);
                }
            }
            return;
        }
        "etcd_tls" => TLS_KEYS,
        "etcd_auth" => AUTH_KEYS,
        "cluster_policies" => POLICY_KEYS,
        "hooks" => HOOK_KEYS,
        "notify" => NOTIFY_KEYS,
        "windows" => WINDOW_KEYS,
        "metrics" => METRICS_KEYS,
        _ => return,
    };
    check_mapping_keys(key, v, known, problems);
}

fn check_mapping_keys(path: &str, v: &Value, known: &[&str], problems: &mut Vec<String>) {
    let Value::Mapping(m) = v else { return };
    for k in m.keys() {
        match k.as_str() {
            Some(name) if known.contains(&name) => {}
            Some(name) => problems.push(unknown_key(&format!("{path}.{name}"), name, known)),
            None => problems.push(format!("{path}: keys must be strings")),
        }
    }
}

fn unknown_key(path: &str, name: &str, known: &[&str]) -> String {
    match closest(name, known) {
        Some(s) => format!("{path}: unknown key (did you mean `{s}`?)"),
        None => format!("{path}: unknown key (known keys: {})", known.join(", ")),
    }
}

/// The known key nearest to `name`, when it is near enough to be a typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase().replace('-', "_");
    known
        .iter()
        .map(|k| (levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------
// Semantic validation.

struct Checker<'a> {
    problems: &'a mut Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {msg}"));
    }

    fn positive_secs(&mut self, path: &str, v: Option<u64>, default: u64) -> Duration {
        let secs = v.unwrap_or(default);
        if secs == 0 {
            self.problem(path, "must be greater than 0");
        }
        self.bounded_secs(path, secs)
    }

    /// Seconds up to [`MAX_SECS`]; larger values are a problem (they would
    /// overflow time arithmetic and exceed etcd's lease limit).
    fn bounded_secs(&mut self, path: &str, secs: u64) -> Duration {
        if secs > MAX_SECS {
            self.problem(
                path,
                format!("must be at most {MAX_SECS} (10 years), got {secs}"),
            );
            return Duration::from_secs(MAX_SECS);
        }
        Duration::from_secs(secs)
    }

    fn absolute(&mut self, path: &str, v: Option<String>, default: &str) -> PathBuf {
        let s = v.unwrap_or_else(|| default.to_string());
        self.absolute_path(path, &s)
    }

    fn absolute_path(&mut self, path: &str, s: &str) -> PathBuf {
        if s.is_empty() {
            self.problem(path, "must not be empty");
        } else if !s.starts_with('/') {
            self.problem(path, format!("must be an absolute path, got {s:?}"));
        }
        PathBuf::from(s)
    }

    fn argv(&mut self, path: &str, argv: &[String]) {
        match argv.first() {
            None => self.problem(path, "must not be empty"),
            Some(p) if p.is_empty() => self.problem(&format!("{path}[0]"), "must not be empty"),
            Some(p) if !p.starts_with('/') => self.problem(
                &format!("{path}[0]"),
                format!("must be an absolute path (no shell, no PATH lookup), got {p:?}"),
            ),
            Some(_) => {}
        }
    }

    fn placeholders(&mut self, path: &str, argv: &[String]) {
        for (i, arg) in argv.iter().enumerate() {
            for name in crate::reboot::placeholders_in(arg) {
                if !crate::reboot::PLACEHOLDERS.contains(&name) {
                    self.problem(
                        &format!("{path}[{i}]"),
                        format!(
                            "unknown placeholder ${{{name}}}; known: {}",
                            crate::reboot::PLACEHOLDERS.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn existing_file(&mut self, path: &str, file: &Path) {
        match std::fs::metadata(file) {
            Ok(m) if m.is_file() => {}
            Ok(_) => self.problem(path, format!("{} is not a regular file", file.display())),
            Err(e) => self.problem(path, format!("cannot read {}: {e}", file.display())),
        }
    }
}

fn validate(raw: RawConfig, source: &Path, problems: &mut Vec<String>) -> Config {
    let mut c = Checker { problems };

    let node_name = match raw.node_name {
        Some(n) => n,
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
    };
    check_node_name(&mut c, "node_name", &node_name);

    let detectors = validate_detectors(&mut c, raw.reboot_required_detectors);

    let health_script = raw
        .health_script
        .map(|s| c.absolute_path("health_script", &s));
    let health_timeout = c.positive_secs(
        "health_timeout_sec",
        raw.health_timeout_sec,
        DEFAULT_HEALTH_TIMEOUT_SECS,
    );
    let health_publish_interval = c.positive_secs(
        "health_publish_interval_sec",
        raw.health_publish_interval_sec,
        DEFAULT_HEALTH_PUBLISH_INTERVAL_SECS,
    );
    let check_interval = c.positive_secs(
        "check_interval_sec",
        raw.check_interval_sec,
        DEFAULT_CHECK_INTERVAL_SECS,
    );
    let backoff_min = c.positive_secs(
        "backoff_min_sec",
        raw.backoff_min_sec,
        DEFAULT_BACKOFF_MIN_SECS,
    );
    let backoff_max = c.positive_secs(
        "backoff_max_sec",
        raw.backoff_max_sec,
        DEFAULT_BACKOFF_MAX_SECS,
    );
    if backoff_max < backoff_min {
        c.problem(
            "backoff_max_sec",
            format!(
                "must be at least backoff_min_sec ({})",
                backoff_min.as_secs()
            ),
        );
    }
    let min_reboot_interval = c.bounded_secs(
        "min_reboot_interval_sec",
        raw.min_reboot_interval_sec.unwrap_or(0),
    );
    let reboot_timeout = c.positive_secs(
        "reboot_timeout_sec",
        raw.reboot_timeout_sec,
        DEFAULT_REBOOT_TIMEOUT_SECS,
    );
    let kill_switch_file = c.absolute(
        "kill_switch_file",
        raw.kill_switch_file,
        DEFAULT_KILL_SWITCH_FILE,
    );
    let state_dir = c.absolute("state_dir", raw.state_dir, DEFAULT_STATE_DIR);
    let boot_id_file = c.absolute("boot_id_file", raw.boot_id_file, DEFAULT_BOOT_ID_FILE);
    let machine_id_file = c.absolute(
        "machine_id_file",
        raw.machine_id_file,
        DEFAULT_MACHINE_ID_FILE,
    );

    let lock_ttl = c.positive_secs("lock_ttl_sec", raw.lock_ttl_sec, DEFAULT_LOCK_TTL_SECS);
    if lock_ttl <= health_timeout {
        c.problem(
            "lock_ttl_sec",
            format!(
                "must be greater than health_timeout_sec ({}), or the slot could expire during a health check",
                health_timeout.as_secs()
            ),
        );
    }
    let raw_etcd = RawEtcd {
        endpoints: raw.etcd_endpoints,
        namespace: raw.etcd_namespace,
        lock_key: raw.lock_key,
        max_concurrent_reboots: raw.max_concurrent_reboots,
        tls: raw.etcd_tls,
        auth: raw.etcd_auth,
        watch_idle_timeout_sec: raw.etcd_watch_idle_timeout_sec,
    };
    let etcd = validate_etcd(&mut c, raw_etcd, lock_ttl);

    let reboot_command = raw.reboot_command.unwrap_or_else(|| {
        DEFAULT_REBOOT_COMMAND
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    c.argv("reboot_command", &reboot_command);
    c.placeholders("reboot_command", &reboot_command);

    let cluster_policies = validate_policies(&mut c, raw.cluster_policies.unwrap_or_default());
    let hooks = validate_hooks(&mut c, raw.hooks.unwrap_or_default());
    let notify = raw.notify.and_then(|n| validate_notify(&mut c, n));

    let raw_windows = raw.windows.unwrap_or_default();
    let windows = match Windows::parse(
        raw_windows.timezone.as_deref().unwrap_or("local"),
        raw_windows.allow.as_deref().unwrap_or_default(),
        raw_windows.deny.as_deref().unwrap_or_default(),
    ) {
        Ok(w) => w,
        Err(errs) => {
            c.problems.extend(errs);
            Windows::always_open()
        }
    };

    let raw_metrics = raw.metrics.unwrap_or_default();
    let listen_text = raw_metrics
        .listen
        .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_string());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.problem(
                "metrics.listen",
                format!("must be IP:PORT such as {DEFAULT_METRICS_LISTEN}, got {listen_text:?}"),
            );
            SocketAddr::from(([127, 0, 0, 1], 9746))
        }
    };
    let metrics = Metrics {
        enabled: raw_metrics.enabled.unwrap_or(false),
        listen,
    };

    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.problem(
                "log_format",
                format!("must be `text` or `json`, got {other:?}"),
            );
            LogFormat::Text
        }
    };

    Config {
        source: source.to_path_buf(),
        node_name,
        detectors,
        health_script,
        health_timeout,
        health_publish_interval,
        check_interval,
        backoff_min,
        backoff_max,
        min_reboot_interval,
        reboot_timeout,
        kill_switch_file,
        state_dir,
        boot_id_file,
        machine_id_file,
        etcd,
        reboot_command,
        cluster_policies,
        hooks,
        notify,
        windows,
        metrics,
        log_format,
        dry_run: raw.dry_run.unwrap_or(false),
    }
}

fn check_node_name(c: &mut Checker, path: &str, name: &str) {
    if name.is_empty() {
        c.problem(
            path,
            "must not be empty (and the hostname could not be read)",
        );
    } else if !name
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        c.problem(
            path,
            format!("{name:?} may only contain letters, digits, '-', '_' and '.'"),
        );
    }
}

fn validate_detectors(c: &mut Checker, raw: Option<Vec<RawDetector>>) -> Vec<DetectorSpec> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        c.problem(
            "reboot_required_detectors",
            "at least one detector is required",
        );
    }
    let mut out: Vec<DetectorSpec> = Vec::new();
    for (i, d) in raw.into_iter().enumerate() {
        let p = format!("reboot_required_detectors[{i}]");
        let kind_name = d.kind.clone().unwrap_or_default();
        let only = |c: &mut Checker, key: &str, present: bool, for_type: &str| {
            if present {
                c.problem(
                    &format!("{p}.{key}"),
                    format!("only applies to type {for_type}"),
                );
            }
        };
        let kind = match kind_name.as_str() {
            "file" => {
                only(c, "cmd", d.cmd.is_some(), "command");
                only(
                    c,
                    "success_exit_codes",
                    d.success_exit_codes.is_some(),
                    "command",
                );
                only(c, "timeout_sec", d.timeout_sec.is_some(), "command");
                only(c, "root", d.root.is_some(), "kernel");
                let path = match d.path {
                    Some(s) => c.absolute_path(&format!("{p}.path"), &s),
                    None => {
                        c.problem(&format!("{p}.path"), "is required for type file");
                        PathBuf::new()
                    }
                };
                DetectorKind::File { path }
            }
            "command" => {
                only(c, "path", d.path.is_some(), "file");
                only(c, "root", d.root.is_some(), "kernel");
                let cmd = d.cmd.unwrap_or_default();
                c.argv(&format!("{p}.cmd"), &cmd);
                let codes = d.success_exit_codes.unwrap_or_else(|| vec![0]);
                if codes.is_empty() {
                    c.problem(&format!("{p}.success_exit_codes"), "must not be empty");
                }
                let mut success_exit_codes = Vec::new();
                for (j, code) in codes.into_iter().enumerate() {
                    match i32::try_from(code) {
                        Ok(v) if (0..=255).contains(&v) => success_exit_codes.push(v),
                        _ => c.problem(
                            &format!("{p}.success_exit_codes[{j}]"),
                            format!("{code} is not an exit code (0-255)"),
                        ),
                    }
                }
                let timeout = c.positive_secs(
                    &format!("{p}.timeout_sec"),
                    d.timeout_sec,
                    DEFAULT_DETECTOR_TIMEOUT_SECS,
                );
                DetectorKind::Command {
                    cmd,
                    success_exit_codes,
                    timeout,
                }
            }
            "kernel" => {
                only(c, "path", d.path.is_some(), "file");
                only(c, "cmd", d.cmd.is_some(), "command");
                only(
                    c,
                    "success_exit_codes",
                    d.success_exit_codes.is_some(),
                    "command",
                );
                only(c, "timeout_sec", d.timeout_sec.is_some(), "command");
                let root = c.absolute(&format!("{p}.root"), d.root, "/");
                DetectorKind::Kernel { root }
            }
            "" => {
                c.problem(
                    &format!("{p}.type"),
                    "is required: one of file, command, kernel",
                );
                continue;
            }
            other => {
                c.problem(
                    &format!("{p}.type"),
                    format!("must be one of file, command, kernel, got {other:?}"),
                );
                continue;
            }
        };
        let name = match d.name {
            Some(n) if n.trim().is_empty() => {
                c.problem(&format!("{p}.name"), "must not be empty");
                n
            }
            Some(n) => {
                if out.iter().any(|o| o.name == n) {
                    c.problem(
                        &format!("{p}.name"),
                        format!("{n:?} is used by another detector"),
                    );
                }
                n
            }
            None => unique_name(derived_name(&kind), &out),
        };
        out.push(DetectorSpec { name, kind });
    }
    out
}

fn derived_name(kind: &DetectorKind) -> String {
    let base = |s: &str| {
        Path::new(s)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| s.to_string())
    };
    match kind {
        DetectorKind::File { path } => format!("file:{}", base(&path.to_string_lossy())),
        DetectorKind::Command { cmd, .. } => {
            format!(
                "command:{}",
                base(cmd.first().map(String::as_str).unwrap_or(""))
            )
        }
        DetectorKind::Kernel { .. } => "kernel".to_string(),
    }
}

fn unique_name(base: String, taken: &[DetectorSpec]) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while taken.iter().any(|d| d.name == name) {
        name = format!("{base}#{n}");
        n += 1;
    }
    name
}

/// The cluster-mode keys of the file, gathered for [`validate_etcd`].
struct RawEtcd {
    endpoints: Option<Vec<String>>,
    namespace: Option<String>,
    lock_key: Option<String>,
    max_concurrent_reboots: Option<u32>,
    tls: Option<RawTls>,
    auth: Option<RawAuth>,
    watch_idle_timeout_sec: Option<u64>,
}

fn validate_etcd(c: &mut Checker, raw: RawEtcd, lock_ttl: Duration) -> Option<EtcdConfig> {
    let namespace = raw
        .namespace
        .unwrap_or_else(|| DEFAULT_ETCD_NAMESPACE.to_string());
    let namespace = namespace.trim_end_matches('/').to_string();
    if !namespace.starts_with('/') || namespace.len() < 2 {
        c.problem(
            "etcd_namespace",
            format!("must start with '/' and name a prefix such as /rebootctl, got {namespace:?}"),
        );
    }
    let lock_key = raw
        .lock_key
        .as_deref()
        .map(|k| k.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("{namespace}/lock"));
    if !lock_key.starts_with(&format!("{namespace}/")) {
        c.problem(
            "lock_key",
            format!("{lock_key:?} must lie below etcd_namespace {namespace:?} (one RBAC prefix covers every key)"),
        );
    }
    let watch_idle_timeout = c.positive_secs(
        "etcd_watch_idle_timeout_sec",
        raw.watch_idle_timeout_sec,
        DEFAULT_WATCH_IDLE_TIMEOUT_SECS,
    );
    let max_concurrent_reboots = raw.max_concurrent_reboots.unwrap_or(1);
    if max_concurrent_reboots == 0 {
        c.problem("max_concurrent_reboots", "must be at least 1");
    }
    let tls_enabled = raw.tls.as_ref().and_then(|t| t.enabled).unwrap_or(false);
    let tls = raw.tls.filter(|_| tls_enabled).map(|t| {
        let mut file = |key: &str, v: &Option<String>| {
            v.as_ref().map(|s| {
                let path = format!("etcd_tls.{key}");
                let p = c.absolute_path(&path, s);
                if p.is_absolute() {
                    c.existing_file(&path, &p);
                }
                p
            })
        };
        let ca_file = file("ca_file", &t.ca_file);
        let cert_file = file("cert_file", &t.cert_file);
        let key_file = file("key_file", &t.key_file);
        if cert_file.is_some() != key_file.is_some() {
            c.problem("etcd_tls", "cert_file and key_file must be given together");
        }
        TlsConfig {
            ca_file,
            cert_file,
            key_file,
            insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
        }
    });
    let auth = raw.auth.map(|a| {
        let username = a.username.clone().unwrap_or_default();
        if username.is_empty() {
            c.problem("etcd_auth.username", "is required when etcd_auth is set");
        }
        let password_file = match &a.password_file {
            Some(s) => {
                let p = c.absolute_path("etcd_auth.password_file", s);
                if p.is_absolute() {
                    c.existing_file("etcd_auth.password_file", &p);
                }
                p
            }
            None => {
                c.problem(
                    "etcd_auth.password_file",
                    "is required when etcd_auth is set",
                );
                PathBuf::new()
            }
        };
        AuthConfig {
            username,
            password_file,
        }
    });
    let endpoints = raw.endpoints?;
    if endpoints.is_empty() {
        c.problem(
            "etcd_endpoints",
            "must list at least one endpoint (leave the key out for local mode)",
        );
    }
    let mut out = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        let path = format!("etcd_endpoints[{i}]");
        let e = e.trim_end_matches('/');
        // What problems may show: never a password written into the URL.
        let shown = match e.rfind('@') {
            Some(at) => format!(
                "{}<credentials>{}",
                &e[..e.find("://").map_or(0, |s| s + 3)],
                &e[at..]
            ),
            None => e.to_string(),
        };
        let rest = if let Some(r) = e.strip_prefix("https://") {
            Some(r)
        } else if let Some(r) = e.strip_prefix("http://") {
            if tls_enabled {
                c.problem(
                    &path,
                    format!("{shown:?} is plain http but etcd_tls.enabled is true"),
                );
            }
            Some(r)
        } else {
            c.problem(
                &path,
                format!("must be http://HOST:PORT or https://HOST:PORT, got {shown:?}"),
            );
            None
        };
        if let Some(r) = rest {
            if r.contains('@') {
                c.problem(
                    &path,
                    "must not carry credentials (they would show in logs); use etcd_auth",
                );
            } else if r.is_empty() || r.contains('/') {
                c.problem(
                    &path,
                    format!("must be a scheme, a host and a port only, got {e:?}"),
                );
            }
        }
        out.push(e.to_string());
    }
    Some(EtcdConfig {
        endpoints: out,
        namespace,
        lock_key,
        lock_ttl,
        max_concurrent_reboots,
        tls,
        auth,
        watch_idle_timeout,
    })
}

fn validate_policies(c: &mut Checker, raw: RawPolicies) -> ClusterPolicies {
    if let Some(f) = raw.min_healthy_fraction {
        if !(f > 0.0 && f <= 1.0) {
            c.problem(
                "cluster_policies.min_healthy_fraction",
                format!("must be greater than 0 and at most 1, got {f}"),
            );
        }
    }
    let fallback_nodes = raw.fallback_nodes.unwrap_or_default();
    for (i, n) in fallback_nodes.iter().enumerate() {
        check_node_name(c, &format!("cluster_policies.fallback_nodes[{i}]"), n);
    }
    let forbid = raw.forbid_if_only_fallback_left.unwrap_or(false);
    if forbid && fallback_nodes.is_empty() {
        c.problem(
            "cluster_policies.forbid_if_only_fallback_left",
            "needs cluster_policies.fallback_nodes",
        );
    }
    ClusterPolicies {
        min_healthy_fraction: raw.min_healthy_fraction,
        min_healthy_absolute: raw.min_healthy_absolute,
        forbid_if_only_fallback_left: forbid,
        fallback_nodes,
    }
}

fn validate_hooks(c: &mut Checker, raw: RawHooks) -> Hooks {
    if let Some(argv) = &raw.pre_reboot {
        c.argv("hooks.pre_reboot", argv);
        c.placeholders("hooks.pre_reboot", argv);
    }
    if let Some(argv) = &raw.post_reboot {
        c.argv("hooks.post_reboot", argv);
        c.placeholders("hooks.post_reboot", argv);
    }
    let timeout = c.positive_secs(
        "hooks.timeout_sec",
        raw.timeout_sec,
        DEFAULT_HOOK_TIMEOUT_SECS,
    );
    Hooks {
        pre_reboot: raw.pre_reboot,
        post_reboot: raw.post_reboot,
        timeout,
    }
}

fn validate_notify(c: &mut Checker, raw: RawNotify) -> Option<Notify> {
    let url = match raw.url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => u,
        Some(u) => {
            c.problem(
                "notify.url",
                format!("must be an http:// or https:// URL, got {u:?}"),
            );
            return None;
        }
        None => {
            c.problem("notify.url", "is required when notify is set");
            return None;
        }
    };
    let events = raw
        .events
        .unwrap_or_else(|| NOTIFY_EVENTS.iter().map(|s| s.to_string()).collect());
    for (i, e) in events.iter().enumerate() {
        if !NOTIFY_EVENTS.contains(&e.as_str()) {
            let hint = closest(e, &NOTIFY_EVENTS)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            c.problem(
                &format!("notify.events[{i}]"),
                format!(
                    "unknown event {e:?}{hint}; known: {}",
                    NOTIFY_EVENTS.join(", ")
                ),
            );
        }
    }
    let blocked_after = c.positive_secs(
        "notify.blocked_after_sec",
        raw.blocked_after_sec,
        DEFAULT_BLOCKED_AFTER_SECS,
    );
    let timeout = c.positive_secs(
        "notify.timeout_sec",
        raw.timeout_sec,
        DEFAULT_NOTIFY_TIMEOUT_SECS,
    );
    Some(Notify {
        url,
        events,
        blocked_after,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/t.yaml")) {
            Ok(_) => Vec::new(),
            Err(Error::ConfigInvalid { problems, .. }) => problems,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    const MINIMAL: &str = "node_name: n1\nreboot_required_detectors:\n  - type: file\n    path: /run/reboot-required\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL, Path::new("/t.yaml")).unwrap();
        assert_eq!(c.node_name, "n1");
        assert_eq!(c.detectors[0].name, "file:reboot-required");
        assert_eq!(c.check_interval, Duration::from_secs(60));
        assert_eq!(c.reboot_command[0], "/sbin/shutdown");
        assert!(c.etcd.is_none());
        assert!(!c.dry_run);
    }

    #[test]
    fn unknown_keys_are_all_reported_with_suggestions() {
        let p = problems(&format!(
            "{MINIMAL}nod_name: x\nmetrics:\n  listn: 1.2.3.4:5\nzzzzzzzzzz: 1\n"
        ));
        assert!(
            p.iter()
                .any(|l| l == "nod_name: unknown key (did you mean `node_name`?)"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l == "metrics.listn: unknown key (did you mean `listen`?)"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("zzzzzzzzzz: unknown key (known keys:")),
            "{p:?}"
        );
    }

    #[test]
    fn type_errors_in_different_keys_are_all_reported() {
        let p = problems(&format!(
            "{MINIMAL}check_interval_sec: soon\ndry_run: maybe\n"
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("check_interval_sec: invalid type"),
            "{p:?}"
        );
        assert!(p[1].starts_with("dry_run: invalid type"), "{p:?}");
    }

    #[test]
    fn nested_type_error_names_its_path() {
        let p = problems(
            "reboot_required_detectors:\n  - type: file\n    path: /x\n  - type: command\n    cmd: [/bin/true]\n    timeout_sec: abc\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("reboot_required_detectors[1].timeout_sec: invalid type"),
            "{p:?}"
        );
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let p = problems("node_name: [a\nfoo: 1\n");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("YAML syntax error at line 2 column"),
            "{p:?}"
        );
    }

    #[test]
    fn semantic_problems_are_collected() {
        let p = problems(
            "reboot_required_detectors:\n  - type: command\n    cmd: []\n  - type: bogus\nbackoff_min_sec: 10\nbackoff_max_sec: 5\nreboot_command: [reboot]\nhealth_timeout_sec: 100\n",
        );
        let want = [
            "reboot_required_detectors[0].cmd: must not be empty",
            "reboot_required_detectors[1].type: must be one of file, command, kernel, got \"bogus\"",
            "backoff_max_sec: must be at least backoff_min_sec (10)",
            "reboot_command[0]: must be an absolute path (no shell, no PATH lookup), got \"reboot\"",
        ];
        for w in want {
            assert!(p.iter().any(|l| l == w), "missing {w:?} in {p:?}");
        }
        assert!(
            p.iter()
                .any(|l| l.starts_with("lock_ttl_sec: must be greater than health_timeout_sec"))
        );
    }

    #[test]
    fn cluster_keys_are_validated() {
        let p = problems(&format!(
            "{MINIMAL}etcd_endpoints: [\"ftp://x\"]\nlock_key: /elsewhere/lock\nmax_concurrent_reboots: 0\ncluster_policies:\n  min_healthy_fraction: 1.5\netcd_tls:\n  enabled: true\n  ca_file: /nonexistent/ca.pem\n"
        ));
        for prefix in [
            "etcd_endpoints[0]: must be http",
            "lock_key: \"/elsewhere/lock\" must lie below",
            "max_concurrent_reboots: must be at least 1",
            "cluster_policies.min_healthy_fraction: must be greater than 0",
            "etcd_tls.ca_file: cannot read /nonexistent/ca.pem",
        ] {
            assert!(
                p.iter().any(|l| l.starts_with(prefix)),
                "missing {prefix:?} in {p:?}"
            );
        }
    }

    #[test]
    fn endpoints_with_credentials_are_rejected() {
        let p = problems(&format!(
            "{MINIMAL}etcd_endpoints: [\"http://root:secret@127.0.0.1:2379\"]\n"
        ));
        assert!(
            p.iter()
                .any(|l| l.starts_with("etcd_endpoints[0]: must not carry credentials")),
            "{p:?}"
        );
        assert!(!p.iter().any(|l| l.contains("secret")), "{p:?}");
    }

    #[test]
    fn huge_durations_are_rejected() {
        let p = problems(&format!(
            "{MINIMAL}check_interval_sec: 18446744073709551615\nhealth_publish_interval_sec: 9223372036854775807\nmin_reboot_interval_sec: 400000000\n"
        ));
        for key in [
            "check_interval_sec",
            "health_publish_interval_sec",
            "min_reboot_interval_sec",
        ] {
            assert!(
                p.iter()
                    .any(|l| l.starts_with(&format!("{key}: must be at most 315360000"))),
                "{key} in {p:?}"
            );
        }
    }

    #[test]
    fn cluster_defaults() {
        let c = parse(
            &format!("{MINIMAL}etcd_endpoints: [\"http://127.0.0.1:2379/\"]\n"),
            Path::new("/t.yaml"),
        )
        .unwrap();
        let e = c.etcd.unwrap();
        assert_eq!(e.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(e.namespace, "/rebootctl");
        assert_eq!(e.lock_key, "/rebootctl/lock");
        assert_eq!(e.max_concurrent_reboots, 1);
        assert_eq!(e.lock_ttl, Duration::from_secs(90));
        assert_eq!(e.watch_idle_timeout, Duration::from_secs(60));
    }

    #[test]
    fn derived_detector_names_are_unique() {
        let c = parse(
            "reboot_required_detectors:\n  - type: kernel\n  - type: kernel\n  - type: command\n    cmd: [/usr/bin/needs-restarting, -r]\n",
            Path::new("/t.yaml"),
        )
        .unwrap();
        let names: Vec<_> = c.detectors.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["kernel", "kernel#2", "command:needs-restarting"]);
    }

    #[test]
    fn closest_suggests_only_near_keys() {
        assert_eq!(
            closest("check_interval", TOP_KEYS),
            Some("check_interval_sec")
        );
        assert_eq!(closest("xyz", TOP_KEYS), None);
    }

    #[test]
    fn key_tables_match_the_structs() {
        // Every key in the tables must deserialize (deny_unknown_fields rejects strays).
        let mut m = Mapping::new();
        for k in TOP_KEYS {
            m.insert(Value::from(*k), Value::Null);
        }
        assert!(deserialize_fragment::<RawConfig>(&m).is_ok());
        fn all_null(keys: &[&str]) -> Mapping {
            keys.iter()
                .map(|k| (Value::from(*k), Value::Null))
                .collect()
        }
        assert!(deserialize_fragment::<RawDetector>(&all_null(DETECTOR_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawTls>(&all_null(TLS_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawAuth>(&all_null(AUTH_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawPolicies>(&all_null(POLICY_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawHooks>(&all_null(HOOK_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawNotify>(&all_null(NOTIFY_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawWindows>(&all_null(WINDOW_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawMetrics>(&all_null(METRICS_KEYS)).is_ok());
    }
}

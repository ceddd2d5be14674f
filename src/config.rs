//! The configuration file (SPEC §3): parse the YAML into raw serde structs,
//! then validate into a [`Config`] that the rest of the program uses. Every
//! problem is collected with its key path; nothing else sees raw YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use crate::window::Windows;

mod clusterrebootd;
mod show;

/// Where the configuration is read from when neither `--config` nor `$REBOOTCTL_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rebootctl/config.yaml";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV_VAR: &str = "REBOOTCTL_CONFIG";
/// Upper bound of every `*_sec` key: ten years.
pub const MAX_SECS: u64 = 315_360_000;
/// Default timeout of a command detector.
pub const DEFAULT_DETECTOR_TIMEOUT_SECS: u64 = 10;
/// Default timeout of each command of a `distro` detector (`needs-restarting`
/// reads the whole rpm database on a busy host).
pub const DEFAULT_DISTRO_TIMEOUT_SECS: u64 = 60;
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
/// Lower bound of `reboot_timeout_sec`: no host shuts down, passes its
/// firmware and boots in less, so a shorter value gives the slot up while
/// the host is still down (and lets another host go down).
pub const MIN_REBOOT_TIMEOUT_SECS: u64 = 60;
/// Upper bound of `reboot_timeout_sec` (7 days): a host that never comes
/// back holds its slot, and with it the fleet, at most this long.
pub const MAX_REBOOT_TIMEOUT_SECS: u64 = 7 * 86_400;
/// Environment variable that, set to `1`, lowers the bound of
/// `reboot_timeout_sec` to one second: for test suites, never for hosts.
pub const SHORT_TIMEOUTS_ENV_VAR: &str = "REBOOTCTL_TEST_SHORT_TIMEOUTS";
/// Default hard cap on reboots of one node per 24 hours.
pub const DEFAULT_MAX_REBOOTS_PER_DAY: u32 = 3;
/// Largest accepted `max_reboots_per_day`: more is no longer a cap.
pub const MAX_REBOOTS_PER_DAY_LIMIT: u32 = 24;
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
/// Default utmp file read by the logged-in users gate and `status`.
pub const DEFAULT_UTMP_FILE: &str = "/var/run/utmp";
/// Default program that tells logged-in users about the reboot (the
/// message is appended as its last argument).
pub const DEFAULT_WALL_COMMAND: [&str; 1] = ["/usr/bin/wall"];
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
pub const NOTIFY_EVENTS: [&str; 7] = [
    "reboot_started",
    "reboot_completed",
    "reboot_failed",
    "blocked_too_long",
    "reboot_ineffective",
    "node_back",
    "fleetlock_hold_expiring",
];
/// Default listen address of `rebootctl fleetlock serve`.
pub const DEFAULT_FLEETLOCK_LISTEN: &str = "127.0.0.1:9747";
/// Default longest hold of a FleetLock client's slot (its lease TTL): an
/// update reboot of Fedora CoreOS or Flatcar takes minutes; an hour leaves
/// room for slow firmware and a slow post-boot start.
pub const DEFAULT_FLEETLOCK_MAX_HOLD_SECS: u64 = 3600;
/// Upper bound of the default warning margin before a FleetLock hold expires.
pub const DEFAULT_FLEETLOCK_HOLD_WARNING_SECS: u64 = 300;
/// The FleetLock group a client is in when none is configured (Zincati's default).
pub const DEFAULT_FLEETLOCK_GROUP: &str = "default";
/// Longest FleetLock client id accepted (Zincati's are 32 hex digits).
pub const MAX_FLEETLOCK_ID_BYTES: usize = 253;
/// Body formats of `notify.format`.
pub const NOTIFY_FORMATS: [&str; 3] = ["slack", "teams", "template"];
/// Placeholders of a `notify.template` besides [`PLACEHOLDERS`]: the event,
/// its message, when, and (for `node_back`) how long the node was down.
pub const NOTIFY_PLACEHOLDERS: [&str; 4] = ["RC_EVENT", "RC_TEXT", "RC_AT", "RC_DOWN_SEC"];

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
    "max_reboots_per_day",
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
    "clusterrebootd",
    "etcd_watch_idle_timeout_sec",
    "reboot_command",
    "cluster_policies",
    "hooks",
    "notify",
    "windows",
    "metrics",
    "log_format",
    "dry_run",
    "alerts",
    "lock_backend",
    "fleetlock_url",
    "fleetlock_group",
    "fleetlock_id",
    "fleetlock_auth",
    "fleetlock",
    "block_if_users_logged_in",
    "users_max_postpone_sec",
    "users_wall_message",
    "users_wall_command",
    "utmp_file",
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
const AUTH_KEYS: &[&str] = &["username", "password_file", "allow_insecure"];
const POLICY_KEYS: &[&str] = &[
    "min_healthy_fraction",
    "min_healthy_absolute",
    "forbid_if_only_fallback_left",
    "fallback_nodes",
];
const HOOK_KEYS: &[&str] = &["pre_reboot", "post_reboot", "timeout_sec"];
const NOTIFY_KEYS: &[&str] = &[
    "url",
    "events",
    "blocked_after_sec",
    "timeout_sec",
    "format",
    "template",
];
const WINDOW_KEYS: &[&str] = &["timezone", "deny", "allow"];
const METRICS_KEYS: &[&str] = &["enabled", "listen"];
/// Top-level keys that only mean something in cluster mode: in a file
/// without `etcd_endpoints` each one is an error, never silently ignored.
pub const CLUSTER_ONLY_KEYS: [&str; 10] = [
    "clusterrebootd",
    "etcd_namespace",
    "lock_key",
    "lock_ttl_sec",
    "max_concurrent_reboots",
    "health_publish_interval_sec",
    "etcd_tls",
    "etcd_auth",
    "etcd_watch_idle_timeout_sec",
    "cluster_policies",
];
const CLUSTERREBOOTD_KEYS: &[&str] = &["etcd_namespace", "lock_key"];
const FLEETLOCK_KEYS: &[&str] = &["listen", "max_hold_sec", "hold_warning_sec", "groups"];
const FLEETLOCK_GROUP_KEYS: &[&str] = &["lock_key", "slots", "windows", "auth"];
/// A FleetLock group's `auth` (what the server expects): no
/// `allow_insecure`, which is a client's choice (the server speaks plain
/// HTTP; TLS is terminated in front of it).
const FLEETLOCK_GROUP_AUTH_KEYS: &[&str] = &["username", "password_file"];

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
    max_reboots_per_day: Option<u32>,
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
    /// `Some(None)` for a bare `clusterrebootd:` (all defaults).
    #[serde(default, deserialize_with = "present")]
    clusterrebootd: Option<Option<RawClusterrebootd>>,
    etcd_watch_idle_timeout_sec: Option<u64>,
    reboot_command: Option<Vec<String>>,
    cluster_policies: Option<RawPolicies>,
    hooks: Option<RawHooks>,
    notify: Option<RawNotify>,
    windows: Option<RawWindows>,
    metrics: Option<RawMetrics>,
    log_format: Option<String>,
    dry_run: Option<bool>,
    alerts: Option<RawAlerts>,
    lock_backend: Option<String>,
    fleetlock_url: Option<String>,
    fleetlock_group: Option<String>,
    fleetlock_id: Option<String>,
    fleetlock_auth: Option<RawAuth>,
    fleetlock: Option<RawFleetLock>,
    block_if_users_logged_in: Option<bool>,
    users_max_postpone_sec: Option<u64>,
    users_wall_message: Option<String>,
    users_wall_command: Option<Vec<String>>,
    utmp_file: Option<String>,
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
    allow_insecure: Option<bool>,
}

/// A key that is present, even with an empty (null) value.
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClusterrebootd {
    etcd_namespace: Option<String>,
    lock_key: Option<String>,
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
    format: Option<String>,
    template: Option<String>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleetLock {
    listen: Option<String>,
    max_hold_sec: Option<u64>,
    hold_warning_sec: Option<u64>,
    groups: Option<BTreeMap<String, Option<RawFleetLockGroup>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleetLockGroup {
    lock_key: Option<String>,
    slots: Option<u32>,
    windows: Option<RawWindows>,
    auth: Option<RawAuth>,
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
    /// Hard cap on reboots of this node in any 24 hours.
    pub max_reboots_per_day: u32,
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
    /// The alert gate, when configured.
    pub alerts: Option<AlertsConfig>,
    /// `lock_backend: fleetlock`: the lock (and the cluster gates) belong to
    /// a FleetLock server instead of etcd.
    pub fleetlock_client: Option<FleetLockClient>,
    /// The `fleetlock` section: what `rebootctl fleetlock serve` serves.
    pub fleetlock: Option<FleetLockServer>,
    /// The logged-in users gate and the `wall` before the reboot.
    pub users: UsersGate,
    /// Remarks that are not problems, one line each (printed by
    /// `validate-config`): what a clusterrebootd file means differently,
    /// a lock key outside the namespace.
    pub notes: Vec<String>,
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
    /// The checks of the distribution family named in os-release, plus the
    /// kernel check ([`crate::host::distro`]).
    Distro {
        /// Filesystem root to read and find programs below (`/` on a host).
        root: PathBuf,
        /// Timeout of each command it runs.
        timeout: Duration,
    },
}

/// The logged-in users gate (`block_if_users_logged_in` and its keys).
#[derive(Debug, Clone, PartialEq)]
pub struct UsersGate {
    /// Postpone the reboot while anyone is logged in.
    pub block: bool,
    /// Give up waiting after this long (zero: wait as long as it takes).
    pub max_postpone: Duration,
    /// Sent with `wall_command` just before the reboot command (empty: none).
    pub wall_message: String,
    /// The `wall` program and its arguments; the message is appended.
    pub wall_command: Vec<String>,
    /// The utmp file the sessions are read from.
    pub utmp_file: PathBuf,
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
    /// Sharing the lock with clusterrebootd during a migration (the
    /// `clusterrebootd` key); `lock_key` is then clusterrebootd's lock.
    pub clusterrebootd: Option<ClusterrebootdCompat>,
    /// A watch stream that delivers nothing (no event, no progress
    /// notification) for this long is presumed dropped and re-opened.
    pub watch_idle_timeout: Duration,
}

/// Default `lock_key` of clusterrebootd (its `applyNamespace` adds its
/// `etcd_namespace` in front).
pub const CLUSTERREBOOTD_DEFAULT_LOCK_KEY: &str = "/cluster/clusterrebootd/lock";

/// The `clusterrebootd` key: clusterrebootd's own `etcd_namespace` and
/// `lock_key`, as written in its configuration, from which its keys are
/// derived the way clusterrebootd derives them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterrebootdCompat {
    /// clusterrebootd's `etcd_namespace` (empty: none, its default).
    pub namespace: String,
    /// clusterrebootd's `lock_key` (default `/cluster/clusterrebootd/lock`).
    pub lock_key: String,
}

impl ClusterrebootdCompat {
    /// clusterrebootd's `applyNamespace`: `/<namespace>/<key>` with the
    /// slashes of both trimmed, or `/<key>` without a namespace.
    pub fn apply_namespace(&self, key: &str) -> String {
        let key = format!("/{}", key.trim_start_matches('/'));
        match self.namespace.trim_matches('/') {
            "" => key,
            ns => format!("/{ns}{key}"),
        }
    }

    /// The prefix of its `concurrency.Mutex` (without the trailing slash):
    /// rebootctl's slots go below it.
    pub fn mutex_key(&self) -> String {
        self.apply_namespace(&self.lock_key)
    }

    /// Its cooldown key (`reboot_cooldown`).
    pub fn cooldown_key(&self) -> String {
        self.apply_namespace("reboot_cooldown")
    }

    /// The prefix of its health records (`cluster_health/`), with the slash.
    pub fn health_prefix(&self) -> String {
        format!(
            "{}/",
            self.apply_namespace("cluster_health").trim_end_matches('/')
        )
    }
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

impl ClusterPolicies {
    /// True when no rule is set: every node may go, whatever the others'
    /// health (so a pass need not read every node's records).
    pub fn is_empty(&self) -> bool {
        self.min_healthy_fraction.is_none()
            && self.min_healthy_absolute.is_none()
            && !self.forbid_if_only_fallback_left
    }
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
#[derive(Clone, PartialEq)]
pub struct Notify {
    /// The incoming webhook URL (scheme in lower case). Its userinfo, path
    /// and query are secrets: show it only through [`redact_url`].
    pub url: String,
    /// Events that are sent.
    pub events: Vec<String>,
    /// `blocked_too_long` fires once after this long.
    pub blocked_after: Duration,
    /// Timeout of one delivery.
    pub timeout: Duration,
    /// The body's format.
    pub format: NotifyFormat,
}

/// `notify.format`: what the webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NotifyFormat {
    /// `{text, node, event, at}`: Slack and Mattermost incoming webhooks.
    #[default]
    Slack,
    /// A Microsoft Teams Workflows webhook: a message with an Adaptive Card.
    Teams,
    /// `notify.template`: a JSON body with `${RC_*}` placeholders whose
    /// values are JSON-escaped.
    Template(String),
}

/// The metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Serve metrics.
    pub enabled: bool,
    /// Listen address.
    pub listen: SocketAddr,
}

/// An agent's FleetLock server (`lock_backend: fleetlock`).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetLockClient {
    /// The base URL; requests go to `<url>v1/pre-reboot` and `<url>v1/steady-state`.
    pub url: String,
    /// The reboot group sent in every request.
    pub group: String,
    /// The client id; `None`: derived from the machine id.
    pub id: Option<String>,
    /// HTTP basic auth, when the group needs it.
    pub auth: Option<AuthConfig>,
}

/// The `fleetlock` section: the FleetLock server.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetLockServer {
    /// Address the server listens on (plain HTTP).
    pub listen: SocketAddr,
    /// Lease TTL of a FleetLock client's slot, renewed by each repeated pre-reboot.
    pub max_hold: Duration,
    /// A hold whose lease has less than this left is reported.
    pub hold_warning: Duration,
    /// The groups served, sorted by name.
    pub groups: Vec<FleetLockGroup>,
}

/// One FleetLock group: a lock key, its slot count, windows and auth.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetLockGroup {
    /// The group name clients send.
    pub name: String,
    /// The lock key whose slots the group's clients take.
    pub lock_key: String,
    /// Number of slots of that lock key.
    pub slots: u32,
    /// Maintenance windows of the group.
    pub windows: Windows,
    /// HTTP basic auth for the group's requests.
    pub auth: Option<AuthConfig>,
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
        if self.fleetlock_client != new.fleetlock_client {
            changed.push("lock_backend/fleetlock_*");
        }
        changed
    }
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notify")
            .field("url", &redact_url(&self.url))
            .field("events", &self.events)
            .field("blocked_after", &self.blocked_after)
            .field("timeout", &self.timeout)
            .field("format", &self.format)
            .finish()
    }
}

/// A webhook URL as it may be shown: scheme (lower case), host and port;
/// userinfo, path and query (where incoming webhooks carry their secret)
/// replaced by `<redacted>`. The one way any output shows such a URL.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted URL>".to_string();
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return "<redacted URL>".to_string();
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end]
        .rsplit_once('@')
        .map_or(&rest[..end], |(_, h)| h);
    let tail = if rest[end..].len() > 1 {
        "/<redacted>"
    } else {
        ""
    };
    format!("{}://{host}{tail}", scheme.to_ascii_lowercase())
}

/// `text` (an error message) with `url` and each of its secret parts
/// (userinfo, path, query), wherever a library quoted them, redacted.
pub fn redact_url_in(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    let Some((_, rest)) = url.split_once("://") else {
        return out;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some((userinfo, _)) = rest[..end].rsplit_once('@') {
        if !userinfo.is_empty() {
            out = out.replace(userinfo, "<redacted>");
        }
    }
    let tail = &rest[end..];
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    for part in [tail, &tail[..path_end], &tail[path_end..]] {
        if part.len() > 1 {
            out = out.replace(part, "/<redacted>");
        }
    }
    out
}

/// Every key the file accepts, nested keys as `section.key` and detector
/// keys as `reboot_required_detectors[].key` (for documentation checks).
pub fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = TOP_KEYS.iter().map(|k| k.to_string()).collect();
    let nested: [(&str, &[&str]); 15] = [
        ("reboot_required_detectors[]", DETECTOR_KEYS),
        ("etcd_tls", TLS_KEYS),
        ("etcd_auth", AUTH_KEYS),
        ("cluster_policies", POLICY_KEYS),
        ("hooks", HOOK_KEYS),
        ("notify", NOTIFY_KEYS),
        ("windows", WINDOW_KEYS),
        ("metrics", METRICS_KEYS),
        ("alerts", ALERTS_KEYS),
        ("clusterrebootd", CLUSTERREBOOTD_KEYS),
        ("fleetlock_auth", AUTH_KEYS),
        ("fleetlock", FLEETLOCK_KEYS),
        ("fleetlock.groups.*", FLEETLOCK_GROUP_KEYS),
        ("fleetlock.groups.*.windows", WINDOW_KEYS),
        ("fleetlock.groups.*.auth", FLEETLOCK_GROUP_AUTH_KEYS),
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
    let mut map = match value {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        other => {
            return Err(invalid(vec![format!(
                "the file must be a YAML mapping of keys, found {}",
                value_kind(&other)
            )]));
        }
    };
    // Which keys the file names, whatever their value: a cluster-only key
    // counts even when it is empty (an unset template variable).
    let present: BTreeSet<String> = map
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let dialect = clusterrebootd::is_clusterrebootd_file(&map);
    clusterrebootd::unset_empty_values(&mut map);
    let mut problems = Vec::new();
    let (raw, bad_keys) = raw_from_mapping(&map, &mut problems);
    let mut semantic = Vec::new();
    let mut config = validate(raw, path, &present, &mut semantic);
    // A key that did not parse was left out; do not also report it as missing.
    problems.extend(
        semantic
            .into_iter()
            .filter(|p| !bad_keys.contains(top_key_of(p))),
    );
    if problems.is_empty() {
        if dialect {
            let notes = clusterrebootd::notes(&map, &config);
            config.notes.extend(notes);
        }
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
        "alerts" => ALERTS_KEYS,
        "clusterrebootd" => CLUSTERREBOOTD_KEYS,
        "fleetlock_auth" => AUTH_KEYS,
        "fleetlock" => {
            check_fleetlock_keys(v, problems);
            return;
        }
        _ => return,
    };
    check_mapping_keys(key, v, known, problems);
}

/// The `fleetlock` section: its keys, each group's keys and the keys of a
/// group's `windows` and `auth`.
fn check_fleetlock_keys(v: &Value, problems: &mut Vec<String>) {
    check_mapping_keys("fleetlock", v, FLEETLOCK_KEYS, problems);
    let Some(Value::Mapping(groups)) = v.get("groups") else {
        return;
    };
    for (name, group) in groups {
        let path = format!("fleetlock.groups.{}", value_to_string(name));
        check_mapping_keys(&path, group, FLEETLOCK_GROUP_KEYS, problems);
        if let Some(w) = group.get("windows") {
            check_mapping_keys(&format!("{path}.windows"), w, WINDOW_KEYS, problems);
        }
        if let Some(a) = group.get("auth") {
            check_mapping_keys(
                &format!("{path}.auth"),
                a,
                FLEETLOCK_GROUP_AUTH_KEYS,
                problems,
            );
        }
    }
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
    notes: Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {msg}"));
    }

    fn note(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.notes.push(format!("{path}: {msg}"));
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
            for name in placeholders_in(arg) {
                if !PLACEHOLDERS.contains(&name) {
                    self.problem(
                        &format!("{path}[{i}]"),
                        format!(
                            "unknown placeholder ${{{name}}}; known: {}",
                            PLACEHOLDERS.join(", ")
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

fn validate(
    raw: RawConfig,
    source: &Path,
    present: &BTreeSet<String>,
    problems: &mut Vec<String>,
) -> Config {
    let mut c = Checker {
        problems,
        notes: Vec::new(),
    };

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
    let reboot_timeout = validate_reboot_timeout(&mut c, raw.reboot_timeout_sec);
    let max_reboots_per_day = raw
        .max_reboots_per_day
        .unwrap_or(DEFAULT_MAX_REBOOTS_PER_DAY);
    if !(1..=MAX_REBOOTS_PER_DAY_LIMIT).contains(&max_reboots_per_day) {
        c.problem(
            "max_reboots_per_day",
            format!(
                "must be at least 1 and at most {MAX_REBOOTS_PER_DAY_LIMIT}, got {max_reboots_per_day} (to stop reboots, use the kill switch or `rebootctl pause`)"
            ),
        );
    }
    let kill_switch_file = c.absolute(
        "kill_switch_file",
        raw.kill_switch_file,
        DEFAULT_KILL_SWITCH_FILE,
    );
    let state_dir = c.absolute("state_dir", raw.state_dir, DEFAULT_STATE_DIR);
    if state_dir.is_absolute() {
        check_state_dir_persistent(&mut c, &state_dir);
    }
    let boot_id_file = c.absolute("boot_id_file", raw.boot_id_file, DEFAULT_BOOT_ID_FILE);
    let machine_id_file = c.absolute(
        "machine_id_file",
        raw.machine_id_file,
        DEFAULT_MACHINE_ID_FILE,
    );

    if !present.contains("etcd_endpoints") {
        for key in CLUSTER_ONLY_KEYS.iter().filter(|k| present.contains(**k)) {
            c.problem(
                key,
                "only applies in cluster mode, but etcd_endpoints is not set: add etcd_endpoints, or remove this key for local mode",
            );
        }
    }
    let raw_etcd = RawEtcd {
        endpoints: raw.etcd_endpoints,
        namespace: raw.etcd_namespace,
        lock_key: raw.lock_key,
        lock_ttl_sec: raw.lock_ttl_sec,
        max_concurrent_reboots: raw.max_concurrent_reboots,
        tls: raw.etcd_tls,
        auth: raw.etcd_auth,
        clusterrebootd: raw.clusterrebootd,
        watch_idle_timeout_sec: raw.etcd_watch_idle_timeout_sec,
    };
    let etcd = if present.contains("etcd_endpoints") {
        Some(validate_etcd(&mut c, raw_etcd, health_timeout))
    } else {
        None
    };

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

    let alerts = raw.alerts.and_then(|a| validate_alerts(&mut c, a));
    let fleetlock_client = validate_fleetlock_client(
        &mut c,
        RawFleetLockClient {
            backend: raw.lock_backend,
            url: raw.fleetlock_url,
            group: raw.fleetlock_group,
            id: raw.fleetlock_id,
            auth: raw.fleetlock_auth,
        },
        etcd.is_some(),
    );
    let fleetlock = raw
        .fleetlock
        .map(|f| validate_fleetlock_server(&mut c, f, etcd.as_ref()));

    let wall_command = raw
        .users_wall_command
        .unwrap_or_else(|| DEFAULT_WALL_COMMAND.iter().map(|s| s.to_string()).collect());
    c.argv("users_wall_command", &wall_command);
    c.placeholders("users_wall_command", &wall_command);
    let wall_message = raw.users_wall_message.unwrap_or_default();
    c.placeholders("users_wall_message", std::slice::from_ref(&wall_message));
    let users = UsersGate {
        block: raw.block_if_users_logged_in.unwrap_or(false),
        max_postpone: c.bounded_secs(
            "users_max_postpone_sec",
            raw.users_max_postpone_sec.unwrap_or(0),
        ),
        wall_message,
        wall_command,
        utmp_file: c.absolute("utmp_file", raw.utmp_file, DEFAULT_UTMP_FILE),
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
        max_reboots_per_day,
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
        alerts,
        fleetlock_client,
        fleetlock,
        users,
        notes: c.notes,
    }
}

/// File systems that keep their files in memory only: a `state_dir` on
/// one loses the intent, the reboot record and the reboot log at the
/// reboot (`statfs` `f_type`: tmpfs, ramfs).
const VOLATILE_FS: [(&str, u32); 2] = [("tmpfs", 0x0102_1994), ("ramfs", 0x8584_58f6)];

/// A `state_dir` on a file system that does not survive the reboot is a
/// configuration error: the reboot record would be gone when the node is
/// back (its slot never completed, the node left drained) and the reboot
/// log with it (the loop guard and `max_reboots_per_day` forgetting every
/// reboot). The directory, or its nearest existing parent (it is created
/// there), is asked; a path that cannot be asked at all is left to the
/// `state_dir` gate of the pass.
fn check_state_dir_persistent(c: &mut Checker, state_dir: &Path) {
    let Some(fs_type) = state_dir
        .ancestors()
        .find_map(|d| nix::sys::statfs::statfs(d).ok())
        .map(|st| st.filesystem_type().0)
    else {
        return;
    };
    // f_type's width and sign differ by platform; the magic is its low 32 bits.
    let magic = fs_type as u32;
    if let Some((name, _)) = VOLATILE_FS.iter().find(|(_, m)| *m == magic) {
        c.problem(
            "state_dir",
            format!(
                "{} is on {name}, which does not survive a reboot: the reboot record, the pre-reboot intent and the reboot log would be lost (a slot never completed, a node left drained, the reboot-loop guard and max_reboots_per_day forgetting every reboot); use a directory on persistent storage, such as {DEFAULT_STATE_DIR}",
                state_dir.display()
            ),
        );
    }
}

/// `reboot_timeout_sec` within [`MIN_REBOOT_TIMEOUT_SECS`] and
/// [`MAX_REBOOT_TIMEOUT_SECS`]; the lower bound is one second when
/// [`SHORT_TIMEOUTS_ENV_VAR`] is `1` (test suites), with a note.
fn validate_reboot_timeout(c: &mut Checker, raw: Option<u64>) -> Duration {
    let secs = raw.unwrap_or(DEFAULT_REBOOT_TIMEOUT_SECS);
    let short_ok = std::env::var(SHORT_TIMEOUTS_ENV_VAR).is_ok_and(|v| v == "1");
    let (min, min_text) = if short_ok {
        (1, format!("1 second, {SHORT_TIMEOUTS_ENV_VAR} is set"))
    } else {
        (MIN_REBOOT_TIMEOUT_SECS, "1 minute".to_string())
    };
    if !(min..=MAX_REBOOT_TIMEOUT_SECS).contains(&secs) {
        c.problem(
            "reboot_timeout_sec",
            format!(
                "must be at least {min} ({min_text}) and at most {MAX_REBOOT_TIMEOUT_SECS} (7 days), got {secs}"
            ),
        );
    } else if secs < MIN_REBOOT_TIMEOUT_SECS {
        c.note(
            "reboot_timeout_sec",
            format!(
                "{secs} is below {MIN_REBOOT_TIMEOUT_SECS}, accepted only because {SHORT_TIMEOUTS_ENV_VAR}=1 (test suites)"
            ),
        );
    }
    Duration::from_secs(secs.clamp(1, MAX_REBOOT_TIMEOUT_SECS))
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
                only(
                    c,
                    "timeout_sec",
                    d.timeout_sec.is_some(),
                    "command or distro",
                );
                only(c, "root", d.root.is_some(), "kernel or distro");
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
                only(c, "root", d.root.is_some(), "kernel or distro");
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
                only(
                    c,
                    "timeout_sec",
                    d.timeout_sec.is_some(),
                    "command or distro",
                );
                let root = c.absolute(&format!("{p}.root"), d.root, "/");
                DetectorKind::Kernel { root }
            }
            "distro" => {
                only(c, "path", d.path.is_some(), "file");
                only(c, "cmd", d.cmd.is_some(), "command");
                only(
                    c,
                    "success_exit_codes",
                    d.success_exit_codes.is_some(),
                    "command",
                );
                let root = c.absolute(&format!("{p}.root"), d.root, "/");
                let timeout = c.positive_secs(
                    &format!("{p}.timeout_sec"),
                    d.timeout_sec,
                    DEFAULT_DISTRO_TIMEOUT_SECS,
                );
                DetectorKind::Distro { root, timeout }
            }
            "" => {
                c.problem(
                    &format!("{p}.type"),
                    "is required: one of file, command, kernel, distro",
                );
                continue;
            }
            other => {
                c.problem(
                    &format!("{p}.type"),
                    format!("must be one of file, command, kernel, distro, got {other:?}"),
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
        DetectorKind::Distro { .. } => "distro".to_string(),
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
    lock_ttl_sec: Option<u64>,
    max_concurrent_reboots: Option<u32>,
    tls: Option<RawTls>,
    auth: Option<RawAuth>,
    clusterrebootd: Option<Option<RawClusterrebootd>>,
    watch_idle_timeout_sec: Option<u64>,
}

/// The cluster settings of a file that names `etcd_endpoints`. An empty
/// value (null, `[]`) is an error: it never means local mode.
fn validate_etcd(c: &mut Checker, raw: RawEtcd, health_timeout: Duration) -> EtcdConfig {
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
    let clusterrebootd =
        raw.clusterrebootd
            .map(|r| r.unwrap_or_default())
            .map(|r| ClusterrebootdCompat {
                namespace: r.etcd_namespace.unwrap_or_default(),
                lock_key: r
                    .lock_key
                    .filter(|k| !k.trim().is_empty())
                    .unwrap_or_else(|| CLUSTERREBOOTD_DEFAULT_LOCK_KEY.to_string()),
            });
    if let Some(compat) = &clusterrebootd {
        if compat.lock_key.ends_with('/') {
            c.problem(
                "clusterrebootd.lock_key",
                format!(
                    "{:?} ends with '/': etcd's concurrency.Mutex would then use {:?} as its prefix, which rebootctl does not share; write it without the trailing slash (here and, host by host, in clusterrebootd's configuration)",
                    compat.lock_key,
                    format!("{}/", compat.mutex_key())
                ),
            );
        }
    }
    let lock_key = raw
        .lock_key
        .as_deref()
        .map(|k| k.trim_end_matches('/').to_string());
    let lock_key = match (&clusterrebootd, lock_key) {
        (Some(compat), Some(k)) if k != compat.mutex_key() => {
            c.problem(
                "lock_key",
                format!(
                    "{k:?} conflicts with clusterrebootd: the slots must lie below clusterrebootd's lock {:?} (leave lock_key out)",
                    compat.mutex_key()
                ),
            );
            k
        }
        (Some(compat), _) => compat.mutex_key(),
        (None, Some(k)) => k,
        (None, None) => format!("{namespace}/lock"),
    };
    if !lock_key.starts_with('/') || lock_key.len() < 2 {
        c.problem(
            "lock_key",
            format!("must start with '/' and name a key such as /rebootctl/lock, got {lock_key:?}"),
        );
    } else if lock_key == namespace {
        c.problem(
            "lock_key",
            format!("must not be etcd_namespace {namespace:?} itself (the slots would mix with every other key)"),
        );
    } else if !lock_key.starts_with(&format!("{namespace}/")) {
        c.note(
            "lock_key",
            format!(
                "{lock_key} lies outside etcd_namespace {namespace}: the etcd role must grant both prefixes"
            ),
        );
    }
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
    for reserved in ["pause", "cooldown"] {
        let key = format!("{namespace}/lock/{reserved}");
        if lock_key == key || lock_key.starts_with(&format!("{key}/")) {
            c.problem(
                "lock_key",
                format!("{lock_key:?} collides with the {reserved} record {key:?}"),
            );
        }
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
    let allow_insecure = raw
        .auth
        .as_ref()
        .and_then(|a| a.allow_insecure)
        .unwrap_or(false);
    let auth = raw.auth.map(|a| validate_auth(c, "etcd_auth", a));
    let endpoints = raw.endpoints.unwrap_or_default();
    if endpoints.is_empty() {
        c.problem(
            "etcd_endpoints",
            "is empty: list at least one endpoint for cluster mode, or remove the key for local mode (an empty value never means local mode)",
        );
    }
    let endpoints: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| endpoint(c, &format!("etcd_endpoints[{i}]"), e, tls_enabled))
        .collect();
    if auth.is_some() && !allow_insecure {
        let skip_verify = tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
        if let Some(plain) = endpoints.iter().find(|e| e.starts_with("http://")) {
            c.problem(
                "etcd_auth",
                format!(
                    "refusing to send the etcd password over plain http ({plain}): use https:// endpoints with etcd_tls, or set etcd_auth.allow_insecure: true on a network you trust"
                ),
            );
        } else if skip_verify {
            c.problem(
                "etcd_auth",
                "refusing to send the etcd password with etcd_tls.insecure_skip_verify (any host on the path could pose as etcd and read it): verify the certificate, or set etcd_auth.allow_insecure: true",
            );
        }
    }
    EtcdConfig {
        endpoints,
        namespace,
        lock_key,
        lock_ttl,
        max_concurrent_reboots,
        tls,
        auth,
        clusterrebootd,
        watch_idle_timeout,
    }
}

/// One endpoint as the etcd client uses it: `http(s)://HOST:PORT`. A bare
/// `HOST:PORT` (as etcd's Go client and clusterrebootd accept it) gets
/// `https://` when TLS is enabled, else `http://`.
fn endpoint(c: &mut Checker, path: &str, raw: &str, tls_enabled: bool) -> String {
    let e = raw.trim_end_matches('/');
    // What problems may show: never a password written into the URL.
    let shown = match e.rfind('@') {
        Some(at) => format!(
            "{}<credentials>{}",
            &e[..e.find("://").map_or(0, |s| s + 3)],
            &e[at..]
        ),
        None => e.to_string(),
    };
    let (scheme, rest) = match e.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), e),
    };
    let scheme = match scheme.as_str() {
        "https" => "https",
        "http" => {
            if tls_enabled {
                c.problem(
                    path,
                    format!("{shown:?} is plain http but etcd_tls.enabled is true"),
                );
            }
            "http"
        }
        "" if tls_enabled => "https",
        "" => "http",
        _ => {
            c.problem(
                path,
                format!("must be HOST:PORT, http://HOST:PORT or https://HOST:PORT, got {shown:?}"),
            );
            return e.to_string();
        }
    };
    if rest.contains('@') {
        c.problem(
            path,
            "must not carry credentials (they would show in logs); use etcd_auth",
        );
    } else if rest.is_empty() || rest.contains('/') {
        c.problem(
            path,
            format!("must be a scheme, a host and a port only, got {e:?}"),
        );
    } else if !e.contains("://") {
        let port_ok = rest
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            c.problem(
                path,
                format!("must be HOST:PORT, http://HOST:PORT or https://HOST:PORT, got {shown:?}"),
            );
        }
    }
    format!("{scheme}://{rest}")
}

/// A user name and a password file (`etcd_auth`, `fleetlock_auth`, a
/// FleetLock group's `auth`); `path` is the section's key path.
fn validate_auth(c: &mut Checker, path: &str, a: RawAuth) -> AuthConfig {
    let username = a.username.unwrap_or_default();
    if username.is_empty() {
        c.problem(
            &format!("{path}.username"),
            format!("is required when {path} is set"),
        );
    }
    let password_file = match &a.password_file {
        Some(s) => {
            let key = format!("{path}.password_file");
            let p = c.absolute_path(&key, s);
            if p.is_absolute() {
                c.existing_file(&key, &p);
            }
            p
        }
        None => {
            c.problem(
                &format!("{path}.password_file"),
                format!("is required when {path} is set"),
            );
            PathBuf::new()
        }
    };
    AuthConfig {
        username,
        password_file,
    }
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
        Some(u) => match webhook_url(&u) {
            Some(url) => url,
            None => {
                c.problem(
                    "notify.url",
                    format!(
                        "must be an http:// or https:// URL with a host, got {}",
                        redact_url(&u)
                    ),
                );
                return None;
            }
        },
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
    let format = match (raw.format.as_deref(), raw.template) {
        (None | Some("slack"), None) => NotifyFormat::Slack,
        (Some("teams"), None) => NotifyFormat::Teams,
        (Some("template"), Some(t)) => {
            for p in notify_template_problems(&t) {
                c.problem("notify.template", p);
            }
            NotifyFormat::Template(t)
        }
        (Some("template"), None) => {
            c.problem(
                "notify.template",
                "is required when notify.format is template",
            );
            NotifyFormat::Slack
        }
        (None | Some("slack" | "teams"), Some(_)) => {
            c.problem(
                "notify.template",
                "is only used with notify.format: template",
            );
            NotifyFormat::Slack
        }
        (Some(other), _) => {
            let hint = closest(other, &NOTIFY_FORMATS)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            c.problem(
                "notify.format",
                format!(
                    "unknown format {other:?}{hint}; known: {}",
                    NOTIFY_FORMATS.join(", ")
                ),
            );
            NotifyFormat::Slack
        }
    };
    Some(Notify {
        url,
        events,
        blocked_after,
        timeout,
        format,
    })
}

/// Expands the `${RC_*}` placeholders of a notification template, each value
/// JSON-escaped (the template puts the quotes); unknown names expand to "".
pub fn expand_notify_template(template: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        let value = vars
            .iter()
            .find(|(k, _)| k == &after[..end])
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let quoted = serde_json::to_string(value).unwrap_or_default();
        out.push_str(&quoted[1..quoted.len().saturating_sub(1)]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// What is wrong with a `notify.template`: unknown placeholders, or a body
/// that is not JSON once expanded.
fn notify_template_problems(template: &str) -> Vec<String> {
    let known: Vec<&str> = PLACEHOLDERS
        .iter()
        .chain(NOTIFY_PLACEHOLDERS.iter())
        .copied()
        .collect();
    let mut problems: Vec<String> = placeholders_in(template)
        .into_iter()
        .filter(|p| !known.contains(p))
        .map(|p| format!("unknown placeholder ${{{p}}}; known: {}", known.join(", ")))
        .collect();
    let sample: Vec<(String, String)> = known
        .iter()
        .map(|k| (k.to_string(), "a \"quoted\" value".to_string()))
        .collect();
    if let Err(e) =
        serde_json::from_str::<serde_json::Value>(&expand_notify_template(template, &sample))
    {
        problems.push(format!("is not a JSON document once expanded: {e}"));
    }
    problems
}

// ---------------------------------------------------------------------------
// FleetLock (issue 13): the agent as a client, and the server's section.

/// The FleetLock client keys of the file, gathered for [`validate_fleetlock_client`].
struct RawFleetLockClient {
    backend: Option<String>,
    url: Option<String>,
    group: Option<String>,
    id: Option<String>,
    auth: Option<RawAuth>,
}

/// True for a FleetLock group name: `^[a-zA-Z0-9.-]+$` (the protocol's).
pub fn is_fleetlock_group(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
}

/// Why `id` is not a usable FleetLock client id, if it is not: empty, too
/// long, or carrying control characters (it is logged and shown).
pub fn fleetlock_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("must not be empty".into())
    } else if id.len() > MAX_FLEETLOCK_ID_BYTES {
        Some(format!(
            "must be at most {MAX_FLEETLOCK_ID_BYTES} bytes, got {}",
            id.len()
        ))
    } else if id.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

fn validate_fleetlock_client(
    c: &mut Checker,
    raw: RawFleetLockClient,
    has_etcd: bool,
) -> Option<FleetLockClient> {
    match raw.backend.as_deref() {
        None | Some("etcd") => {
            for (key, set) in [
                ("fleetlock_url", raw.url.is_some()),
                ("fleetlock_group", raw.group.is_some()),
                ("fleetlock_id", raw.id.is_some()),
                ("fleetlock_auth", raw.auth.is_some()),
            ] {
                if set {
                    c.problem(key, "is only used with lock_backend: fleetlock");
                }
            }
            return None;
        }
        Some("fleetlock") => {}
        Some(other) => {
            c.problem(
                "lock_backend",
                format!("must be `etcd` or `fleetlock`, got {other:?}"),
            );
            return None;
        }
    }
    if has_etcd {
        c.problem(
            "lock_backend",
            "fleetlock replaces etcd on this host (the FleetLock server reads etcd for it): remove etcd_endpoints",
        );
    }
    let url = match raw.url {
        Some(u) => {
            if let Some(problem) = fleetlock_url_problem(&u) {
                c.problem("fleetlock_url", problem);
            }
            u
        }
        None => {
            c.problem("fleetlock_url", "is required with lock_backend: fleetlock");
            String::new()
        }
    };
    let group = raw
        .group
        .unwrap_or_else(|| DEFAULT_FLEETLOCK_GROUP.to_string());
    if !is_fleetlock_group(&group) {
        c.problem(
            "fleetlock_group",
            format!("{group:?} must match ^[a-zA-Z0-9.-]+$ (the FleetLock protocol)"),
        );
    }
    if let Some(problem) = raw.id.as_deref().and_then(fleetlock_id_problem) {
        c.problem("fleetlock_id", problem);
    }
    let allow_insecure = raw
        .auth
        .as_ref()
        .and_then(|a| a.allow_insecure)
        .unwrap_or(false);
    let auth = raw.auth.map(|a| validate_auth(c, "fleetlock_auth", a));
    if auth.is_some() && !allow_insecure && url.starts_with("http://") {
        c.problem(
            "fleetlock_auth",
            format!(
                "refusing to send the FleetLock password over plain http ({url}): use an https:// fleetlock_url, or set fleetlock_auth.allow_insecure: true on a network you trust"
            ),
        );
    }
    Some(FleetLockClient {
        url,
        group,
        id: raw.id,
        auth,
    })
}

/// Why `url` is not a FleetLock base URL, if it is not. A base with a path
/// must end in `/`: clients resolve `v1/pre-reboot` against it (RFC 3986),
/// so `http://h/fleetlock` would lose its last segment, in Zincati too.
fn fleetlock_url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some(format!("must be an http:// or https:// URL, got {url:?}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Some(format!("has no host: {url:?}"));
    }
    if authority.contains('@') {
        return Some(
            "must not carry credentials (they would show in logs); use fleetlock_auth".into(),
        );
    }
    if path.contains(['?', '#']) {
        return Some(format!("must not have a query or a fragment, got {url:?}"));
    }
    if !path.is_empty() && !path.ends_with('/') {
        return Some(format!(
            "a base URL with a path must end in '/' (v1/pre-reboot is resolved against it), got {url:?}"
        ));
    }
    None
}

fn validate_fleetlock_server(
    c: &mut Checker,
    raw: RawFleetLock,
    etcd: Option<&EtcdConfig>,
) -> FleetLockServer {
    if etcd.is_none() {
        c.problem(
            "fleetlock",
            "the FleetLock server decides against etcd: etcd_endpoints is required",
        );
    }
    let listen_text = raw
        .listen
        .unwrap_or_else(|| DEFAULT_FLEETLOCK_LISTEN.to_string());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.problem(
            "fleetlock.listen",
            format!("must be IP:PORT such as {DEFAULT_FLEETLOCK_LISTEN}, got {listen_text:?}"),
        );
        SocketAddr::from(([127, 0, 0, 1], 9747))
    });
    let max_hold = c.positive_secs(
        "fleetlock.max_hold_sec",
        raw.max_hold_sec,
        DEFAULT_FLEETLOCK_MAX_HOLD_SECS,
    );
    let default_warning = DEFAULT_FLEETLOCK_HOLD_WARNING_SECS.min(max_hold.as_secs() / 2);
    let hold_warning = c.bounded_secs(
        "fleetlock.hold_warning_sec",
        raw.hold_warning_sec.unwrap_or(default_warning),
    );
    if hold_warning >= max_hold {
        c.problem(
            "fleetlock.hold_warning_sec",
            format!(
                "must be less than fleetlock.max_hold_sec ({})",
                max_hold.as_secs()
            ),
        );
    }
    let (namespace, agents_key, agents_slots) = match etcd {
        Some(e) => (
            e.namespace.clone(),
            e.lock_key.clone(),
            e.max_concurrent_reboots,
        ),
        None => (DEFAULT_ETCD_NAMESPACE.to_string(), String::new(), 1),
    };
    let raw_groups = raw
        .groups
        .unwrap_or_else(|| BTreeMap::from([(DEFAULT_FLEETLOCK_GROUP.to_string(), None)]));
    if raw_groups.is_empty() {
        c.problem("fleetlock.groups", "must name at least one group");
    }
    let mut groups: Vec<FleetLockGroup> = Vec::new();
    for (name, g) in raw_groups {
        let path = format!("fleetlock.groups.{name}");
        let g = g.unwrap_or_default();
        if !is_fleetlock_group(&name) || name == "." || name == ".." {
            c.problem(
                &path,
                format!("{name:?} is not a FleetLock group name (^[a-zA-Z0-9.-]+$, not . or ..)"),
            );
        } else if ["pause", "cooldown"].contains(&name.as_str()) || name.starts_with("slot-") {
            c.problem(
                &path,
                format!("{name:?} is reserved: <namespace>/lock/{name} is another key of the lock prefix"),
            );
        }
        let lock_key = match g.lock_key {
            Some(k) => k.trim_end_matches('/').to_string(),
            None if name == DEFAULT_FLEETLOCK_GROUP && !agents_key.is_empty() => agents_key.clone(),
            None => format!("{namespace}/lock/{name}"),
        };
        let shared_with_agents = lock_key == agents_key;
        // The agents' own lock may lie outside the namespace (clusterrebootd's
        // mutex, with a note); another group's lock must not: `rebootctl
        // lock` and `unlock` find groups below <namespace>/lock/.
        if !shared_with_agents && !lock_key.starts_with(&format!("{namespace}/")) {
            c.problem(
                &format!("{path}.lock_key"),
                format!("{lock_key:?} must lie below etcd_namespace {namespace:?}"),
            );
        }
        let slots = match g.slots {
            Some(n) => {
                if n == 0 {
                    c.problem(&format!("{path}.slots"), "must be at least 1");
                } else if shared_with_agents && n != agents_slots {
                    c.problem(
                        &format!("{path}.slots"),
                        format!(
                            "{n} differs from max_concurrent_reboots ({agents_slots}), the agents' slot count of the same lock key {lock_key}"
                        ),
                    );
                }
                n
            }
            None if shared_with_agents => agents_slots,
            None => 1,
        };
        if let Some(other) = groups
            .iter()
            .find(|o| o.lock_key == lock_key && o.slots != slots)
        {
            c.problem(
                &format!("{path}.slots"),
                format!(
                    "{slots} differs from group {}'s {} on the same lock key {lock_key}",
                    other.name, other.slots
                ),
            );
        }
        let w = g.windows.unwrap_or_default();
        let windows = match Windows::parse(
            w.timezone.as_deref().unwrap_or("local"),
            w.allow.as_deref().unwrap_or_default(),
            w.deny.as_deref().unwrap_or_default(),
        ) {
            Ok(w) => w,
            Err(errs) => {
                c.problems
                    .extend(errs.into_iter().map(|e| format!("{path}.{e}")));
                Windows::always_open()
            }
        };
        let auth = g.auth.map(|a| validate_auth(c, &format!("{path}.auth"), a));
        groups.push(FleetLockGroup {
            name,
            lock_key,
            slots,
            windows,
            auth,
        });
    }
    FleetLockServer {
        listen,
        max_hold,
        hold_warning,
        groups,
    }
}

/// Placeholders that may appear in `reboot_command` and hook argv.
pub const PLACEHOLDERS: [&str; 5] = [
    "RC_NODE_NAME",
    "RC_BOOT_ID",
    "RC_REASON",
    "RC_DRY_RUN",
    "RC_LOCK_KEY",
];

/// The placeholder names used in `arg` (for validation).
pub fn placeholders_in(arg: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    names
}

// ---------------------------------------------------------------------------
// `alerts:` (issue 14): the alert gate. One block on purpose: the raw
// struct, the validated struct and their validation live here together;
// elsewhere in this file the section only has its one-line entries (the key
// tables, `RawConfig::alerts`, `Config::alerts`, the call in `validate`).

/// Default timeout of one request to Alertmanager or Prometheus.
pub const DEFAULT_ALERTS_TIMEOUT_SECS: u64 = 10;

const ALERTS_KEYS: &[&str] = &[
    "alertmanager_url",
    "block_on",
    "ignore",
    "count_silenced",
    "count_inhibited",
    "prometheus_url",
    "block_if",
    "timeout_sec",
    "ca_file",
    "bearer_token_file",
    "basic_auth_username",
    "basic_auth_password_file",
    "silence_during_reboot",
    "silence_failure",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    alertmanager_url: Option<String>,
    block_on: Option<Vec<String>>,
    ignore: Option<Vec<String>>,
    count_silenced: Option<bool>,
    count_inhibited: Option<bool>,
    prometheus_url: Option<String>,
    block_if: Option<Vec<String>>,
    timeout_sec: Option<u64>,
    ca_file: Option<String>,
    bearer_token_file: Option<String>,
    basic_auth_username: Option<String>,
    basic_auth_password_file: Option<String>,
    silence_during_reboot: Option<Vec<String>>,
    silence_failure: Option<String>,
}

use crate::matcher::MatcherSet;

/// The alert gate: Alertmanager alerts and PromQL expressions that block
/// a reboot, and the silence created while this node reboots.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Alertmanager's base URL, without a trailing slash.
    pub alertmanager_url: Option<String>,
    /// Alerts that block: any entry matching (empty: every alert).
    pub block_on: Vec<MatcherSet>,
    /// Alerts left out: any entry matching.
    pub ignore: Vec<MatcherSet>,
    /// Silenced alerts count.
    pub count_silenced: bool,
    /// Inhibited alerts count.
    pub count_inhibited: bool,
    /// Prometheus's base URL, without a trailing slash.
    pub prometheus_url: Option<String>,
    /// PromQL expressions; any non-empty result blocks.
    pub block_if: Vec<String>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// CA bundle for https URLs (the built-in roots when absent).
    pub ca_file: Option<PathBuf>,
    /// Credentials sent to both servers.
    pub auth: Option<AlertsAuth>,
    /// One silence per entry while this node reboots.
    pub silence_during_reboot: Vec<MatcherSet>,
    /// What a silence that cannot be created does to the reboot.
    pub silence_failure: SilenceFailure,
}

/// Credentials of the alert gate, read from files when used.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertsAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// File holding the token.
        token_file: PathBuf,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// File holding the password.
        password_file: PathBuf,
    },
}

/// What a silence that cannot be created does to the reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceFailure {
    /// No reboot (blocked, reason `alerts`).
    Block,
    /// Reboot anyway, with a warning.
    Continue,
}

impl SilenceFailure {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceFailure::Block => "block",
            SilenceFailure::Continue => "continue",
        }
    }
}

fn validate_alerts(c: &mut Checker, raw: RawAlerts) -> Option<AlertsConfig> {
    use crate::matcher::GATE_PLACEHOLDERS;
    let alertmanager_url = raw
        .alertmanager_url
        .as_deref()
        .map(|u| alerts_url(c, "alerts.alertmanager_url", u));
    let prometheus_url = raw
        .prometheus_url
        .as_deref()
        .map(|u| alerts_url(c, "alerts.prometheus_url", u));
    if alertmanager_url.is_none() && prometheus_url.is_none() {
        c.problem(
            "alerts",
            "set alertmanager_url, prometheus_url or both (or leave the section out)",
        );
    }
    let matchers = |c: &mut Checker, key: &str, entries: Option<Vec<String>>, allowed: &[&str]| {
        let entries = entries.unwrap_or_default();
        let path = format!("alerts.{key}");
        if !entries.is_empty() && alertmanager_url.is_none() {
            c.problem(&path, "needs alerts.alertmanager_url");
        }
        for (i, e) in entries.iter().enumerate() {
            alerts_placeholders(c, &format!("{path}[{i}]"), e, allowed);
        }
        match crate::matcher::parse_entries(&path, &entries) {
            Ok(sets) => sets,
            Err(problems) => {
                c.problems.extend(problems);
                Vec::new()
            }
        }
    };
    let block_on = matchers(c, "block_on", raw.block_on, &GATE_PLACEHOLDERS);
    let ignore = matchers(c, "ignore", raw.ignore, &GATE_PLACEHOLDERS);
    let silence_during_reboot = matchers(
        c,
        "silence_during_reboot",
        raw.silence_during_reboot,
        &PLACEHOLDERS,
    );
    let block_if = raw.block_if.unwrap_or_default();
    for (i, e) in block_if.iter().enumerate() {
        let path = format!("alerts.block_if[{i}]");
        if e.trim().is_empty() {
            c.problem(&path, "must not be empty");
        }
        alerts_placeholders(c, &path, e, &GATE_PLACEHOLDERS);
    }
    match (&prometheus_url, block_if.is_empty()) {
        (Some(_), true) => c.problem(
            "alerts.block_if",
            "lists no expression, so alerts.prometheus_url would never be asked",
        ),
        (None, false) => c.problem("alerts.block_if", "needs alerts.prometheus_url"),
        _ => {}
    }
    let timeout = c.positive_secs(
        "alerts.timeout_sec",
        raw.timeout_sec,
        DEFAULT_ALERTS_TIMEOUT_SECS,
    );
    let file = |c: &mut Checker, key: &str, v: &Option<String>| {
        v.as_ref().map(|s| {
            let path = format!("alerts.{key}");
            let p = c.absolute_path(&path, s);
            if p.is_absolute() {
                c.existing_file(&path, &p);
            }
            p
        })
    };
    let ca_file = file(c, "ca_file", &raw.ca_file);
    let token_file = file(c, "bearer_token_file", &raw.bearer_token_file);
    let password_file = file(c, "basic_auth_password_file", &raw.basic_auth_password_file);
    let auth = match (token_file, raw.basic_auth_username, password_file) {
        (None, None, None) => None,
        (Some(token_file), None, None) => Some(AlertsAuth::Bearer { token_file }),
        (None, Some(username), Some(password_file)) if !username.is_empty() => {
            Some(AlertsAuth::Basic {
                username,
                password_file,
            })
        }
        (Some(_), _, _) => {
            c.problem(
                "alerts.bearer_token_file",
                "cannot be combined with basic_auth_username/basic_auth_password_file",
            );
            None
        }
        _ => {
            c.problem(
                "alerts.basic_auth_username",
                "basic authentication needs a non-empty basic_auth_username and basic_auth_password_file",
            );
            None
        }
    };
    let silence_failure = match raw.silence_failure.as_deref() {
        None | Some("block") => SilenceFailure::Block,
        Some("continue") => SilenceFailure::Continue,
        Some(other) => {
            c.problem(
                "alerts.silence_failure",
                format!("must be `block` or `continue`, got {other:?}"),
            );
            SilenceFailure::Block
        }
    };
    Some(AlertsConfig {
        alertmanager_url,
        block_on,
        ignore,
        count_silenced: raw.count_silenced.unwrap_or(false),
        count_inhibited: raw.count_inhibited.unwrap_or(false),
        prometheus_url,
        block_if,
        timeout,
        ca_file,
        auth,
        silence_during_reboot,
        silence_failure,
    })
}

/// An http(s) base URL without credentials, query or fragment; a path
/// prefix (a reverse proxy's `/alertmanager`) is kept, the trailing slash
/// is not.
fn alerts_url(c: &mut Checker, path: &str, url: &str) -> String {
    let url = url.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        c.problem(
            path,
            "must be an http:// or https:// URL such as http://127.0.0.1:9093",
        );
        return url.to_string();
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        c.problem(
            path,
            "must not carry credentials (they would show in logs); use bearer_token_file or basic_auth_*",
        );
    } else if authority.is_empty() {
        c.problem(path, format!("has no host: {url:?}"));
    } else if rest.contains(['?', '#']) {
        c.problem(
            path,
            format!("must be a base URL without query or fragment, got {url:?}"),
        );
    }
    url.to_string()
}

/// Placeholders in `text` must be among `allowed`.
fn alerts_placeholders(c: &mut Checker, path: &str, text: &str, allowed: &[&str]) {
    for name in placeholders_in(text) {
        if !allowed.contains(&name) {
            c.problem(
                path,
                format!(
                    "unknown placeholder ${{{name}}} here; known: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// The health script's `RC_ALERTS_*` variables: always set, empty (or
/// `false`) without an `alerts` section. Lists of matchers and expressions
/// hold one entry per line (a matcher may contain commas and semicolons);
/// matchers in canonical form, placeholders not expanded. No credential,
/// and no credential file, is passed on.
pub fn alerts_environment(cfg: Option<&AlertsConfig>) -> Vec<(&'static str, String)> {
    let sets = |s: &[MatcherSet]| {
        s.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let flag = |b: bool| b.to_string();
    vec![
        ("RC_ALERTS_ENABLED", flag(cfg.is_some())),
        (
            "RC_ALERTS_ALERTMANAGER_URL",
            cfg.and_then(|c| c.alertmanager_url.clone())
                .unwrap_or_default(),
        ),
        (
            "RC_ALERTS_BLOCK_ON",
            cfg.map(|c| sets(&c.block_on)).unwrap_or_default(),
        ),
        (
            "RC_ALERTS_IGNORE",
            cfg.map(|c| sets(&c.ignore)).unwrap_or_default(),
        ),
        (
            "RC_ALERTS_COUNT_SILENCED",
            flag(cfg.is_some_and(|c| c.count_silenced)),
        ),
        (
            "RC_ALERTS_COUNT_INHIBITED",
            flag(cfg.is_some_and(|c| c.count_inhibited)),
        ),
        (
            "RC_ALERTS_PROMETHEUS_URL",
            cfg.and_then(|c| c.prometheus_url.clone())
                .unwrap_or_default(),
        ),
        (
            "RC_ALERTS_BLOCK_IF",
            cfg.map(|c| {
                c.block_if
                    .iter()
                    .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default(),
        ),
        (
            "RC_ALERTS_TIMEOUT_SEC",
            cfg.map(|c| c.timeout.as_secs().to_string())
                .unwrap_or_default(),
        ),
        (
            "RC_ALERTS_CA_FILE",
            cfg.and_then(|c| c.ca_file.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        (
            "RC_ALERTS_SILENCE_DURING_REBOOT",
            cfg.map(|c| sets(&c.silence_during_reboot))
                .unwrap_or_default(),
        ),
        (
            "RC_ALERTS_SILENCE_FAILURE",
            cfg.map(|c| c.silence_failure.as_str().to_string())
                .unwrap_or_default(),
        ),
    ]
}

/// `url` with its scheme in lower case when it is http(s) with a host
/// (schemes are case-insensitive: `HTTPS://` is https).
fn webhook_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end]
        .rsplit_once('@')
        .map_or(&rest[..end], |(_, h)| h);
    ((scheme == "http" || scheme == "https") && !host.is_empty())
        .then(|| format!("{scheme}://{rest}"))
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
            "reboot_required_detectors:\n  - type: command\n    cmd: []\n  - type: bogus\nbackoff_min_sec: 10\nbackoff_max_sec: 5\nreboot_command: [reboot]\nhealth_timeout_sec: 100\netcd_endpoints: [\"http://127.0.0.1:2379\"]\n",
        );
        let want = [
            "reboot_required_detectors[0].cmd: must not be empty",
            "reboot_required_detectors[1].type: must be one of file, command, kernel, distro, got \"bogus\"",
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
            "{MINIMAL}etcd_endpoints: [\"ftp://x\", \"etcd\", \"HTTP://h:1\"]\nlock_key: /rebootctl/\nmax_concurrent_reboots: 0\ncluster_policies:\n  min_healthy_fraction: 1.5\netcd_tls:\n  enabled: true\n  ca_file: /nonexistent/ca.pem\n"
        ));
        for prefix in [
            "etcd_endpoints[0]: must be HOST:PORT, http://HOST:PORT or https://HOST:PORT, got \"ftp://x\"",
            "etcd_endpoints[1]: must be HOST:PORT",
            "etcd_endpoints[2]: \"HTTP://h:1\" is plain http but etcd_tls.enabled is true",
            "lock_key: must not be etcd_namespace \"/rebootctl\" itself",
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
    fn bare_endpoints_get_the_scheme_etcd_tls_implies() {
        let endpoints = |extra: &str| {
            parse(
                &format!(
                    "{MINIMAL}etcd_endpoints: [\"10.0.0.1:2379\", \"HTTPS://[::1]:2379/\"]\n{extra}"
                ),
                Path::new("/t.yaml"),
            )
            .unwrap()
            .etcd
            .unwrap()
            .endpoints
        };
        assert_eq!(
            endpoints(""),
            ["http://10.0.0.1:2379", "https://[::1]:2379"]
        );
        assert_eq!(
            endpoints("etcd_tls: {enabled: true}\n"),
            ["https://10.0.0.1:2379", "https://[::1]:2379"]
        );
    }

    #[test]
    fn a_lock_key_outside_the_namespace_is_a_note() {
        let c = parse(
            &format!("{MINIMAL}etcd_endpoints: [\"h:1\"]\nlock_key: /cluster/clusterrebootd/lock\nstate_dir: /var/lib/rebootctl\n"),
            Path::new("/t.yaml"),
        )
        .unwrap();
        assert_eq!(c.etcd.unwrap().lock_key, "/cluster/clusterrebootd/lock");
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
        assert!(
            c.notes[0].starts_with(
                "lock_key: /cluster/clusterrebootd/lock lies outside etcd_namespace /rebootctl"
            ),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn webhook_urls_are_shown_without_their_secrets() {
        let url = "HTTPS://bot:pw@Chat.example:8443/hooks/s3cr3t?token=t0k";
        assert_eq!(redact_url(url), "https://Chat.example:8443/<redacted>");
        assert_eq!(redact_url("http://chat.example"), "http://chat.example");
        assert_eq!(redact_url("http://chat.example/"), "http://chat.example");
        assert_eq!(redact_url("chat.example/hooks/s3cr3t"), "<redacted URL>");
        assert_eq!(redact_url("s3cr3t:x@y://h/p"), "<redacted URL>");
        assert_eq!(
            webhook_url(url).as_deref(),
            Some("https://bot:pw@Chat.example:8443/hooks/s3cr3t?token=t0k")
        );
        assert_eq!(webhook_url("ftp://h/x"), None);
        assert_eq!(webhook_url("https:///x"), None);
        assert_eq!(
            format!(
                "{:?}",
                parse(
                    &format!("{MINIMAL}notify: {{url: \"{url}\"}}\n"),
                    Path::new("/t.yaml")
                )
                .unwrap()
                .notify
            ),
            "Some(Notify { url: \"https://Chat.example:8443/<redacted>\", events: [\"reboot_started\", \"reboot_completed\", \"reboot_failed\", \"blocked_too_long\", \"reboot_ineffective\", \"node_back\", \"fleetlock_hold_expiring\"], blocked_after: 86400s, timeout: 5s, format: Slack })"
        );
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

    const ETCD: &str = "etcd_endpoints: [\"http://127.0.0.1:2379\"]\nmax_concurrent_reboots: 2\n";

    #[test]
    fn fleetlock_default_group_shares_clusterrebootds_lock_too() {
        let c = parse(
            &format!("{MINIMAL}{ETCD}clusterrebootd: {{}}\nfleetlock: {{}}\n"),
            Path::new("/t.yaml"),
        )
        .unwrap();
        let f = c.fleetlock.unwrap();
        assert_eq!(f.groups[0].lock_key, "/cluster/clusterrebootd/lock");
        assert_eq!(f.groups[0].slots, 2);
        let p = problems(&format!(
            "{MINIMAL}{ETCD}clusterrebootd: {{}}\nfleetlock: {{groups: {{workers: {{lock_key: /cluster/other}}}}}}\n"
        ));
        assert!(
            p.iter().any(|l| l.starts_with(
                "fleetlock.groups.workers.lock_key: \"/cluster/other\" must lie below"
            )),
            "{p:#?}"
        );
    }

    #[test]
    fn fleetlock_server_defaults_share_the_agents_lock() {
        let c = parse(
            &format!("{MINIMAL}{ETCD}fleetlock: {{}}\n"),
            Path::new("/t.yaml"),
        )
        .unwrap();
        let f = c.fleetlock.unwrap();
        assert_eq!(f.listen.to_string(), DEFAULT_FLEETLOCK_LISTEN);
        assert_eq!(f.max_hold, Duration::from_secs(3600));
        assert_eq!(f.hold_warning, Duration::from_secs(300));
        assert_eq!(f.groups.len(), 1);
        assert_eq!(f.groups[0].name, "default");
        assert_eq!(f.groups[0].lock_key, "/rebootctl/lock");
        assert_eq!(f.groups[0].slots, 2);
        let c = parse(
            &format!(
                "{MINIMAL}{ETCD}fleetlock:\n  max_hold_sec: 60\n  groups:\n    workers: {{windows: {{timezone: UTC, allow: [\"* 03:00-05:00\"]}}}}\n    default:\n"
            ),
            Path::new("/t.yaml"),
        )
        .unwrap();
        let f = c.fleetlock.unwrap();
        assert_eq!(f.hold_warning, Duration::from_secs(30));
        let names: Vec<(&str, &str, u32)> = f
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.lock_key.as_str(), g.slots))
            .collect();
        assert_eq!(
            names,
            [
                ("default", "/rebootctl/lock", 2),
                ("workers", "/rebootctl/lock/workers", 1)
            ]
        );
        assert_eq!(f.groups[1].windows.allow_entries(), ["* 03:00-05:00"]);
    }

    #[test]
    fn fleetlock_server_problems_name_their_keys() {
        let p = problems(&format!(
            "{MINIMAL}fleetlock:\n  listen: nowhere\n  hold_warning_sec: 4000\n  bogus: 1\n  groups:\n    bad/name: {{}}\n    pause: {{}}\n    default: {{slots: 3, lock_key: /elsewhere, typo: 1, windows: {{allow: [\"Mo 25:00-26:00\"]}}}}\n"
        ));
        for want in [
            "fleetlock.bogus: unknown key",
            "fleetlock.groups.default.typo: unknown key",
        ] {
            assert!(
                p.iter().any(|l| l.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
        let p = problems(&format!(
            "{MINIMAL}fleetlock:\n  listen: nowhere\n  hold_warning_sec: 4000\n  groups:\n    bad/name: {{}}\n    pause: {{}}\n    default: {{slots: 0, lock_key: /elsewhere, windows: {{allow: [\"Mo 25:00-26:00\"]}}}}\n    other: {{lock_key: /rebootctl/lock, slots: 3}}\n"
        ));
        for want in [
            "fleetlock: the FleetLock server decides against etcd",
            "fleetlock.listen: must be IP:PORT",
            "fleetlock.hold_warning_sec: must be less than",
            "fleetlock.groups.bad/name: \"bad/name\" is not a FleetLock group name",
            "fleetlock.groups.pause: \"pause\" is reserved",
            "fleetlock.groups.default.slots: must be at least 1",
            "fleetlock.groups.default.lock_key: \"/elsewhere\" must lie below",
            "fleetlock.groups.default.windows.allow[0]:",
        ] {
            assert!(
                p.iter().any(|l| l.starts_with(want)),
                "{want} not in {p:#?}"
            );
        }
        let p = problems(&format!(
            "{MINIMAL}{ETCD}fleetlock:\n  groups:\n    default: {{slots: 3}}\n"
        ));
        assert!(
            p.iter()
                .any(|l| l.contains("differs from max_concurrent_reboots (2)")),
            "{p:#?}"
        );
    }

    #[test]
    fn fleetlock_client_keys() {
        let c = parse(
            &format!(
                "{MINIMAL}lock_backend: fleetlock\nfleetlock_url: \"https://fl.example/base/\"\n"
            ),
            Path::new("/t.yaml"),
        )
        .unwrap();
        assert!(!c.is_cluster());
        let f = c.fleetlock_client.unwrap();
        assert_eq!(f.url, "https://fl.example/base/");
        assert_eq!(f.group, "default");
        assert_eq!(f.id, None);
        let cases = [
            ("lock_backend: fleetlock\n", "fleetlock_url: is required"),
            (
                "lock_backend: zookeeper\n",
                "lock_backend: must be `etcd` or `fleetlock`",
            ),
            (
                "fleetlock_url: \"http://x/\"\n",
                "fleetlock_url: is only used with",
            ),
            (
                "lock_backend: fleetlock\nfleetlock_url: \"http://x/base\"\n",
                "must end in '/'",
            ),
            (
                "lock_backend: fleetlock\nfleetlock_url: \"http://u:p@x/\"\n",
                "must not carry credentials",
            ),
            (
                "lock_backend: fleetlock\nfleetlock_url: \"ftp://x/\"\n",
                "must be an http:// or https:// URL",
            ),
            (
                "lock_backend: fleetlock\nfleetlock_url: \"http://x\"\nfleetlock_group: \"a b\"\n",
                "fleetlock_group: \"a b\" must match",
            ),
            (
                "lock_backend: fleetlock\nfleetlock_url: \"http://x\"\nfleetlock_id: \"\"\n",
                "fleetlock_id: must not be empty",
            ),
            (
                "lock_backend: fleetlock\nfleetlock_url: \"http://x\"\netcd_endpoints: [\"http://127.0.0.1:2379\"]\n",
                "lock_backend: fleetlock replaces etcd",
            ),
        ];
        for (extra, want) in cases {
            let p = problems(&format!("{MINIMAL}{extra}"));
            assert!(
                p.iter().any(|l| l.contains(want)),
                "{extra}: {want} not in {p:#?}"
            );
        }
    }

    #[test]
    fn clusterrebootd_puts_the_slots_below_its_lock() {
        let cluster = format!("{MINIMAL}etcd_endpoints: [\"http://127.0.0.1:2379\"]\n");
        for (text, lock_key, cooldown) in [
            (
                "clusterrebootd: {}\n",
                "/cluster/clusterrebootd/lock",
                "/reboot_cooldown",
            ),
            (
                "clusterrebootd:\n",
                "/cluster/clusterrebootd/lock",
                "/reboot_cooldown",
            ),
            (
                "clusterrebootd: {etcd_namespace: \"\", lock_key: \"\"}\n",
                "/cluster/clusterrebootd/lock",
                "/reboot_cooldown",
            ),
            (
                "clusterrebootd: {etcd_namespace: prod, lock_key: locks/reboot}\nlock_key: /prod/locks/reboot\n",
                "/prod/locks/reboot",
                "/prod/reboot_cooldown",
            ),
        ] {
            let c = parse(&format!("{cluster}{text}"), Path::new("/t.yaml"))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let e = c.etcd.unwrap();
            assert_eq!(e.lock_key, lock_key, "{text}");
            assert_eq!(e.clusterrebootd.unwrap().cooldown_key(), cooldown, "{text}");
        }
        for (text, problem) in [
            (
                format!("{cluster}clusterrebootd: {{}}\nlock_key: /rebootctl/lock\n"),
                "lock_key: \"/rebootctl/lock\" conflicts with clusterrebootd",
            ),
            (
                format!("{cluster}clusterrebootd: {{lock_key: /a/lock/}}\n"),
                "clusterrebootd.lock_key: \"/a/lock/\" ends with '/'",
            ),
            (
                format!("{MINIMAL}clusterrebootd: {{}}\n"),
                "clusterrebootd: only applies in cluster mode",
            ),
            (
                format!("{cluster}clusterrebootd: {{lock_kee: x}}\n"),
                "clusterrebootd.lock_kee: unknown key",
            ),
            (
                format!("{cluster}lock_key: /rebootctl/lock/pause\n"),
                "lock_key: \"/rebootctl/lock/pause\" collides with the pause record",
            ),
        ] {
            let p = problems(&text);
            assert!(
                p.iter().any(|l| l.starts_with(problem)),
                "{problem:?} in {p:?}"
            );
        }
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
        assert!(deserialize_fragment::<RawAlerts>(&all_null(ALERTS_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawFleetLock>(&all_null(FLEETLOCK_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawFleetLockGroup>(&all_null(FLEETLOCK_GROUP_KEYS)).is_ok());
        assert!(deserialize_fragment::<RawAuth>(&all_null(FLEETLOCK_GROUP_AUTH_KEYS)).is_ok());
    }
}

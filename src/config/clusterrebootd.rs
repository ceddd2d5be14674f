//! Reading clusterrebootd's configuration files (issue 17). Its keys are
//! rebootctl's keys; what differs is how a few values are read, and which
//! defaults apply:
//! - clusterrebootd (Go, YAML zero values) cannot tell an empty string or
//!   an empty list from an absent key, so in the keys it shares with
//!   rebootctl where it treats them as unset, rebootctl does too
//!   ([`unset_empty_values`]). `etcd_endpoints` is not one of them: an
//!   empty endpoint list never means local mode.
//! - A file that uses only keys clusterrebootd knows and names
//!   `etcd_endpoints` ([`is_clusterrebootd_file`]) gets one note per
//!   setting that rebootctl will treat differently ([`notes`]).

use serde_yaml::{Mapping, Value};

use super::{Config, METRICS_KEYS, POLICY_KEYS, TLS_KEYS};

/// clusterrebootd's top-level keys (`pkg/config/config.go`).
const TOP_KEYS: [&str; 20] = [
    "node_name",
    "reboot_required_detectors",
    "health_script",
    "health_timeout_sec",
    "health_publish_interval_sec",
    "check_interval_sec",
    "backoff_min_sec",
    "backoff_max_sec",
    "min_reboot_interval_sec",
    "lock_key",
    "lock_ttl_sec",
    "etcd_endpoints",
    "etcd_namespace",
    "etcd_tls",
    "reboot_command",
    "cluster_policies",
    "windows",
    "kill_switch_file",
    "metrics",
    "dry_run",
];
/// clusterrebootd's detector keys.
const DETECTOR_KEYS: [&str; 6] = [
    "name",
    "type",
    "path",
    "cmd",
    "success_exit_codes",
    "timeout_sec",
];
/// clusterrebootd's `windows` keys (no time zone: it uses local time).
const WINDOW_KEYS: [&str; 2] = ["deny", "allow"];
/// Top-level string keys where clusterrebootd reads `""` as unset.
const EMPTY_STRING_IS_UNSET: [&str; 5] = [
    "node_name",
    "health_script",
    "lock_key",
    "etcd_namespace",
    "kill_switch_file",
];
/// clusterrebootd's lock key when `lock_key` is unset (before its namespace).
const DEFAULT_LOCK_KEY: &str = "/cluster/clusterrebootd/lock";
/// clusterrebootd's kill switch when `kill_switch_file` is unset.
const DEFAULT_KILL_SWITCH_FILE: &str = "/etc/clusterrebootd/disable";
/// clusterrebootd's metrics address when `metrics.listen` is unset.
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9090";

/// True when every key of the file (nested ones too) is one clusterrebootd
/// knows, no detector has rebootctl's `kernel` type, and the file names
/// `etcd_endpoints` (clusterrebootd has no local mode).
pub(super) fn is_clusterrebootd_file(map: &Mapping) -> bool {
    let keys_within = |v: &Value, known: &[&str]| match v {
        Value::Mapping(m) => m
            .keys()
            .all(|k| k.as_str().is_some_and(|k| known.contains(&k))),
        _ => true,
    };
    map.contains_key("etcd_endpoints")
        && map.iter().all(|(k, v)| {
            let Some(key) = k.as_str() else { return false };
            TOP_KEYS.contains(&key)
                && match key {
                    "etcd_tls" => keys_within(v, TLS_KEYS),
                    "cluster_policies" => keys_within(v, POLICY_KEYS),
                    "windows" => keys_within(v, &WINDOW_KEYS),
                    "metrics" => keys_within(v, METRICS_KEYS),
                    "reboot_required_detectors" => match v {
                        Value::Sequence(items) => items.iter().all(|d| {
                            keys_within(d, &DETECTOR_KEYS)
                                && d.get("type").and_then(Value::as_str) != Some("kernel")
                        }),
                        _ => true,
                    },
                    _ => true,
                }
        })
}

/// Turns the empty values clusterrebootd reads as "unset" into absent
/// ones: `""` in [`EMPTY_STRING_IS_UNSET`], `metrics.listen`, the
/// `etcd_tls` files and a detector's `name` and `path`; `[]` in
/// `reboot_command`.
pub(super) fn unset_empty_values(map: &mut Mapping) {
    fn unset_empty_strings(m: &mut Mapping, keys: &[&str]) {
        for key in keys {
            if let Some(v) = m.get_mut(*key) {
                if v.as_str() == Some("") {
                    *v = Value::Null;
                }
            }
        }
    }
    unset_empty_strings(map, &EMPTY_STRING_IS_UNSET);
    if let Some(v) = map.get_mut("reboot_command") {
        if v.as_sequence().is_some_and(Vec::is_empty) {
            *v = Value::Null;
        }
    }
    if let Some(Value::Mapping(m)) = map.get_mut("metrics") {
        unset_empty_strings(m, &["listen"]);
    }
    if let Some(Value::Mapping(m)) = map.get_mut("etcd_tls") {
        unset_empty_strings(m, &["ca_file", "cert_file", "key_file"]);
    }
    if let Some(Value::Sequence(items)) = map.get_mut("reboot_required_detectors") {
        for item in items {
            if let Value::Mapping(m) = item {
                unset_empty_strings(m, &["name", "path"]);
            }
        }
    }
}

/// clusterrebootd's `applyNamespace`: `key` below `namespace`, or at the
/// root of etcd's keyspace when the namespace is empty.
fn apply_namespace(namespace: &str, key: &str) -> String {
    let key = format!("/{}", key.trim_start_matches('/'));
    match namespace.trim_matches('/') {
        "" => key,
        ns => format!("/{ns}{key}"),
    }
}

/// One note per setting of a clusterrebootd file that rebootctl treats
/// differently, each starting with its key path. `map` is the file after
/// [`unset_empty_values`], `cfg` what rebootctl made of it.
pub(super) fn notes(map: &Mapping, cfg: &Config) -> Vec<String> {
    let is_set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").trim().to_string();
    let mut notes = Vec::new();
    if !is_set(map.get("node_name")) {
        notes.push(format!(
            "node_name: not set: rebootctl uses the hostname ({}); clusterrebootd refuses to start without it",
            cfg.node_name
        ));
    }
    if !is_set(map.get("health_script")) {
        notes.push(
            "health_script: not set: rebootctl reboots without a health gate; clusterrebootd refuses to start without one"
                .to_string(),
        );
    }
    if !is_set(map.get("kill_switch_file")) {
        notes.push(format!(
            "kill_switch_file: not set: rebootctl checks {}, clusterrebootd checked {DEFAULT_KILL_SWITCH_FILE}",
            cfg.kill_switch_file.display()
        ));
    }
    if !is_set(map.get("metrics").and_then(|m| m.get("listen"))) {
        notes.push(format!(
            "metrics.listen: not set: rebootctl listens on {}, clusterrebootd on {DEFAULT_METRICS_LISTEN}",
            cfg.metrics.listen
        ));
    }
    if cfg.metrics.enabled {
        notes.push(
            "metrics: rebootctl's metrics are named rebootctl_*, clusterrebootd's clusterrebootd_*: dashboards and alerts need new queries"
                .to_string(),
        );
    }
    if let Some(etcd) = &cfg.etcd {
        let namespace = text(map.get("etcd_namespace"));
        if namespace.trim_matches('/').is_empty() {
            notes.push(format!(
                "etcd_namespace: not set: rebootctl keeps its keys under {}, clusterrebootd kept its keys at the root of etcd's keyspace",
                etcd.namespace
            ));
        }
        let lock_key = match text(map.get("lock_key")) {
            k if k.is_empty() => DEFAULT_LOCK_KEY.to_string(),
            k => k,
        };
        notes.push(format!(
            "lock_key: clusterrebootd takes its lock (an etcd mutex) at {}/, rebootctl its slots at {}/slot-<i>: without a `clusterrebootd:` key rebootctl does not see clusterrebootd's mutex; add `clusterrebootd: {{etcd_namespace: …, lock_key: …}}` to share one lock while hosts move over (see MIGRATION FROM CLUSTERREBOOTD in rebootctl.yaml(5))",
            apply_namespace(&namespace, &lock_key),
            etcd.lock_key
        ));
        if !cfg.min_reboot_interval.is_zero() {
            notes.push(format!(
                "min_reboot_interval_sec: without a `clusterrebootd:` key rebootctl keeps its own cluster cooldown and does not see clusterrebootd's ({}); with it, both agents honour both",
                apply_namespace(&namespace, "reboot_cooldown")
            ));
        }
        let p = &cfg.cluster_policies;
        if p.min_healthy_fraction.is_some()
            || p.min_healthy_absolute.is_some()
            || p.forbid_if_only_fallback_left
        {
            notes.push(format!(
                "cluster_policies: rebootctl counts the health records of rebootctl agents only, not those clusterrebootd publishes under {}/",
                apply_namespace(&namespace, "cluster_health")
            ));
        }
    }
    let raw_detectors = map
        .get("reboot_required_detectors")
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, (raw, spec)) in raw_detectors.iter().zip(&cfg.detectors).enumerate() {
        let path = format!("reboot_required_detectors[{i}]");
        let kind = text(raw.get("type"));
        if kind == "command" {
            if !is_set(raw.get("success_exit_codes")) {
                notes.push(format!(
                    "{path}: no success_exit_codes: rebootctl reads exit 0 as \"reboot required\", clusterrebootd read any non-zero exit so; list the codes"
                ));
            }
            if !is_set(raw.get("timeout_sec")) {
                notes.push(format!(
                    "{path}: no timeout_sec: rebootctl stops the command after {}s, clusterrebootd waited without limit",
                    super::DEFAULT_DETECTOR_TIMEOUT_SECS
                ));
            }
        }
        if !is_set(raw.get("name")) {
            let theirs = match kind.as_str() {
                "file" => format!("file:{}", text(raw.get("path"))),
                _ => format!("command:{}", text(raw.get("cmd").and_then(|c| c.get(0)))),
            };
            notes.push(format!(
                "{path}: no name: rebootctl calls it {}, clusterrebootd called it {theirs} (in logs and metric labels)",
                spec.name
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_namespace_is_clusterrebootds() {
        assert_eq!(
            apply_namespace("", "/cluster/clusterrebootd/lock"),
            "/cluster/clusterrebootd/lock"
        );
        assert_eq!(apply_namespace("/prod/", "lock"), "/prod/lock");
        assert_eq!(
            apply_namespace("/prod/crd", "/prod/crd/lock"),
            "/prod/crd/prod/crd/lock"
        );
    }

    fn mapping(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn dialect_is_clusterrebootds_keys_with_endpoints() {
        let crd = "node_name: a\netcd_endpoints: [\"h:1\"]\nwindows: {deny: []}\n";
        assert!(is_clusterrebootd_file(&mapping(crd)));
        for not in [
            "node_name: a\n",
            "etcd_endpoints: [\"h:1\"]\nstate_dir: /x\n",
            "etcd_endpoints: [\"h:1\"]\nwindows: {timezone: UTC}\n",
            "etcd_endpoints: [\"h:1\"]\nreboot_required_detectors: [{type: kernel}]\n",
        ] {
            assert!(!is_clusterrebootd_file(&mapping(not)), "{not}");
        }
    }

    #[test]
    fn empty_values_become_unset_only_where_clusterrebootd_reads_them_so() {
        let mut m = mapping(
            "node_name: \"\"\nreboot_command: []\netcd_endpoints: []\nstate_dir: \"\"\nmetrics: {listen: \"\"}\nreboot_required_detectors: [{name: \"\", type: file, path: \"\"}]\n",
        );
        unset_empty_values(&mut m);
        assert!(m["node_name"].is_null());
        assert!(m["reboot_command"].is_null());
        assert!(m["metrics"]["listen"].is_null());
        assert!(m["reboot_required_detectors"][0]["name"].is_null());
        assert!(m["reboot_required_detectors"][0]["path"].is_null());
        // Never the endpoints; never rebootctl's own keys.
        assert_eq!(m["etcd_endpoints"], Value::Sequence(Vec::new()));
        assert_eq!(m["state_dir"].as_str(), Some(""));
    }
}

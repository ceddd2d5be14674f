//! The effective configuration as YAML (`validate-config --show`): every
//! key rebootctl uses, with defaults applied and values normalised (bare
//! etcd endpoints with their scheme), in the file's own key names, so the
//! output is itself a valid configuration that reads back the same (the
//! FleetLock client keys and the `fleetlock` section included). The
//! webhook URL is shown redacted; no password is ever read here.

use serde_yaml::{Mapping, Value};

use super::{Config, DetectorKind, LogFormat, NotifyFormat, redact_url};

fn strings<S: AsRef<str>>(items: &[S]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::from(s.as_ref())).collect())
}

fn path(p: &std::path::Path) -> Value {
    Value::from(p.display().to_string())
}

fn mapping<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

impl Config {
    /// The effective configuration as YAML (see the module documentation).
    /// Cluster-only keys appear only in cluster mode.
    pub fn to_yaml(&self) -> String {
        let mut m = Mapping::new();
        let mut put = |k: &str, v: Value| {
            m.insert(Value::from(k), v);
        };
        put("node_name", Value::from(self.node_name.as_str()));
        let detectors = self
            .detectors
            .iter()
            .map(|d| {
                let name = ("name", Value::from(d.name.as_str()));
                match &d.kind {
                    DetectorKind::File { path: p } => {
                        mapping([name, ("type", Value::from("file")), ("path", path(p))])
                    }
                    DetectorKind::Command {
                        cmd,
                        success_exit_codes,
                        timeout,
                    } => mapping([
                        name,
                        ("type", Value::from("command")),
                        ("cmd", strings(cmd)),
                        (
                            "success_exit_codes",
                            Value::Sequence(
                                success_exit_codes.iter().map(|c| Value::from(*c)).collect(),
                            ),
                        ),
                        ("timeout_sec", Value::from(timeout.as_secs())),
                    ]),
                    DetectorKind::Kernel { root } => {
                        mapping([name, ("type", Value::from("kernel")), ("root", path(root))])
                    }
                    DetectorKind::Distro { root, timeout } => mapping([
                        name,
                        ("type", Value::from("distro")),
                        ("root", path(root)),
                        ("timeout_sec", Value::from(timeout.as_secs())),
                    ]),
                }
            })
            .collect();
        put("reboot_required_detectors", Value::Sequence(detectors));
        put(
            "health_script",
            self.health_script.as_deref().map_or(Value::Null, path),
        );
        put(
            "health_timeout_sec",
            Value::from(self.health_timeout.as_secs()),
        );
        if self.etcd.is_some() {
            put(
                "health_publish_interval_sec",
                Value::from(self.health_publish_interval.as_secs()),
            );
        }
        put(
            "check_interval_sec",
            Value::from(self.check_interval.as_secs()),
        );
        put("backoff_min_sec", Value::from(self.backoff_min.as_secs()));
        put("backoff_max_sec", Value::from(self.backoff_max.as_secs()));
        put(
            "min_reboot_interval_sec",
            Value::from(self.min_reboot_interval.as_secs()),
        );
        put(
            "reboot_timeout_sec",
            Value::from(self.reboot_timeout.as_secs()),
        );
        put("max_reboots_per_day", Value::from(self.max_reboots_per_day));
        put("kill_switch_file", path(&self.kill_switch_file));
        put("state_dir", path(&self.state_dir));
        put("boot_id_file", path(&self.boot_id_file));
        put("machine_id_file", path(&self.machine_id_file));
        if let Some(e) = &self.etcd {
            put("etcd_endpoints", strings(&e.endpoints));
            put("etcd_namespace", Value::from(e.namespace.as_str()));
            put("lock_key", Value::from(e.lock_key.as_str()));
            put("lock_ttl_sec", Value::from(e.lock_ttl.as_secs()));
            put(
                "max_concurrent_reboots",
                Value::from(e.max_concurrent_reboots),
            );
            let tls = match &e.tls {
                None => mapping([("enabled", Value::from(false))]),
                Some(t) => {
                    let mut tm = Mapping::new();
                    tm.insert("enabled".into(), Value::from(true));
                    for (k, f) in [
                        ("ca_file", &t.ca_file),
                        ("cert_file", &t.cert_file),
                        ("key_file", &t.key_file),
                    ] {
                        if let Some(f) = f {
                            tm.insert(k.into(), path(f));
                        }
                    }
                    tm.insert(
                        "insecure_skip_verify".into(),
                        Value::from(t.insecure_skip_verify),
                    );
                    Value::Mapping(tm)
                }
            };
            put("etcd_tls", tls);
            if let Some(a) = &e.auth {
                // A valid file with auth over plain http or without
                // certificate checks had to allow it.
                let insecure = e.endpoints.iter().any(|ep| ep.starts_with("http://"))
                    || e.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
                let mut am = Mapping::new();
                am.insert("username".into(), Value::from(a.username.as_str()));
                am.insert("password_file".into(), path(&a.password_file));
                if insecure {
                    am.insert("allow_insecure".into(), Value::from(true));
                }
                put("etcd_auth", Value::Mapping(am));
            }
            put(
                "etcd_watch_idle_timeout_sec",
                Value::from(e.watch_idle_timeout.as_secs()),
            );
        }
        put("reboot_command", strings(&self.reboot_command));
        if self.etcd.is_some() {
            let p = &self.cluster_policies;
            put(
                "cluster_policies",
                mapping([
                    (
                        "min_healthy_fraction",
                        p.min_healthy_fraction.map_or(Value::Null, Value::from),
                    ),
                    (
                        "min_healthy_absolute",
                        p.min_healthy_absolute.map_or(Value::Null, Value::from),
                    ),
                    (
                        "forbid_if_only_fallback_left",
                        Value::from(p.forbid_if_only_fallback_left),
                    ),
                    ("fallback_nodes", strings(&p.fallback_nodes)),
                ]),
            );
        }
        let argv = |a: &Option<Vec<String>>| a.as_deref().map_or(Value::Null, strings);
        put(
            "hooks",
            mapping([
                ("pre_reboot", argv(&self.hooks.pre_reboot)),
                ("post_reboot", argv(&self.hooks.post_reboot)),
                ("timeout_sec", Value::from(self.hooks.timeout.as_secs())),
            ]),
        );
        if let Some(n) = &self.notify {
            put(
                "notify",
                mapping([
                    ("url", Value::from(redact_url(&n.url))),
                    ("events", strings(&n.events)),
                    ("blocked_after_sec", Value::from(n.blocked_after.as_secs())),
                    ("timeout_sec", Value::from(n.timeout.as_secs())),
                    (
                        "format",
                        Value::from(match &n.format {
                            NotifyFormat::Slack => "slack",
                            NotifyFormat::Teams => "teams",
                            NotifyFormat::Template(_) => "template",
                        }),
                    ),
                    (
                        "template",
                        match &n.format {
                            NotifyFormat::Template(t) => Value::from(t.as_str()),
                            _ => Value::Null,
                        },
                    ),
                ]),
            );
        }
        put(
            "windows",
            mapping([
                ("timezone", Value::from(self.windows.timezone_name())),
                ("deny", strings(self.windows.deny_entries())),
                ("allow", strings(self.windows.allow_entries())),
            ]),
        );
        put(
            "metrics",
            mapping([
                ("enabled", Value::from(self.metrics.enabled)),
                ("listen", Value::from(self.metrics.listen.to_string())),
            ]),
        );
        put(
            "log_format",
            Value::from(match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }),
        );
        put("dry_run", Value::from(self.dry_run));
        if let Some(f) = &self.fleetlock_client {
            put("lock_backend", Value::from("fleetlock"));
            put("fleetlock_url", Value::from(f.url.as_str()));
            put("fleetlock_group", Value::from(f.group.as_str()));
            if let Some(id) = &f.id {
                put("fleetlock_id", Value::from(id.as_str()));
            }
            if let Some(a) = &f.auth {
                let mut am = Mapping::new();
                am.insert("username".into(), Value::from(a.username.as_str()));
                am.insert("password_file".into(), path(&a.password_file));
                // A valid file with auth over plain http had to allow it.
                if f.url.starts_with("http://") {
                    am.insert("allow_insecure".into(), Value::from(true));
                }
                put("fleetlock_auth", Value::Mapping(am));
            }
        }
        if let Some(f) = &self.fleetlock {
            let groups: Mapping = f
                .groups
                .iter()
                .map(|g| {
                    let mut gm = Mapping::new();
                    gm.insert("lock_key".into(), Value::from(g.lock_key.as_str()));
                    gm.insert("slots".into(), Value::from(g.slots));
                    gm.insert(
                        "windows".into(),
                        mapping([
                            ("timezone", Value::from(g.windows.timezone_name())),
                            ("deny", strings(g.windows.deny_entries())),
                            ("allow", strings(g.windows.allow_entries())),
                        ]),
                    );
                    if let Some(a) = &g.auth {
                        gm.insert(
                            "auth".into(),
                            mapping([
                                ("username", Value::from(a.username.as_str())),
                                ("password_file", path(&a.password_file)),
                            ]),
                        );
                    }
                    (Value::from(g.name.as_str()), Value::Mapping(gm))
                })
                .collect();
            put(
                "fleetlock",
                mapping([
                    ("listen", Value::from(f.listen.to_string())),
                    ("max_hold_sec", Value::from(f.max_hold.as_secs())),
                    ("hold_warning_sec", Value::from(f.hold_warning.as_secs())),
                    ("groups", Value::Mapping(groups)),
                ]),
            );
        }
        put("block_if_users_logged_in", Value::from(self.users.block));
        put(
            "users_max_postpone_sec",
            Value::from(self.users.max_postpone.as_secs()),
        );
        put(
            "users_wall_message",
            Value::from(self.users.wall_message.as_str()),
        );
        put("users_wall_command", strings(&self.users.wall_command));
        put("utmp_file", path(&self.users.utmp_file));
        serde_yaml::to_string(&Value::Mapping(m)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;

    #[test]
    fn shown_configuration_reads_back_the_same() {
        let text = "node_name: n1\nreboot_required_detectors:\n  - type: command\n    cmd: [/usr/bin/x, -r]\n  - type: kernel\n\
            etcd_endpoints: [\"10.0.0.1:2379\"]\nhooks: {pre_reboot: [/bin/true]}\n\
            notify: {url: \"HTTPS://u:p@chat.example/hooks/secret\"}\n\
            cluster_policies: {min_healthy_fraction: 0.5}\nwindows: {timezone: UTC, deny: [\"Fri 18:00-Mon 08:00\"]}\n";
        let first = parse(text, Path::new("/t.yaml")).unwrap().to_yaml();
        assert!(first.contains("http://10.0.0.1:2379"), "{first}");
        assert!(first.contains("https://chat.example/<redacted>"), "{first}");
        assert!(!first.contains("secret"), "{first}");
        let second = parse(&first, Path::new("/t.yaml")).unwrap().to_yaml();
        assert_eq!(first, second);
    }

    #[test]
    fn fleetlock_client_and_server_read_back_the_same() {
        let client = "node_name: n1\nreboot_required_detectors: [{type: kernel}]\n\
            lock_backend: fleetlock\nfleetlock_url: \"https://fl.example/base/\"\nfleetlock_id: web-1\n";
        let first = parse(client, Path::new("/t.yaml")).unwrap().to_yaml();
        assert!(first.contains("lock_backend: fleetlock"), "{first}");
        let again = parse(&first, Path::new("/t.yaml")).unwrap();
        assert!(again.fleetlock_client.is_some(), "{first}");
        assert_eq!(first, again.to_yaml());
        let server = "node_name: n1\nreboot_required_detectors: [{type: kernel}]\n\
            etcd_endpoints: [\"http://127.0.0.1:2379\"]\n\
            fleetlock:\n  groups:\n    default: {}\n    workers: {slots: 2, windows: {timezone: UTC, allow: [\"* 02:00-05:00\"]}}\n";
        let first = parse(server, Path::new("/t.yaml")).unwrap().to_yaml();
        assert!(first.contains("workers:"), "{first}");
        let again = parse(&first, Path::new("/t.yaml")).unwrap();
        assert_eq!(again.fleetlock.as_ref().map(|f| f.groups.len()), Some(2));
        assert_eq!(first, again.to_yaml());
    }

    #[test]
    fn local_mode_shows_no_cluster_key() {
        let c = parse(
            "node_name: n1\nreboot_required_detectors: [{type: kernel}]\n",
            Path::new("/t.yaml"),
        )
        .unwrap();
        let shown = c.to_yaml();
        for key in super::super::CLUSTER_ONLY_KEYS {
            assert!(!shown.contains(&format!("{key}:")), "{key} in {shown}");
        }
        assert!(parse(&shown, Path::new("/t.yaml")).is_ok(), "{shown}");
    }
}

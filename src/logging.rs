//! Logging to stderr (journald under systemd): env_logger's text format or
//! one JSON object per line with `ts`, `level`, `node`, `event`, `msg` and
//! the event's fields (SPEC §8). Fields are `log`'s key-values:
//! `log::info!(event = "slot_acquired", lock_wait_ms = 12; "took …")`.
//! `RUST_LOG` overrides the level, except for the HTTP and TLS libraries
//! (ureq, rustls): their debug and trace output dumps requests on the wire,
//! with the etcd password, the auth token and webhook URLs, so they are
//! capped at `info` whatever `RUST_LOG` says.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::kv::{Error as KvError, Key, Value as KvValue, VisitSource};
use serde_json::{Map, Value};

use crate::config::LogFormat;

/// How often an unchanged outcome is logged again as a reminder.
pub const REMINDER_INTERVAL_SECS: u64 = 3600;
/// Log targets (crates) whose debug and trace records can carry secrets.
pub const SECRET_BEARING_TARGETS: [&str; 3] = ["ureq", "ureq_proto", "rustls"];
/// The most verbose level those targets are ever logged at.
pub const SECRET_BEARING_MAX_LEVEL: log::LevelFilter = log::LevelFilter::Info;

static JSON: AtomicBool = AtomicBool::new(false);

/// True when the logger writes JSON lines (so other stderr output must too).
pub fn json_enabled() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// Installs the logger. `default_level` applies unless `RUST_LOG` is set;
/// `node` is added to every JSON line.
pub fn init(format: LogFormat, default_level: log::LevelFilter, node: &str) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(default_level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    match format {
        LogFormat::Text => {
            builder.format(|buf, record| {
                let mut fields = Fields::default();
                let _ = record.key_values().visit(&mut fields);
                let extra = if fields.0.is_empty() {
                    String::new()
                } else {
                    let pairs: Vec<String> = fields
                        .0
                        .iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => format!("{k}={s}"),
                            other => format!("{k}={other}"),
                        })
                        .collect();
                    format!(" [{}]", pairs.join(" "))
                };
                writeln!(
                    buf,
                    "rebootctl: {}: {}{extra}",
                    record.level().as_str().to_ascii_lowercase(),
                    record.args()
                )
            });
        }
        LogFormat::Json => {
            JSON.store(true, Ordering::SeqCst);
            let node = node.to_string();
            builder.format(move |buf, record| {
                let line = json_line(
                    &node,
                    record.level(),
                    &record.args().to_string(),
                    record.key_values(),
                );
                writeln!(buf, "{line}")
            });
        }
    }
    builder.target(env_logger::Target::Stderr);
    let logger = builder.build();
    let max_level = logger.filter();
    // A second init (tests, reload) keeps the first logger.
    if log::set_boxed_logger(Box::new(Capped(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}

/// True when a record of `target` at `level` must be dropped: it comes from
/// one of [`SECRET_BEARING_TARGETS`] (or a module of one) and is more
/// verbose than [`SECRET_BEARING_MAX_LEVEL`].
pub fn is_capped(target: &str, level: log::Level) -> bool {
    level > SECRET_BEARING_MAX_LEVEL
        && SECRET_BEARING_TARGETS.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// env_logger behind the cap of [`is_capped`].
struct Capped(env_logger::Logger);

impl log::Log for Capped {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        !is_capped(metadata.target(), metadata.level()) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !is_capped(record.target(), record.level()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// One JSON log line: `ts`, `level`, `node`, `event` (from the fields, or
/// "log"), `msg`, then every other field.
pub fn json_line(node: &str, level: log::Level, msg: &str, kvs: &dyn log::kv::Source) -> Value {
    let mut fields = Fields::default();
    let _ = kvs.visit(&mut fields);
    let mut obj = Map::new();
    obj.insert("ts".into(), Value::from(crate::time::timestamp_now()));
    obj.insert(
        "level".into(),
        Value::from(level.as_str().to_ascii_lowercase()),
    );
    obj.insert("node".into(), Value::from(node));
    let event = fields
        .0
        .remove("event")
        .unwrap_or_else(|| Value::from("log"));
    obj.insert("event".into(), event);
    obj.insert("msg".into(), Value::from(msg));
    for (k, v) in fields.0 {
        obj.insert(k, v);
    }
    Value::Object(obj)
}

/// Collects `log` key-values as JSON values (numbers and booleans kept).
#[derive(Default)]
struct Fields(Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), KvError> {
        let v = if let Some(b) = value.to_bool() {
            Value::from(b)
        } else if let Some(i) = value.to_i64() {
            Value::from(i)
        } else if let Some(u) = value.to_u64() {
            Value::from(u)
        } else {
            Value::from(value.to_string())
        };
        self.0.insert(key.as_str().to_string(), v);
        Ok(())
    }
}

/// Decides whether an outcome is worth a log line: when it changed, or as a
/// reminder when it has been the same for [`REMINDER_INTERVAL_SECS`].
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<(String, Instant)>,
}

impl Throttle {
    /// True when `message` at `now` should be logged (and remembers it).
    pub fn should_log(&mut self, message: &str, now: Instant) -> bool {
        let reminder = Duration::from_secs(REMINDER_INTERVAL_SECS);
        let log = match &self.last {
            Some((last, at)) => last != message || now.saturating_duration_since(*at) >= reminder,
            None => true,
        };
        if log {
            self.last = Some((message.to_string(), now));
        }
        log
    }

    /// Forgets the last message (after an error, the next outcome is news).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_logs_changes_and_reminders() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert!(t.should_log("blocked: window", t0));
        assert!(!t.should_log("blocked: window", t0 + Duration::from_secs(60)));
        assert!(t.should_log("blocked: health", t0 + Duration::from_secs(120)));
        assert!(!t.should_log("blocked: health", t0 + Duration::from_secs(3000)));
        assert!(t.should_log(
            "blocked: health",
            t0 + Duration::from_secs(120 + REMINDER_INTERVAL_SECS)
        ));
        t.reset();
        assert!(t.should_log(
            "blocked: health",
            t0 + Duration::from_secs(120 + REMINDER_INTERVAL_SECS)
        ));
    }

    #[test]
    fn secret_bearing_libraries_are_capped_at_info() {
        use log::Level::{Debug, Info, Trace, Warn};
        for target in ["ureq", "ureq::run", "ureq_proto::util", "rustls::client"] {
            assert!(is_capped(target, Trace), "{target}");
            assert!(is_capped(target, Debug), "{target}");
            assert!(!is_capped(target, Info), "{target}");
            assert!(!is_capped(target, Warn), "{target}");
        }
        for target in ["rebootctl::etcd", "ureqx", "rustlsish", "tiny_http"] {
            assert!(!is_capped(target, Trace), "{target}");
        }
    }

    #[test]
    fn json_lines_carry_the_event_fields() {
        let kvs: [(&str, KvValue); 3] = [
            ("event", KvValue::from("slot_acquired")),
            ("lock_wait_ms", KvValue::from(12u64)),
            ("detector", KvValue::from("kernel")),
        ];
        let v = json_line("web-1", log::Level::Info, "took slot-0", &kvs);
        assert_eq!(v["event"], "slot_acquired");
        assert_eq!(v["lock_wait_ms"], 12);
        assert_eq!(v["detector"], "kernel");
        assert_eq!(v["node"], "web-1");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "took slot-0");
        assert!(v["ts"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok());
        let plain = json_line("n", log::Level::Warn, "x", &[] as &[(&str, KvValue); 0]);
        assert_eq!(plain["event"], "log");
    }
}

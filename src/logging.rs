//! Logging to stderr (journald under systemd): env_logger's text format or
//! one JSON object per line (SPEC §8). `RUST_LOG` overrides the level.

use std::io::Write;

use crate::config::LogFormat;

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
                writeln!(
                    buf,
                    "rebootctl: {}: {}",
                    record.level().as_str().to_ascii_lowercase(),
                    record.args()
                )
            });
        }
        LogFormat::Json => {
            let node = node.to_string();
            builder.format(move |buf, record| {
                let line = serde_json::json!({
                    "ts": jiff::Timestamp::now().to_string(),
                    "level": record.level().as_str().to_ascii_lowercase(),
                    "node": node,
                    "msg": record.args().to_string(),
                });
                writeln!(buf, "{line}")
            });
        }
    }
    builder.target(env_logger::Target::Stderr);
    // A second init (tests, reload) keeps the first logger.
    let _ = builder.try_init();
}

//! The long-running `rebootctl run` (SPEC §5): pass after pass on one
//! thread, waiting on the event channel with a deadline so a signal or a
//! reload ends the wait at once; transient errors back off with jitter.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::backoff;
use crate::config::{self, Config};
use crate::coordinator::Cluster;
use crate::error::Result;
use crate::events::{Event, SignalThread};
use crate::orchestrator::{self, Options};
use crate::outcome::Outcome;

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code (0, or the
/// code of the last pass when it was blocked or failed).
pub fn run(mut cfg: Config, opts: Options) -> Result<u8> {
    let cluster = if cfg.is_cluster() {
        Some(Cluster::connect(&cfg)?)
    } else {
        None
    };
    let (tx, rx) = mpsc::channel();
    let signals = SignalThread::start(tx)?;
    log::info!(
        "rebootctl {} started: node {}, {} mode{}",
        env!("CARGO_PKG_VERSION"),
        cfg.node_name,
        if cfg.is_cluster() { "cluster" } else { "local" },
        if opts.dry_run || cfg.dry_run {
            ", dry-run"
        } else {
            ""
        }
    );
    let mut last_message = String::new();
    let mut errors: u32 = 0;
    let code = loop {
        let last_code;
        let wait = match orchestrator::run_pass(&cfg, opts, cluster.as_ref()) {
            Ok(report) => {
                errors = 0;
                last_code = report.outcome.exit_code();
                let message = report.outcome.to_string();
                if message != last_message {
                    log::info!("{message}");
                    last_message = message;
                }
                if report.outcome == Outcome::RebootIssued {
                    // The machine is going down; wait for it without new passes.
                    cfg.reboot_timeout
                } else {
                    cfg.check_interval
                }
            }
            Err(e) => {
                errors += 1;
                last_code = e.exit_code();
                let wait =
                    backoff::delay(errors, cfg.backoff_min, cfg.backoff_max, backoff::jitter());
                log::error!(
                    "pass failed: {e}; retrying in {}",
                    crate::report::human_duration(wait)
                );
                last_message.clear();
                wait
            }
        };
        match wait_for_event(&rx, wait) {
            Some(Event::Stop(sig)) => {
                log::info!("received signal {sig}; stopping");
                break last_code;
            }
            Some(Event::Reload) => cfg = reload(cfg),
            Some(Event::SlotReleased(_)) | None => {}
        }
    };
    signals.close();
    Ok(code)
}

/// Waits up to `wait` for one event; None when the deadline passed.
fn wait_for_event(rx: &mpsc::Receiver<Event>, wait: Duration) -> Option<Event> {
    let deadline = Instant::now() + wait;
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(ev) => Some(ev),
        Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
    }
}

/// Re-reads the configuration; an invalid file keeps the old one running.
fn reload(old: Config) -> Config {
    match config::load(&old.source) {
        Ok(new) => {
            let ignored = old.restart_only_changes(&new);
            if !ignored.is_empty() {
                log::warn!(
                    "configuration reloaded; changes to {} need a restart and are ignored until then",
                    ignored.join(", ")
                );
            } else {
                log::info!("configuration reloaded from {}", new.source.display());
            }
            Config {
                node_name: old.node_name.clone(),
                etcd: old.etcd.clone(),
                metrics: old.metrics.clone(),
                ..new
            }
        }
        Err(e) => {
            log::error!("reload rejected, keeping the running configuration: {e}");
            old
        }
    }
}

//! The long-running `rebootctl run` (SPEC §5, §8): pass after pass on the
//! main thread, waiting on one event channel with a deadline so a signal, a
//! reload or a lock release ends the wait at once. Helper threads: signals,
//! the heartbeat, the etcd watches and the metrics server. Transient errors
//! back off with jitter; outcomes are logged when they change.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::agent::events::{Event, SignalThread};
use crate::agent::heartbeat::{Control, Heartbeat};
use crate::agent::metrics::{Metrics, MetricsServer};
use crate::agent::phase::{Agent, Phase};
use crate::backoff;
use crate::cluster::Cluster;
use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::etcd::WatchEvent;
use crate::host::notify::Notifier;
use crate::logging::Throttle;
use crate::pass::outcome::{Block, Outcome};
use crate::pass::report::{PassEvent, PassReport};
use crate::pass::{self, Options};
use crate::time::human_duration;

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code (0, or the
/// code of the last pass when it was blocked or failed).
pub fn run(cfg: Config, opts: Options) -> Result<u8> {
    let cluster = if cfg.is_cluster() {
        Some(Cluster::connect(&cfg)?)
    } else {
        None
    };
    let metrics = Metrics::new();
    let server = if cfg.metrics.enabled {
        Some(MetricsServer::start(cfg.metrics.listen, metrics.clone())?)
    } else {
        None
    };
    let notifier = Notifier::new(cfg.notify.as_ref(), &cfg.node_name);
    let (tx, rx) = mpsc::channel();
    let signals = SignalThread::start(tx.clone())?;
    let heartbeat = cluster
        .as_ref()
        .map(|c| Heartbeat::start(c.clone(), cfg.clone(), tx.clone()));
    log::info!(
        event = "started";
        "rebootctl {} started: node {}, {} mode{}{}",
        env!("CARGO_PKG_VERSION"),
        cfg.node_name,
        if cfg.is_cluster() {
            "cluster"
        } else if cfg.fleetlock_client.is_some() {
            "fleetlock client"
        } else {
            "local"
        },
        if opts.dry_run || cfg.dry_run { ", dry-run" } else { "" },
        match &server {
            Some(s) => format!(", metrics on http://{}/metrics", s.local_addr()),
            None => String::new(),
        }
    );
    // FleetLock client (issue 13): steady-state first, as Zincati does.
    pass::fleetlock::steady_state_on_start(&cfg);
    let mut daemon = Daemon {
        cfg,
        opts,
        cluster,
        metrics,
        notifier,
        heartbeat,
        events: tx,
        watching: Vec::new(),
        throttle: Throttle::default(),
        errors: 0,
        lock_attempts: 0,
        agent: Agent::default(),
    };
    let code = daemon.main_loop(&rx);
    log::info!(event = "stopped"; "stopping with exit code {code}");
    if let Some(s) = server {
        s.stop();
    }
    if let Some(h) = daemon.heartbeat.take() {
        h.stop();
    }
    let grace = daemon
        .cfg
        .notify
        .as_ref()
        .map(|n| n.timeout)
        .unwrap_or_default();
    daemon.notifier.shutdown(grace);
    signals.close();
    Ok(code)
}

struct Daemon {
    cfg: Config,
    opts: Options,
    cluster: Option<Cluster>,
    metrics: Metrics,
    notifier: Notifier,
    heartbeat: Option<Heartbeat>,
    events: Sender<Event>,
    /// The prefixes whose watch is running.
    watching: Vec<String>,
    throttle: Throttle,
    errors: u32,
    lock_attempts: u32,
    /// Where the agent stands; changed only through `transition_to`.
    agent: Agent,
}

impl Daemon {
    fn main_loop(&mut self, rx: &Receiver<Event>) -> u8 {
        loop {
            self.ensure_watches();
            let (code, how_long) = self.pass();
            let ended = Instant::now();
            let mut deadline = ended + how_long;
            // A wake-up (watch, SIGHUP) brings the next pass forward, never
            // closer than the minimum spacing to the end of this one.
            let earliest = ended + min_pass_spacing(&self.cfg);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(Event::Stop(sig)) => {
                        log::info!(event = "signal", signal = sig; "received signal {sig}");
                        return code;
                    }
                    Ok(Event::Reload) => {
                        self.reload();
                        if !self.agent.phase().reboot_under_way() {
                            deadline = deadline.min(earliest);
                        }
                    }
                    Ok(Event::Wake { why, deleted }) => {
                        let own = match (&deleted, &self.cluster) {
                            (Some((key, rev)), Some(c)) => c.lock.caused_by_me(key, *rev),
                            _ => false,
                        };
                        if own {
                            log::debug!("not woken by our own write: {why}");
                        } else if self.agent.phase().wakes_on_release() {
                            log::debug!("woken: {why}");
                            deadline = deadline.min(earliest);
                        }
                    }
                    Ok(Event::Heartbeat { healthy, .. }) => {
                        let result = if healthy { "healthy" } else { "unhealthy" };
                        self.metrics.inc_health_check("heartbeat", result);
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    // Cannot happen while we hold a sender; treat as a tick.
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
    }

    /// One pass with its bookkeeping; returns its exit code and how long
    /// to wait before the next one.
    fn pass(&mut self) -> (u8, Duration) {
        self.enter(Phase::Checking);
        let opts = Options {
            lock_attempts: self.lock_attempts,
            ..self.opts
        };
        let result = pass::run_pass(&self.cfg, opts, self.cluster.as_ref(), &self.notifier);
        self.metrics.set_last_pass_now();
        match result {
            Ok(report) => {
                self.errors = 0;
                self.record(&report);
                self.enter(Phase::after(&report.outcome, Instant::now()));
                let how_long = if self.agent.phase().reboot_under_way() {
                    // The machine is going down; if it has not after
                    // reboot_timeout_sec, the next pass gives the reboot up.
                    self.cfg.reboot_timeout
                } else {
                    self.cfg.check_interval
                };
                (report.outcome.exit_code(), how_long)
            }
            Err(e @ Error::RebootCommandFailed { .. }) => {
                // The command may have started a shutdown before it failed
                // or timed out: no new pass (which would release the slot)
                // until the reboot had its time.
                log::error!(
                    event = "reboot_failed", error_kind = e.kind();
                    "{e}; waiting {} for a reboot before the next pass",
                    human_duration(self.cfg.reboot_timeout)
                );
                self.throttle.reset();
                self.enter(Phase::RebootFailed {
                    since: Instant::now(),
                });
                (e.exit_code(), self.cfg.reboot_timeout)
            }
            Err(e) => {
                self.errors += 1;
                let delay = backoff::delay(
                    self.errors,
                    self.cfg.backoff_min,
                    self.cfg.backoff_max,
                    backoff::jitter(),
                );
                log::error!(
                    event = "pass_failed", attempt = self.errors, error_kind = e.kind();
                    "pass failed: {e}; retrying in {}",
                    human_duration(delay)
                );
                self.throttle.reset();
                self.enter(Phase::Backoff {
                    errors: self.errors,
                });
                (e.exit_code(), delay)
            }
        }
    }

    /// Moves to `next`. The loop only makes changes the phase machine
    /// allows (a pass between any two phases), so a refusal is a bug; it
    /// is logged and the phase stays.
    fn enter(&mut self, next: Phase) {
        if let Err(refused) = self.agent.transition_to(next, &self.metrics) {
            log::error!("{refused}");
        }
    }

    /// Logs (on change), counts and notifies what a pass did.
    fn record(&mut self, report: &PassReport) {
        let message = report.outcome.to_string();
        let blocked_by = match &report.outcome {
            Outcome::Blocked(b) => Some(b.label()),
            _ => None,
        };
        if let Outcome::Blocked(Block::NoSlot(_)) = report.outcome {
            self.lock_attempts += 1;
        } else {
            self.lock_attempts = 0;
        }
        if self.throttle.should_log(&message, Instant::now()) {
            log::info!(
                event = "pass", outcome = report.outcome.label(), blocked_by = blocked_by.unwrap_or(""),
                attempt = self.lock_attempts;
                "{message}"
            );
        }
        if let Some(r) = report.reboot_required {
            self.metrics.set_reboot_required(r);
        }
        for ev in &report.events {
            match ev {
                PassEvent::HealthChecked { phase, healthy } => self
                    .metrics
                    .inc_health_check(phase, if *healthy { "healthy" } else { "unhealthy" }),
                PassEvent::SlotAcquired(took) => self.metrics.observe_lock_acquire(*took),
                PassEvent::RebootCompleted => self.metrics.inc_reboots(),
                PassEvent::RebootStarted | PassEvent::RebootFailed => {}
            }
        }
        self.metrics.set_lock_held(report.holding_slot);
        let conflict = matches!(report.outcome, Outcome::Blocked(Block::NameConflict(_)))
            || self
                .cluster
                .as_ref()
                .is_some_and(|c| c.name_conflict().is_some());
        self.metrics.set_name_conflict(conflict);
        self.notifier.note_blocked(blocked_by, Instant::now());
        if let Some(h) = &self.heartbeat {
            h.update(Control::RebootRequired(report.reboot_required));
        }
    }

    /// Starts the watch streams that wake a waiting node (cluster mode),
    /// each once: one on the control prefix `<ns>/lock/`, and a second on
    /// `<lock_key>/` only when the lock lies outside it (clusterrebootd's).
    /// Only deletions of this group's slots and mutex keys, the pause and
    /// the cooldown wake ([`crate::cluster::keys::Keys::wakes`]).
    fn ensure_watches(&mut self) {
        let Some(c) = &self.cluster else { return };
        for prefix in c.keys.watch_prefixes() {
            if self.watching.contains(&prefix) {
                continue;
            }
            let tx = self.events.clone();
            let keys = c.keys.clone();
            let started = c.client.watch_prefix(&prefix, 0, move |ev| {
                let wake = match ev {
                    WatchEvent::Delete { key, revision } if keys.wakes(&key) => Some(Event::Wake {
                        why: format!("{key} went away"),
                        deleted: Some((key, revision)),
                    }),
                    WatchEvent::Compacted { .. } | WatchEvent::Reconnected => Some(Event::Wake {
                        why: "the watch was re-established".to_string(),
                        deleted: None,
                    }),
                    WatchEvent::Delete { .. } | WatchEvent::Put(_) | WatchEvent::Error(_) => None,
                };
                match wake {
                    Some(ev) => tx.send(ev).is_ok(),
                    None => true,
                }
            });
            match started {
                Ok(_) => self.watching.push(prefix),
                Err(e) => {
                    log::warn!(
                        "cannot watch {prefix} (waiting nodes fall back to check_interval_sec): {e}"
                    );
                    return;
                }
            }
        }
    }

    /// SIGHUP: re-reads the configuration; an invalid file keeps the old one.
    fn reload(&mut self) {
        match config::load(&self.cfg.source) {
            Ok(new) if new.health_timeout >= self.running_lock_ttl() => {
                log::error!(
                    event = "reload_rejected";
                    "reload rejected, keeping the running configuration: health_timeout_sec ({}) must stay below the running lock_ttl_sec ({}), which changes only with a restart",
                    new.health_timeout.as_secs(),
                    self.running_lock_ttl().as_secs()
                );
            }
            Ok(new) => {
                let ignored = self.cfg.restart_only_changes(&new);
                if ignored.is_empty() {
                    log::info!(event = "reload"; "configuration reloaded from {}", new.source.display());
                } else {
                    log::warn!(
                        event = "reload";
                        "configuration reloaded; changes to {} need a restart and are ignored until then",
                        ignored.join(", ")
                    );
                }
                let new = Config {
                    node_name: self.cfg.node_name.clone(),
                    etcd: self.cfg.etcd.clone(),
                    metrics: self.cfg.metrics.clone(),
                    state_dir: self.cfg.state_dir.clone(),
                    boot_id_file: self.cfg.boot_id_file.clone(),
                    machine_id_file: self.cfg.machine_id_file.clone(),
                    fleetlock_client: self.cfg.fleetlock_client.clone(),
                    ..new
                };
                if let Some(h) = &self.heartbeat {
                    h.update(Control::Config(Box::new(new.clone())));
                }
                self.notifier = Notifier::new(new.notify.as_ref(), &new.node_name);
                self.cfg = new;
                self.throttle.reset();
            }
            Err(e) => {
                log::error!(event = "reload_rejected"; "reload rejected, keeping the running configuration: {e}");
            }
        }
    }
}

/// The shortest time between the end of a pass and the start of the next
/// one that a wake-up (a lock release seen by the watch, SIGHUP) may bring
/// forward: `backoff_min_sec`, at least [`MIN_PASS_SPACING`]. Whatever
/// wakes the agent, even its own writes coming back through the watch, it
/// cannot run passes back to back. The timer (`check_interval_sec`) and
/// the error backoff keep their own, longer waits.
pub fn min_pass_spacing(cfg: &Config) -> Duration {
    cfg.backoff_min.max(MIN_PASS_SPACING)
}

/// The floor of [`min_pass_spacing`].
pub const MIN_PASS_SPACING: Duration = Duration::from_secs(2);

impl Daemon {
    /// The lease TTL of a checking slot as running (`etcd_*` keys need a
    /// restart); unbounded in local mode.
    fn running_lock_ttl(&self) -> Duration {
        self.cfg
            .etcd
            .as_ref()
            .map(|e| e.lock_ttl)
            .unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_spaced_by_backoff_min_but_at_least_two_seconds() {
        let cfg = |min: u64| {
            let text = format!(
                "reboot_required_detectors: [{{type: file, path: /run/reboot-required}}]\nbackoff_min_sec: {min}\n"
            );
            config::parse(&text, std::path::Path::new("/t.yaml")).unwrap()
        };
        for (min, want) in [(1, 2), (2, 2), (5, 5), (30, 30)] {
            assert_eq!(min_pass_spacing(&cfg(min)), Duration::from_secs(want));
        }
    }
}

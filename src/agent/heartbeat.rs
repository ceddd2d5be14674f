//! The health heartbeat (SPEC §6, §8): a thread that runs the health script
//! with `RC_PHASE=heartbeat` every `health_publish_interval_sec` and
//! publishes this node's health record into etcd, also while the kill
//! switch is set (it blocks reboots, not reporting). Results go to the main
//! loop as [`Event::Heartbeat`].
//!
//! Publishing renews one lease and writes the record only when it changed
//! ([`Cluster::publish_health`]): one etcd request per beat on an idle node.
//! The beat stays on its own thread rather than on the main loop's
//! deadlines because a pass can run for minutes (hooks, health checks under
//! the lock, a reboot command) and a record that lapsed meanwhile would
//! make this node count as down in every other node's cluster policies.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::agent::events::Event;
use crate::cluster::Cluster;
use crate::cluster::records::HealthRecord;
use crate::config::Config;
use crate::host::health::{self, Phase};

/// What the main loop tells the heartbeat.
#[derive(Debug)]
pub enum Control {
    /// A reloaded configuration.
    Config(Box<Config>),
    /// Whether the last pass found a reboot required.
    RebootRequired(Option<bool>),
}

/// The heartbeat thread; [`Heartbeat::stop`] ends and joins it.
pub struct Heartbeat {
    tx: Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts the heartbeat for `cluster`, reporting to `events`.
    pub fn start(cluster: Cluster, cfg: Config, events: Sender<Event>) -> Heartbeat {
        let (tx, rx) = mpsc::channel::<Control>();
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || run(cluster, cfg, &rx, &events))
            .map_err(|e| log::error!("cannot start the heartbeat thread: {e}"))
            .ok();
        Heartbeat { tx, thread }
    }

    /// Sends the heartbeat news from the main loop.
    pub fn update(&self, control: Control) {
        let _ = self.tx.send(control);
    }

    /// Stops the thread (after its current check) and waits for it.
    pub fn stop(self) {
        drop(self.tx);
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}

fn run(cluster: Cluster, mut cfg: Config, rx: &mpsc::Receiver<Control>, events: &Sender<Event>) {
    let mut reboot_required = None;
    // A fixed schedule: news from the main loop must not postpone the beat.
    let mut next_beat = Instant::now() + cfg.health_publish_interval;
    loop {
        match rx.recv_timeout(next_beat.saturating_duration_since(Instant::now())) {
            Ok(Control::Config(new)) => {
                cfg = *new;
                continue;
            }
            Ok(Control::RebootRequired(r)) => {
                reboot_required = r;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        next_beat = Instant::now() + cfg.health_publish_interval;
        let boot_id = crate::host::state::read_boot_id(&cfg.boot_id_file).unwrap_or_default();
        let (healthy, reason) = match health::check(&cfg, &health::Context::new(Phase::Heartbeat)) {
            Ok(r) => (r.healthy, r.reason),
            Err(e) => (false, e.to_string()),
        };
        let record = HealthRecord {
            node: cfg.node_name.clone(),
            healthy,
            phase: Phase::Heartbeat.as_str().to_string(),
            reason,
            checked_at: crate::time::timestamp_now(),
            boot_id,
            reboot_required,
            // Stamped by publish_health.
            pid: 0,
            machine_id: crate::host::state::read_machine_id(&cfg.machine_id_file),
            name_conflict: None,
        };
        let published = cluster.publish_health(&record, cfg.health_publish_interval * 3);
        match &published {
            Ok(how) => log::trace!("heartbeat: {how:?}"),
            Err(e) => {
                log::warn!(event = "heartbeat_failed"; "cannot publish the health record: {e}")
            }
        }
        if events
            .send(Event::Heartbeat {
                healthy,
                published: published.is_ok(),
            })
            .is_err()
        {
            return;
        }
    }
}

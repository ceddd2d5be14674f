//! The main loop's one channel: signals (through signal-hook), wake-ups
//! from the etcd watch and heartbeat results all arrive as [`Event`]s on a
//! `std::sync::mpsc` channel.

use std::sync::mpsc::Sender;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::error::{Error, Result};

/// Something that wakes the main loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT: stop.
    Stop(i32),
    /// SIGHUP: re-read the configuration.
    Reload,
    /// A lock slot, the pause or the cooldown went away (cluster mode):
    /// a waiting node should try again now — unless the deletion was its
    /// own (the main loop checks with [`crate::cluster::lock::Lock::caused_by_me`]).
    Wake {
        /// Why, for the debug log.
        why: String,
        /// The deleted key and the revision of the deletion (none when the
        /// watch was re-established and events may have been missed).
        deleted: Option<(String, i64)>,
    },
    /// The heartbeat ran the health script.
    Heartbeat {
        /// Its verdict.
        healthy: bool,
        /// Whether the record reached etcd.
        published: bool,
    },
}

/// The signal thread; [`SignalThread::close`] stops and joins it.
pub struct SignalThread {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    /// Starts forwarding SIGTERM, SIGINT and SIGHUP into `tx`. A stop
    /// signal also cancels running health scripts, detectors and hooks
    /// (never the reboot command) so the pass ends and releases its slot.
    pub fn start(tx: Sender<Event>) -> Result<SignalThread> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map_err(|e| Error::Runtime(format!("cannot install signal handlers: {e}")))?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let ev = if sig == SIGHUP {
                        Event::Reload
                    } else {
                        crate::host::process::cancel_all();
                        Event::Stop(sig)
                    };
                    if tx.send(ev).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the signal thread: {e}")))?;
        Ok(SignalThread {
            handle,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn close(mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! The main loop's one channel: signals (through signal-hook) and, in
//! cluster mode, lock releases from the watch and heartbeat results all
//! arrive as [`Event`]s on a `std::sync::mpsc` channel.

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
    /// A lock slot was released (cluster mode).
    SlotReleased(String),
}

/// The signal thread; [`SignalThread::close`] stops and joins it.
pub struct SignalThread {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalThread {
    /// Starts forwarding SIGTERM, SIGINT and SIGHUP into `tx`.
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

//! `host/` — this machine: child processes ([`process`], the only place
//! that spawns), reboot-need detectors, the health script, the actions of a
//! reboot (hooks, reboot command, placeholders), the state that survives a
//! reboot (the reboot record, the log of completed reboots), and webhook
//! notifications. It may import only the top-level
//! leaves (`config`, `error`, `time`, `window`, `backoff`, `logging`);
//! never `etcd/`, `cluster/` or anything above.

pub mod actions;
pub mod detector;
pub mod distro;
pub mod health;
pub mod notify;
pub mod process;
pub mod reboot_log;
pub mod sessions;
pub mod state;

//! `agent/` — the long-running `rebootctl run`: the daemon loop, its event
//! channel and signal thread, the health heartbeat and the metrics server.
//! It may import `pass/`, `cluster/`, `etcd/`, `host/` and the top-level
//! leaves; only `cli/` imports it.

pub mod daemon;
pub mod events;
pub mod heartbeat;
pub mod metrics;
pub mod phase;

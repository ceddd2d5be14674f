//! rebootctl: coordinated, health-gated reboots for a fleet of Linux hosts.
//!
//! The binary in `src/main.rs` is a thin shell over this library. The
//! folders are layers, and imports only point down (checked by the
//! `layering` test):
//!
//! ```text
//! cli → agent → pass → { cluster → etcd, host }
//! ```
//!
//! with the leaves `config`, `error`, `time`, `window`, `backoff`,
//! `logging`, `matcher` and `exposition` usable from every layer. `alerts`
//! (Alertmanager, Prometheus) sits beside `host`, used by `pass`;
//! `fleetlock` (issue 13) beside `pass`: its server uses `cluster`, its
//! client is used by `pass`. `testing` is the test harness.

pub mod agent;
pub mod alerts;
pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod etcd;
pub mod exposition;
pub mod fleetlock;
pub mod host;
pub mod logging;
pub mod matcher;
pub mod pass;
pub mod time;
pub mod window;

#[doc(hidden)]
pub mod testing;

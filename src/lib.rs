//! rebootctl: coordinated, health-gated reboots for a fleet of Linux hosts.
//!
//! The binary in `src/main.rs` is a thin shell over this library; every
//! module owns one concept (see STYLE.md).

pub mod alerts;
pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod daemon;
pub mod detector;
pub mod error;
pub mod etcd;
pub mod events;
pub mod health;
pub mod heartbeat;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod orchestrator;
pub mod outcome;
pub mod process;
pub mod reboot;
pub mod report;
pub mod state;
pub mod window;

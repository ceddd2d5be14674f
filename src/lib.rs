//! rebootctl: coordinated, health-gated reboots for a fleet of Linux hosts.
//!
//! The binary in `src/main.rs` is a thin shell over this library; every
//! module owns one concept (see STYLE.md).

pub mod config;
pub mod error;
pub mod etcd;
pub mod window;

//! Shared helpers of the integration tests: a temp-dir fixture with a
//! config, fake scripts and a runner for the real binary. The real etcd
//! and the fleet harness are `rebootctl::testing`, shared with
//! `examples/fleet.rs`.

pub mod fixture;
pub mod monitoring;
pub mod utmp;

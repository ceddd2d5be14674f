//! Shared helpers of the integration tests: a temp-dir fixture with a
//! config, fake scripts and a runner for the real binary; a real etcd, and a
//! real Alertmanager and Prometheus, each started on free loopback ports.
#![allow(dead_code)]

pub mod etcd;
pub mod fixture;
pub mod fleet;
pub mod monitoring;

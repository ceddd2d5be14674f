//! Shared helpers of the integration tests: a temp-dir fixture with a
//! config, fake scripts and a runner for the real binary, and a real etcd
//! started on a free loopback port.
#![allow(dead_code)]

pub mod etcd;
pub mod fixture;
pub mod fleet;
pub mod proxy;

//! The integration tests: one binary (as ripgrep does), so the shared
//! helpers in `common` are compiled once and need no `#[allow(dead_code)]`.
//! Each feature is a module; run one with `cargo test --test tests <module>::`.

mod common;

mod cluster_mode;
mod daemon;
mod docs;
mod etcd_client;
mod fleet;
mod fleetlock;
mod layering;
mod local_mode;

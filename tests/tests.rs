//! The integration tests: one binary (as ripgrep does), so the shared
//! helpers in `common` are compiled once and need no `#[allow(dead_code)]`.
//! Each feature is a module; run one with `cargo test --test tests <module>::`.

mod common;

mod alerts;
mod cluster_mode;
mod daemon;
mod docs;
mod dry_run;
mod etcd_client;
mod fleet;
mod layering;
mod local_mode;
mod name_conflict;
mod reboot_loop;

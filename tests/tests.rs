//! The integration tests: one binary (as ripgrep does), so the shared
//! helpers in `common` are compiled once and need no `#[allow(dead_code)]`.
//! Each feature is a module; run one with `cargo test --test tests <module>::`.

mod common;

mod alerts;
mod chaos;
mod cluster_mode;
mod clusterrebootd;
mod config_file;
mod daemon;
mod distro;
mod docs;
mod dry_run;
mod etcd_client;
mod fleet;
mod fleetlock;
mod holding;
mod kernel_detector;
mod keyspace;
mod layering;
mod local_mode;
mod lock_limit;
mod name_conflict;
mod operator;
mod reboot_loop;
mod rollout;
mod state_dir;
mod stuck;
mod users;
mod watch;

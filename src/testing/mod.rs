//! `testing/` — the harness shared by the integration tests (`tests/`) and
//! the fleet demo and benchmark (`examples/fleet.rs`): a real etcd on a
//! free loopback port (or a cluster of several members), throwaway TLS
//! certificates, N simulated nodes with fake power cycles and an invariant
//! checker, a loopback TCP proxy that misbehaves like a NAT, and what the
//! benchmarks measure of a process (`/proc`) and of etcd. Not part of the agent:
//! hidden from the docs, imported by nothing in `src/`, and it may import
//! only `etcd/` and `config`.
//!
//! It lives in the library rather than under `tests/` so that one copy is
//! compiled for both `tests/tests.rs` and the example without `#[path]`
//! includes, and so that no `#[allow(dead_code)]` is needed for the parts
//! only one of them uses; the release binary links none of it.

pub mod etcd;
pub mod fleet;
pub mod measure;
pub mod proxy;
pub mod svg;

//! `fleetlock/` — the FleetLock protocol (issue 13) in both directions:
//! [`server`] is `rebootctl fleetlock serve`, which answers Zincati and
//! other FleetLock clients from rebootctl's own lock in etcd;
//! [`client`] lets an agent take its lock from a FleetLock server
//! (`lock_backend: fleetlock`); [`protocol`] is what both agree on (paths,
//! header, body, the bounded error kinds and their status codes) and
//! [`appid`] derives a client id from the machine id. It may import
//! `cluster/`, `etcd/`, `host/` and the top-level leaves; `pass/` imports
//! the client, `agent/` and `cli/` the rest.
//!
//! The protocol is coreos/zincati's `docs/development/fleetlock/protocol.md`:
//! a counting semaphore with recursive, owned locks; `POST
//! <base>v1/pre-reboot` takes a slot, `POST <base>v1/steady-state` gives it
//! back, both with `fleet-lock-protocol: true` and a body
//! `{"client_params": {"id": …, "group": …}}`; 200 is success, anything
//! else a failure with a JSON body `{"kind", "value"}`.

pub mod appid;
pub mod client;
pub mod metrics;
pub mod protocol;
pub mod server;

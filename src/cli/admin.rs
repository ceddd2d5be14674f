//! The admin commands of cluster mode (SPEC §2): `lock`, `unlock`,
//! `pause`, `resume`, `nodes` and `forget`, each one etcd connection and a
//! few reads or writes through [`crate::cluster::Cluster`]. `lock`, `nodes`
//! and `unlock` also cover FleetLock clients (issue 13).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use crate::cluster::Cluster;
use crate::cluster::lock::Slot;
use crate::cluster::records::PauseRecord;
use crate::config::Config;
use crate::error::{EXIT_OK, Error, Result};
use crate::pass;

use super::render;
use super::{
    ForgetArgs, LockArgs, NodesArgs, PauseArgs, ResumeArgs, UnlockArgs, load, print_json,
    print_text,
};

/// The etcd connection for an admin command that needs cluster mode.
fn admin(config: Option<&Path>, command: &str) -> Result<(Config, Cluster)> {
    let cfg = load(config, log::LevelFilter::Warn, false)?;
    if !cfg.is_cluster() {
        return Err(Error::NotClustered {
            command: command.to_string(),
        });
    }
    let cluster = Cluster::connect(&cfg)?;
    Ok((cfg, cluster))
}

/// `rebootctl lock`: the agents' lock, then every other lock below
/// `<ns>/lock/` (FleetLock groups).
pub(super) fn lock(a: LockArgs) -> Result<u8> {
    let (_cfg, cluster) = admin(a.config.as_deref(), "lock")?;
    let state = cluster.lock.state()?;
    let others: Vec<Slot> = cluster
        .all_slots()?
        .into_iter()
        .filter(|s| s.lock_key() != cluster.lock.lock_key())
        .collect();
    let mut expires_in = BTreeMap::new();
    for s in state
        .slots
        .iter()
        .chain(&others)
        .filter(|s| s.is_fleetlock())
    {
        if let Some(ttl) = cluster.client.lease_time_to_live(s.lease)? {
            expires_in.insert(s.key.clone(), ttl);
        }
    }
    let view = render::LockView {
        state,
        own: cluster.lock.slot_count(),
        others,
        expires_in,
    };
    if a.json {
        print_json(&render::lock_json(&view))?;
    } else {
        print_text(&render::lock_text(&view))?;
    }
    Ok(EXIT_OK)
}

/// `rebootctl unlock`.
pub(super) fn unlock(a: UnlockArgs) -> Result<u8> {
    let (_cfg, cluster) = admin(a.config.as_deref(), "unlock")?;
    let (mut slots, _) = cluster.lock.holders()?;
    // FleetLock clients (and agents of other lock groups) hold slots of
    // other lock keys below <ns>/lock/.
    for s in cluster.all_slots()? {
        if !slots.iter().any(|o| o.key == s.key) {
            slots.push(s);
        }
    }
    let held: Vec<_> = slots.into_iter().filter(|s| s.node() == a.node).collect();
    if held.is_empty() {
        return Err(Error::Runtime(format!("{} holds no lock slot", a.node)));
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(format!(
                "refusing to release {}'s slot without --yes (stdin is not a terminal)",
                a.node
            )));
        }
        eprint!(
            "Release the slot held by {}? A host that is really rebooting loses its protection. [y/N] ",
            pass::describe_holders(&held)
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Error::io("reading the answer from", "stdin", e))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not released");
            return Ok(EXIT_OK);
        }
    }
    for slot in &held {
        if cluster.lock.release(slot)? {
            println!("released {} (held by {})", slot.key, a.node);
            // A FleetLock hold has a lease of its own: nothing else uses it.
            if slot.is_fleetlock() {
                cluster.client.lease_revoke(slot.lease)?;
            }
        } else {
            println!("{} changed meanwhile; not released", slot.key);
        }
    }
    if let Err(e) = cluster.record_history_for(&a.node, "unlocked_by_operator") {
        log::warn!("cannot record the history entry: {e}");
    }
    Ok(EXIT_OK)
}

/// `rebootctl pause`.
pub(super) fn pause(a: PauseArgs) -> Result<u8> {
    let (_cfg, cluster) = admin(a.config.as_deref(), "pause")?;
    let rec = PauseRecord {
        reason: a.reason.unwrap_or_default(),
        by: operator_name(),
        at: crate::time::timestamp_now(),
    };
    cluster.set_pause(&rec, a.duration)?;
    match a.duration {
        Some(d) => println!(
            "cluster paused for {} (expires by itself)",
            crate::time::human_duration(d)
        ),
        None => println!("cluster paused until 'rebootctl resume'"),
    }
    Ok(EXIT_OK)
}

/// `rebootctl resume`.
pub(super) fn resume(a: ResumeArgs) -> Result<u8> {
    let (_cfg, cluster) = admin(a.config.as_deref(), "resume")?;
    if cluster.resume()? {
        println!("cluster resumed");
    } else {
        println!("cluster was not paused");
    }
    Ok(EXIT_OK)
}

/// `rebootctl nodes`.
pub(super) fn nodes(a: NodesArgs) -> Result<u8> {
    let (_cfg, cluster) = admin(a.config.as_deref(), "nodes")?;
    let mut nodes = cluster.node_summaries()?;
    // FleetLock clients are not registered: those holding a slot follow.
    nodes.extend(cluster.fleetlock_summaries()?);
    if a.json {
        print_json(&serde_json::json!({ "nodes": nodes }))?;
    } else {
        print_text(&render::nodes_text(&nodes))?;
    }
    Ok(EXIT_OK)
}

/// `rebootctl forget`.
pub(super) fn forget(a: ForgetArgs) -> Result<u8> {
    let (_cfg, cluster) = admin(a.config.as_deref(), "forget")?;
    if let Some(slot) = cluster.lock.find(&a.node)? {
        return Err(Error::Runtime(format!(
            "{} holds {}; release it first with 'rebootctl unlock {}'",
            a.node, slot.key, a.node
        )));
    }
    if cluster.forget(&a.node)? {
        println!("forgot {}", a.node);
        Ok(EXIT_OK)
    } else {
        Err(Error::Runtime(format!("{} is not registered", a.node)))
    }
}

/// `user@host` of whoever runs an admin command.
pub(super) fn operator_name() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    format!("{user}@{host}")
}

//! The etcd keyspace of rebootctl (DESIGN §2, rebootctl.yaml(5) ETCD
//! KEYSPACE), in one place:
//!
//! ```text
//! <ns>/lock/                  the control prefix: the one range every agent watches
//! <ns>/lock/pause             the cluster pause
//! <ns>/lock/cooldown          the cluster cooldown
//! <lock_key>/slot-<i>         slots (lock_key defaults to <ns>/lock; a group: <ns>/lock/<group>)
//! <lock_key>/<lease hex>      concurrency.Mutex keys (clusterrebootd, etcdctl lock)
//! <ns>/nodes/<node>           registry        (not watched)
//! <ns>/health/<node>          health records  (not watched)
//! <ns>/history/<ts>-<node>    history         (not watched)
//! ```
//!
//! With the `clusterrebootd` key, `lock_key` is clusterrebootd's mutex
//! prefix, and clusterrebootd's cooldown key and health prefix are read
//! and written too.

use crate::config::{ClusterrebootdCompat, EtcdConfig};

/// Every key an agent reads, writes or watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    namespace: String,
    lock_key: String,
    clusterrebootd: Option<ClusterrebootdCompat>,
}

impl Keys {
    /// The keyspace of a cluster configuration.
    pub fn new(etcd: &EtcdConfig) -> Keys {
        Keys {
            namespace: etcd.namespace.trim_end_matches('/').to_string(),
            lock_key: etcd.lock_key.trim_end_matches('/').to_string(),
            clusterrebootd: etcd.clusterrebootd.clone(),
        }
    }

    /// The full key of `rest` below the namespace (`nodes/a` → `/rebootctl/nodes/a`).
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.namespace)
    }

    /// `<ns>/lock/`: the control prefix every agent watches.
    pub fn control_prefix(&self) -> String {
        self.key("lock/")
    }

    /// `<ns>/lock/pause`.
    pub fn pause(&self) -> String {
        self.key("lock/pause")
    }

    /// `<ns>/lock/cooldown`.
    pub fn cooldown(&self) -> String {
        self.key("lock/cooldown")
    }

    /// `<lock_key>/`: the range of this group's slots and mutex keys.
    pub fn lock_prefix(&self) -> String {
        format!("{}/", self.lock_key)
    }

    /// `<ns>/nodes/<node>`.
    pub fn node(&self, node: &str) -> String {
        self.key(&format!("nodes/{node}"))
    }

    /// `<ns>/health/<node>`.
    pub fn health(&self, node: &str) -> String {
        self.key(&format!("health/{node}"))
    }

    /// clusterrebootd's cooldown key, when sharing its lock.
    pub fn clusterrebootd_cooldown(&self) -> Option<String> {
        self.clusterrebootd.as_ref().map(|c| c.cooldown_key())
    }

    /// clusterrebootd's health record of `node`, when sharing its lock.
    pub fn clusterrebootd_health(&self, node: &str) -> Option<String> {
        self.clusterrebootd
            .as_ref()
            .map(|c| format!("{}{node}", c.health_prefix()))
    }

    /// True when `lock_key` lies outside the control prefix, so its slots
    /// need a watch stream of their own.
    pub fn lock_outside_control_prefix(&self) -> bool {
        !self.lock_prefix().starts_with(&self.control_prefix())
    }

    /// The prefixes an agent watches: the control prefix, plus
    /// `<lock_key>/` when it lies outside it.
    pub fn watch_prefixes(&self) -> Vec<String> {
        let mut v = vec![self.control_prefix()];
        if self.lock_outside_control_prefix() {
            v.push(self.lock_prefix());
        }
        v
    }

    /// True for a key whose deletion may let this agent's group proceed:
    /// the pause, the cooldown, a slot or a mutex key of its own group.
    /// Other groups' slots (`<ns>/lock/<group>/slot-<i>`) are not.
    pub fn wakes(&self, key: &str) -> bool {
        key == self.pause()
            || key == self.cooldown()
            || key
                .strip_prefix(&self.lock_prefix())
                .is_some_and(|rest| is_slot_name(rest) || is_mutex_name(rest))
    }
}

/// `slot-<i>`.
pub fn is_slot_name(rest: &str) -> bool {
    rest.strip_prefix("slot-")
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// A `concurrency.Mutex` key below the lock prefix: the session's lease id
/// in lower-case hex (`fmt.Sprintf("%s%x", pfx, lease)` in etcd's client).
pub fn is_mutex_name(rest: &str) -> bool {
    !rest.is_empty()
        && rest.len() <= 16
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(lock_key: &str, compat: Option<ClusterrebootdCompat>) -> Keys {
        Keys::new(&EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            namespace: "/rebootctl".into(),
            lock_key: lock_key.into(),
            lock_ttl: Duration::from_secs(90),
            max_concurrent_reboots: 1,
            tls: None,
            auth: None,
            clusterrebootd: compat,
            watch_idle_timeout: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_default_group_lives_in_the_control_prefix() {
        let k = keys("/rebootctl/lock", None);
        assert_eq!(k.control_prefix(), "/rebootctl/lock/");
        assert_eq!(k.pause(), "/rebootctl/lock/pause");
        assert_eq!(k.cooldown(), "/rebootctl/lock/cooldown");
        assert_eq!(k.watch_prefixes(), ["/rebootctl/lock/"]);
        for key in [
            "/rebootctl/lock/pause",
            "/rebootctl/lock/cooldown",
            "/rebootctl/lock/slot-0",
            "/rebootctl/lock/slot-12",
            "/rebootctl/lock/694d7c8e8f3a2b04",
        ] {
            assert!(k.wakes(key), "{key}");
        }
        for key in [
            "/rebootctl/lock/web/slot-0",
            "/rebootctl/lock/slot-",
            "/rebootctl/lock/slot-x",
            "/rebootctl/lock/Zebra",
            "/rebootctl/health/a",
            "/rebootctl/lockx/slot-0",
        ] {
            assert!(!k.wakes(key), "{key}");
        }
    }

    #[test]
    fn a_group_wakes_only_for_its_own_slots_and_the_shared_records() {
        let k = keys("/rebootctl/lock/web", None);
        assert_eq!(k.watch_prefixes(), ["/rebootctl/lock/"]);
        assert!(k.wakes("/rebootctl/lock/web/slot-1"));
        assert!(k.wakes("/rebootctl/lock/pause"));
        assert!(!k.wakes("/rebootctl/lock/slot-0"));
        assert!(!k.wakes("/rebootctl/lock/db/slot-0"));
    }

    #[test]
    fn clusterrebootd_keys_follow_its_apply_namespace() {
        let compat = ClusterrebootdCompat {
            namespace: String::new(),
            lock_key: "/cluster/clusterrebootd/lock".into(),
        };
        assert_eq!(compat.mutex_key(), "/cluster/clusterrebootd/lock");
        assert_eq!(compat.cooldown_key(), "/reboot_cooldown");
        assert_eq!(compat.health_prefix(), "/cluster_health/");
        let k = keys(&compat.mutex_key(), Some(compat));
        assert_eq!(
            k.watch_prefixes(),
            ["/rebootctl/lock/", "/cluster/clusterrebootd/lock/"]
        );
        assert!(k.wakes("/cluster/clusterrebootd/lock/694d7c8e8f3a2b04"));
        assert!(k.wakes("/cluster/clusterrebootd/lock/slot-0"));
        assert_eq!(k.clusterrebootd_cooldown().unwrap(), "/reboot_cooldown");
        assert_eq!(
            k.clusterrebootd_health("web-1").unwrap(),
            "/cluster_health/web-1"
        );
        let namespaced = ClusterrebootdCompat {
            namespace: "/prod/".into(),
            lock_key: "locks/reboot".into(),
        };
        assert_eq!(namespaced.mutex_key(), "/prod/locks/reboot");
        assert_eq!(namespaced.cooldown_key(), "/prod/reboot_cooldown");
        assert_eq!(namespaced.health_prefix(), "/prod/cluster_health/");
    }
}

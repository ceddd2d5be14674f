//! A simulated fleet on one machine: N agents (`rebootctl run`) on one real
//! etcd, each with its own config, state dir, boot id file and a fake reboot
//! command that power-cycles the agent (SIGKILL, wait R seconds, new boot id,
//! start again). Everything that happens lands in one timeline file that the
//! invariant checker ([`check`]) reads; the demo and the benchmarks
//! (`examples/fleet.rs`) and the end-to-end tests (`tests/fleet.rs`) share it.
//!
//! Timeline lines are `<unix µs> <node> <event> [detail]`. Who writes what:
//! - the harness: `need_set`, `need_cleared`, `note`;
//! - the node's fake reboot command: `rebooting` (the slot is already in
//!   phase rebooting); its detached power-cycle helper: `back` (new boot id,
//!   agent starting);
//! - the node's `post_reboot` hook: `healthy` (post-reboot check passed,
//!   right before the agent releases its slot);
//! - an etcd watch on the lock prefix: `slot_taken`, `slot_rebooting`,
//!   `released` (deleted or expired), in etcd revision order.
//!
//! A node counts as down from `rebooting` until its `healthy` or `released`,
//! whichever comes first. Both are written before (or when) the slot becomes
//! free, and the next holder's `rebooting` is written after it took the
//! slot, so the order in the file follows causality: no tolerance needed.
//!
//! Cleanup (also when a test panics): [`Fleet`]'s `Drop` writes a stop file
//! the helpers check, kills helpers and agents by process group, then every
//! process whose environment carries this fleet's `REBOOTCTL_FLEET_ID`, and
//! the etcd server and the temp dir go with their own `Drop`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::EtcdConfig;
use crate::etcd::{Client, WatchEvent};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::etcd::{EtcdCluster, EtcdServer, TempDir, free_port, leader_of};

/// The environment variable that tags every process of one fleet.
pub const FLEET_ID_VAR: &str = "REBOOTCTL_FLEET_ID";
/// The lock prefix the agents use (default namespace and lock key).
pub const LOCK_PREFIX: &str = "/rebootctl/lock/";

/// The shape of a fleet and its timers.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Number of nodes, named `node-0` … `node-{n-1}`.
    pub nodes: usize,
    /// `max_concurrent_reboots`.
    pub slots: u32,
    /// How long a simulated power cycle keeps the node down.
    pub reboot_secs: f64,
    /// `check_interval_sec`.
    pub check_interval_secs: u64,
    /// `lock_ttl_sec`.
    pub lock_ttl_secs: u64,
    /// `reboot_timeout_sec`.
    pub reboot_timeout_secs: u64,
    /// Install the flag-driven health script (see [`Fleet::set_unhealthy`]).
    pub health_script: bool,
    /// `metrics: {enabled: true}` on a free port per node.
    pub metrics: bool,
    /// `health_publish_interval_sec`.
    pub health_publish_interval_secs: u64,
}

impl Default for FleetSpec {
    fn default() -> FleetSpec {
        FleetSpec {
            nodes: 3,
            slots: 1,
            reboot_secs: 1.5,
            check_interval_secs: 2,
            lock_ttl_secs: 5,
            reboot_timeout_secs: 600,
            health_script: true,
            metrics: false,
            health_publish_interval_secs: 1,
        }
    }
}

/// What happened, as read from the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The harness created the node's reboot-required marker.
    NeedSet,
    /// The harness removed the marker.
    NeedCleared,
    /// The node took a lock slot (phase checking).
    SlotTaken,
    /// The node's slot turned to phase rebooting.
    SlotRebooting,
    /// The node's reboot command ran: the power goes off.
    Rebooting,
    /// The node booted again (new boot id, agent starting).
    Back,
    /// The node's post-reboot check passed (post_reboot hook).
    Healthy,
    /// The node's slot was deleted or expired.
    Released,
    /// Free text from the harness or a test.
    Note,
}

impl Kind {
    /// The word in the timeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NeedSet => "need_set",
            Kind::NeedCleared => "need_cleared",
            Kind::SlotTaken => "slot_taken",
            Kind::SlotRebooting => "slot_rebooting",
            Kind::Rebooting => "rebooting",
            Kind::Back => "back",
            Kind::Healthy => "healthy",
            Kind::Released => "released",
            Kind::Note => "note",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "need_set" => Kind::NeedSet,
            "need_cleared" => Kind::NeedCleared,
            "slot_taken" => Kind::SlotTaken,
            "slot_rebooting" => Kind::SlotRebooting,
            "rebooting" => Kind::Rebooting,
            "back" => Kind::Back,
            "healthy" => Kind::Healthy,
            "released" => Kind::Released,
            "note" => Kind::Note,
            _ => return None,
        })
    }
}

/// One timeline line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Microseconds since the Unix epoch.
    pub t_us: u64,
    /// The node (`-` for fleet-wide notes).
    pub node: String,
    /// What happened.
    pub kind: Kind,
    /// The rest of the line.
    pub detail: String,
}

/// Microseconds since the Unix epoch (the clock `date +%s%6N` reads).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Parses timeline text; malformed lines are skipped (a line may be cut
/// while a writer is appending), events are sorted by time, stable.
pub fn parse_timeline(text: &str) -> Vec<Event> {
    let mut events: Vec<Event> = text
        .lines()
        .filter_map(|line| {
            let mut it = line.splitn(4, ' ');
            let t_us = it.next()?.parse().ok()?;
            let node = it.next()?.to_string();
            let kind = Kind::parse(it.next()?)?;
            let detail = it.next().unwrap_or("").to_string();
            Some(Event {
                t_us,
                node,
                kind,
                detail,
            })
        })
        .collect();
    events.sort_by_key(|e| e.t_us);
    events
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Broken invariants, one sentence each; empty means safe.
    pub violations: Vec<String>,
    /// Nodes whose need is set and that have not rebooted for it (yet).
    pub pending: Vec<String>,
    /// Reboots per node.
    pub reboots: BTreeMap<String, usize>,
    /// The most nodes down at once.
    pub max_down: usize,
}

impl Report {
    /// Safe, and every node that needed a reboot got one.
    pub fn done(&self) -> bool {
        self.violations.is_empty() && self.pending.is_empty()
    }
}

/// The invariants of SPEC §10 over a timeline:
/// 1. never more than `slots` nodes between `rebooting` and `healthy`/`released`;
/// 2. a node reboots only while it has a need, and once per need (`back`
///    satisfies the need, as a real reboot clears reboot-required);
/// 3. `pending` lists the nodes whose need has not been met (yet): a
///    finished run must leave it empty.
pub fn check(events: &[Event], slots: usize) -> Report {
    let mut r = Report::default();
    let mut need: HashMap<&str, bool> = HashMap::new();
    let mut since_need: HashMap<&str, usize> = HashMap::new();
    let mut down: BTreeSet<&str> = BTreeSet::new();
    let t0 = events.first().map(|e| e.t_us).unwrap_or(0);
    let at = |t: u64| format!("+{:.3}s", t.saturating_sub(t0) as f64 / 1e6);
    for e in events {
        let node = e.node.as_str();
        match e.kind {
            Kind::NeedSet => {
                need.insert(node, true);
                since_need.insert(node, 0);
            }
            Kind::NeedCleared => {
                need.insert(node, false);
            }
            Kind::Rebooting => {
                *r.reboots.entry(e.node.clone()).or_default() += 1;
                let count = since_need.entry(node).or_default();
                *count += 1;
                if !need.get(node).copied().unwrap_or(false) {
                    r.violations
                        .push(format!("{}: {node} rebooted without a need", at(e.t_us)));
                } else if *count > 1 {
                    r.violations.push(format!(
                        "{}: {node} rebooted {count} times for one need",
                        at(e.t_us)
                    ));
                }
                if !down.insert(node) {
                    r.violations.push(format!(
                        "{}: {node} rebooted again while still down",
                        at(e.t_us)
                    ));
                }
                r.max_down = r.max_down.max(down.len());
                if down.len() > slots {
                    r.violations.push(format!(
                        "{}: {} nodes down at once ({}) with {slots} slot(s)",
                        at(e.t_us),
                        down.len(),
                        down.iter().copied().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Kind::Back => {
                need.insert(node, false);
            }
            Kind::Healthy | Kind::Released => {
                down.remove(node);
            }
            Kind::SlotTaken | Kind::SlotRebooting | Kind::Note => {}
        }
    }
    let mut pending: Vec<String> = need
        .iter()
        .filter(|(n, set)| **set && since_need.get(*n).copied().unwrap_or(0) == 0)
        .map(|(n, _)| n.to_string())
        .collect();
    pending.sort();
    r.pending = pending;
    r
}

/// Timings of a finished run, for the demo and the benchmarks.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// First `need_set` to the last `healthy`/`released` of a rebooted node.
    pub makespan: Duration,
    /// Number of reboots.
    pub reboots: usize,
    /// Median time from `slot_taken` to `rebooting` (checks under the lock).
    pub under_lock: Option<Duration>,
    /// Median time from `back` to `healthy` (boot to post-reboot check done).
    pub post_reboot: Option<Duration>,
    /// Release of a slot to the next `slot_taken` by another node, every one.
    pub handoffs: Vec<Duration>,
}

/// The median of `v` (sorted copy), None when empty.
pub fn median(v: &[Duration]) -> Option<Duration> {
    percentile(v, 50.0)
}

/// The nearest-rank percentile `p` (0-100) of `v`, None when empty.
pub fn percentile(v: &[Duration], p: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

/// Computes a [`Summary`] from the timeline.
pub fn summarize(events: &[Event]) -> Summary {
    let us = |a: u64, b: u64| Duration::from_micros(b.saturating_sub(a));
    let start = events
        .iter()
        .find(|e| e.kind == Kind::NeedSet)
        .map(|e| e.t_us);
    let rebooted: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == Kind::Rebooting)
        .map(|e| e.node.as_str())
        .collect();
    let end = events
        .iter()
        .filter(|e| {
            matches!(e.kind, Kind::Healthy | Kind::Released) && rebooted.contains(e.node.as_str())
        })
        .map(|e| e.t_us)
        .max();
    let mut under_lock = Vec::new();
    let mut post_reboot = Vec::new();
    let mut handoffs = Vec::new();
    let mut taken: HashMap<&str, u64> = HashMap::new();
    let mut back: HashMap<&str, u64> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let node = e.node.as_str();
        match e.kind {
            Kind::SlotTaken => {
                taken.insert(node, e.t_us);
            }
            Kind::Rebooting => {
                if let Some(t) = taken.remove(node) {
                    under_lock.push(us(t, e.t_us));
                }
            }
            Kind::Back => {
                back.insert(node, e.t_us);
            }
            Kind::Healthy => {
                if let Some(t) = back.remove(node) {
                    post_reboot.push(us(t, e.t_us));
                }
            }
            Kind::Released => {
                // Only handoffs to a waiting node: the next take by another node.
                if let Some(next) = events[i + 1..]
                    .iter()
                    .find(|n| n.kind == Kind::SlotTaken && n.node != e.node)
                {
                    handoffs.push(us(e.t_us, next.t_us));
                }
            }
            _ => {}
        }
    }
    Summary {
        makespan: match (start, end) {
            (Some(s), Some(e)) => us(s, e),
            _ => Duration::ZERO,
        },
        reboots: rebooted.len(),
        under_lock: median(&under_lock),
        post_reboot: median(&post_reboot),
        handoffs,
    }
}

/// Renders the timeline for people: `+  3.215s  node-2    rebooting`.
pub fn render(events: &[Event]) -> String {
    let t0 = events.first().map(|e| e.t_us).unwrap_or(0);
    let mut out = String::new();
    for e in events {
        let what = match e.kind {
            Kind::NeedSet => "needs a reboot",
            Kind::NeedCleared => "no longer needs a reboot",
            Kind::SlotTaken => "took a lock slot (checking)",
            Kind::SlotRebooting => "slot now in phase rebooting",
            Kind::Rebooting => "REBOOTING (power off)",
            Kind::Back => "back (new boot id, agent starting)",
            Kind::Healthy => "healthy after reboot",
            Kind::Released => "released its slot",
            Kind::Note => "--",
        };
        let detail = if e.detail.is_empty() || e.kind == Kind::SlotTaken {
            String::new()
        } else {
            format!(" {}", e.detail)
        };
        out.push_str(&format!(
            "+{:>8.3}s  {:<8}  {what}{detail}\n",
            e.t_us.saturating_sub(t0) as f64 / 1e6,
            e.node
        ));
    }
    out
}

/// Appends lines to the timeline file (O_APPEND, one write per line, as the
/// shell scripts do).
#[derive(Debug, Clone)]
pub struct Timeline {
    path: PathBuf,
}

impl Timeline {
    /// Appends one event stamped now.
    pub fn log(&self, node: &str, kind: Kind, detail: &str) {
        let line = if detail.is_empty() {
            format!("{} {node} {}\n", now_us(), kind.as_str())
        } else {
            format!("{} {node} {} {detail}\n", now_us(), kind.as_str())
        };
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Every event so far, sorted by time.
    pub fn events(&self) -> Vec<Event> {
        parse_timeline(&fs::read_to_string(&self.path).unwrap_or_default())
    }
}

/// One simulated host: a directory with its config and scripts.
#[derive(Debug)]
pub struct Node {
    /// `node-<i>`.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// A command the agent is started under (`ip netns exec NS`); empty: none.
    pub wrapper: Vec<String>,
    keys: BTreeMap<String, String>,
}

impl Node {
    /// A path inside the node's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Sets (or replaces) a top-level config key; `yaml` is the value. Takes
    /// effect when the agent next starts (or reloads).
    pub fn set(&mut self, key: &str, yaml: &str) -> &mut Node {
        self.keys.insert(key.to_string(), yaml.to_string());
        self.write_config();
        self
    }

    /// Removes a top-level config key.
    pub fn unset(&mut self, key: &str) -> &mut Node {
        self.keys.remove(key);
        self.write_config();
        self
    }

    /// The config file.
    pub fn config(&self) -> PathBuf {
        self.path("config.yaml")
    }

    fn write_config(&self) {
        let text: String = self
            .keys
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        fs::write(self.config(), text).expect("write node config");
    }

    /// Writes an executable `#!/bin/sh` script into the node's directory.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, format!("#!/bin/sh\n{body}")).expect("write script");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod script");
        p
    }

    /// The agent's pid as last written (by the harness or the power-cycle helper).
    pub fn agent_pid(&self) -> Option<i32> {
        read_pid(&self.path("agent.pid"))
    }

    /// The last `lines` lines of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.path("agent.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The output of an admin command.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A fleet of simulated hosts on one etcd; everything is stopped on drop.
pub struct Fleet {
    /// The etcd server (tests may stop, pause and restart it); the first
    /// member of a cluster.
    pub etcd: EtcdServer,
    /// The other members of a cluster ([`Fleet::with_cluster`]); empty
    /// with a single server.
    pub peers: Vec<EtcdServer>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The spec it was built from.
    pub spec: FleetSpec,
    /// The shared timeline.
    pub timeline: Timeline,
    bin: PathBuf,
    id: String,
    children: Mutex<Vec<Child>>,
    observer_stop: Arc<AtomicBool>,
    dir: TempDir,
}

impl Fleet {
    /// Starts etcd, lays out the nodes and starts the lock observer; no agent
    /// runs yet ([`Fleet::start_all`]). `bin` is the `rebootctl` binary.
    pub fn new(bin: &Path, spec: FleetSpec) -> Fleet {
        let etcd = EtcdServer::start();
        Fleet::with_etcd(bin, spec, etcd)
    }

    /// As [`Fleet::new`] with a given etcd.
    pub fn with_etcd(bin: &Path, spec: FleetSpec, etcd: EtcdServer) -> Fleet {
        Fleet::with_cluster(
            bin,
            spec,
            EtcdCluster {
                members: vec![etcd],
            },
        )
    }

    /// As [`Fleet::new`] on the members of a cluster: node `i` lists every
    /// member's endpoint, starting with member `i` modulo their number (so
    /// each member has agents talking to it first, and they fail over to
    /// the next ones).
    pub fn with_cluster(bin: &Path, spec: FleetSpec, cluster: EtcdCluster) -> Fleet {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mut members = cluster.members.into_iter();
        let etcd = members.next().expect("a cluster has a member");
        let dir = TempDir::new("fleet");
        let id = format!(
            "{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            now_us() % 1_000_000
        );
        let timeline = Timeline {
            path: dir.path().join("timeline.log"),
        };
        fs::write(&timeline.path, "").expect("create timeline");
        let mut fleet = Fleet {
            etcd,
            peers: members.collect(),
            nodes: Vec::new(),
            spec: spec.clone(),
            timeline,
            bin: bin.to_path_buf(),
            id,
            children: Mutex::new(Vec::new()),
            observer_stop: Arc::new(AtomicBool::new(false)),
            dir,
        };
        for i in 0..spec.nodes {
            let node = fleet.make_node(i);
            fleet.nodes.push(node);
        }
        fleet.start_observer();
        fleet
    }

    /// The fleet's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The binary the agents run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Every etcd member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members().map(|m| m.endpoint.clone()).collect()
    }

    /// The etcd members, the first one (`etcd`) first.
    pub fn members(&self) -> impl Iterator<Item = &EtcdServer> {
        std::iter::once(&self.etcd).chain(&self.peers)
    }

    /// Member `i` (0 is `etcd`), to kill, freeze or restart it.
    pub fn member(&mut self, i: usize) -> &mut EtcdServer {
        match i {
            0 => &mut self.etcd,
            i => &mut self.peers[i - 1],
        }
    }

    /// The index of the current leader among the members.
    pub fn leader(&self) -> Option<usize> {
        leader_of(self.members())
    }

    fn make_node(&self, i: usize) -> Node {
        let name = &format!("node-{i}");
        let d = self.dir.path().join(name);
        fs::create_dir_all(d.join("state")).expect("node dir");
        fs::write(d.join("boot_id"), "boot-1\n").expect("boot id");
        fs::write(d.join("boots"), "1\n").expect("boot counter");
        let mut node = Node {
            name: name.to_string(),
            dir: d.clone(),
            wrapper: Vec::new(),
            keys: BTreeMap::new(),
        };
        let (ds, t, f) = (
            d.display().to_string(),
            self.timeline.path.display().to_string(),
            self.dir.path().display().to_string(),
        );
        let stamp = "$(date +%s%6N)";
        // The reboot command runs with the agent waiting for it (in its own
        // process group, 120 s timeout): hand the power cycle to a detached
        // helper and return at once. Its output goes to a file so no pipe to
        // the agent stays open.
        node.script(
            "fake-reboot",
            &format!(
                "echo \"{stamp} {name} rebooting\" >> {t}\n\
                 {FLEET_ID_VAR}={id} setsid {ds}/power-cycle </dev/null >>{ds}/helper.log 2>&1 &\n\
                 echo $! > {ds}/helper.pid\n\
                 exit 0\n",
                id = self.id
            ),
        );
        // Power off (SIGKILL to the agent's process group), stay down R
        // seconds, boot: new boot id, the need is gone, agent starts again.
        node.script(
            "power-cycle",
            &format!(
                "pid=$(cat {ds}/agent.pid 2>/dev/null)\n\
                 [ -n \"$pid\" ] && /bin/kill -s KILL -- -\"$pid\" 2>/dev/null\n\
                 sleep {r}\n\
                 [ -e {f}/stopped ] && exit 0\n\
                 if [ -e {ds}/no-return ]; then echo \"{stamp} {name} note stays down (no-return)\" >> {t}; exit 0; fi\n\
                 rm -f {ds}/need-reboot\n\
                 n=$(( $(cat {ds}/boots) + 1 )); echo $n > {ds}/boots; echo boot-$n > {ds}/boot_id\n\
                 echo \"{stamp} {name} back boot-$n\" >> {t}\n\
                 setsid {bin} run --config {ds}/config.yaml </dev/null >>{ds}/agent.log 2>&1 &\n\
                 echo $! > {ds}/agent.pid.new && mv {ds}/agent.pid.new {ds}/agent.pid\n",
                r = self.spec.reboot_secs,
                bin = self.bin.display()
            ),
        );
        node.script(
            "post-reboot",
            &format!("echo \"{stamp} {name} healthy\" >> {t}\n"),
        );
        // Flags: `unhealthy` blocks every phase; `post-lock-sleep` holds the
        // node in its post-lock check (to act on a holder while it checks).
        node.script(
            "health",
            &format!(
                "if [ -e {ds}/unhealthy ]; then echo \"{ds}/unhealthy exists\"; exit 1; fi\n\
                 if [ \"$RC_PHASE\" = post-lock ] && [ -s {ds}/post-lock-sleep ]; then sleep \"$(cat {ds}/post-lock-sleep)\"; fi\n\
                 exit 0\n"
            ),
        );
        let s = &self.spec;
        node.set("node_name", name)
            .set(
                "reboot_required_detectors",
                &format!("[{{name: marker, type: file, path: {ds}/need-reboot}}]"),
            )
            .set("kill_switch_file", &format!("{ds}/disable"))
            .set("state_dir", &format!("{ds}/state"))
            .set("boot_id_file", &format!("{ds}/boot_id"))
            .set("reboot_command", &format!("[\"{ds}/fake-reboot\"]"))
            .set("hooks", &format!("{{post_reboot: [\"{ds}/post-reboot\"]}}"))
            .set("etcd_endpoints", &endpoints_from(&self.endpoints(), i))
            .set("max_concurrent_reboots", &s.slots.to_string())
            .set("check_interval_sec", &s.check_interval_secs.to_string())
            .set("lock_ttl_sec", &s.lock_ttl_secs.to_string())
            .set("reboot_timeout_sec", &s.reboot_timeout_secs.to_string())
            .set("health_timeout_sec", "3")
            .set(
                "health_publish_interval_sec",
                &s.health_publish_interval_secs.to_string(),
            )
            .set("backoff_min_sec", "1")
            .set("backoff_max_sec", "4");
        if s.health_script {
            node.set("health_script", &format!("{ds}/health"));
        }
        if s.metrics {
            node.set(
                "metrics",
                &format!("{{enabled: true, listen: \"127.0.0.1:{}\"}}", free_port()),
            );
        }
        node
    }

    /// Index of a node by name.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Sets a config key on every node.
    pub fn set_all(&mut self, key: &str, yaml: &str) {
        for n in &mut self.nodes {
            n.set(key, yaml);
        }
    }

    /// Starts node `i`'s agent in its own process group, logging to `agent.log`.
    pub fn start(&self, i: usize) {
        let node = &self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.path("agent.log"))
            .expect("agent log");
        let err = log.try_clone().expect("agent log");
        // A wrapper such as `ip netns exec NS` execs the agent: same pid.
        let mut cmd = match node.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(node.config())
            .env_remove("REBOOTCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env(crate::config::SHORT_TIMEOUTS_ENV_VAR, "1")
            .env(FLEET_ID_VAR, &self.id)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn rebootctl run");
        let tmp = node.path("agent.pid.new");
        fs::write(&tmp, format!("{}\n", child.id())).expect("pid file");
        fs::rename(&tmp, node.path("agent.pid")).expect("pid file");
        self.children.lock().expect("children").push(child);
    }

    /// Starts every agent.
    pub fn start_all(&self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGKILLs node `i`'s agent (its process group), as a crash would.
    pub fn kill_agent(&self, i: usize) {
        if let Some(pid) = self.nodes[i].agent_pid() {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            self.timeline
                .log(&self.nodes[i].name, Kind::Note, "agent SIGKILLed");
        }
        self.reap();
    }

    /// Marks node `i` as needing a reboot (logged first, then the marker).
    pub fn need_reboot(&self, i: usize) {
        self.timeline.log(&self.nodes[i].name, Kind::NeedSet, "");
        fs::write(self.nodes[i].path("need-reboot"), "").expect("marker");
    }

    /// Every node needs a reboot.
    pub fn need_all(&self) {
        for i in 0..self.nodes.len() {
            self.need_reboot(i);
        }
    }

    /// Removes node `i`'s need (logged first, then the marker).
    pub fn clear_need(&self, i: usize) {
        self.timeline
            .log(&self.nodes[i].name, Kind::NeedCleared, "");
        let _ = fs::remove_file(self.nodes[i].path("need-reboot"));
    }

    /// Sets or clears node `i`'s `unhealthy` flag (its health script fails).
    pub fn set_unhealthy(&self, i: usize, unhealthy: bool) {
        let p = self.nodes[i].path("unhealthy");
        let what = if unhealthy {
            fs::write(&p, "").expect("flag");
            "health script now fails"
        } else {
            let _ = fs::remove_file(&p);
            "health script passes again"
        };
        self.timeline.log(&self.nodes[i].name, Kind::Note, what);
    }

    /// Makes node `i`'s post-lock health check take `secs` seconds.
    pub fn post_lock_sleep(&self, i: usize, secs: f64) {
        fs::write(self.nodes[i].path("post-lock-sleep"), secs.to_string()).expect("flag");
    }

    /// Node `i` stays down after its next power-off.
    pub fn no_return(&self, i: usize) {
        fs::write(self.nodes[i].path("no-return"), "").expect("flag");
    }

    /// Creates (or removes) node `i`'s kill switch file.
    pub fn kill_switch(&self, i: usize, on: bool) {
        let p = self.nodes[i].path("disable");
        if on {
            fs::write(&p, "").expect("kill switch");
        } else {
            let _ = fs::remove_file(&p);
        }
    }

    /// A note in the timeline.
    pub fn note(&self, text: &str) {
        self.timeline.log("-", Kind::Note, text);
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.timeline.events()
    }

    /// The checker over the events so far.
    pub fn check(&self) -> Report {
        check(&self.events(), self.spec.slots as usize)
    }

    /// Polls the timeline every 100 ms until `cond` holds; false on timeout.
    pub fn wait_for(&self, timeout: Duration, mut cond: impl FnMut(&[Event]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap();
            if cond(&self.events()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node with a need has rebooted and is healthy (or
    /// released) again, or a violation shows up; returns the last report.
    pub fn wait_done(&self, timeout: Duration) -> Report {
        let mut report = Report::default();
        self.wait_for(timeout, |events| {
            report = check(events, self.spec.slots as usize);
            !report.violations.is_empty() || (report.pending.is_empty() && all_settled(events))
        });
        report
    }

    /// Runs `rebootctl <args> --config <node 0's config>` (admin commands),
    /// bounded by 30 s.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut child = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(self.nodes[0].config())
            .env_remove("REBOOTCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env(crate::config::SHORT_TIMEOUTS_ENV_VAR, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rebootctl");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().expect("rebootctl output");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The timeline and the tail of every agent log, for a failure message.
    pub fn diagnostics(&self) -> String {
        let mut out = format!("--- timeline ---\n{}", render(&self.events()));
        for n in &self.nodes {
            out.push_str(&format!(
                "--- {} agent.log (tail) ---\n{}\n",
                n.name,
                n.log_tail(15)
            ));
        }
        out
    }

    /// Reaps agents the harness started that have exited (killed by a power cycle).
    fn reap(&self) {
        if let Ok(mut children) = self.children.lock() {
            children.retain_mut(|c| c.try_wait().ok().flatten().is_none());
        }
    }

    /// Follows the lock prefix with an etcd watch and writes `slot_taken`,
    /// `slot_rebooting` and `released` to the timeline in revision order.
    fn start_observer(&self) {
        let cfg = EtcdConfig {
            endpoints: self.endpoints(),
            namespace: "/rebootctl".into(),
            lock_key: LOCK_PREFIX.trim_end_matches('/').into(),
            lock_ttl: Duration::from_secs(5),
            max_concurrent_reboots: self.spec.slots,
            tls: None,
            auth: None,
            clusterrebootd: None,
            // Follows a member that went silent within seconds.
            watch_idle_timeout: Duration::from_secs(3),
        };
        let client = Client::new(&cfg).expect("etcd client for the observer");
        let (kvs, rev) = client
            .get_prefix(LOCK_PREFIX)
            .expect("read the lock prefix");
        assert!(kvs.is_empty(), "a fresh etcd has no lock slots");
        let timeline = self.timeline.clone();
        let stop = self.observer_stop.clone();
        // slot key -> (node, phase)
        let mut slots: HashMap<String, (String, String)> = HashMap::new();
        client
            .watch_prefix(LOCK_PREFIX, rev + 1, move |ev| {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                match ev {
                    // The pause and the cooldown share the prefix.
                    WatchEvent::Put(kv) if !is_slot(&kv.key) => {}
                    WatchEvent::Put(kv) => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&kv.value).unwrap_or_default();
                        let node = v["node"].as_str().unwrap_or("?").to_string();
                        let phase = v["phase"].as_str().unwrap_or("?").to_string();
                        let detail = format!("{} rev={}", kv.key, kv.mod_revision);
                        match slots.get(&kv.key) {
                            Some((old, _)) if *old != node => {
                                timeline.log(old, Kind::Released, &detail);
                                timeline.log(&node, Kind::SlotTaken, &detail);
                            }
                            None => timeline.log(&node, Kind::SlotTaken, &detail),
                            Some(_) => {}
                        }
                        let was_rebooting = slots
                            .get(&kv.key)
                            .is_some_and(|(n, p)| *n == node && p == "rebooting");
                        if phase == "rebooting" && !was_rebooting {
                            timeline.log(&node, Kind::SlotRebooting, &detail);
                        }
                        slots.insert(kv.key, (node, phase));
                    }
                    WatchEvent::Delete { key, revision } => {
                        if let Some((node, _)) = slots.remove(&key) {
                            timeline.log(&node, Kind::Released, &format!("{key} rev={revision}"));
                        }
                    }
                    WatchEvent::Compacted { .. } => {
                        timeline.log("-", Kind::Note, "observer: watch compacted, events lost")
                    }
                    WatchEvent::Reconnected => {}
                    WatchEvent::Error(_) => {}
                }
                true
            })
            .expect("watch the lock prefix");
    }
}

/// A slot key of the default group (`/rebootctl/lock/slot-<i>`).
fn is_slot(key: &str) -> bool {
    key.strip_prefix(LOCK_PREFIX)
        .and_then(|rest| rest.strip_prefix("slot-"))
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// The YAML list of `endpoints` rotated to start at `first` (modulo).
fn endpoints_from(endpoints: &[String], first: usize) -> String {
    let n = endpoints.len();
    let quoted: Vec<String> = (0..n)
        .map(|k| format!("\"{}\"", endpoints[(first + k) % n]))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// No node is between `rebooting` and `healthy`/`released`, and every slot
/// taken has been released or belongs to a node that has rebooted (its
/// release follows); used to tell a finished run from a quiet moment.
fn all_settled(events: &[Event]) -> bool {
    let mut down: BTreeSet<&str> = BTreeSet::new();
    let mut holding: BTreeSet<&str> = BTreeSet::new();
    for e in events {
        match e.kind {
            Kind::Rebooting => {
                down.insert(&e.node);
            }
            Kind::Healthy => {
                down.remove(e.node.as_str());
            }
            Kind::SlotTaken => {
                holding.insert(&e.node);
            }
            Kind::Released => {
                down.remove(e.node.as_str());
                holding.remove(e.node.as_str());
            }
            _ => {}
        }
    }
    down.is_empty() && holding.is_empty()
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        // Helpers check this before booting an agent again.
        let _ = fs::write(self.dir.path().join("stopped"), "");
        for n in &self.nodes {
            for file in ["helper.pid", "agent.pid"] {
                if let Some(pid) = read_pid(&n.path(file)) {
                    let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                }
            }
        }
        if let Ok(mut children) = self.children.lock() {
            for c in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Whatever slipped through (a helper that started an agent between
        // the two kills): every process carrying this fleet's tag.
        for _ in 0..3 {
            let tagged = tagged_processes(&self.id);
            if tagged.is_empty() {
                break;
            }
            for pid in tagged {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.observer_stop.store(true, Ordering::SeqCst);
        // etcd and the temp dirs go with their own Drop.
    }
}

/// Pids whose environment holds `REBOOTCTL_FLEET_ID=<id>`.
fn tagged_processes(id: &str) -> Vec<i32> {
    let needle = format!("{FLEET_ID_VAR}={id}\0").into_bytes();
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.windows(needle.len()).any(|w| w == needle.as_slice()))
                .unwrap_or(false)
        })
        .collect()
}

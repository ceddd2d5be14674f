//! `make bench-scale` (not part of CI): a three-member etcd on loopback and
//! N agents (`rebootctl run`, the fleet harness of `rebootctl::testing::fleet`
//! with its fake power cycle), measuring
//! 1. idle, at the default intervals: etcd CPU, memory and requests per
//!    second, keys, leases, watchers, revisions per minute; the agents' CPU,
//!    memory and connections;
//! 2. a rollout of every node through `max_concurrent_reboots` slots:
//!    makespan against the ideal, handoff p50/p95, the invariant checker;
//! 3. the same with one etcd member restarted a third of the way through.
//!
//! Every step has a deadline, so a run ends by itself (~10 min at N = 500).
//! The figures become the `scale` section of BENCHMARKS.md.
//!
//! Usage: `scale [OUTPUT.md] [--nodes N] [--slots S] [--reboot-secs R] [--rollout-timeout SECS] [--idle-only]`
//! (`--idle-only` writes the section `scale-idle-N` instead of `scale`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rebootctl::config::EtcdConfig;
use rebootctl::etcd::Client;
use rebootctl::testing::etcd::{EtcdCluster, EtcdServer};
use rebootctl::testing::fleet::{
    self, Fleet, FleetSpec, Kind, check, median, now_us, percentile, summarize,
};
use rebootctl::testing::measure::{
    clk_tck, connections_to, cpu_ticks, delta, etcd_requests, http_get, status_kb, write_section,
};

/// Settings of one run.
struct Args {
    out: PathBuf,
    nodes: usize,
    slots: u32,
    reboot_secs: f64,
    rollout_timeout: Duration,
    /// Measure idle only (no rollout), e.g. for a larger N.
    idle_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::from("BENCHMARKS.md"),
        nodes: 500,
        slots: 25,
        reboot_secs: 3.0,
        rollout_timeout: Duration::from_secs(200),
        idle_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--nodes" => a.nodes = value("--nodes")?.parse().map_err(|e| format!("{e}"))?,
            "--slots" => a.slots = value("--slots")?.parse().map_err(|e| format!("{e}"))?,
            "--reboot-secs" => {
                a.reboot_secs = value("--reboot-secs")?
                    .parse()
                    .map_err(|e| format!("{e}"))?
            }
            "--rollout-timeout" => {
                a.rollout_timeout = Duration::from_secs(
                    value("--rollout-timeout")?
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                )
            }
            "--idle-only" => a.idle_only = true,
            s if !s.starts_with('-') => a.out = PathBuf::from(s),
            s => return Err(format!("unknown option {s}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "scale: {e}\nusage: scale [OUTPUT.md] [--nodes N] [--slots S] [--reboot-secs R] [--rollout-timeout SECS] [--idle-only]"
            );
            return ExitCode::from(64);
        }
    };
    let bin = match rebootctl_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("scale: {e}");
            return ExitCode::from(1);
        }
    };
    let md = run(&bin, &args);
    let section = if args.idle_only {
        format!("scale-idle-{}", args.nodes)
    } else {
        "scale".to_string()
    };
    match write_section(&args.out, &section, &md) {
        Ok(()) => {
            eprintln!("scale: wrote section {section} of {}", args.out.display());
            print!("{md}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale: cannot write {}: {e}", args.out.display());
            ExitCode::from(1)
        }
    }
}

fn rebootctl_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("REBOOTCTL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("rebootctl"))
        .ok_or("cannot locate the rebootctl binary")?;
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it first or set REBOOTCTL_BIN",
            p.display()
        ))
    }
}

fn log(msg: &str) {
    eprintln!("scale: [{}] {msg}", load_average());
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `Max open files` of this process (soft limit), as the agents inherit it.
fn open_files_limit() -> String {
    fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// The etcd members of the fleet, in member order.
fn members(f: &Fleet) -> Vec<&EtcdServer> {
    std::iter::once(&f.etcd).chain(&f.peers).collect()
}

/// A gauge or counter from a member's `/metrics` (summed over label sets).
fn etcd_metric(endpoint: &str, name: &str) -> Option<f64> {
    let text = http_get(&format!("{endpoint}/metrics"))?;
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Per-member figures at one moment.
#[derive(Clone)]
struct EtcdSnapshot {
    pids: Vec<Option<u32>>,
    cpu_ticks: Vec<u64>,
    rss_kb: Vec<u64>,
    requests: Vec<BTreeMap<String, f64>>,
    revision: i64,
    at: Instant,
}

fn snapshot(f: &Fleet, client: &Client) -> EtcdSnapshot {
    let ms = members(f);
    let pids: Vec<Option<u32>> = ms.iter().map(|m| m.pid()).collect();
    EtcdSnapshot {
        cpu_ticks: pids
            .iter()
            .map(|p| p.and_then(|p| cpu_ticks(p as i32)).unwrap_or(0))
            .collect(),
        rss_kb: pids
            .iter()
            .map(|p| p.and_then(|p| status_kb(p as i32, "VmRSS:")).unwrap_or(0))
            .collect(),
        requests: ms.iter().map(|m| etcd_requests(&m.endpoint)).collect(),
        pids,
        revision: client
            .get_prefix("/rebootctl/nodes/")
            .map(|(_, r)| r)
            .unwrap_or(0),
        at: Instant::now(),
    }
}

/// What the members did between two snapshots: CPU ticks and requests by
/// method, per member. A member restarted in between (another pid) counts
/// from `before_restart` (taken just before it stopped) and then from zero.
struct Work {
    ticks: Vec<u64>,
    requests: Vec<BTreeMap<String, f64>>,
    secs: f64,
}

fn work(a: &EtcdSnapshot, b: &EtcdSnapshot, before_restart: Option<&EtcdSnapshot>) -> Work {
    let mut ticks = Vec::new();
    let mut requests = Vec::new();
    for i in 0..a.pids.len() {
        if a.pids[i] == b.pids[i] {
            ticks.push(b.cpu_ticks[i].saturating_sub(a.cpu_ticks[i]));
            requests.push(delta(&a.requests[i], &b.requests[i]));
        } else {
            let (t, mut r) = match before_restart {
                Some(p) => (
                    p.cpu_ticks[i].saturating_sub(a.cpu_ticks[i]),
                    delta(&a.requests[i], &p.requests[i]),
                ),
                None => (0, BTreeMap::new()),
            };
            for (m, v) in &b.requests[i] {
                *r.entry(m.clone()).or_insert(0.0) += v;
            }
            ticks.push(t + b.cpu_ticks[i]);
            requests.push(r);
        }
    }
    Work {
        ticks,
        requests,
        secs: b.at.duration_since(a.at).as_secs_f64().max(1e-9),
    }
}

/// "x / y / z" of per-member values.
fn per_member<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" / ")
}

impl Work {
    /// CPU % of one core per member.
    fn cpu_percent(&self) -> Vec<String> {
        let tck = clk_tck();
        self.ticks
            .iter()
            .map(|t| format!("{:.1}", 100.0 * *t as f64 / tck / self.secs))
            .collect()
    }

    /// Requests per second, all members, and the busiest methods.
    fn requests_per_sec(&self) -> (f64, String) {
        let mut all: BTreeMap<String, f64> = BTreeMap::new();
        for r in &self.requests {
            for (m, v) in r {
                *all.entry(m.clone()).or_insert(0.0) += v / self.secs;
            }
        }
        let total = all.values().sum::<f64>();
        let mut by: Vec<(String, f64)> = all.into_iter().collect();
        by.sort_by(|x, y| y.1.total_cmp(&x.1));
        let top: Vec<String> = by
            .iter()
            .take(6)
            .map(|(m, v)| format!("{m} {v:.1}"))
            .collect();
        (total, top.join(", "))
    }
}

/// Agents' pids (those running now).
fn agent_pids(f: &Fleet) -> Vec<i32> {
    f.nodes
        .iter()
        .filter_map(|n| n.agent_pid())
        .filter(|&p| cpu_ticks(p).is_some())
        .collect()
}

fn run(bin: &Path, a: &Args) -> String {
    let started = Instant::now();
    let mut md = String::new();
    let load_before = load_average();
    log(&format!(
        "{} agents, 3-member etcd, {} slots, reboot {} s; open files limit {}",
        a.nodes,
        a.slots,
        a.reboot_secs,
        open_files_limit()
    ));
    let cluster = EtcdCluster::start(3);
    let version = cluster.members[0].version.clone();
    let spec = FleetSpec {
        nodes: a.nodes,
        slots: a.slots,
        reboot_secs: a.reboot_secs,
        health_script: false,
        metrics: false,
        ..FleetSpec::default()
    };
    let mut f = Fleet::with_cluster(bin, spec, cluster);
    // The defaults for the idle part: no interval keys at all.
    for n in &mut f.nodes {
        n.unset("check_interval_sec");
        n.unset("health_publish_interval_sec");
        n.set("lock_ttl_sec", "30");
        n.set("health_timeout_sec", "10");
    }
    let client = Client::new(&EtcdConfig {
        endpoints: f.endpoints(),
        namespace: "/rebootctl".into(),
        lock_key: "/rebootctl/lock".into(),
        lock_ttl: Duration::from_secs(30),
        max_concurrent_reboots: a.slots,
        tls: None,
        auth: None,
        clusterrebootd: None,
        watch_idle_timeout: Duration::from_secs(rebootctl::config::DEFAULT_WATCH_IDLE_TIMEOUT_SECS),
    })
    .expect("etcd client");
    let _ = writeln!(
        md,
        "## `make bench-scale`: one 3-member etcd cluster, {} agents{}\n\n\
         Written by `make bench-scale` (`ulimit -n $(ulimit -Hn)`; `cargo run --release --example scale -- \
         BENCHMARKS.md --nodes {} --slots {} --reboot-secs {}{}`, examples/scale.rs; not in CI). \
         etcd {version}, 3 members on 127.0.0.1, each agent listing all three endpoints starting \
         with member i mod 3. Agents: `rebootctl run` from `{}`, no health script, no metrics \
         endpoint, each with its own config, state and boot id; the fake power cycle kills the \
         agent, waits R = {} s, writes a new boot id and starts it again. Machine: {} CPUs, \
         load average before the run {load_before}; open files limit {}.\n",
        a.nodes,
        if a.idle_only { ", idle" } else { "" },
        a.nodes,
        a.slots,
        a.reboot_secs,
        if a.idle_only { " --idle-only" } else { "" },
        bin.display(),
        a.reboot_secs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        open_files_limit(),
    );

    // Start: every agent registers, then settles.
    log("starting the agents");
    let t0 = Instant::now();
    f.start_all();
    let registered = wait_until(Duration::from_secs(120), || {
        client
            .get_prefix("/rebootctl/nodes/")
            .map(|(kvs, _)| kvs.len() >= a.nodes)
            .unwrap_or(false)
    });
    let startup = t0.elapsed();
    log(&format!(
        "{} registered after {:.1} s",
        if registered { "all" } else { "NOT all" },
        startup.as_secs_f64()
    ));
    // Let the first heartbeats (15 s) land.
    std::thread::sleep(Duration::from_secs(20));

    // 1. Idle.
    let idle_secs = 60;
    log(&format!("idle window, {idle_secs} s"));
    let pids = agent_pids(&f);
    let agent_cpu_before: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
    let s0 = snapshot(&f, &client);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let s1 = snapshot(&f, &client);
    let agent_cpu_after: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
    let agent_cpu = (agent_cpu_after.saturating_sub(agent_cpu_before)) as f64 / clk_tck();
    let idle = work(&s0, &s1, None);
    let (rps, by_method) = idle.requests_per_sec();
    let ports: Vec<u16> = members(&f).iter().map(|m| m.client_port()).collect();
    let conns: Vec<usize> = pids
        .iter()
        .map(|&p| ports.iter().map(|&port| connections_to(p, port)).sum())
        .collect();
    let rss: Vec<u64> = pids
        .iter()
        .filter_map(|&p| status_kb(p, "VmRSS:"))
        .collect();
    let anon: Vec<u64> = pids
        .iter()
        .filter_map(|&p| status_kb(p, "RssAnon:"))
        .collect();
    let keys = client
        .get_prefix("/rebootctl/")
        .map(|(k, _)| k.len())
        .unwrap_or(0);
    let leases = leases(&f.etcd.endpoint);
    let m0 = &f.etcd.endpoint;
    let watchers = etcd_metric(m0, "etcd_debugging_mvcc_watcher_total").unwrap_or(f64::NAN);
    let streams = members(&f)
        .iter()
        .filter_map(|m| etcd_metric(&m.endpoint, "etcd_debugging_mvcc_watch_stream_total"))
        .sum::<f64>();
    let db = etcd_metric(m0, "etcd_mvcc_db_total_size_in_bytes").unwrap_or(f64::NAN);
    let revs_per_min = (s1.revision - s0.revision) as f64 * 60.0 / idle_secs as f64;
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let _ = writeln!(
        md,
        "### Idle, default intervals (check_interval_sec 60, health_publish_interval_sec 15)\n\n\
         After every agent registered ({:.1} s from the first start) and 20 s more, a {idle_secs} s \
         window. etcd CPU from `/proc/PID/stat` (% of one core, per member m0 / m1 / m2), memory \
         VmRSS; requests = delta of `grpc_server_started_total` summed over the members; revisions \
         = the store revision's growth (every write is one); watchers and watch streams from etcd's \
         `etcd_debugging_mvcc_watcher_total` / `..._watch_stream_total` (summed over members for \
         streams); leases from `/v3/lease/leases`.\n\n\
         | figure | value |\n|---|---|\n\
         | agents running | {} |\n\
         | etcd CPU, % of one core (m0 / m1 / m2) | {} |\n\
         | etcd VmRSS, kB (m0 / m1 / m2) | {} |\n\
         | etcd requests / s (all members) | {rps:.1} ({:.2} per agent per minute) |\n\
         | by method, / s | {by_method} |\n\
         | revisions / min (writes) | {revs_per_min:.1} |\n\
         | keys under /rebootctl/ | {keys} |\n\
         | leases | {leases} |\n\
         | watch streams (all members) / watchers (m0) | {streams:.0} / {watchers:.0} |\n\
         | etcd db size (m0) | {:.1} MiB |\n\
         | agents' CPU, all together | {:.2} s over {idle_secs} s ({:.2} % of one core) |\n\
         | agent VmRSS, mean / max | {:.0} / {} kB |\n\
         | agent RssAnon, mean / max | {:.0} / {} kB |\n\
         | established connections per agent to etcd, mean / max | {:.2} / {} |\n",
        startup.as_secs_f64(),
        pids.len(),
        per_member(&idle.cpu_percent()),
        per_member(&s1.rss_kb),
        rps * 60.0 / a.nodes as f64,
        db / 1048576.0,
        agent_cpu,
        100.0 * agent_cpu / idle_secs as f64,
        mean(&rss),
        rss.iter().max().copied().unwrap_or(0),
        mean(&anon),
        anon.iter().max().copied().unwrap_or(0),
        conns.iter().sum::<usize>() as f64 / conns.len().max(1) as f64,
        conns.iter().max().copied().unwrap_or(0),
    );

    if a.idle_only {
        let _ = writeln!(
            md,
            "Idle only (`--idle-only`). Whole run: {:.0} s; load average at the end {}.\n",
            started.elapsed().as_secs_f64(),
            load_average()
        );
        return md;
    }
    // 2 and 3. Rollouts, with check_interval_sec 10 (SIGHUP) so needs are
    // noticed within 10 s.
    for n in &mut f.nodes {
        n.set("check_interval_sec", "10");
    }
    for pid in agent_pids(&f) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = writeln!(
        md,
        "### Rollout: every node through {} slots\n\n\
         Every agent reloaded (SIGHUP) with check_interval_sec 10, then every node gets a need at \
         once. Makespan = first need to the last node back healthy; ideal = ceil(N / slots) x R; \
         with checks = ceil(N / slots) x (R + median checks under the lock + median boot to \
         healthy). Handoff = a slot released to the next node taking it. Invariants: the \
         harness's checker over the timeline (never more than {} down, every need met, no \
         reboot without a slot). etcd CPU and requests over the rollout. Each rollout stops \
         after {} s whatever its state.\n\n\
         | rollout | makespan | ideal N x R / slots | ideal with checks | ratio to ideal with checks | handoff p50 / p95 | etcd CPU % (m0 / m1 / m2) | etcd requests / s | requests / reboot | revisions / reboot | result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|",
        a.slots,
        a.slots,
        a.rollout_timeout.as_secs()
    );
    let mut notes = String::new();
    for restart in [false, true] {
        if started.elapsed() > Duration::from_secs(540) {
            let _ = writeln!(
                md,
                "| {} | skipped: the run's 9 min budget was spent | | | | | | | | | |",
                if restart {
                    "with a member restart"
                } else {
                    "plain"
                }
            );
            continue;
        }
        log(&format!(
            "rollout{}",
            if restart {
                " with member m1 restarted a third of the way"
            } else {
                ""
            }
        ));
        let from = now_us();
        let e0 = snapshot(&f, &client);
        f.need_all();
        let mut restarted = None;
        let mut before_restart = None;
        let deadline = Instant::now() + a.rollout_timeout;
        let mut report;
        let mut last_log = Instant::now();
        loop {
            let events: Vec<fleet::Event> =
                f.events().into_iter().filter(|e| e.t_us >= from).collect();
            report = check(&events, a.slots as usize);
            let rebooted = events.iter().filter(|e| e.kind == Kind::Rebooting).count();
            if restart && restarted.is_none() && rebooted >= a.nodes / 3 {
                log(&format!("{rebooted} reboots issued: restarting m1"));
                before_restart = Some(snapshot(&f, &client));
                let t = Instant::now();
                f.peers[0].restart();
                restarted = Some((rebooted, t.elapsed()));
                log(&format!("m1 back after {:.1} s", t.elapsed().as_secs_f64()));
            }
            // Every node that went down in this rollout is back.
            let settled = events.iter().filter(|e| e.kind == Kind::Healthy).count() >= rebooted;
            if !report.violations.is_empty()
                || (report.pending.is_empty() && settled)
                || Instant::now() > deadline
            {
                break;
            }
            if last_log.elapsed() > Duration::from_secs(15) {
                log(&format!(
                    "{rebooted} of {} reboots issued, {} pending",
                    a.nodes,
                    report.pending.len()
                ));
                last_log = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let e1 = snapshot(&f, &client);
        let events: Vec<fleet::Event> = f.events().into_iter().filter(|e| e.t_us >= from).collect();
        let s = summarize(&events);
        let rounds = a.nodes.div_ceil(a.slots as usize) as f64;
        let ideal = rounds * a.reboot_secs;
        let checks = s.under_lock.unwrap_or_default() + s.post_reboot.unwrap_or_default();
        let ideal_checks = rounds * (a.reboot_secs + checks.as_secs_f64());
        let during = work(&e0, &e1, before_restart.as_ref());
        let (rps, _) = during.requests_per_sec();
        let result = if report.done() {
            format!(
                "{} reboots, max {} down, invariants hold",
                s.reboots, report.max_down
            )
        } else if report.violations.is_empty() {
            format!(
                "STOPPED after {} s: {} reboots, {} pending, max {} down, no violation",
                a.rollout_timeout.as_secs(),
                s.reboots,
                report.pending.len(),
                report.max_down
            )
        } else {
            format!("UNSAFE: {:?}", report.violations)
        };
        let _ = writeln!(
            md,
            "| {} | {:.1} s | {ideal:.1} s | {ideal_checks:.1} s | {:.2}x | {} / {} | {} | {rps:.1} | {:.0} | {:.1} | {result} |",
            if restart {
                "member m1 restarted"
            } else {
                "plain"
            },
            s.makespan.as_secs_f64(),
            s.makespan.as_secs_f64() / ideal_checks.max(1e-9),
            opt_secs(median(&s.handoffs)),
            opt_secs(percentile(&s.handoffs, 95.0)),
            per_member(&during.cpu_percent()),
            rps * during.secs / s.reboots.max(1) as f64,
            (e1.revision - e0.revision) as f64 / s.reboots.max(1) as f64,
        );
        let _ = writeln!(
            notes,
            "- {}: checks under the lock {} (median), boot to healthy {} (median), {} handoffs.{}",
            if restart { "member restart" } else { "plain" },
            opt_secs(s.under_lock),
            opt_secs(s.post_reboot),
            s.handoffs.len(),
            match restarted {
                Some((n, took)) => format!(
                    " m1 was restarted (SIGTERM, start on the same data) after {n} reboots had been issued; it served again {:.1} s later.",
                    took.as_secs_f64()
                ),
                None if restart => " The restart point was not reached.".to_string(),
                None => String::new(),
            }
        );
        // Before the next rollout: no need left (a rollout stopped at its
        // deadline leaves some) and no slot held, so it starts from scratch.
        for i in 0..f.nodes.len() {
            if report.pending.contains(&f.nodes[i].name) {
                f.clear_need(i);
            }
        }
        let quiet = wait_until(Duration::from_secs(60), || {
            client
                .get_prefix("/rebootctl/lock/")
                .map(|(kvs, _)| kvs.is_empty())
                .unwrap_or(false)
        });
        if !quiet {
            let _ = writeln!(
                notes,
                "- after this rollout the lock was still held 60 s later; the next one starts anyway."
            );
        }
    }
    let _ = writeln!(
        md,
        "\n{notes}\nWhole run: {:.0} s; load average at the end {}.\n",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    md
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}

/// The number of leases etcd holds (`/v3/lease/leases`).
fn leases(endpoint: &str) -> String {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let Ok(mut resp) = agent.post(format!("{endpoint}/v3/lease/leases")).send("{}") else {
        return "?".into();
    };
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["leases"].as_array().map(|a| a.len().to_string()))
        .unwrap_or_else(|| "0".into())
}

/// Polls `cond` every 500 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

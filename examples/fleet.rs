//! The fleet simulation for people: `demo` (5 nodes, one slot, a readable
//! timeline and a summary; the timeline also as `target/demo/timeline.svg`
//! and `timeline.txt`) and `bench` (writes BENCHMARKS.md). Both start
//! their own etcd (found as in tests/common/etcd.rs; `make demo` passes the
//! one `scripts/deps.sh demo-etcd` finds or fetches) and run
//! the real `rebootctl` binary: `$REBOOTCTL_BIN`, else the one next to this
//! example's directory (`target/<profile>/rebootctl`), so build it first
//! (`make demo` / `make bench` do).
//!
//! `levers` builds the binary with each size lever (profile settings,
//! features, a static musl build) and measures each build's size and idle
//! memory: the `levers` section of BENCHMARKS.md.
//!
//! Usage: `fleet demo` | `fleet bench [OUTPUT.md]` | `fleet levers [OUTPUT.md]`

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fleet::{Fleet, FleetSpec, Kind, Summary, median, percentile, render, summarize};
use rebootctl::config::EtcdConfig;
use rebootctl::etcd::{Client, CmpResult, Compare, Op, Txn};
use rebootctl::testing::measure::{
    clk_tck, connections_to, cpu_ticks, delta, etcd_requests, http_get, proc_field, status_kb,
    thread_names, thread_summary, write_section,
};
use rebootctl::testing::{etcd, fleet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin = match rebootctl_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::from(1);
        }
    };
    match args.first().map(String::as_str) {
        Some("demo") => demo(&bin),
        Some(cmd @ ("bench" | "levers")) => {
            let out = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("BENCHMARKS.md"));
            if cmd == "bench" {
                bench(&bin, &out)
            } else {
                levers(&bin, &out)
            }
        }
        _ => {
            eprintln!("usage: fleet demo | fleet bench [OUTPUT.md] | fleet levers [OUTPUT.md]");
            ExitCode::from(64)
        }
    }
}

fn rebootctl_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("REBOOTCTL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/fleet -> target/<profile>/rebootctl
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("rebootctl"))
        .ok_or("cannot locate the rebootctl binary")?;
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release) or set REBOOTCTL_BIN",
            p.display()
        ))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map(secs).unwrap_or_else(|| "-".into())
}

// ---------------------------------------------------------------------------
// demo

const DEMO_TIMEOUT: Duration = Duration::from_secs(110);

fn demo(bin: &Path) -> ExitCode {
    let spec = FleetSpec {
        nodes: 5,
        slots: 1,
        reboot_secs: 3.0,
        ..FleetSpec::default()
    };
    println!(
        "rebootctl fleet demo: {} nodes, {} slot, simulated reboot {} s, check_interval {} s, lock_ttl {} s",
        spec.nodes, spec.slots, spec.reboot_secs, spec.check_interval_secs, spec.lock_ttl_secs
    );
    let f = Fleet::new(bin, spec.clone());
    println!(
        "etcd: {} ({}, {}); fleet in {}\n",
        f.etcd.endpoint,
        f.etcd.version,
        f.etcd.binary.display(),
        f.dir().display()
    );
    f.start_all();
    f.need_all();
    let started = Instant::now();
    let mut printed = 0;
    let mut report;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let events = f.events();
        report = fleet::check(&events, spec.slots as usize);
        // Print what is older than 300 ms: late writers have landed by then.
        let settled = fleet::now_us().saturating_sub(300_000);
        let ready = events.iter().take_while(|e| e.t_us <= settled).count();
        if ready > printed {
            let text = render(&events[..ready]);
            for line in text.lines().skip(printed) {
                println!("{line}");
            }
            printed = ready;
        }
        let finished = report.pending.is_empty()
            && events.iter().filter(|e| e.kind == Kind::Healthy).count() >= spec.nodes
            && events.iter().filter(|e| e.kind == Kind::Released).count() >= spec.nodes;
        if finished || !report.violations.is_empty() || started.elapsed() > DEMO_TIMEOUT {
            std::thread::sleep(Duration::from_millis(400));
            let events = f.events();
            for line in render(&events).lines().skip(printed) {
                println!("{line}");
            }
            report = fleet::check(&events, spec.slots as usize);
            break;
        }
    }
    let events = f.events();
    write_pictures(&events, &spec);
    let s = summarize(&events);
    let ideal = ideal(spec.nodes, spec.reboot_secs, spec.slots);
    println!("\nsummary");
    println!(
        "  reboots            {} of {} nodes, at most {} down at once ({} slot)",
        s.reboots, spec.nodes, report.max_down, spec.slots
    );
    println!(
        "  makespan           {} (ideal N x R / slots = {}, {:.2}x)",
        secs(s.makespan),
        secs(ideal),
        s.makespan.as_secs_f64() / ideal.as_secs_f64()
    );
    print_breakdown(&s);
    if report.done() {
        println!("  invariants         hold (checker: no violation, every need met)");
        ExitCode::SUCCESS
    } else {
        println!(
            "  invariants         FAILED: violations {:?}, pending {:?}",
            report.violations, report.pending
        );
        if started.elapsed() > DEMO_TIMEOUT {
            println!("  (stopped after {DEMO_TIMEOUT:?})");
        }
        ExitCode::from(1)
    }
}

/// Writes the timeline as text and as an SVG picture into `target/demo/`
/// and says where.
fn write_pictures(events: &[fleet::Event], spec: &FleetSpec) {
    let dir = demo_dir();
    let title = format!(
        "rebootctl demo: {} nodes, {} slot{}, simulated reboot {} s",
        spec.nodes,
        spec.slots,
        if spec.slots == 1 { "" } else { "s" },
        spec.reboot_secs
    );
    let svg = rebootctl::testing::svg::render(events, spec.slots as usize, &title);
    let written = fs::create_dir_all(&dir)
        .and_then(|()| fs::write(dir.join("timeline.txt"), render(events)))
        .and_then(|()| fs::write(dir.join("timeline.svg"), svg));
    match written {
        Ok(()) => println!(
            "
timeline written to {} (picture) and {}",
            dir.join("timeline.svg").display(),
            dir.join("timeline.txt").display()
        ),
        Err(e) => eprintln!(
            "fleet: cannot write the timeline into {}: {e}",
            dir.display()
        ),
    }
}

/// `target/demo`: beside `target/<profile>/examples/fleet`, else `./target/demo`.
fn demo_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("demo")))
        .unwrap_or_else(|| PathBuf::from("target/demo"))
}

fn ideal(nodes: usize, reboot_secs: f64, slots: u32) -> Duration {
    Duration::from_secs_f64(nodes.div_ceil(slots as usize) as f64 * reboot_secs)
}

fn print_breakdown(s: &Summary) {
    println!(
        "  per reboot         checks under the lock {} (median), boot to healthy {}",
        opt_secs(s.under_lock),
        opt_secs(s.post_reboot)
    );
    println!(
        "  handoff            release -> next holder {} median, {} p95 ({} handoffs)",
        opt_secs(median(&s.handoffs)),
        opt_secs(percentile(&s.handoffs, 95.0)),
        s.handoffs.len()
    );
}

// ---------------------------------------------------------------------------
// bench

fn bench(bin: &Path, out: &Path) -> ExitCode {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## `make bench`\n\nWritten by `make bench` (`cargo run --release --example fleet -- bench`, \
         examples/fleet.rs). Machine: {} CPUs, {}; etcd: {}; binary: `{}` {}.\n\
         Every figure names the step of `bench` that produced it and how it is measured. \
         Load while it ran (`uptime` before the idle step): {}.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        uname(),
        etcd::EtcdServer::start().version,
        bin.display(),
        version_of(bin),
        load_average(),
    );
    eprintln!("bench: binary size");
    bench_size(bin, &mut md);
    eprintln!(
        "bench: idle daemons for {IDLE_SECS} s (local and cluster mode, metrics on; bench and default intervals)"
    );
    bench_idle(bin, &mut md);
    eprintln!("bench: status latency");
    bench_status(bin, &mut md);
    eprintln!("bench: lock handoff latency (20 handoffs)");
    bench_handoff(bin, &mut md);
    for (n, slots) in [(10, 1), (30, 2)] {
        eprintln!("bench: fleet makespan, {n} nodes, {slots} slot(s)");
        bench_makespan(bin, n, slots, &mut md);
    }
    finish(out, "bench", &md)
}

/// Writes `md` as section `section` of `out` and prints it.
fn finish(out: &Path, section: &str, md: &str) -> ExitCode {
    match write_section(out, section, md) {
        Ok(()) => {
            eprintln!("bench: wrote section {section} of {}", out.display());
            print!("{md}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: cannot write {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn uname() -> String {
    Command::new("uname")
        .arg("-srm")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn version_of(bin: &Path) -> String {
    Command::new(bin)
        .arg("version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

fn file_type(bin: &Path) -> String {
    Command::new("file")
        .arg("-b")
        .arg(bin)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "(file(1) not available)".into())
}

fn bench_size(bin: &Path, md: &mut String) {
    let size = fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(
        md,
        "### Binary size\n\n| figure | value | command |\n|---|---|---|\n\
         | release binary, stripped | {} bytes ({:.2} MiB) | `stat -c %s {}` |\n\n\
         `file -b`: {}\n",
        size,
        size as f64 / 1048576.0,
        bin.display(),
        file_type(bin)
    );
}

const IDLE_SECS: u64 = 120;

/// One idle fleet: node-0 in cluster mode, node-1 in local mode, both with
/// metrics on, at the given intervals (None: the defaults, key unset).
fn idle_fleet(bin: &Path, intervals: Option<(u64, u64)>) -> Fleet {
    let mut f = Fleet::new(
        bin,
        FleetSpec {
            nodes: 2,
            metrics: true,
            health_script: false,
            ..FleetSpec::default()
        },
    );
    for n in &mut f.nodes {
        match intervals {
            Some((check, publish)) => {
                n.set("check_interval_sec", &check.to_string());
                n.set("health_publish_interval_sec", &publish.to_string());
            }
            None => {
                n.unset("check_interval_sec");
                n.unset("health_publish_interval_sec");
            }
        }
    }
    // node-1: local mode (no etcd at all, so no cluster-only key either:
    // one without etcd_endpoints is an error).
    f.nodes[1].unset("etcd_endpoints");
    for key in rebootctl::config::CLUSTER_ONLY_KEYS {
        f.nodes[1].unset(key);
    }
    f
}

/// What an idle daemon measured.
struct Idle {
    rss: String,
    threads: String,
    connections: usize,
    cpu_secs: f64,
}

fn bench_idle(bin: &Path, md: &mut String) {
    // Bench intervals (check 2 s, publish 1 s) and the defaults (60 s, 15 s)
    // side by side: two fleets, two etcds, one window.
    let fleets = [idle_fleet(bin, Some((2, 1))), idle_fleet(bin, None)];
    for f in &fleets {
        f.start_all();
    }
    std::thread::sleep(Duration::from_secs(5));
    let pids: Vec<Vec<i32>> = fleets
        .iter()
        .map(|f| f.nodes.iter().filter_map(|n| n.agent_pid()).collect())
        .collect();
    if pids.iter().any(|p| p.len() != 2) {
        let _ = writeln!(md, "### Idle daemon\n\nFAILED: agents did not start\n");
        return;
    }
    let before: Vec<Vec<Option<u64>>> = pids
        .iter()
        .map(|p| p.iter().map(|&p| cpu_ticks(p)).collect())
        .collect();
    let req_before: Vec<_> = fleets
        .iter()
        .map(|f| etcd_requests(&f.etcd.endpoint))
        .collect();
    std::thread::sleep(Duration::from_secs(IDLE_SECS));
    let req_after: Vec<_> = fleets
        .iter()
        .map(|f| etcd_requests(&f.etcd.endpoint))
        .collect();
    let tck = clk_tck();
    let mut rows = String::new();
    for (k, f) in fleets.iter().enumerate() {
        let settings = if k == 0 {
            "bench: check 2 s, publish 1 s"
        } else {
            "defaults: check 60 s, publish 15 s"
        };
        for (i, mode) in ["cluster", "local"].iter().enumerate() {
            let pid = pids[k][i];
            let idle = Idle {
                rss: rss_cells(pid),
                threads: thread_summary(&thread_names(pid)),
                connections: connections_to(pid, f.etcd.client_port()),
                cpu_secs: match (before[k][i], cpu_ticks(pid)) {
                    (Some(a), Some(b)) => (b - a) as f64 / tck,
                    _ => f64::NAN,
                },
            };
            let metrics = metrics_url(&f.nodes[i].config())
                .map(|url| match http_get(&url) {
                    Some(body) if body.contains("rebootctl_") => "answers".to_string(),
                    Some(_) => "answers without rebootctl_ series".into(),
                    None => format!("NOT answering at {url}"),
                })
                .unwrap_or_else(|| "not configured".into());
            let _ = writeln!(
                rows,
                "| {mode} | {settings} | {} | {} | {} | {:.2} s ({:.3} %) | {metrics} |",
                idle.rss,
                idle.threads,
                idle.connections,
                idle.cpu_secs,
                100.0 * idle.cpu_secs / IDLE_SECS as f64,
            );
        }
    }
    let _ = writeln!(
        md,
        "### Idle daemon ({IDLE_SECS} s, no reboot needed, metrics on)\n\n\
         `rebootctl run`, no health script, `metrics: {{enabled: true, listen: 127.0.0.1:PORT}}`, \
         at the bench's short intervals and at the defaults (two fleets side by side, each with its \
         own etcd). Memory from `/proc/PID/status` (VmRSS; its parts RssAnon — the agent's own \
         memory — and RssFile — mapped pages of the binary and of libc, shared and reclaimable; \
         VmHWM the peak) and PSS from `/proc/PID/smaps_rollup`, at the end of the window; threads \
         = the names in `/proc/PID/task/*/comm`; etcd connections = the agent's ESTABLISHED TCP \
         sockets to etcd's client port (`/proc/PID/fd` against `/proc/PID/net/tcp`); CPU = delta \
         of utime+stime over the window / CLK_TCK {tck}.\n\n\
         | mode | intervals | VmRSS / VmHWM / RssAnon / RssFile / PSS | threads | etcd connections | CPU over {IDLE_SECS} s | metrics endpoint |\n\
         |---|---|---|---|---|---|---|\n{rows}"
    );
    let _ = writeln!(
        md,
        "### etcd requests per idle node per minute\n\n\
         Delta of etcd's `grpc_server_started_total` (GET ENDPOINT/metrics; the JSON gateway calls \
         gRPC inside etcd) over the {IDLE_SECS} s window, one cluster-mode agent per etcd plus the \
         harness's single watch stream (established before the window). LeaseKeepAlive is the \
         health record's lease renewed by the heartbeat; Range the idle pass (its own slot, the pause).\n\n\
         | intervals | requests / node / min | by method (per min) |\n|---|---|---|"
    );
    for (k, label) in [
        "bench: check 2 s, publish 1 s",
        "defaults: check 60 s, publish 15 s",
    ]
    .iter()
    .enumerate()
    {
        let d = delta(&req_before[k], &req_after[k]);
        let per_min = 60.0 / IDLE_SECS as f64;
        let total: f64 = d.values().sum::<f64>() * per_min;
        let methods: Vec<String> = d
            .iter()
            .map(|(m, v)| format!("{m} {:.1}", v * per_min))
            .collect();
        let _ = writeln!(md, "| {label} | {total:.1} | {} |", methods.join(", "));
    }
    md.push('\n');
}

/// "VmRSS / VmHWM / RssAnon / RssFile / PSS" of `pid` in kB.
fn rss_cells(pid: i32) -> String {
    let kb = |name: &str| {
        status_kb(pid, name)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into())
    };
    let pss = proc_field(pid, "smaps_rollup", "Pss:")
        .map(|v| v.trim_end_matches("kB").trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "{} / {} / {} / {} / {pss} kB",
        kb("VmRSS:"),
        kb("VmHWM:"),
        kb("RssAnon:"),
        kb("RssFile:")
    )
}

fn metrics_url(config: &Path) -> Option<String> {
    let text = fs::read_to_string(config).ok()?;
    let line = text.lines().find(|l| l.starts_with("metrics:"))?;
    let listen = line.split("listen: \"").nth(1)?.split('"').next()?;
    Some(format!("http://{listen}/metrics"))
}

fn run_timed(bin: &Path, args: &[&str], config: &Path) -> (Duration, i32) {
    let t = Instant::now();
    let status = Command::new(bin)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    (
        t.elapsed(),
        status.ok().and_then(|s| s.code()).unwrap_or(-1),
    )
}

fn bench_status(bin: &Path, md: &mut String) {
    let f = Fleet::new(
        bin,
        FleetSpec {
            nodes: 1,
            health_script: false,
            ..FleetSpec::default()
        },
    );
    let cfg = f.nodes[0].config();
    let mut times = Vec::new();
    let mut codes = Vec::new();
    // One warm-up run (page cache), then 20.
    let _ = run_timed(bin, &["status"], &cfg);
    for _ in 0..20 {
        let (d, code) = run_timed(bin, &["status"], &cfg);
        times.push(d);
        codes.push(code);
    }
    f.need_reboot(0);
    let mut need_times = Vec::new();
    for _ in 0..20 {
        need_times.push(run_timed(bin, &["status"], &cfg).0);
    }
    let _ = writeln!(
        md,
        "### `status` latency (local etcd, no health script)\n\n\
         | figure | median of 20 | p95 | command |\n|---|---|---|---|\n\
         | `status`, no reboot needed (exit {}) | {:.1} ms | {:.1} ms | `rebootctl status --config CFG` (wall time of the process) |\n\
         | `status`, reboot needed (all gates shown) | {:.1} ms | {:.1} ms | same, with the marker file present |\n",
        codes.first().copied().unwrap_or(-1),
        ms(median(&times)),
        ms(percentile(&times, 95.0)),
        ms(median(&need_times)),
        ms(percentile(&need_times, 95.0)),
    );
}

fn ms(d: Option<Duration>) -> f64 {
    d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
}

fn bench_handoff(bin: &Path, md: &mut String) {
    let mut f = Fleet::new(
        bin,
        FleetSpec {
            nodes: 1,
            ..FleetSpec::default()
        },
    );
    // The waiting node runs in dry-run: it takes the slot, checks, releases.
    f.nodes[0].set("dry_run", "true");
    f.need_reboot(0);
    f.start(0);
    let client = Client::new(&EtcdConfig {
        endpoints: vec![f.etcd.endpoint.clone()],
        namespace: "/rebootctl".into(),
        lock_key: "/rebootctl/lock".into(),
        lock_ttl: Duration::from_secs(5),
        max_concurrent_reboots: 1,
        tls: None,
        auth: None,
        clusterrebootd: None,
        watch_idle_timeout: Duration::from_secs(60),
    })
    .expect("etcd client");
    let key = format!("{}slot-0", fleet::LOCK_PREFIX);
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut seed = fleet::now_us();
    while samples.len() < 20 && Instant::now() < deadline {
        // Take the slot as a pretend holder once the node has let go of it.
        let Ok(lease) = client.lease_grant(Duration::from_secs(60)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let value = serde_json::json!({
            "node": "holder", "pid": 1, "boot_id": "x", "phase": "checking",
            "acquired_at": jiff_now(),
        })
        .to_string();
        let txn = Txn {
            compare: vec![Compare::create_revision(&key, CmpResult::Equal, 0)],
            success: vec![Op::put(&key, value.as_bytes(), Some(lease.id))],
            failure: vec![],
        };
        if !client.txn(&txn).map(|r| r.succeeded).unwrap_or(false) {
            let _ = client.lease_revoke(lease.id);
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        // Release at a random moment relative to the node's pass schedule.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let hold = Duration::from_millis(500 + (seed >> 33) % 2500);
        std::thread::sleep(hold);
        let released = fleet::now_us();
        let _ = client.delete(&key);
        let _ = client.lease_revoke(lease.id);
        let mut took = None;
        f.wait_for(Duration::from_secs(30), |ev| {
            took = ev
                .iter()
                .find(|e| e.node == "node-0" && e.kind == Kind::SlotTaken && e.t_us > released)
                .map(|e| e.t_us);
            took.is_some()
        });
        if let Some(t) = took {
            samples.push(Duration::from_micros(t - released));
            // Let the dry-run pass give the slot back.
            f.wait_for(Duration::from_secs(30), |ev| {
                ev.iter()
                    .any(|e| e.node == "node-0" && e.kind == Kind::Released && e.t_us > t)
            });
        }
    }
    let _ = writeln!(
        md,
        "### Lock handoff latency\n\n\
         A pretend holder takes slot-0 (txn create_revision == 0, as the agent does), holds it \
         0.5-3 s (pseudo-random), deletes it; the waiting node (`rebootctl run`, `dry_run: true`, \
         a need, check_interval_sec {}) is timed from the delete to its own slot put as seen by \
         the harness's etcd watch.\n\n\
         | figure | median | p95 | samples |\n|---|---|---|---|\n\
         | release -> waiting node holds the slot | {:.0} ms | {:.0} ms | {} |\n",
        f.spec.check_interval_secs,
        ms(median(&samples)),
        ms(percentile(&samples, 95.0)),
        samples.len()
    );
    if median(&samples).is_some_and(|m| m > Duration::from_millis(300)) {
        let _ = writeln!(
            md,
            "The waiting node only notices a free slot at its next pass (about half of \
             check_interval_sec on average): the lock watch is not waking it yet.\n"
        );
    }
}

fn jiff_now() -> String {
    jiff::Timestamp::now().to_string()
}

fn bench_makespan(bin: &Path, nodes: usize, slots: u32, md: &mut String) {
    let reboot_secs = 2.0;
    let f = Fleet::new(
        bin,
        FleetSpec {
            nodes,
            slots,
            reboot_secs,
            ..FleetSpec::default()
        },
    );
    f.start_all();
    // Let every agent register and settle before the needs appear.
    std::thread::sleep(Duration::from_secs(3));
    f.need_all();
    let timeout = Duration::from_secs(60 + (nodes as u64 * 8) / slots as u64);
    let report = f.wait_done(timeout);
    let s = summarize(&f.events());
    let ideal = ideal(nodes, reboot_secs, slots);
    let checks = s.under_lock.unwrap_or_default() + s.post_reboot.unwrap_or_default();
    let ideal_checks = Duration::from_secs_f64(
        nodes.div_ceil(slots as usize) as f64 * (reboot_secs + checks.as_secs_f64()),
    );
    if nodes == 10 {
        let _ = writeln!(
            md,
            "### Fleet makespan\n\n\
             Every node gets a need at the same moment; makespan = first need to the last node \
             back healthy. Simulated reboot R = {reboot_secs} s, check_interval_sec 2, the \
             flag-driven health script on. Ideal = ceil(N / slots) x R; with checks = \
             ceil(N / slots) x (R + measured median checks under the lock + boot-to-healthy).\n\n\
             | nodes | slots | makespan | ideal N x R / slots | ideal with checks | ratio to ideal with checks | handoff median / p95 | result |\n\
             |---|---|---|---|---|---|---|---|"
        );
    }
    let _ = writeln!(
        md,
        "| {nodes} | {slots} | {} | {} | {} | {:.2}x | {} / {} | {} |",
        secs(s.makespan),
        secs(ideal),
        secs(ideal_checks),
        s.makespan.as_secs_f64() / ideal_checks.as_secs_f64().max(1e-9),
        opt_secs(median(&s.handoffs)),
        opt_secs(percentile(&s.handoffs, 95.0)),
        if report.done() {
            format!(
                "{} reboots, max {} down, invariants hold",
                s.reboots, report.max_down
            )
        } else {
            format!(
                "INCOMPLETE/UNSAFE: violations {:?}, pending {:?}",
                report.violations, report.pending
            )
        }
    );
    if nodes == 30 {
        let _ = writeln!(
            md,
            "\nCommand: `cargo run --release --example fleet -- bench` (steps `makespan 10/1` \
             and `makespan 30/2`).\n"
        );
    }
}

// ---------------------------------------------------------------------------
// levers

/// One way of building the binary.
struct Lever {
    /// Short name (also the directory of its build).
    name: &'static str,
    /// What differs from the shipped build.
    what: &'static str,
    /// `CARGO_PROFILE_RELEASE_*` overrides.
    env: &'static [(&'static str, &'static str)],
    /// `--target`, when not the host's.
    target: Option<&'static str>,
    /// A text replacement in Cargo.toml (a copy of the tree is built).
    patch: Option<(&'static str, &'static str)>,
    /// Build this git revision instead of the working tree.
    rev: Option<&'static str>,
}

/// The revision before the thread and footprint work (tiny_http metrics
/// server, a lease grant and a put per heartbeat).
const BEFORE_REV: &str = "631c563";

const MUSL: &str = "x86_64-unknown-linux-musl";

const LEVERS: &[Lever] = &[
    Lever {
        name: "shipped-gnu",
        what: "Cargo.toml's release profile: opt-level z, lto fat, codegen-units 1, panic abort, strip; glibc",
        env: &[],
        target: None,
        patch: None,
        rev: None,
    },
    Lever {
        name: "shipped-musl",
        what: "the same profile, static x86_64-unknown-linux-musl (what the packages ship)",
        env: &[],
        target: Some(MUSL),
        patch: None,
        rev: None,
    },
    Lever {
        name: "opt-s",
        what: "opt-level s",
        env: &[("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")],
        target: None,
        patch: None,
        rev: None,
    },
    Lever {
        name: "opt-3",
        what: "opt-level 3",
        env: &[("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")],
        target: None,
        patch: None,
        rev: None,
    },
    Lever {
        name: "unwind",
        what: "panic unwind",
        env: &[("CARGO_PROFILE_RELEASE_PANIC", "unwind")],
        target: None,
        patch: None,
        rev: None,
    },
    Lever {
        name: "cgu-16",
        what: "codegen-units 16",
        env: &[("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")],
        target: None,
        patch: None,
        rev: None,
    },
    Lever {
        name: "lto-off",
        what: "lto off",
        env: &[("CARGO_PROFILE_RELEASE_LTO", "false")],
        target: None,
        patch: None,
        rev: None,
    },
    Lever {
        name: "jiff-lean",
        what: "jiff without tz-fat and tzdb-concatenated",
        env: &[],
        target: None,
        patch: Some((
            r#"features = ["std", "tz-system", "tz-fat", "tzdb-zoneinfo", "tzdb-concatenated"]"#,
            r#"features = ["std", "tz-system", "tzdb-zoneinfo"]"#,
        )),
        rev: None,
    },
    Lever {
        name: "no-webpki-roots",
        what: "ureq rustls without the bundled Mozilla roots (features rustls-no-provider + _ring): a CA file would be needed for every TLS peer",
        env: &[],
        target: None,
        patch: Some((
            r#"features = ["rustls", "json"]"#,
            r#"features = ["rustls-no-provider", "_ring", "json"]"#,
        )),
        rev: None,
    },
    Lever {
        name: "before",
        what: "before this work (tiny_http metrics server: accept thread + pool of 4; lease grant + put per heartbeat), shipped profile, glibc",
        env: &[],
        target: None,
        patch: None,
        rev: Some(BEFORE_REV),
    },
];

/// Idle window per lever build.
const LEVER_IDLE_SECS: u64 = 30;

fn levers(_bin: &Path, out: &Path) -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/levers");
    let _ = fs::create_dir_all(work.join("bin"));
    let mut rows = String::new();
    let mut shipped_size = None;
    for lever in LEVERS {
        eprintln!("levers: building {} ({})", lever.name, lever.what);
        let started = Instant::now();
        let built = match build_lever(root, &work, lever) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("levers: {}: {e}", lever.name);
                let _ = writeln!(
                    rows,
                    "| {} | {} | build failed: {e} | | | |",
                    lever.name, lever.what
                );
                continue;
            }
        };
        let build_secs = started.elapsed().as_secs();
        let size = fs::metadata(&built).map(|m| m.len()).unwrap_or(0);
        let shipped = *shipped_size.get_or_insert(size);
        eprintln!(
            "levers: {} is {size} bytes; idle for {LEVER_IDLE_SECS} s",
            lever.name
        );
        let (rss, threads) = idle_once(&built);
        let _ = writeln!(
            rows,
            "| {} | {} | {size} ({:+.1} %) | {rss} | {threads} | {build_secs} s |",
            lever.name,
            lever.what,
            100.0 * (size as f64 - shipped as f64) / shipped as f64,
        );
    }
    let md = format!(
        "## `make bench-levers`: what each lever does to size and memory\n\n\
         Written by `make bench-levers` (`cargo run --release --example fleet -- levers`): each row is \
         a full release build (`CARGO_PROFILE_RELEASE_*` overrides, `--target`, a patched copy of \
         Cargo.toml, or `git archive` of revision {BEFORE_REV}) into target/levers, stripped; then \
         that binary idles {LEVER_IDLE_SECS} s in cluster mode with metrics on at the default \
         intervals (the first idle daemon of the fleet harness), and its memory is read from \
         `/proc/PID/status` and `smaps_rollup` as in the `bench` section. Load while it ran: {}. \
         Build time is wall time on a shared machine, for orientation only.\n\n\
         | lever | what | size, bytes (vs shipped-gnu) | VmRSS / VmHWM / RssAnon / RssFile / PSS | threads | build |\n\
         |---|---|---|---|---|---|\n{rows}\n",
        load_average()
    );
    finish(out, "levers", &md)
}

/// Builds `lever`; returns a copy of its binary in `work/bin/<name>`.
fn build_lever(root: &Path, work: &Path, lever: &Lever) -> Result<PathBuf, String> {
    let tree = if lever.patch.is_some() || lever.rev.is_some() {
        let tree = work.join(format!("tree-{}", lever.name));
        let _ = fs::remove_dir_all(&tree);
        fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
        let copied = match lever.rev {
            Some(rev) => Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "git -C '{}' archive {rev} | tar -x -C '{}'",
                    root.display(),
                    tree.display()
                ))
                .status(),
            None => Command::new("cp")
                .args(["-r", "src", "tests", "build.rs", "Cargo.toml", "Cargo.lock"])
                .arg(&tree)
                .current_dir(root)
                .status(),
        };
        if !copied.map(|s| s.success()).unwrap_or(false) {
            return Err("cannot lay out the tree".into());
        }
        if let Some((from, to)) = lever.patch {
            let manifest = tree.join("Cargo.toml");
            let text = fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
            if !text.contains(from) {
                return Err(format!("Cargo.toml has no {from}"));
            }
            fs::write(&manifest, text.replace(from, to)).map_err(|e| e.to_string())?;
        }
        tree
    } else {
        root.to_path_buf()
    };
    let target_dir = work.join("target");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--bin", "rebootctl"])
        .current_dir(&tree)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("REBOOTCTL_GIT_COMMIT", lever.rev.unwrap_or("lever"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = lever.target {
        cmd.args(["--target", t]);
        // ring's few C files: the host's gcc, as packaging/package.mk does.
        cmd.env(
            format!("CC_{}", t.replace('-', "_")),
            "x86_64-linux-gnu-gcc",
        );
    }
    for (k, v) in lever.env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(last.into_iter().rev().collect::<Vec<_>>().join(" / "));
    }
    let built = match lever.target {
        Some(t) => target_dir.join(t).join("release/rebootctl"),
        None => target_dir.join("release/rebootctl"),
    };
    let dest = work.join("bin").join(lever.name);
    fs::copy(&built, &dest).map_err(|e| e.to_string())?;
    Ok(dest)
}

/// Idles `bin` in cluster mode (metrics on, default intervals) for
/// [`LEVER_IDLE_SECS`]; returns its memory cells and thread summary.
fn idle_once(bin: &Path) -> (String, String) {
    let f = idle_fleet(bin, None);
    f.start(0);
    std::thread::sleep(Duration::from_secs(LEVER_IDLE_SECS));
    match f.nodes[0].agent_pid() {
        Some(pid) if cpu_ticks(pid).is_some() => {
            (rss_cells(pid), thread_summary(&thread_names(pid)))
        }
        _ => ("did not stay up".into(), String::new()),
    }
}

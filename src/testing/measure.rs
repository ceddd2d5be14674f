//! What the benchmarks (`examples/fleet.rs`, `examples/scale.rs`) and the
//! footprint tests read off a running process or etcd: CPU ticks, memory
//! and thread names from `/proc`, a process's established TCP connections
//! to a port, etcd's request counters; and the writer of one generated
//! section of `BENCHMARKS.md`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid` in clock ticks (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that ends the command name: state is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `Name:` line's value from `/proc/PID/<file>` (`status`, `smaps_rollup`).
pub fn proc_field(pid: i32, file: &str, name: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(name))
        .map(|l| l[name.len()..].trim().to_string())
}

/// A `/proc/PID/status` value in kB (`VmRSS:`, `RssAnon:` …).
pub fn status_kb(pid: i32, name: &str) -> Option<u64> {
    proc_field(pid, "status", name)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The names (`comm`) of `pid`'s threads, the main thread first.
pub fn thread_names(pid: i32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut tids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids.iter()
        .filter_map(|tid| fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

/// "5: rebootctl, signals, heartbeat, metrics, etcd-watch" — a thread list
/// with repeated names counted (`etcd-watch ×3`).
pub fn thread_summary(names: &[String]) -> String {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for n in names {
        match counted.iter_mut().find(|(m, _)| m == n) {
            Some((_, c)) => *c += 1,
            None => counted.push((n.clone(), 1)),
        }
    }
    let parts: Vec<String> = counted
        .into_iter()
        .map(|(n, c)| if c > 1 { format!("{n} ×{c}") } else { n })
        .collect();
    format!("{}: {}", names.len(), parts.join(", "))
}

/// The number of `pid`'s established TCP connections to 127.0.0.1:`port`
/// (its socket inodes from `/proc/PID/fd` matched in `/proc/PID/net/tcp`).
pub fn connections_to(pid: i32, port: u16) -> usize {
    let inodes: HashSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local, remote, state (01 = ESTABLISHED), …, inode (field 10).
            f.len() > 9 && f[2] == want && f[3] == "01" && inodes.contains(f[9])
        })
        .count()
}

/// `GET url`, the body when the answer is 200.
pub fn http_get(url: &str) -> Option<String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = agent.get(url).call().ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    resp.body_mut().read_to_string().ok()
}

/// etcd's own gRPC counters by method (`grpc_server_started_total`
/// summed per method): every gateway request is one gRPC call inside etcd.
pub fn etcd_requests(endpoint: &str) -> BTreeMap<String, f64> {
    let mut by_method = BTreeMap::new();
    for line in http_get(&format!("{endpoint}/metrics"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("grpc_server_started_total{"))
    {
        let method = line
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("?")
            .to_string();
        let v: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        *by_method.entry(method).or_insert(0.0) += v;
    }
    by_method
}

/// `after - before` per method, the methods that moved only.
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(m, v)| (m.clone(), v - before.get(m).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// The title and the order of the generated sections of `BENCHMARKS.md`.
const SECTIONS: [&str; 3] = ["bench", "levers", "scale"];

/// The head of a fresh `BENCHMARKS.md`.
const HEADER: &str = "# rebootctl benchmarks\n\n\
Three commands write this file, each only its own section (between its `<!-- begin NAME -->` and \
`<!-- end NAME -->` lines; text outside the markers is kept): `make bench` (section `bench`: \
binary size, idle daemon, request rate, `status` and handoff latency, makespan; ~8 min), \
`make bench-levers` (section `levers`: every build lever and its effect; ~1 h of builds) and \
`make bench-scale` (section `scale`: a 3-member etcd and hundreds of agents; ~10 min, not in CI).\n";

/// Replaces section `name` of the markdown file `path` with `body` (the
/// rest of the file is kept); a file without sections starts afresh.
pub fn write_section(path: &Path, name: &str, body: &str) -> std::io::Result<()> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let begin = format!("<!-- begin {name} -->\n");
    let end = format!("<!-- end {name} -->\n");
    let block = format!("{begin}{}{end}", ensure_newline(body));
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &text[..b], &text[e + end.len()..]),
        _ if !text.contains("<!-- begin ") => format!("{HEADER}\n{block}"),
        _ => {
            // Before the first present section that comes later in SECTIONS.
            let rank = SECTIONS
                .iter()
                .position(|s| *s == name)
                .unwrap_or(SECTIONS.len());
            let next = SECTIONS[rank.min(SECTIONS.len())..]
                .iter()
                .skip(1)
                .find_map(|s| text.find(&format!("<!-- begin {s} -->\n")));
            match next {
                Some(at) => format!("{}{block}\n{}", &text[..at], &text[at..]),
                None => format!("{}\n{block}", ensure_newline(&text)),
            }
        }
    };
    fs::write(path, new)
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') || s.is_empty() {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place_and_inserted_in_order() {
        let dir = super::super::etcd::TempDir::new("measure");
        let p = dir.path().join("B.md");
        fs::write(&p, "# old file without sections\n").expect("write");
        write_section(&p, "scale", "S1\n").expect("scale");
        let t = fs::read_to_string(&p).expect("read");
        assert!(t.starts_with("# rebootctl benchmarks"), "{t}");
        assert!(!t.contains("old file"), "{t}");
        write_section(&p, "bench", "B1").expect("bench");
        fs::write(
            &p,
            fs::read_to_string(&p).expect("read") + "hand-written note\n",
        )
        .expect("note");
        write_section(&p, "levers", "L1\n").expect("levers");
        write_section(&p, "bench", "B2\n").expect("bench again");
        let t = fs::read_to_string(&p).expect("read");
        let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} missing in {t}"));
        assert!(at("B2") < at("L1") && at("L1") < at("S1"), "{t}");
        assert!(!t.contains("B1"), "{t}");
        assert!(t.contains("hand-written note"), "{t}");
    }

    #[test]
    fn thread_summary_counts_repeats() {
        let names: Vec<String> = ["rebootctl", "etcd-watch", "metrics", "etcd-watch"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            thread_summary(&names),
            "4: rebootctl, etcd-watch ×2, metrics"
        );
    }
}

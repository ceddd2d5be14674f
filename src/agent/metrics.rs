//! Prometheus metrics (SPEC §8): an in-process registry the daemon updates
//! ([`Metrics`]) and one server thread that renders it in the text
//! exposition format on `GET /metrics` ([`MetricsServer`]).
//!
//! The registry is a handful of fixed families behind one mutex; there is no
//! metrics crate because ten families do not need one, and SPEC §1 keeps the
//! dependency list short. Nor is there an HTTP server crate: tiny_http
//! starts an accept thread and a pool of four more whatever the load, and a
//! scrape endpoint needs one thread answering one connection at a time. The
//! thread blocks in `accept` (no polling), so an idle daemon costs no CPU;
//! `stop` wakes and joins it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::exposition::{bool_value, family, format_value, sample};
use crate::pass::outcome::Block;

/// Upper bounds (seconds) of the `rebootctl_lock_acquire_seconds` buckets,
/// from an uncontended etcd round trip to a five-minute wait for a slot.
pub const LOCK_ACQUIRE_BUCKETS_SECS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The Content-Type of the text exposition format.
pub use crate::exposition::CONTENT_TYPE;

/// How long the server thread waits after an accept error before the next
/// `recv`, so a persistent error (out of file descriptors) cannot spin a core.
const ACCEPT_ERROR_PAUSE_MILLIS: u64 = 100;

/// The values behind the families; one lock guards them all.
#[derive(Debug)]
struct State {
    reboot_required: bool,
    reboots_total: u64,
    /// `(phase, result)` → count.
    health_checks: BTreeMap<(String, String), u64>,
    /// reason → count; every [`Block::LABELS`] entry is present from the start.
    blocked_total: BTreeMap<String, u64>,
    /// The reason the last pass stopped at, if it was blocked.
    blocked_now: Option<String>,
    /// Since when the lock has been held, if it is.
    lock_held_since: Option<Instant>,
    /// Per-bucket (not cumulative) counts, one per bound in
    /// [`LOCK_ACQUIRE_BUCKETS_SECS`] plus the `+Inf` overflow bucket.
    lock_acquire_buckets: [u64; LOCK_ACQUIRE_BUCKETS_SECS.len() + 1],
    lock_acquire_sum: f64,
    lock_acquire_count: u64,
    /// Unix time of the end of the last pass, in seconds.
    last_pass: Option<f64>,
    /// Whether another host claims this node's name.
    name_conflict: bool,
}

impl State {
    fn new() -> State {
        State {
            reboot_required: false,
            reboots_total: 0,
            health_checks: BTreeMap::new(),
            blocked_total: Block::LABELS.iter().map(|l| (l.to_string(), 0)).collect(),
            blocked_now: None,
            lock_held_since: None,
            lock_acquire_buckets: [0; LOCK_ACQUIRE_BUCKETS_SECS.len() + 1],
            lock_acquire_sum: 0.0,
            lock_acquire_count: 0,
            last_pass: None,
            name_conflict: false,
        }
    }
}

/// The metrics registry; clones share the same values.
#[derive(Debug, Clone)]
pub struct Metrics {
    state: Arc<Mutex<State>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every counter at zero.
    pub fn new() -> Metrics {
        Metrics {
            state: Arc::new(Mutex::new(State::new())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned registry must
        // not take the daemon down: the values are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `rebootctl_reboot_required`.
    pub fn set_reboot_required(&self, required: bool) {
        self.state().reboot_required = required;
    }

    /// Increments `rebootctl_reboots_total`.
    pub fn inc_reboots(&self) {
        self.state().reboots_total += 1;
    }

    /// Increments `rebootctl_health_checks_total{phase,result}`; `result` is
    /// `healthy`, `unhealthy` or `error`.
    pub fn inc_health_check(&self, phase: &str, result: &str) {
        *self
            .state()
            .health_checks
            .entry((phase.to_string(), result.to_string()))
            .or_insert(0) += 1;
    }

    /// Records how the last pass ended: `Some(reason)` counts a block in
    /// `rebootctl_blocked_total` and makes `rebootctl_blocked` 1 for that
    /// reason only; `None` sets every `rebootctl_blocked` to 0.
    pub fn pass_blocked(&self, reason: Option<&str>) {
        let mut s = self.state();
        match reason {
            Some(r) => {
                *s.blocked_total.entry(r.to_string()).or_insert(0) += 1;
                s.blocked_now = Some(r.to_string());
            }
            None => s.blocked_now = None,
        }
    }

    /// Sets `rebootctl_lock_held`; the first `true` after a `false` starts
    /// the clock of `rebootctl_lock_held_seconds`.
    pub fn set_lock_held(&self, held: bool) {
        let mut s = self.state();
        if !held {
            s.lock_held_since = None;
        } else if s.lock_held_since.is_none() {
            s.lock_held_since = Some(Instant::now());
        }
    }

    /// Adds one observation to the `rebootctl_lock_acquire_seconds` histogram.
    pub fn observe_lock_acquire(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut s = self.state();
        let i = LOCK_ACQUIRE_BUCKETS_SECS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LOCK_ACQUIRE_BUCKETS_SECS.len());
        s.lock_acquire_buckets[i] += 1;
        s.lock_acquire_sum += secs;
        s.lock_acquire_count += 1;
    }

    /// Sets `rebootctl_name_conflict`.
    pub fn set_name_conflict(&self, conflict: bool) {
        self.state().name_conflict = conflict;
    }

    /// Sets `rebootctl_last_pass_timestamp_seconds` to now.
    pub fn set_last_pass_now(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.state().last_pass = Some(now);
    }

    /// Renders every family in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let s = self.state();
        let mut out = String::with_capacity(4096);

        family(
            &mut out,
            "rebootctl_reboot_required",
            "gauge",
            "1 if a detector says this node needs a reboot.",
        );
        sample(
            &mut out,
            "rebootctl_reboot_required",
            &[],
            bool_value(s.reboot_required),
        );

        family(
            &mut out,
            "rebootctl_reboots_total",
            "counter",
            "Reboots this agent has issued since it started.",
        );
        sample(
            &mut out,
            "rebootctl_reboots_total",
            &[],
            s.reboots_total as f64,
        );

        family(
            &mut out,
            "rebootctl_health_checks_total",
            "counter",
            "Health script runs by phase and result (healthy, unhealthy, error).",
        );
        for ((phase, result), n) in &s.health_checks {
            sample(
                &mut out,
                "rebootctl_health_checks_total",
                &[("phase", phase), ("result", result)],
                *n as f64,
            );
        }

        family(
            &mut out,
            "rebootctl_blocked_total",
            "counter",
            "Passes stopped by a gate, by reason.",
        );
        for (reason, n) in &s.blocked_total {
            sample(
                &mut out,
                "rebootctl_blocked_total",
                &[("reason", reason)],
                *n as f64,
            );
        }

        family(
            &mut out,
            "rebootctl_blocked",
            "gauge",
            "1 for the reason the last pass stopped at, else 0.",
        );
        for reason in s.blocked_total.keys() {
            let on = s.blocked_now.as_deref() == Some(reason.as_str());
            sample(
                &mut out,
                "rebootctl_blocked",
                &[("reason", reason)],
                bool_value(on),
            );
        }

        family(
            &mut out,
            "rebootctl_lock_held",
            "gauge",
            "1 while this node holds a slot of the reboot lock.",
        );
        sample(
            &mut out,
            "rebootctl_lock_held",
            &[],
            bool_value(s.lock_held_since.is_some()),
        );

        family(
            &mut out,
            "rebootctl_lock_held_seconds",
            "gauge",
            "How long this node has held its lock slot, 0 when it holds none.",
        );
        let held = s
            .lock_held_since
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        sample(&mut out, "rebootctl_lock_held_seconds", &[], held);

        family(
            &mut out,
            "rebootctl_lock_acquire_seconds",
            "histogram",
            "Time from asking for a lock slot to getting one.",
        );
        let mut cumulative = 0;
        for (i, le) in LOCK_ACQUIRE_BUCKETS_SECS.iter().enumerate() {
            cumulative += s.lock_acquire_buckets[i];
            sample(
                &mut out,
                "rebootctl_lock_acquire_seconds_bucket",
                &[("le", &format_value(*le))],
                cumulative as f64,
            );
        }
        cumulative += s.lock_acquire_buckets[LOCK_ACQUIRE_BUCKETS_SECS.len()];
        sample(
            &mut out,
            "rebootctl_lock_acquire_seconds_bucket",
            &[("le", "+Inf")],
            cumulative as f64,
        );
        sample(
            &mut out,
            "rebootctl_lock_acquire_seconds_sum",
            &[],
            s.lock_acquire_sum,
        );
        sample(
            &mut out,
            "rebootctl_lock_acquire_seconds_count",
            &[],
            s.lock_acquire_count as f64,
        );

        family(
            &mut out,
            "rebootctl_last_pass_timestamp_seconds",
            "gauge",
            "Unix time at which the last pass ended, 0 before the first.",
        );
        sample(
            &mut out,
            "rebootctl_last_pass_timestamp_seconds",
            &[],
            s.last_pass.unwrap_or(0.0),
        );

        family(
            &mut out,
            "rebootctl_name_conflict",
            "gauge",
            "1 while another host claims this node's name (no reboot until resolved).",
        );
        sample(
            &mut out,
            "rebootctl_name_conflict",
            &[],
            bool_value(s.name_conflict),
        );

        family(
            &mut out,
            "rebootctl_build_info",
            "gauge",
            "Always 1; the version is in the label.",
        );
        sample(
            &mut out,
            "rebootctl_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );

        out
    }
}

/// The `/metrics` endpoint: one thread that accepts a connection, reads one
/// request head, answers it and closes the connection, then accepts the next.
///
/// No HTTP crate and no thread pool: a scrape is one small GET every few
/// seconds, so serial answers cost nothing, and a client that does not send
/// its request within [`REQUEST_DEADLINE_MILLIS`] is dropped so it cannot hold
/// the endpoint. Every answer carries `Connection: close`.
pub struct MetricsServer {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Longest request head accepted (request line and headers), in bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// How long a client has to send its request head, in milliseconds.
pub const REQUEST_DEADLINE_MILLIS: u64 = 5_000;
/// Granularity at which a read in progress notices [`MetricsServer::stop`].
const READ_SLICE_MILLIS: u64 = 100;

impl MetricsServer {
    /// Binds `listen` and starts serving `metrics` on a thread named `metrics`.
    pub fn start(listen: SocketAddr, metrics: Metrics) -> Result<MetricsServer> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::Runtime(format!("metrics: cannot listen on {listen}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::Runtime(format!("metrics: cannot listen on {listen}: {e}")))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("metrics".to_string())
                .spawn(move || serve(&listener, &metrics, &stopping))
                .map_err(|e| {
                    Error::Runtime(format!("metrics: cannot start the server thread: {e}"))
                })?
        };
        log::debug!("metrics: serving on http://{local_addr}/metrics");
        Ok(MetricsServer {
            local_addr,
            stopping,
            thread: Some(thread),
        })
    }

    /// The address actually bound (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and joins the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            // The thread blocks in accept: a connection of our own wakes it.
            // (A failure means it is not in accept; a read notices the flag.)
            let mut wake = self.local_addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
            if thread.join().is_err() {
                log::warn!("metrics: the server thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The server thread: a blocking `accept`, one request per connection.
fn serve(listener: &TcpListener, metrics: &Metrics, stopping: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, metrics, stopping) {
                    log::debug!("metrics: could not answer a request: {e}");
                }
            }
            Err(e) => {
                log::debug!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MILLIS));
            }
        }
    }
}

/// Reads one request head from `stream` and writes the answer.
fn answer(mut stream: TcpStream, metrics: &Metrics, stopping: &AtomicBool) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(READ_SLICE_MILLIS)))?;
    stream.set_write_timeout(Some(Duration::from_millis(REQUEST_DEADLINE_MILLIS)))?;
    let Some(head) = read_head(&mut stream, stopping)? else {
        return Ok(());
    };
    let (status, extra, body) = route(&head, metrics);
    let head_only = head.starts_with(b"HEAD ");
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        if status.starts_with("200") {
            CONTENT_TYPE
        } else {
            "text/plain; charset=utf-8"
        },
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    // Half-close, then let the client close first: closing with unread
    // bytes (a request body) would reset the connection under the answer.
    stream.shutdown(Shutdown::Write)?;
    let mut sink = [0u8; 512];
    let deadline = Instant::now() + Duration::from_millis(READ_SLICE_MILLIS * 5);
    while Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The request head (up to the blank line), or `None` when the client went
/// away, was too slow or sent too much, or the server is stopping.
fn read_head(stream: &mut TcpStream, stopping: &AtomicBool) -> io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + Duration::from_millis(REQUEST_DEADLINE_MILLIS);
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST_HEAD_BYTES
            || stopping.load(Ordering::SeqCst)
            || Instant::now() >= deadline
        {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Status line, extra header lines and body for a request head.
fn route(head: &[u8], metrics: &Metrics) -> (&'static str, &'static str, String) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", "", "bad request\n".into());
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return ("400 Bad Request", "", "bad request\n".into());
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path != "/metrics" {
        ("404 Not Found", "", "not found; try /metrics\n".into())
    } else if !matches!(method, "GET" | "HEAD") {
        (
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "method not allowed\n".into(),
        )
    } else {
        ("200 OK", "", metrics.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A parsed sample line: name, labels, value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// Parses the exposition text strictly enough to catch format mistakes:
    /// returns the samples and checks every one has HELP and TYPE before it.
    fn parse(text: &str) -> Vec<Sample> {
        let mut help = HashSet::new();
        let mut types: HashMap<String, String> = HashMap::new();
        let mut samples = Vec::new();
        assert!(text.ends_with('\n'), "exposition must end with a newline");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("HELP name");
                assert!(help.insert(name.to_string()), "duplicate HELP {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let name = it.next().expect("TYPE name").to_string();
                let kind = it.next().expect("TYPE kind").to_string();
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                    "{line}"
                );
                assert!(help.contains(&name), "TYPE before HELP for {name}");
                assert!(types.insert(name, kind).is_none(), "duplicate TYPE");
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), Vec::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    (name.to_string(), parse_labels(body))
                }
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (types.get(base).map(String::as_str) == Some("histogram"))
                        .then(|| base.to_string())
                })
                .unwrap_or_else(|| name.clone());
            assert!(types.contains_key(&family), "{name} has no TYPE");
            samples.push((name, labels, value));
        }
        samples
    }

    fn parse_labels(body: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut chars = body.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "label value is quoted");
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value") {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => panic!("bad escape {other:?}"),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            out.push((key, value));
            match chars.next() {
                None => break,
                Some(',') => {}
                Some(c) => panic!("unexpected {c:?} after a label"),
            }
        }
        out
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    fn busy_metrics() -> Metrics {
        let m = Metrics::new();
        m.set_reboot_required(true);
        m.inc_reboots();
        m.inc_health_check("pre_lock", "healthy");
        m.inc_health_check("pre_lock", "healthy");
        m.inc_health_check("post_reboot", "unhealthy");
        m.pass_blocked(Some("window"));
        m.pass_blocked(Some("window"));
        m.pass_blocked(Some("lock"));
        m.set_lock_held(true);
        m.set_name_conflict(true);
        for ms in [1, 7, 7, 300, 4_000, 1_000_000] {
            m.observe_lock_acquire(Duration::from_millis(ms));
        }
        m.set_last_pass_now();
        m
    }

    #[test]
    fn fresh_registry_lists_every_family_and_reason_at_zero() {
        let samples = parse(&Metrics::new().render());
        for reason in Block::LABELS {
            assert_eq!(
                value(&samples, "rebootctl_blocked_total", &[("reason", reason)]),
                0.0
            );
            assert_eq!(
                value(&samples, "rebootctl_blocked", &[("reason", reason)]),
                0.0
            );
        }
        assert_eq!(value(&samples, "rebootctl_reboot_required", &[]), 0.0);
        assert_eq!(value(&samples, "rebootctl_lock_held", &[]), 0.0);
        assert_eq!(value(&samples, "rebootctl_lock_held_seconds", &[]), 0.0);
        assert_eq!(value(&samples, "rebootctl_name_conflict", &[]), 0.0);
        assert_eq!(
            value(&samples, "rebootctl_last_pass_timestamp_seconds", &[]),
            0.0
        );
        assert_eq!(
            value(
                &samples,
                "rebootctl_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );
    }

    #[test]
    fn render_reflects_updates() {
        let m = busy_metrics();
        let samples = parse(&m.render());
        assert_eq!(value(&samples, "rebootctl_reboot_required", &[]), 1.0);
        assert_eq!(value(&samples, "rebootctl_reboots_total", &[]), 1.0);
        let hc = "rebootctl_health_checks_total";
        assert_eq!(
            value(
                &samples,
                hc,
                &[("phase", "pre_lock"), ("result", "healthy")]
            ),
            2.0
        );
        assert_eq!(
            value(
                &samples,
                hc,
                &[("phase", "post_reboot"), ("result", "unhealthy")]
            ),
            1.0
        );
        let bt = "rebootctl_blocked_total";
        assert_eq!(value(&samples, bt, &[("reason", "window")]), 2.0);
        assert_eq!(value(&samples, bt, &[("reason", "lock")]), 1.0);
        for reason in Block::LABELS {
            let want = if reason == "lock" { 1.0 } else { 0.0 };
            assert_eq!(
                value(&samples, "rebootctl_blocked", &[("reason", reason)]),
                want,
                "{reason}"
            );
        }
        assert_eq!(value(&samples, "rebootctl_lock_held", &[]), 1.0);
        assert_eq!(value(&samples, "rebootctl_name_conflict", &[]), 1.0);
        assert!(value(&samples, "rebootctl_last_pass_timestamp_seconds", &[]) > 1.0e9);

        m.pass_blocked(None);
        m.set_lock_held(false);
        let samples = parse(&m.render());
        for reason in Block::LABELS {
            assert_eq!(
                value(&samples, "rebootctl_blocked", &[("reason", reason)]),
                0.0
            );
        }
        assert_eq!(value(&samples, bt, &[("reason", "lock")]), 1.0);
        assert_eq!(value(&samples, "rebootctl_lock_held", &[]), 0.0);
        assert_eq!(value(&samples, "rebootctl_lock_held_seconds", &[]), 0.0);
    }

    #[test]
    fn lock_held_seconds_counts_from_the_first_acquire() {
        let m = Metrics::new();
        m.set_lock_held(true);
        let since = Instant::now();
        // A second `true` (the next pass, still holding) must not restart the clock.
        let deadline = Instant::now() + Duration::from_secs(5);
        while since.elapsed() < Duration::from_millis(20) && Instant::now() < deadline {
            std::thread::yield_now();
        }
        m.set_lock_held(true);
        let held = value(&parse(&m.render()), "rebootctl_lock_held_seconds", &[]);
        assert!(held >= 0.020, "held {held}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_count() {
        let samples = parse(&busy_metrics().render());
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(n, _, _)| n == "rebootctl_lock_acquire_seconds_bucket")
            .map(|(_, l, v)| {
                let le = &l.iter().find(|(k, _)| k == "le").expect("le label").1;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le is a number")
                };
                (le, *v)
            })
            .collect();
        assert_eq!(buckets.len(), LOCK_ACQUIRE_BUCKETS_SECS.len() + 1);
        for pair in buckets.windows(2) {
            assert!(pair[0].0 < pair[1].0, "bounds increase: {pair:?}");
            assert!(pair[0].1 <= pair[1].1, "counts are cumulative: {pair:?}");
        }
        let count = value(&samples, "rebootctl_lock_acquire_seconds_count", &[]);
        let inf = buckets.last().expect("+Inf bucket");
        assert_eq!(inf.0, f64::INFINITY);
        assert_eq!(inf.1, count);
        assert_eq!(count, 6.0);
        // 1 ms and 7 ms twice are <= 0.01 s; 1000 s only fits +Inf.
        assert_eq!(buckets[1], (0.01, 3.0));
        assert_eq!(buckets[buckets.len() - 2], (300.0, 5.0));
        let sum = value(&samples, "rebootctl_lock_acquire_seconds_sum", &[]);
        assert!((sum - 1_004.315).abs() < 1e-6, "sum {sum}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.inc_health_check("we\"ird\\phase\nx", "error");
        let text = m.render();
        assert!(
            text.contains(r#"phase="we\"ird\\phase\nx",result="error"} 1"#),
            "{text}"
        );
        let samples = parse(&text);
        assert_eq!(
            value(
                &samples,
                "rebootctl_health_checks_total",
                &[("phase", "we\"ird\\phase\nx"), ("result", "error")]
            ),
            1.0
        );
    }

    #[test]
    fn promtool_accepts_the_exposition() {
        let m = busy_metrics();
        m.inc_health_check("odd \"phase\"", "error");
        crate::exposition::assert_promtool_accepts(&m.render());
    }

    /// A plain HTTP/1.0 GET; returns (status line, headers, body).
    fn get(addr: SocketAddr, path: &str, method: &str) -> (String, String, String) {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("header end");
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.to_string(), headers.to_string(), body.to_string())
    }

    #[test]
    fn server_answers_metrics_and_404s_elsewhere() {
        let m = Metrics::new();
        let server = MetricsServer::start("127.0.0.1:0".parse().expect("addr"), m.clone())
            .expect("server starts");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        m.inc_reboots();
        let (status, headers, body) = get(addr, "/metrics", "GET");
        assert!(status.contains(" 200 "), "{status}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{headers}"
        );
        assert!(body.contains("\nrebootctl_reboots_total 1\n"), "{body}");
        parse(&body);

        let (status, _, _) = get(addr, "/metrics?x=1", "GET");
        assert!(status.contains(" 200 "), "{status}");
        for path in ["/", "/metricsx", "/metrics/", "/%ff%00"] {
            let (status, _, _) = get(addr, path, "GET");
            assert!(status.contains(" 404 "), "{path}: {status}");
        }
        let (status, headers, _) = get(addr, "/metrics", "POST");
        assert!(status.contains(" 405 "), "{status}");
        assert!(headers.contains("GET, HEAD"), "{headers}");
        let (status, headers, body) = get(addr, "/metrics", "HEAD");
        assert!(status.contains(" 200 "), "{status}");
        assert!(headers.contains("Content-Length: "), "{headers}");
        assert!(body.is_empty(), "{body}");
        let (status, _, _) = get(addr, "/metrics", "GET /extra");
        assert!(status.contains(" 400 "), "{status}");

        // Garbage must not kill the server thread.
        let mut junk = TcpStream::connect(addr).expect("connect");
        junk.write_all(b"\x00\xffnot http at all\r\n\r\n")
            .expect("write junk");
        drop(junk);
        let (status, _, _) = get(addr, "/metrics", "GET");
        assert!(status.contains(" 200 "), "{status}");

        server.stop();
    }

    #[test]
    fn address_in_use_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = MetricsServer::start(addr, Metrics::new()).expect_err("port is taken");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("metrics: cannot listen on {addr}: ")),
            "{msg}"
        );
        assert!(msg.to_lowercase().contains("in use"), "{msg}");
        assert_eq!(err.exit_code(), crate::error::EXIT_RUNTIME);
    }

    #[test]
    fn stop_returns_promptly_with_an_idle_client_connected() {
        let server = MetricsServer::start("127.0.0.1:0".parse().expect("addr"), Metrics::new())
            .expect("server starts");
        let addr = server.local_addr();
        // An idle keep-alive client must not hold up the stop.
        let _idle = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        server.stop();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stop took {:?}",
            started.elapsed()
        );
    }
}

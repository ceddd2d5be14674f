//! A real Alertmanager and a real Prometheus for the alert gate's tests
//! (Debian's `prometheus-alertmanager` and `prometheus` packages), each on a
//! free loopback port with its configuration and data in a temp directory;
//! a tiny exporter whose one metric a test sets; and a fake HTTP server that
//! answers nonsense, or nothing at all.
//!
//! Servers are killed on drop, also when the test panics (their log tail is
//! printed then). A missing binary is a panic with instructions: no test
//! passes silently without the servers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use rebootctl::testing::etcd::{TempDir, TestPki, free_port};

/// Debian's Alertmanager.
pub const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// Debian's Prometheus.
pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
/// How long a server may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop()` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Interval of readiness and condition polls.
const POLL: Duration = Duration::from_millis(50);

/// The user and password of [`Alertmanager::start_tls`].
pub const BASIC_USER: &str = "rebootctl";
/// The password of [`BASIC_USER`].
pub const BASIC_PASSWORD: &str = "s3cret-pw";
/// bcrypt (cost 4) of [`BASIC_PASSWORD`], for Alertmanager's web config.
const BASIC_PASSWORD_BCRYPT: &str = "$2b$04$stmqITcUGwPGlNWaZurn1uGbzfclKKebx2um3duNXmuzY4DrWBx/i";

fn binary(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} not found: apt-get install {package} (.ci/run installs it)"
    );
    p
}

/// One server process with its directory, and a client for the harness's
/// own requests (trusting its CA, with its credentials).
pub struct Server {
    /// The base URL (`http://127.0.0.1:P`).
    pub url: String,
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Server {
    /// Starts `binary` with the arguments `args(port, dir)` on a free port,
    /// after `setup(dir)` wrote its files, and waits for `/-/ready`.
    fn start(
        name: &'static str,
        binary: PathBuf,
        scheme: &str,
        tls: Option<ureq::tls::TlsConfig>,
        authorization: Option<String>,
        setup: impl Fn(&Path),
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Server {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.unwrap_or_default())
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .new_agent();
        let mut last = String::new();
        // A port picked by free_port() can be taken before the server binds it.
        for _ in 0..3 {
            let dir = TempDir::new(name);
            setup(dir.path());
            let port = free_port();
            let mut server = Server {
                url: format!("{scheme}://127.0.0.1:{port}"),
                name,
                binary: binary.clone(),
                args: args(port, dir.path()),
                dir,
                child: None,
                agent: agent.clone(),
                authorization: authorization.clone(),
            };
            server.spawn();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if log.contains("address already in use") => last = log,
                Err(log) => panic!("{name} did not become ready; log tail:\n{log}"),
            }
        }
        panic!("{name} could not bind a free port three times; last log:\n{last}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}\n{}", self.log_tail(30)));
                }
            }
            if matches!(self.request("GET", "/-/ready", None), Some((200, _))) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(self.log_tail(30))
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, String)> {
        fn auth<B>(r: ureq::RequestBuilder<B>, a: &Option<String>) -> ureq::RequestBuilder<B> {
            match a {
                Some(a) => r.header("Authorization", a),
                None => r,
            }
        }
        let url = format!("{}{path}", self.url);
        let a = &self.authorization;
        let sent = match (method, body) {
            ("GET", _) => auth(self.agent.get(&url), a).call(),
            ("DELETE", _) => auth(self.agent.delete(&url), a).call(),
            (_, Some(b)) => auth(self.agent.post(&url), a)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            (_, None) => auth(self.agent.post(&url), a).send_empty(),
        };
        let mut resp = sent.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.body_mut().read_to_string().ok()?))
    }

    /// `method path` with a JSON body; panics unless the answer is 2xx JSON
    /// (an empty body is null).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self
            .request(method, path, body.as_ref())
            .unwrap_or_else(|| panic!("{} {method} {path}: no answer", self.name));
        assert!(
            (200..300).contains(&status),
            "{} {method} {path}: HTTP {status}: {text}",
            self.name
        );
        if text.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    /// Stops the server (SIGTERM, grace, SIGKILL); its port is then closed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- {} log tail ({}) ---\n{}",
                self.name,
                self.url,
                self.log_tail(30)
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A real Alertmanager with one route to a receiver that does nothing.
pub struct Alertmanager {
    /// The server.
    pub server: Server,
}

const ALERTMANAGER_CONFIG: &str = "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n";

impl Alertmanager {
    /// Starts Alertmanager over plain HTTP.
    pub fn start() -> Alertmanager {
        Alertmanager::start_with(None)
    }

    /// Starts Alertmanager over TLS (the PKI's server certificate) with
    /// basic authentication ([`BASIC_USER`], [`BASIC_PASSWORD`]).
    pub fn start_tls(pki: &TestPki) -> Alertmanager {
        Alertmanager::start_with(Some(pki))
    }

    fn start_with(pki: Option<&TestPki>) -> Alertmanager {
        let bin = binary(ALERTMANAGER_BIN, "prometheus-alertmanager");
        let web = pki.map(|p| {
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {BASIC_USER}: {BASIC_PASSWORD_BCRYPT}\n",
                p.path("server.crt").display(),
                p.path("server.key").display()
            )
        });
        let tls = pki.map(|p| {
            let ca = fs::read(p.path("ca.crt")).expect("read CA");
            let ca = ureq::tls::Certificate::from_pem(&ca).expect("CA PEM");
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
                .build()
        });
        let authorization = pki.map(|_| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"))
            )
        });
        let with_web = web.is_some();
        let server = Server::start(
            "alertmanager",
            bin,
            if with_web { "https" } else { "http" },
            tls,
            authorization,
            |dir| {
                fs::write(dir.join("alertmanager.yml"), ALERTMANAGER_CONFIG).unwrap();
                if let Some(w) = &web {
                    fs::write(dir.join("web.yml"), w).unwrap();
                }
            },
            |port, dir| {
                let mut args = vec![
                    format!("--config.file={}", dir.join("alertmanager.yml").display()),
                    format!("--storage.path={}", dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    // No gossip port: this is a single instance.
                    "--cluster.listen-address=".to_string(),
                    "--log.level=warn".to_string(),
                ];
                if with_web {
                    args.push(format!(
                        "--web.config.file={}",
                        dir.join("web.yml").display()
                    ));
                }
                args
            },
        );
        Alertmanager { server }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Pushes a firing alert with `labels` (as Prometheus would) and waits
    /// until Alertmanager lists it.
    pub fn push_alert(&self, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let name = labels["alertname"].as_str().unwrap().to_string();
        self.server.call(
            "POST",
            "/api/v2/alerts",
            Some(json!([{"labels": labels, "startsAt": jiff::Timestamp::now().to_string()}])),
        );
        let listed = super::fixture::wait_until(Duration::from_secs(10), || {
            self.alerts()
                .iter()
                .any(|a| a["labels"]["alertname"] == name.as_str())
        });
        assert!(listed, "alert {name} not listed by Alertmanager");
    }

    /// Every alert Alertmanager has (active, silenced, inhibited).
    pub fn alerts(&self) -> Vec<Value> {
        match self.server.call("GET", "/api/v2/alerts", None) {
            Value::Array(a) => a,
            other => panic!("alerts: {other}"),
        }
    }

    /// Creates a silence (equality matchers) for an hour; returns its id.
    pub fn silence(&self, matchers: &[(&str, &str)]) -> String {
        let now = jiff::Timestamp::now();
        let body = json!({
            "matchers": matchers.iter().map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true})).collect::<Vec<_>>(),
            "startsAt": now.to_string(),
            "endsAt": (now + jiff::SignedDuration::from_hours(1)).to_string(),
            "createdBy": "test",
            "comment": "test",
        });
        let answer = self.server.call("POST", "/api/v2/silences", Some(body));
        answer["silenceID"].as_str().unwrap().to_string()
    }

    /// The silence `id` as Alertmanager shows it.
    pub fn silence_by_id(&self, id: &str) -> Value {
        self.server
            .call("GET", &format!("/api/v2/silence/{id}"), None)
    }

    /// Every silence.
    pub fn silences(&self) -> Vec<Value> {
        match self.server.call("GET", "/api/v2/silences", None) {
            Value::Array(a) => a,
            other => panic!("silences: {other}"),
        }
    }

    /// Waits until the alert named `name` is suppressed by a silence.
    pub fn wait_silenced(&self, name: &str) {
        let silenced = super::fixture::wait_until(Duration::from_secs(10), || {
            self.alerts().iter().any(|a| {
                a["labels"]["alertname"] == name
                    && a["status"]["silencedBy"]
                        .as_array()
                        .is_some_and(|s| !s.is_empty())
            })
        });
        assert!(silenced, "alert {name} not silenced: {:?}", self.alerts());
    }
}

/// A real Prometheus scraping one target every second, with an alerting
/// rule `TestBacklog` (`test_backlog > 0`) evaluated every second.
pub struct Prometheus {
    /// The server.
    pub server: Server,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`).
    pub fn start(target: &str) -> Prometheus {
        let bin = binary(PROMETHEUS_BIN, "prometheus");
        let target = target.to_string();
        let server = Server::start(
            "prometheus",
            bin,
            "http",
            None,
            None,
            |dir| {
                let rules = dir.join("rules.yml");
                fs::write(
                    &rules,
                    "groups:\n  - name: test\n    rules:\n      - alert: TestBacklog\n        expr: test_backlog > 0\n",
                )
                .unwrap();
                fs::write(
                    dir.join("prometheus.yml"),
                    format!(
                        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['{target}']\n",
                        rules.display()
                    ),
                )
                .unwrap();
            },
            |port, dir| {
                vec![
                    format!("--config.file={}", dir.join("prometheus.yml").display()),
                    format!("--storage.tsdb.path={}", dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--log.level=warn".to_string(),
                ]
            },
        );
        Prometheus { server }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// How many series an instant query of `expr` returns now.
    pub fn count(&self, expr: &str) -> usize {
        let mut q = String::new();
        for b in expr.bytes() {
            if b.is_ascii_alphanumeric() {
                q.push(char::from(b));
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let answer = self
            .server
            .call("GET", &format!("/api/v1/query?query={q}"), None);
        answer["data"]["result"].as_array().map_or(0, Vec::len)
    }

    /// Waits (up to 30 s) until `expr` returns `n` series.
    pub fn wait_count(&self, expr: &str, n: usize) {
        let ok = super::fixture::wait_until(Duration::from_secs(30), || self.count(expr) == n);
        assert!(ok, "{expr} did not return {n} series within 30 s");
    }
}

/// A tiny exporter on loopback: `/metrics` serves `test_backlog <value>`.
pub struct Exporter {
    /// `127.0.0.1:port`, a Prometheus target.
    pub target: String,
    value: Arc<AtomicI64>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Starts serving `test_backlog` with `value`.
    pub fn start(value: i64) -> Exporter {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind exporter"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let value = Arc::new(AtomicI64::new(value));
        let thread = {
            let (server, value) = (Arc::clone(&server), Arc::clone(&value));
            std::thread::spawn(move || {
                while let Ok(rq) = server.recv() {
                    let body = format!(
                        "# HELP test_backlog Work the test says is pending.\n# TYPE test_backlog gauge\ntest_backlog {}\n",
                        value.load(Ordering::SeqCst)
                    );
                    let _ = rq.respond(tiny_http::Response::from_string(body));
                }
            })
        };
        Exporter {
            target: format!("127.0.0.1:{port}"),
            value,
            server,
            thread: Some(thread),
        }
    }

    /// Changes the served value.
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::SeqCst);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fake HTTP server: answers every request with one fixed status and
/// body, or (silent) reads requests and never answers. It records the
/// `Authorization` header of every request.
pub struct FakeServer {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The `Authorization` header of each request ("" when absent).
    pub authorizations: Arc<Mutex<Vec<String>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Answers `status` with `body` (as JSON content).
    pub fn answering(status: u16, body: &str) -> FakeServer {
        FakeServer::start(Some((status, body.to_string())))
    }

    /// Never answers.
    pub fn silent() -> FakeServer {
        FakeServer::start(None)
    }

    fn start(answer: Option<(u16, String)>) -> FakeServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, seen) = (Arc::clone(&server), Arc::clone(&authorizations));
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while let Ok(mut rq) = server.recv() {
                    let auth = rq
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Authorization"))
                        .map(|h| h.value.to_string())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(auth);
                    let mut ignored = String::new();
                    let _ = rq.as_reader().read_to_string(&mut ignored);
                    match &answer {
                        Some((status, body)) => {
                            let header = tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                &b"application/json"[..],
                            )
                            .unwrap();
                            let _ = rq.respond(
                                tiny_http::Response::from_string(body.clone())
                                    .with_status_code(*status)
                                    .with_header(header),
                            );
                        }
                        // Keep the connection open and silent.
                        None => held.push(rq),
                    }
                }
            })
        };
        FakeServer {
            url: format!("http://127.0.0.1:{port}"),
            authorizations,
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

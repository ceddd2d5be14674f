//! A temp directory holding one simulated host: its config, boot id file,
//! state dir, kill switch path, a fake reboot command that only records its
//! arguments, and helpers to run the real `rebootctl` binary against it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The output of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One simulated host in a temp directory; removed on drop.
pub struct Fixture {
    pub dir: PathBuf,
    keys: BTreeMap<String, String>,
}

impl Fixture {
    /// A fresh host named `name` whose only detector is a marker file
    /// (absent until [`Fixture::need_reboot`]).
    pub fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "rebootctl-test-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("state")).unwrap();
        fs::write(dir.join("boot_id"), "boot-1\n").unwrap();
        let mut fx = Fixture {
            dir,
            keys: BTreeMap::new(),
        };
        let d = fx.dir.display().to_string();
        fx.script(
            "fake-reboot",
            &format!("printf '%s\\n' \"$*\" >> {d}/reboots.log\n"),
        );
        fx.set("node_name", name);
        fx.set(
            "reboot_required_detectors",
            &format!("[{{name: marker, type: file, path: {d}/need-reboot}}]"),
        );
        fx.set("kill_switch_file", &format!("{d}/disable"));
        fx.set("state_dir", &format!("{d}/state"));
        fx.set("boot_id_file", &format!("{d}/boot_id"));
        fx.set(
            "reboot_command",
            &format!("[\"{d}/fake-reboot\", \"--node=${{RC_NODE_NAME}}\", \"now\"]"),
        );
        fx
    }

    /// Sets (or replaces) a top-level key; `yaml` is the value as YAML.
    pub fn set(&mut self, key: &str, yaml: &str) -> &mut Fixture {
        self.keys.insert(key.to_string(), yaml.to_string());
        self
    }

    /// A path inside the fixture.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes an executable `#!/bin/sh` script and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Makes the health script hold every check at a gate: it creates the
    /// returned `inside` file, then waits (at most 10 s) until the test
    /// creates the returned `go` file.
    pub fn gated_health(&mut self) -> (PathBuf, PathBuf) {
        let inside = self.path("inside");
        let go = self.path("go");
        let h = self.script(
            "health",
            &format!(
                "touch {}\ni=0; while [ ! -e {} ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n",
                inside.display(),
                go.display()
            ),
        );
        self.set("health_script", &h.display().to_string());
        (inside, go)
    }

    /// Makes the post-reboot health check fail until the returned file
    /// exists (every other phase passes).
    pub fn healthy_after_boot_when(&mut self) -> PathBuf {
        let gate = self.path("healthy-after-boot");
        let h = self.script(
            "health",
            &format!(
                "[ \"$RC_PHASE\" != post-reboot ] || [ -e {} ]\n",
                gate.display()
            ),
        );
        self.set("health_script", &h.display().to_string());
        gate
    }

    /// Creates the marker file the detector looks for.
    pub fn need_reboot(&self) {
        fs::write(self.path("need-reboot"), "").unwrap();
    }

    /// Simulates a reboot: a new boot id.
    pub fn new_boot(&self, id: &str) {
        fs::write(self.path("boot_id"), format!("{id}\n")).unwrap();
    }

    /// Writes the config file and returns its path.
    pub fn write_config(&self) -> PathBuf {
        let text: String = self
            .keys
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        let p = self.dir.join("config.yaml");
        fs::write(&p, text).unwrap();
        p
    }

    /// Runs `rebootctl <args> --config <this config>`.
    pub fn rebootctl(&self, args: &[&str]) -> Run {
        let cfg = self.write_config();
        let mut all: Vec<&str> = args.to_vec();
        all.push("--config");
        let cfg_s = cfg.display().to_string();
        all.push(&cfg_s);
        run_binary(&all, &[])
    }

    /// Starts `rebootctl <args> --config <this config>` in the background,
    /// its output piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.spawn_with(args, Stdio::piped(), Stdio::piped())
    }

    /// Like [`Fixture::spawn`], with stdout and stderr appended to
    /// `agent.log` in the fixture.
    pub fn spawn_logged(&self, args: &[&str]) -> std::process::Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("agent.log"))
            .unwrap();
        self.spawn_with(args, log.try_clone().unwrap().into(), log.into())
    }

    fn spawn_with(&self, args: &[&str], stdout: Stdio, stderr: Stdio) -> std::process::Child {
        let cfg = self.write_config();
        Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(cfg)
            .env_remove("REBOOTCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env(SHORT_TIMEOUTS.0, SHORT_TIMEOUTS.1)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn rebootctl")
    }

    /// What agents started with [`Fixture::spawn_logged`] wrote so far.
    pub fn agent_log(&self) -> String {
        fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    /// Makes this host a cluster member of the etcd at `endpoint`, with
    /// short timers for tests.
    pub fn join(&mut self, endpoint: &str) -> &mut Fixture {
        self.set("etcd_endpoints", &format!("[\"{endpoint}\"]"));
        self.set("lock_ttl_sec", "5");
        self.set("health_timeout_sec", "3");
        self.set("health_publish_interval_sec", "2");
        self.set("reboot_timeout_sec", "600");
        self
    }

    /// The lock holders as (node, phase), from `rebootctl lock --json`.
    pub fn holders(&self) -> Vec<(String, String)> {
        let r = self.rebootctl(&["lock", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["node"].as_str().unwrap_or("?").to_string(),
                    h["phase"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect()
    }

    /// The argument lines the fake reboot command recorded, one per call.
    pub fn reboots(&self) -> Vec<String> {
        fs::read_to_string(self.path("reboots.log"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Lets tests use `reboot_timeout_sec` below the production bound of one
/// minute (every run of the binary gets it; `env` may override it).
pub const SHORT_TIMEOUTS: (&str, &str) = (rebootctl::config::SHORT_TIMEOUTS_ENV_VAR, "1");

/// The binary under test.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rebootctl"))
}

/// Runs the binary with `args` and extra environment (applied last), no
/// stdin, bounded by 60 s.
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("REBOOTCTL_CONFIG")
        .env_remove("RUST_LOG")
        .env(SHORT_TIMEOUTS.0, SHORT_TIMEOUTS.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn rebootctl");
    // Drain both pipes while waiting: a chatty run (RUST_LOG=trace) must
    // not block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rebootctl {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

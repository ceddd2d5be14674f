//! `cli/` — the command line: argh, dispatch, the admin commands ([`admin`]) and the
//! rendering of reports ([`render`]). The top layer: it may import every
//! other folder and leaf; nothing imports it.
//!
//! The command line (SPEC §2): argh structs, one function per subcommand,
//! and the mapping of every result to an exit code. `src/main.rs` only
//! calls [`main`].

mod admin;
pub mod render;
pub mod rollout;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;

use crate::cluster::Cluster;
use crate::config::{self, Config, LogFormat};
use crate::error::{EXIT_OK, EXIT_USAGE, Error, Result};
use crate::host::detector;
use crate::host::notify::Notifier;
use crate::pass::{self, Options};

#[derive(FromArgs, Debug)]
/// Coordinated, health-gated reboots for a fleet of Linux hosts.
/// Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration, 3 health
/// gate or policy, 4 no free lock slot, 5 kill switch or pause, 6 detector
/// failed, 7 outside a window or in cooldown, 64 usage error.
pub struct Cli {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Command {
    Run(RunArgs),
    Status(StatusArgs),
    Simulate(SimulateArgs),
    ValidateConfig(ValidateArgs),
    Lock(LockArgs),
    Unlock(UnlockArgs),
    Pause(PauseArgs),
    Resume(ResumeArgs),
    Nodes(NodesArgs),
    Rollout(RolloutArgs),
    Forget(ForgetArgs),
    ClearLoop(ClearLoopArgs),
    FleetLock(FleetLockArgs),
    Version(VersionArgs),
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
/// Run the agent: pass after pass until SIGTERM/SIGINT (SIGHUP reloads the
/// configuration), or a single pass with --once.
struct RunArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// do one pass and exit with its code
    #[argh(switch)]
    once: bool,
    /// do everything but the reboot command and the hooks
    #[argh(switch)]
    dry_run: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
/// Show what the agent would do now and why: one pass in enforced dry-run
/// mode that acts on nothing. Exits with that pass's code.
struct StatusArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// do not run the health script
    #[argh(switch)]
    skip_health: bool,
    /// do not contact etcd
    #[argh(switch)]
    skip_lock: bool,
    /// print one JSON document
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "simulate")]
/// Run the detectors once and print each verdict, duration and output;
/// contacts nothing else. Exits 6 when a detector cannot decide.
struct SimulateArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// print one JSON document
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "validate-config")]
/// Parse and validate the configuration; print every problem. Exits 2 when
/// it is invalid; a valid file may come with notes (what will behave
/// differently than the file's author may expect).
struct ValidateArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// print the effective configuration (defaults applied, secrets
    /// redacted) as YAML, the verdict and notes as comments
    #[argh(switch)]
    show: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "lock")]
/// Show the lock slots and their holders (node, pid, boot id, phase, since).
struct LockArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// print one JSON document
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unlock")]
/// Release the slot NODE holds (for a host that died holding it). Asks for
/// confirmation on a terminal; refuses without --yes otherwise.
struct UnlockArgs {
    /// the node whose slot to release
    #[argh(positional)]
    node: String,
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "pause")]
/// Pause reboots cluster-wide (stored in etcd); --for makes it expire by
/// itself.
struct PauseArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// why (shown by status and in the agents' logs)
    #[argh(option)]
    reason: Option<String>,
    /// expire after this long (humantime: 30m, 2h, 1d)
    #[argh(option, long = "for", from_str_fn(parse_duration))]
    duration: Option<Duration>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "resume")]
/// Lift a cluster-wide pause.
struct ResumeArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "nodes")]
/// List every registered node: health and its age, reboot required,
/// holding a slot, last reboot.
struct NodesArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// print one JSON document
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rollout")]
/// Show the current round across the fleet: how many nodes need a reboot
/// and since when, rebooting now, blocked and by what, finished, laggards.
struct RolloutArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// print one JSON document that lists every node
    #[argh(switch)]
    json: bool,
    /// a node needing a reboot for longer is a laggard (humantime; default 24h)
    #[argh(
        option,
        from_str_fn(rollout_laggard_after),
        default = "rollout::default_laggard_after()"
    )]
    laggard_after: Duration,
}

fn rollout_laggard_after(s: &str) -> std::result::Result<Duration, String> {
    rollout::laggard_after(s)
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "forget")]
/// Remove a decommissioned node from the registry.
struct ForgetArgs {
    /// the node to remove
    #[argh(positional)]
    node: String,
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "fleetlock")]
/// FleetLock (the reboot lock protocol of Zincati on Fedora CoreOS) over
/// rebootctl's lock in etcd.
struct FleetLockArgs {
    #[argh(subcommand)]
    command: FleetLockCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum FleetLockCommand {
    Serve(FleetLockServeArgs),
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
/// Serve the FleetLock protocol for the groups of the configuration's
/// fleetlock section until SIGTERM/SIGINT; SIGHUP reloads the file.
struct FleetLockServeArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "clear-loop")]
/// Allow one more reboot for a need that survived the last completed
/// reboot (blocked as reboot_ineffective). Local state only; does not lift
/// max_reboots_per_day.
struct ClearLoopArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("the duration must be greater than 0".to_string()),
        Err(e) => Err(format!(
            "{s:?} is not a duration such as 30m, 2h or 1d: {e}"
        )),
    }
}

#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "version")]
/// Print the version, git commit, target and enabled features.
struct VersionArgs {}

/// Runs the command line `args` (program name first) and returns the exit code.
pub fn main(args: Vec<String>) -> u8 {
    let name = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| a.clone())
        })
        .unwrap_or_else(|| "rebootctl".to_string());
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let cli = match Cli::from_args(&[&name], &rest) {
        Ok(cli) => cli,
        Err(early) => {
            return if early.status.is_ok() {
                print!("{}", early.output);
                EXIT_OK
            } else {
                eprintln!("{}", early.output.trim_end());
                eprintln!("{}", usage_line(&name, rest.first().copied()));
                eprintln!("Run '{name} help' or '{name} <command> --help' for more.");
                EXIT_USAGE
            };
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if crate::logging::json_enabled() {
                log::error!(event = "error", error_kind = e.kind(); "{e}");
            } else {
                log::logger().flush();
                eprintln!("rebootctl: error: {e}");
            }
            e.exit_code()
        }
    }
}

/// The `Usage:` line of `command` (or of the whole tool when `command` is
/// not one), from argh's own help text.
fn usage_line(name: &str, command: Option<&str>) -> String {
    let help = |args: &[&str]| match Cli::from_args(&[name], args) {
        Err(early) if early.status.is_ok() => Some(early.output),
        _ => None,
    };
    command
        .and_then(|c| help(&[c, "--help"]))
        .or_else(|| help(&["--help"]))
        .and_then(|h| h.lines().next().map(str::to_string))
        .unwrap_or_default()
}

fn dispatch(command: Command) -> Result<u8> {
    match command {
        Command::Run(a) => run(a),
        Command::Status(a) => status(a),
        Command::Simulate(a) => simulate(a),
        Command::ValidateConfig(a) => validate(a),
        Command::Lock(a) => admin::lock(a),
        Command::Unlock(a) => admin::unlock(a),
        Command::Pause(a) => admin::pause(a),
        Command::Resume(a) => admin::resume(a),
        Command::Nodes(a) => admin::nodes(a),
        Command::Rollout(a) => show_rollout(a),
        Command::Forget(a) => admin::forget(a),
        Command::ClearLoop(a) => clear_loop(a),
        Command::FleetLock(FleetLockArgs {
            command: FleetLockCommand::Serve(a),
        }) => fleetlock_serve(a),
        Command::Version(_) => {
            println!("{}", version_line());
            Ok(EXIT_OK)
        }
    }
}

/// The `version` line.
pub fn version_line() -> String {
    format!(
        "rebootctl {} (commit {}, target {}, features: etcd-gateway rustls metrics)",
        env!("CARGO_PKG_VERSION"),
        env!("REBOOTCTL_GIT_COMMIT"),
        env!("REBOOTCTL_TARGET"),
    )
}

/// Loads the configuration named by `flag` (or the default) and installs
/// the logger with `level` as its default.
fn load(flag: Option<&Path>, level: log::LevelFilter, json_logs_allowed: bool) -> Result<Config> {
    let path = config::resolve_path(flag);
    let loaded = config::load(&path);
    let (format, node) = match &loaded {
        Ok(c) if json_logs_allowed => (c.log_format, c.node_name.clone()),
        Ok(c) => (LogFormat::Text, c.node_name.clone()),
        Err(_) => (LogFormat::Text, String::new()),
    };
    crate::logging::init(format, level, &node);
    loaded
}

fn run(a: RunArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Info, true)?;
    let opts = Options {
        dry_run: a.dry_run,
        ..Options::default()
    };
    let _instance = crate::host::state::lock_instance(&cfg.state_dir)?;
    if a.once {
        // SIGTERM/SIGINT cancel running scripts and hooks so the pass ends
        // at once and releases what it holds.
        let (tx, _rx) = std::sync::mpsc::channel();
        let signals = crate::agent::events::SignalThread::start(tx)?;
        let cluster = connect(&cfg)?;
        let notifier = Notifier::new(cfg.notify.as_ref(), &cfg.node_name);
        pass::fleetlock::steady_state_on_start(&cfg);
        let result = pass::run_pass(&cfg, opts, cluster.as_ref(), &notifier);
        notifier.shutdown(cfg.notify.as_ref().map(|n| n.timeout).unwrap_or_default());
        signals.close();
        let report = result?;
        log::info!(event = "pass", outcome = report.outcome.label(); "{}", report.outcome);
        return Ok(report.outcome.exit_code());
    }
    crate::agent::daemon::run(cfg, opts)
}

/// `rebootctl fleetlock serve`: the server on this thread, signals
/// forwarded to it from the signal thread.
fn fleetlock_serve(a: FleetLockServeArgs) -> Result<u8> {
    use crate::agent::events::{Event, SignalThread};
    let cfg = load(a.config.as_deref(), log::LevelFilter::Info, true)?;
    let server = crate::fleetlock::server::Server::bind(cfg)?;
    let handle = server.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    let signals = SignalThread::start(tx)?;
    let forward = std::thread::Builder::new()
        .name("fleetlock-signals".into())
        .spawn(move || {
            for event in rx {
                match event {
                    Event::Stop(sig) => {
                        log::info!(event = "signal", signal = sig; "received signal {sig}");
                        handle.stop();
                        return;
                    }
                    Event::Reload => handle.reload(),
                    Event::Wake { .. } | Event::Heartbeat { .. } => {}
                }
            }
        })
        .map_err(|e| Error::Runtime(format!("cannot start the signal forwarder: {e}")))?;
    let result = server.run();
    // Closing the signal thread drops its sender: the forwarder ends.
    signals.close();
    let _ = forward.join();
    result.map(|()| EXIT_OK)
}

fn status(a: StatusArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let opts = Options {
        dry_run: true,
        status: true,
        skip_health: a.skip_health,
        skip_lock: a.skip_lock,
        lock_attempts: 0,
    };
    let cluster = if a.skip_lock { None } else { connect(&cfg)? };
    let report = pass::run_pass(&cfg, opts, cluster.as_ref(), &Notifier::new(None, ""))?;
    if a.json {
        print_json(&render::status_json(&report))?;
    } else {
        print_text(&render::status_text(&report))?;
    }
    Ok(report.outcome.exit_code())
}

fn simulate(a: SimulateArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let env = vec![("RC_NODE_NAME".to_string(), cfg.node_name.clone())];
    let reports = detector::run_all(&cfg.detectors, &env);
    let need = detector::decide(&reports);
    if a.json {
        print_json(&render::simulate_json(&reports, &need))?;
    } else {
        print_text(&render::simulate_text(&reports, &need))?;
    }
    Ok(match need {
        detector::Need::Unknown { .. } => crate::error::EXIT_DETECTOR,
        _ => EXIT_OK,
    })
}

fn validate(a: ValidateArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let mode = match &cfg.etcd {
        Some(e) => format!(
            "cluster mode, {} endpoint{}, {} slot{}",
            e.endpoints.len(),
            plural(e.endpoints.len()),
            e.max_concurrent_reboots,
            plural(e.max_concurrent_reboots as usize)
        ),
        None if cfg.fleetlock_client.is_some() => "FleetLock client mode".to_string(),
        None => "local mode".to_string(),
    };
    let verdict = format!(
        "{}: valid ({mode}, node {}, {} detector{}{})",
        cfg.source.display(),
        cfg.node_name,
        cfg.detectors.len(),
        plural(cfg.detectors.len()),
        if cfg.dry_run { ", dry_run" } else { "" }
    );
    let comment = if a.show { "# " } else { "" };
    let mut text = format!("{comment}{verdict}\n");
    for note in cfg.notes.iter().cloned().chain(notes(&cfg)) {
        text.push_str(&format!("{comment}note: {note}\n"));
    }
    if a.show {
        text.push_str(&cfg.to_yaml());
    }
    print_text(&text)?;
    Ok(EXIT_OK)
}

/// What a valid configuration does that its reader may not expect.
fn notes(cfg: &Config) -> Vec<String> {
    let Some(etcd) = &cfg.etcd else {
        return Vec::new();
    };
    let keys = crate::cluster::keys::Keys::new(etcd);
    let mut out = Vec::new();
    if keys.lock_outside_control_prefix() {
        out.push(format!(
            "lock_key {} lies outside the control prefix {}: each agent holds a second etcd watch stream, on {}",
            etcd.lock_key,
            keys.control_prefix(),
            keys.lock_prefix()
        ));
    }
    if let Some(compat) = &etcd.clusterrebootd {
        out.push(format!(
            "sharing clusterrebootd's lock: slots below {}, its mutex owner counted as a holder; its cooldown {} is honoured and written; health is also written to {}<node>; the etcd user needs read-write access to these keys besides {}/",
            keys.lock_prefix(),
            compat.cooldown_key(),
            compat.health_prefix(),
            etcd.namespace
        ));
    }
    out
}

fn show_rollout(a: RolloutArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let cluster = connect(&cfg)?.ok_or_else(|| Error::NotClustered {
        command: "rollout".into(),
    })?;
    let inputs = cluster.rollout_inputs()?;
    let r = crate::cluster::rollout::summarize(&inputs, jiff::Timestamp::now(), a.laggard_after);
    if a.json {
        print_json(&rollout::json(&r))?;
    } else {
        print_text(&rollout::text(&r, &jiff::tz::TimeZone::system()))?;
    }
    Ok(EXIT_OK)
}

/// `rebootctl clear-loop`: records in `state_dir` that the need which
/// survived the newest completed reboot may cause one more reboot.
fn clear_loop(a: ClearLoopArgs) -> Result<u8> {
    use crate::host::reboot_log::{self, LoopCleared};
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let log = reboot_log::read(&cfg.state_dir)?;
    let Some(last) = log.last_completed() else {
        println!(
            "nothing to clear: no completed reboot is recorded in {}",
            cfg.state_dir.display()
        );
        return Ok(EXIT_OK);
    };
    let cleared = LoopCleared {
        reboot: last.id(),
        at: crate::time::timestamp_now(),
        by: admin::operator_name(),
    };
    reboot_log::write_cleared(&cfg.state_dir, &cleared)?;
    println!(
        "cleared: a need that survived the reboot completed at {} may reboot {} once more \
         (max_reboots_per_day {} still applies)",
        last.completed.at, cfg.node_name, cfg.max_reboots_per_day
    );
    Ok(EXIT_OK)
}

/// The etcd connection in cluster mode, None in local mode.
fn connect(cfg: &Config) -> Result<Option<Cluster>> {
    if cfg.is_cluster() {
        Cluster::connect(cfg).map(Some)
    } else {
        Ok(None)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Runtime(e.to_string()))?;
    print_text(&format!("{text}\n"))
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing to", "stdout", e)),
    }
}

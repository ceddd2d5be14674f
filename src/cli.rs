//! The command line (SPEC §2): argh structs, one function per subcommand,
//! and the mapping of every result to an exit code. `src/main.rs` only
//! calls [`main`].

use std::io::Write;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::config::{self, Config, LogFormat};
use crate::detector;
use crate::error::{EXIT_OK, EXIT_USAGE, Error, Result};
use crate::orchestrator::{self, Options};
use crate::report;

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
/// it is invalid.
struct ValidateArgs {
    /// configuration file (default: $REBOOTCTL_CONFIG, else /etc/rebootctl/config.yaml)
    #[argh(option)]
    config: Option<PathBuf>,
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
                eprintln!("Run '{name} help' or '{name} <command> --help' for usage.");
                EXIT_USAGE
            };
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            log::logger().flush();
            eprintln!("rebootctl: error: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(command: Command) -> Result<u8> {
    match command {
        Command::Run(a) => run(a),
        Command::Status(a) => status(a),
        Command::Simulate(a) => simulate(a),
        Command::ValidateConfig(a) => validate(a),
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
    if a.once {
        let report = orchestrator::run_pass(&cfg, opts)?;
        log::info!("pass finished: {}", report.outcome);
        return Ok(report.outcome.exit_code());
    }
    crate::daemon::run(cfg, opts)
}

fn status(a: StatusArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let opts = Options {
        dry_run: true,
        status: true,
        skip_health: a.skip_health,
        skip_lock: a.skip_lock,
    };
    let report = orchestrator::run_pass(&cfg, opts)?;
    if a.json {
        print_json(&report::status_json(&report))?;
    } else {
        print_text(&report::status_text(&report))?;
    }
    Ok(report.outcome.exit_code())
}

fn simulate(a: SimulateArgs) -> Result<u8> {
    let cfg = load(a.config.as_deref(), log::LevelFilter::Warn, false)?;
    let env = vec![("RC_NODE_NAME".to_string(), cfg.node_name.clone())];
    let reports = detector::run_all(&cfg.detectors, &env);
    let need = detector::decide(&reports);
    if a.json {
        print_json(&report::simulate_json(&reports, &need))?;
    } else {
        print_text(&report::simulate_text(&reports, &need))?;
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
        None => "local mode".to_string(),
    };
    println!(
        "{}: valid ({mode}, node {}, {} detector{}{})",
        cfg.source.display(),
        cfg.node_name,
        cfg.detectors.len(),
        plural(cfg.detectors.len()),
        if cfg.dry_run { ", dry_run" } else { "" }
    );
    Ok(EXIT_OK)
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

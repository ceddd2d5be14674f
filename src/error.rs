//! The one error type of rebootctl: every failure carries the context an
//! operator needs (the file, the endpoint, the command) and maps to an exit
//! code of SPEC §2.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: runtime failure (etcd unreachable, I/O error, script could not start).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code: invalid configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: blocked by the health gate or a cluster policy.
pub const EXIT_HEALTH: u8 = 3;
/// Exit code: the lock is held by others (no free slot).
pub const EXIT_LOCK: u8 = 4;
/// Exit code: kill switch file present or cluster paused.
pub const EXIT_KILL_SWITCH: u8 = 5;
/// Exit code: a detector failed (could not decide).
pub const EXIT_DETECTOR: u8 = 6;
/// Exit code: outside a maintenance window or inside the cooldown.
pub const EXIT_WINDOW: u8 = 7;
/// Exit code: command-line usage error.
pub const EXIT_USAGE: u8 = 64;

/// Every exit code with its meaning (SPEC §2), for documentation checks.
pub const EXIT_CODES: [(u8, &str); 9] = [
    (EXIT_OK, "success"),
    (EXIT_RUNTIME, "runtime failure"),
    (EXIT_CONFIG, "invalid configuration"),
    (
        EXIT_HEALTH,
        "blocked by the health gate or a cluster policy",
    ),
    (EXIT_LOCK, "lock held by others"),
    (EXIT_KILL_SWITCH, "kill switch present or cluster paused"),
    (EXIT_DETECTOR, "a detector failed"),
    (
        EXIT_WINDOW,
        "outside a maintenance window or inside the cooldown",
    ),
    (EXIT_USAGE, "command-line usage error"),
];

/// Everything that can go wrong in rebootctl.
#[derive(Debug)]
pub enum Error {
    /// The command line could not be used.
    Usage(String),
    /// The configuration file could not be read.
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The configuration file is invalid; every problem is listed.
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// One line per problem, each starting with the key path.
        problems: Vec<String>,
    },
    /// A file or directory operation failed.
    Io {
        /// What was being done ("writing the reboot record").
        action: String,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A child process could not be started.
    Spawn {
        /// What the child was for ("health script", "reboot command").
        role: String,
        /// The program.
        program: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A child process ran but failed in a way that is a runtime error
    /// (for example the reboot command exited non-zero).
    Command {
        /// What the child was for.
        role: String,
        /// What happened.
        detail: String,
    },
    /// A child survived SIGKILL and could not be reaped (stuck in the
    /// kernel, or held by a tracer); it was left to a reaper thread.
    Unreaped {
        /// What the child was for.
        role: String,
        /// The program.
        program: PathBuf,
        /// Its process id.
        pid: u32,
    },
    /// An etcd request failed or returned something unexpected.
    Etcd {
        /// The endpoint that answered (or did not).
        endpoint: String,
        /// The operation ("txn", "lease grant").
        op: String,
        /// What went wrong.
        detail: String,
    },
    /// A command needs cluster mode but no `etcd_endpoints` are configured.
    NotClustered {
        /// The command that needs etcd.
        command: String,
    },
    /// A runtime failure that does not fit another variant.
    Runtime(String),
}

impl Error {
    /// The process exit code for this error (SPEC §2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::ConfigRead { .. } | Error::ConfigInvalid { .. } | Error::NotClustered { .. } => {
                EXIT_CONFIG
            }
            Error::Io { .. }
            | Error::Spawn { .. }
            | Error::Command { .. }
            | Error::Unreaped { .. }
            | Error::Etcd { .. }
            | Error::Runtime(_) => EXIT_RUNTIME,
        }
    }

    /// A short stable label for metrics and JSON logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::ConfigRead { .. } => "config_read",
            Error::ConfigInvalid { .. } => "config_invalid",
            Error::Io { .. } => "io",
            Error::Spawn { .. } => "spawn",
            Error::Command { .. } => "command",
            Error::Unreaped { .. } => "unreaped",
            Error::Etcd { .. } => "etcd",
            Error::NotClustered { .. } => "not_clustered",
            Error::Runtime(_) => "runtime",
        }
    }

    /// Builds an [`Error::Io`].
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Etcd`].
    pub fn etcd(
        endpoint: impl Into<String>,
        op: impl Into<String>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Etcd {
            endpoint: endpoint.into(),
            op: op.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::ConfigRead { path, source } => {
                write!(f, "cannot read configuration {}: {source}", path.display())
            }
            Error::ConfigInvalid { path, problems } => {
                write!(
                    f,
                    "invalid configuration {} ({} problem{}):",
                    path.display(),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                )?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Error::Spawn {
                role,
                program,
                source,
            } => write!(f, "cannot start {role} {}: {source}", program.display()),
            Error::Command { role, detail } => write!(f, "{role} failed: {detail}"),
            Error::Unreaped { role, program, pid } => write!(
                f,
                "{role} {} (pid {pid}) survived SIGKILL and could not be reaped \
                 (stuck in the kernel, or held by a tracer); left to a reaper thread",
                program.display()
            ),
            Error::Etcd {
                endpoint,
                op,
                detail,
            } => write!(f, "etcd {op} at {endpoint}: {detail}"),
            Error::NotClustered { command } => write!(
                f,
                "'{command}' needs cluster mode, but the configuration has no etcd_endpoints"
            ),
            Error::Runtime(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ConfigRead { source, .. }
            | Error::Io { source, .. }
            | Error::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result type used throughout rebootctl.
pub type Result<T, E = Error> = std::result::Result<T, E>;

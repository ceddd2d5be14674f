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
/// Exit code: invalid configuration (also: another host claims this
/// node's name).
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
    /// The reboot command ran and failed (non-zero exit, signal, timeout):
    /// it may still have started a shutdown.
    RebootCommandFailed {
        /// What happened.
        detail: String,
    },
    /// A lease that protects the reboot expired before the reboot.
    LeaseLost {
        /// Which lease ("the lock slot's lease", "the reboot lease").
        lease: &'static str,
        /// While what (" during the checks"), or empty.
        during: &'static str,
    },
    /// The slot stayed in phase checking past its deadline (something under
    /// it hung): its lease was revoked and the slot given up.
    CheckingDeadline {
        /// How long the slot could stay in phase checking.
        budget: std::time::Duration,
    },
    /// The held slot changed in etcd before it could be switched to phase
    /// rebooting.
    SlotChanged {
        /// The slot key.
        key: String,
    },
    /// The agent is stopping (SIGTERM/SIGINT): the reboot is not started.
    Cancelled,
    /// Another machine registered this node's name (the pass turns it
    /// into the `name_conflict` block).
    NameConflict {
        /// The node name.
        node: String,
        /// The other machine's id.
        theirs: String,
        /// This machine's id.
        mine: String,
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
            | Error::RebootCommandFailed { .. }
            | Error::LeaseLost { .. }
            | Error::CheckingDeadline { .. }
            | Error::SlotChanged { .. }
            | Error::Cancelled
            | Error::NameConflict { .. }
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
            Error::RebootCommandFailed { .. } => "reboot_command_failed",
            Error::LeaseLost { .. } => "lease_lost",
            Error::CheckingDeadline { .. } => "checking_deadline",
            Error::SlotChanged { .. } => "slot_changed",
            Error::Cancelled => "cancelled",
            Error::NameConflict { .. } => "name_conflict",
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
            Error::RebootCommandFailed { detail } => {
                write!(f, "reboot command failed: {detail}")
            }
            Error::LeaseLost { lease, during } => {
                write!(f, "{lease} expired{during}; not rebooting")
            }
            Error::CheckingDeadline { budget } => write!(
                f,
                "the checks under the lock took longer than their deadline ({}); \
                 the slot was given up; not rebooting",
                crate::time::human_duration(*budget)
            ),
            Error::SlotChanged { key } => write!(
                f,
                "lock slot {key} changed under us before the reboot; not rebooting"
            ),
            Error::Cancelled => write!(f, "the agent is stopping; not rebooting"),
            Error::NameConflict { node, theirs, mine } => write!(
                f,
                "node_name {node} is registered by another machine (machine id {theirs}, this one is {mine}): \
                 give every host its own node_name, or run 'rebootctl forget {node}' if the old machine is gone"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_runtime_errors_keep_their_messages_and_have_their_own_kind() {
        let cases = [
            (
                Error::RebootCommandFailed {
                    detail: "/sbin/fake exited with 1: boom".into(),
                },
                "reboot_command_failed",
                "reboot command failed: /sbin/fake exited with 1: boom",
            ),
            (
                Error::LeaseLost {
                    lease: "the lock slot's lease",
                    during: " during the checks",
                },
                "lease_lost",
                "the lock slot's lease expired during the checks; not rebooting",
            ),
            (
                Error::LeaseLost {
                    lease: "the reboot lease",
                    during: " during the pre_reboot hook",
                },
                "lease_lost",
                "the reboot lease expired during the pre_reboot hook; not rebooting",
            ),
            (
                Error::CheckingDeadline {
                    budget: std::time::Duration::from_secs(150),
                },
                "checking_deadline",
                "the checks under the lock took longer than their deadline (2m 30s); the slot was given up; not rebooting",
            ),
            (
                Error::SlotChanged {
                    key: "/rebootctl/lock/slot-0".into(),
                },
                "slot_changed",
                "lock slot /rebootctl/lock/slot-0 changed under us before the reboot; not rebooting",
            ),
            (
                Error::Cancelled,
                "cancelled",
                "the agent is stopping; not rebooting",
            ),
            (
                Error::NameConflict {
                    node: "web-1".into(),
                    theirs: "m-2".into(),
                    mine: "m-1".into(),
                },
                "name_conflict",
                "node_name web-1 is registered by another machine (machine id m-2, this one is m-1): \
                 give every host its own node_name, or run 'rebootctl forget web-1' if the old machine is gone",
            ),
        ];
        for (err, kind, text) in cases {
            assert_eq!(err.kind(), kind, "{err:?}");
            assert_eq!(err.to_string(), text, "{err:?}");
            assert_eq!(err.exit_code(), EXIT_RUNTIME, "{err:?}");
        }
    }
}

//! The actions of a reboot: the `pre_reboot` / `post_reboot` hooks and the
//! reboot command itself, with `${RC_…}` placeholders expanded in their argv
//! (no shell is ever involved). The placeholder names are the
//! configuration's vocabulary: [`crate::config::PLACEHOLDERS`].

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::process::{self, Finished};

/// The role of the reboot command in messages and errors.
pub const REBOOT_COMMAND_ROLE: &str = "reboot command";

/// How long the reboot command may run before it is killed (it normally
/// returns at once and the machine goes down afterwards).
pub const REBOOT_COMMAND_TIMEOUT_SECS: u64 = 120;

/// Values for the placeholders and the environment of hooks and the reboot command.
#[derive(Debug, Clone, Default)]
pub struct Vars(pub Vec<(String, String)>);

impl Vars {
    /// The values as `(name, value)` pairs (a notification template's).
    pub fn as_pairs(&self) -> Vec<(&str, String)> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect()
    }

    /// Looks up a variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Expands `${NAME}` in every argument; unknown names are left as written
/// (the configuration validation rejects them before this runs).
pub fn expand(argv: &[String], vars: &Vars) -> Vec<String> {
    argv.iter().map(|a| expand_one(a, vars)).collect()
}

fn expand_one(arg: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Runs a hook (`role` is "pre_reboot hook" or "post_reboot hook"); a
/// non-zero exit, a signal, a timeout or a stopping agent is an `Err` that
/// says which.
pub fn run_hook(role: &str, argv: &[String], vars: &Vars, timeout: Duration) -> Result<Finished> {
    run_action(role, argv, vars, timeout, true)
}

/// Like [`run_hook`], but a stopping agent does not cancel it (used to
/// undo a `pre_reboot` hook).
pub fn run_hook_to_completion(
    role: &str,
    argv: &[String],
    vars: &Vars,
    timeout: Duration,
) -> Result<Finished> {
    run_action(role, argv, vars, timeout, false)
}

fn run_action(
    role: &str,
    argv: &[String],
    vars: &Vars,
    timeout: Duration,
    cancellable: bool,
) -> Result<Finished> {
    let argv = expand(argv, vars);
    let finished = process::run(&process::Command {
        role,
        argv: &argv,
        env: &vars.0,
        timeout,
        cancellable,
    })?;
    if finished.success() {
        Ok(finished)
    } else {
        Err(Error::Command {
            role: role.to_string(),
            detail: format!(
                "{} {}: {}",
                program(&argv).display(),
                finished.describe(),
                finished.output_excerpt(200)
            ),
        })
    }
}

/// Runs the reboot command; unlike the hooks, a stopping agent does not
/// cancel it (the reboot is under way).
pub fn run_reboot_command(argv: &[String], vars: &Vars) -> Result<()> {
    run_action(
        REBOOT_COMMAND_ROLE,
        argv,
        vars,
        Duration::from_secs(REBOOT_COMMAND_TIMEOUT_SECS),
        false,
    )
    .map(|_| ())
    .map_err(|e| match e {
        Error::Command { detail, .. } => Error::RebootCommandFailed { detail },
        other => other,
    })
}

fn program(argv: &[String]) -> PathBuf {
    PathBuf::from(argv.first().map(String::as_str).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars(vec![
            ("RC_NODE_NAME".into(), "web-1".into()),
            ("RC_REASON".into(), "kernel".into()),
        ])
    }

    #[test]
    fn expands_known_placeholders() {
        let argv: Vec<String> = [
            "/bin/x",
            "node=${RC_NODE_NAME}",
            "${RC_REASON}/${RC_NODE_NAME}",
            "${NOPE}",
            "${",
            "$RC_NODE_NAME",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            expand(&argv, &vars()),
            [
                "/bin/x",
                "node=web-1",
                "kernel/web-1",
                "${NOPE}",
                "${",
                "$RC_NODE_NAME"
            ]
        );
    }

    #[test]
    fn lists_placeholders() {
        assert_eq!(crate::config::placeholders_in("a${X}b${Y}"), ["X", "Y"]);
        assert!(crate::config::placeholders_in("${unterminated").is_empty());
    }
}

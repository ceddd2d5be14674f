//! Who is logged in: the interactive sessions of utmp, for the
//! `block_if_users_logged_in` gate and `status`, and the `wall` sent
//! before the reboot command.
//!
//! Sessions come from utmp (`/var/run/utmp`), parsed here: its
//! `USER_PROCESS` records whose process is still alive. utmp rather than
//! systemd-logind because it needs no D-Bus client (no new dependency, no
//! bus to reach from a daemon that must work when much else does not) and
//! it is what `who` and `w` read, so the gate agrees with what an operator
//! sees. Its limits: only programs that write utmp count (login, sshd,
//! terminal emulators through utempter, tmux and screen panes that do; not
//! `ssh host command` without a tty, nor a `systemd-run` job); a program
//! that died without removing its record is ignored because its pid is
//! gone, but a reused pid keeps it; and some distributions have dropped
//! utmp for logind (openSUSE Tumbleweed since 2024, with Y2038 in view):
//! there the file is missing, which the gate reports as an error rather
//! than as "nobody".
//!
//! The record is glibc's `struct utmp`: 384 bytes where glibc keeps
//! `ut_session` and `ut_tv` 32-bit for compatibility
//! (`__WORDSIZE_TIME64_COMPAT32`, x86 and x86_64), 400 bytes where they
//! are 64-bit (aarch64 and the other 64-bit ports). [`HOST_LAYOUT`] is the
//! layout of the target rebootctl is built for.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::UsersGate;
use crate::host::actions::{self, Vars};
use crate::host::process;

/// `ut_type` of a user's login session.
pub const USER_PROCESS: i16 = 7;
/// How long `wall` may run.
pub const WALL_TIMEOUT_SECS: u64 = 10;

/// Where the fields of one utmp record are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per record.
    pub size: usize,
    /// Offset of `ut_tv.tv_sec`.
    tv_sec: usize,
    /// Whether `tv_sec` is 64-bit (else 32-bit).
    tv_sec_64: bool,
}

/// glibc with `__WORDSIZE_TIME64_COMPAT32` (x86, x86_64): 384 bytes.
pub const LAYOUT_384: Layout = Layout {
    size: 384,
    tv_sec: 340,
    tv_sec_64: false,
};
/// glibc on the other 64-bit ports (aarch64): 400 bytes.
pub const LAYOUT_400: Layout = Layout {
    size: 400,
    tv_sec: 344,
    tv_sec_64: true,
};
/// The layout of the target rebootctl is built for.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub const HOST_LAYOUT: Layout = LAYOUT_384;
/// The layout of the target rebootctl is built for.
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
pub const HOST_LAYOUT: Layout = LAYOUT_400;

// Offsets common to both layouts.
const PID_AT: usize = 4;
const LINE_AT: usize = 8;
const LINE_LEN: usize = 32;
const USER_AT: usize = 44;
const USER_LEN: usize = 32;
const HOST_AT: usize = 76;
const HOST_LEN: usize = 256;

/// One interactive session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The user name (`ut_user`).
    pub user: String,
    /// The terminal (`ut_line`: `pts/0`, `tty1`).
    pub tty: String,
    /// Where from (`ut_host`; empty for a local login).
    pub host: String,
    /// When it began (RFC 3339; empty when the record has no time).
    pub since: String,
    /// The session's process (`ut_pid`).
    pub pid: i32,
}

impl Session {
    /// For people: "alice on pts/0 from 10.0.0.5 for 2h 3m".
    pub fn describe(&self, now: Timestamp) -> String {
        let mut s = format!("{} on {}", self.user, self.tty);
        if !self.host.is_empty() {
            s.push_str(&format!(" from {}", self.host));
        }
        if !self.since.is_empty() {
            s.push_str(&format!(
                " for {}",
                crate::time::human_age(&self.since, now)
            ));
        }
        s
    }
}

/// What a pass saw of the logged-in users (`status`, `status --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedIn {
    /// Whether `block_if_users_logged_in` is on.
    pub gate: bool,
    /// The utmp file read.
    pub utmp_file: PathBuf,
    /// The sessions found (empty when none, or when it could not be read).
    pub sessions: Vec<Session>,
    /// Why utmp could not be read, else None.
    pub error: Option<String>,
    /// Since when the gate has postponed the reboot (RFC 3339), else None.
    pub waiting_since: Option<String>,
    /// `users_max_postpone_sec` (0: no maximum).
    pub max_postpone_sec: u64,
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `USER_PROCESS` records of utmp `bytes` with a user name, in file
/// order; an error when the size is not a whole number of records.
pub fn parse(bytes: &[u8], layout: Layout) -> Result<Vec<Session>, String> {
    if bytes.len() % layout.size != 0 {
        return Err(format!(
            "{} bytes is not a whole number of {}-byte utmp records",
            bytes.len(),
            layout.size
        ));
    }
    let mut out = Vec::new();
    for rec in bytes.chunks_exact(layout.size) {
        let kind = i16::from_ne_bytes([rec[0], rec[1]]);
        let user = text(&rec[USER_AT..USER_AT + USER_LEN]);
        if kind != USER_PROCESS || user.is_empty() {
            continue;
        }
        let pid = i32::from_ne_bytes([
            rec[PID_AT],
            rec[PID_AT + 1],
            rec[PID_AT + 2],
            rec[PID_AT + 3],
        ]);
        let at = layout.tv_sec;
        let secs = if layout.tv_sec_64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rec[at..at + 8]);
            i64::from_ne_bytes(b)
        } else {
            i64::from(i32::from_ne_bytes([
                rec[at],
                rec[at + 1],
                rec[at + 2],
                rec[at + 3],
            ]))
        };
        let since = match Timestamp::from_second(secs) {
            Ok(t) if secs > 0 => t.to_string(),
            _ => String::new(),
        };
        out.push(Session {
            user,
            tty: text(&rec[LINE_AT..LINE_AT + LINE_LEN]),
            host: text(&rec[HOST_AT..HOST_AT + HOST_LEN]),
            since,
            pid,
        });
    }
    Ok(out)
}

/// Whether `pid` still runs (a record left by a process that died without
/// cleaning up does not count); a pid we may not signal runs.
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The live interactive sessions in the utmp file at `path`.
pub fn read(path: &Path) -> Result<Vec<Session>, String> {
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{} does not exist (this system may keep no utmp: its sessions cannot be counted)",
            path.display()
        ),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    let sessions = parse(&bytes, HOST_LAYOUT).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(sessions.into_iter().filter(|s| alive(s.pid)).collect())
}

/// Sends `users_wall_message` (placeholders expanded) with
/// `users_wall_command`, when the message is not empty. A failure is
/// logged: it never stops the reboot.
pub fn wall(cfg: &UsersGate, vars: &Vars) {
    if cfg.wall_message.is_empty() {
        return;
    }
    let mut argv = actions::expand(&cfg.wall_command, vars);
    argv.extend(actions::expand(
        std::slice::from_ref(&cfg.wall_message),
        vars,
    ));
    match process::run(&process::Command {
        role: "wall",
        argv: &argv,
        env: &vars.0,
        timeout: Duration::from_secs(WALL_TIMEOUT_SECS),
        cancellable: true,
    }) {
        Ok(f) if f.success() => log::info!(event = "wall_sent"; "told the logged-in users"),
        Ok(f) => log::warn!("wall {}: {}", f.describe(), f.output_excerpt(200)),
        Err(e) => log::warn!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        layout: Layout,
        kind: i16,
        pid: i32,
        line: &str,
        user: &str,
        host: &str,
        secs: i64,
    ) -> Vec<u8> {
        let mut r = vec![0u8; layout.size];
        r[0..2].copy_from_slice(&kind.to_ne_bytes());
        r[PID_AT..PID_AT + 4].copy_from_slice(&pid.to_ne_bytes());
        r[LINE_AT..LINE_AT + line.len()].copy_from_slice(line.as_bytes());
        r[USER_AT..USER_AT + user.len()].copy_from_slice(user.as_bytes());
        r[HOST_AT..HOST_AT + host.len()].copy_from_slice(host.as_bytes());
        if layout.tv_sec_64 {
            r[layout.tv_sec..layout.tv_sec + 8].copy_from_slice(&secs.to_ne_bytes());
        } else {
            let s = i32::try_from(secs).expect("32-bit time");
            r[layout.tv_sec..layout.tv_sec + 4].copy_from_slice(&s.to_ne_bytes());
        }
        r
    }

    #[test]
    fn both_layouts_yield_the_user_processes() {
        for layout in [LAYOUT_384, LAYOUT_400] {
            let mut bytes = record(layout, 2, 0, "~", "reboot", "6.1.0", 1_700_000_000);
            bytes.extend(record(layout, 6, 10, "tty1", "LOGIN", "", 1_700_000_000));
            bytes.extend(record(
                layout,
                7,
                42,
                "pts/0",
                "alice",
                "10.0.0.5",
                1_767_225_600,
            ));
            bytes.extend(record(layout, 8, 43, "pts/1", "", "", 0));
            bytes.extend(record(layout, 7, 44, "tty2", "bob", "", 0));
            let got = parse(&bytes, layout).expect("parses");
            assert_eq!(
                got,
                [
                    Session {
                        user: "alice".into(),
                        tty: "pts/0".into(),
                        host: "10.0.0.5".into(),
                        since: "2026-01-01T00:00:00Z".into(),
                        pid: 42
                    },
                    Session {
                        user: "bob".into(),
                        tty: "tty2".into(),
                        host: String::new(),
                        since: String::new(),
                        pid: 44
                    }
                ],
                "{layout:?}"
            );
            assert!(parse(&bytes[1..], layout).is_err());
        }
    }

    #[test]
    fn dead_sessions_do_not_count() {
        assert!(alive(std::process::id().try_into().expect("pid")));
        // Above the kernel's pid_max (4194304 at most): never a process.
        assert!(!alive(i32::MAX));
    }
}

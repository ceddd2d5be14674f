//! Running child processes: the only place in rebootctl that spawns one.
//!
//! Detectors, the health script, hooks and the reboot command all go through
//! [`run`]: no shell, a cleared environment (`PATH` plus exactly the variables
//! the caller documents), stdin from `/dev/null`, a process group of its own
//! so a timeout can kill the whole tree (TERM, a grace period, then KILL),
//! and stdout/stderr drained on their own threads up to a byte limit so a
//! chatty child never blocks on a full pipe.
//!
//! Every wait is bounded: a child that survives SIGKILL (stuck in
//! uninterruptible sleep, or held by a tracer) is left to a reaper thread
//! and reported as [`Error::Unreaped`], and pipes that a descendant keeps
//! open are given up after [`READER_JOIN_TIMEOUT`]. So [`run`] returns at
//! most [`MAX_OVERRUN`] after the child's timeout, which is what lets the
//! caller put a deadline on everything it runs under a lock slot.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Bytes of stdout and of stderr kept per child; the rest is read and dropped.
pub const OUTPUT_LIMIT_BYTES: usize = 64 * 1024;
/// Time between SIGTERM and SIGKILL to a timed-out child's process group.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// The `PATH` every child gets; nothing of the daemon's environment leaks in.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long to wait for the output readers after the child has exited: a
/// grandchild that inherited the pipes may keep them open for ever.
pub const READER_JOIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for a child to be reaped after SIGKILL: one stuck in
/// the kernel (uninterruptible sleep) or held by a tracer never is.
pub const REAP_TIMEOUT: Duration = Duration::from_secs(3);
/// The most [`run`] takes beyond the child's timeout: the grace period,
/// waiting to reap it after SIGKILL, and waiting for its output.
pub const MAX_OVERRUN: Duration = KILL_GRACE
    .saturating_add(REAP_TIMEOUT)
    .saturating_add(READER_JOIN_TIMEOUT);

/// Longest sleep between two `try_wait` polls while waiting for a child.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Size of one read from a child's pipe.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// What to run and how.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    /// What the child is for, used in logs and errors ("health script").
    pub role: &'a str,
    /// The program (`argv[0]`, an absolute path) and its arguments.
    pub argv: &'a [String],
    /// The child's environment besides `PATH` (which a pair here may override).
    pub env: &'a [(String, String)],
    /// How long the child may run before its process group is killed.
    pub timeout: Duration,
    /// Whether [`cancel_all`] stops it (everything but the reboot command).
    pub cancellable: bool,
}

/// Set once the agent is stopping: cancellable children are killed.
static CANCEL: AtomicBool = AtomicBool::new(false);

/// Stops every cancellable child, now and from now on (SIGTERM/SIGINT: the
/// pass then ends quickly and releases what it holds).
pub fn cancel_all() {
    CANCEL.store(true, Ordering::SeqCst);
}

/// True once [`cancel_all`] was called.
pub fn cancelled() -> bool {
    CANCEL.load(Ordering::SeqCst)
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// A signal (this number) killed it.
    Signalled(i32),
    /// It ran past its timeout and its process group was killed.
    TimedOut,
    /// The agent is stopping (SIGTERM/SIGINT) and killed its process group.
    Cancelled,
}

/// The result of a child that was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub termination: Termination,
    /// Its stdout, at most [`OUTPUT_LIMIT_BYTES`], lossy UTF-8.
    pub stdout: String,
    /// Its stderr, at most [`OUTPUT_LIMIT_BYTES`], lossy UTF-8.
    pub stderr: String,
    /// True when stdout or stderr was longer than the limit and cut.
    pub truncated: bool,
    /// Wall time from spawn until it was reaped and its output collected.
    pub duration: Duration,
    /// The timeout that applied (reported by [`Finished::describe`]).
    pub timeout: Duration,
}

impl Finished {
    /// True when the child exited with code 0.
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited(0)
    }

    /// The exit code, when the child exited on its own.
    pub fn exit_code(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited(code) => Some(code),
            Termination::Signalled(_) | Termination::TimedOut | Termination::Cancelled => None,
        }
    }

    /// One human phrase: "exited with 1", "killed by signal 9", "timed out after 10s".
    pub fn describe(&self) -> String {
        match self.termination {
            Termination::Exited(code) => format!("exited with {code}"),
            Termination::Signalled(sig) => format!("killed by signal {sig}"),
            Termination::TimedOut => {
                format!(
                    "timed out after {}",
                    crate::time::human_duration(self.timeout)
                )
            }
            Termination::Cancelled => "cancelled: the agent is stopping".to_string(),
        }
    }

    /// The last lines of stdout then stderr, trimmed, at most `max_chars`
    /// characters (whole lines when possible), for logs and status output.
    pub fn output_excerpt(&self, max_chars: usize) -> String {
        let parts: Vec<&str> = [self.stdout.trim(), self.stderr.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        tail_chars(&parts.join("\n"), max_chars)
    }
}

/// The last `max_chars` characters of `text`, starting at a line boundary
/// when the cut leaves more than one line, trimmed.
fn tail_chars(text: &str, max_chars: usize) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.trim().to_string();
    }
    // Byte offset of the first kept character (char boundary by construction).
    let start = text
        .char_indices()
        .nth(total - max_chars)
        .map_or(text.len(), |(i, _)| i);
    let tail = &text[start..];
    // Prefer starting at a whole line, unless that would leave nothing.
    let tail = match tail.find('\n') {
        Some(nl) if !tail[nl + 1..].trim().is_empty() => &tail[nl + 1..],
        _ => tail,
    };
    tail.trim().to_string()
}

/// Output captured from one pipe, shared with its reader thread so that what
/// was read so far survives a reader we stop waiting for.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

type SharedCapture = Arc<Mutex<Captured>>;

/// Starts a thread draining `pipe` into a shared buffer; it signals `done`
/// at end of file (when every holder of the write end has closed it).
fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    done: mpsc::Sender<()>,
) -> io::Result<SharedCapture> {
    let shared = SharedCapture::default();
    let buf = Arc::clone(&shared);
    thread::Builder::new()
        .name("child-output".into())
        .spawn(move || {
            let mut chunk = vec![0u8; READ_CHUNK_BYTES];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut c = buf.lock().unwrap_or_else(PoisonError::into_inner);
                        let room = OUTPUT_LIMIT_BYTES.saturating_sub(c.bytes.len());
                        if n > room {
                            c.truncated = true;
                        }
                        // Keep reading past the limit, dropping the bytes, so
                        // the child never blocks on a full pipe.
                        c.bytes.extend_from_slice(&chunk[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            // The receiver may have given up on us; nothing to do then.
            let _ = done.send(());
        })?;
    Ok(shared)
}

fn take_capture(c: &SharedCapture) -> (String, bool) {
    let mut c = c.lock().unwrap_or_else(PoisonError::into_inner);
    let bytes = std::mem::take(&mut c.bytes);
    (String::from_utf8_lossy(&bytes).into_owned(), c.truncated)
}

/// Sends `signal` to the process group `pgid`; a group that is already gone is fine.
fn signal_group(pgid: Pid, signal: Signal, role: &str) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => log::warn!("cannot send {signal} to the {role} process group {pgid}: {e}"),
    }
}

/// True while any process of group `pgid` exists (zombies included).
fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None::<Signal>).is_ok()
}

/// How waiting for a child ended.
enum Waited {
    /// It exited.
    Exited(ExitStatus),
    /// The deadline passed.
    Deadline,
    /// [`cancel_all`] was called.
    Cancelled,
}

/// Polls `child` until it exits, `deadline` passes or (when `cancellable`)
/// the agent stops. No deadline (a timeout too large to represent) means
/// only the exit or a cancel ends the wait.
fn wait_until(
    child: &mut Child,
    deadline: Option<Instant>,
    cancellable: bool,
) -> io::Result<Waited> {
    let mut interval = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Waited::Exited(status));
        }
        if cancellable && cancelled() {
            return Ok(Waited::Cancelled);
        }
        let now = Instant::now();
        let mut nap = interval;
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Ok(Waited::Deadline);
            }
            nap = nap.min(deadline - now);
        }
        thread::sleep(nap);
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
}

/// Kills a timed-out child's process group: SIGTERM, up to [`KILL_GRACE`]
/// for the group to go away, then SIGKILL; reaps the child, waiting at
/// most [`REAP_TIMEOUT`] after the SIGKILL. Returns whether it was reaped.
fn kill_group(child: &mut Child, pgid: Pid, role: &str) -> io::Result<bool> {
    signal_group(pgid, Signal::SIGTERM, role);
    let grace_end = Instant::now() + KILL_GRACE;
    let mut reaped = false;
    let mut interval = Duration::from_millis(1);
    loop {
        if !reaped {
            reaped = child.try_wait()?.is_some();
        }
        // Once the leader is reaped, a still-existing group means a grandchild
        // survived the TERM; it gets the KILL below.
        if reaped && !group_alive(pgid) {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= grace_end {
            break;
        }
        thread::sleep(interval.min(grace_end - now));
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
    log::warn!(
        "{role} process group {pgid} still running {}s after SIGTERM, sending SIGKILL",
        KILL_GRACE.as_secs()
    );
    signal_group(pgid, Signal::SIGKILL, role);
    if reaped {
        return Ok(true);
    }
    reap_within(child, REAP_TIMEOUT)
}

/// Waits up to `limit` for `child` to be reaped; returns whether it was.
fn reap_within(child: &mut Child, limit: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + limit;
    let mut interval = Duration::from_millis(1);
    loop {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
}

/// Hands a child that survived SIGKILL to a thread that reaps it whenever
/// it finally exits, so it never stays a zombie of ours; logs both ends.
fn abandon(mut child: Child, role: &str, program: &str) {
    let pid = child.id();
    log::error!(
        event = "child_abandoned", pid = pid;
        "{role} {program} (pid {pid}) survived SIGKILL and was not reaped within {}s \
         (stuck in the kernel, or held by a tracer); left to a reaper thread",
        REAP_TIMEOUT.as_secs()
    );
    let role = role.to_string();
    let spawned = thread::Builder::new()
        .name("child-reaper".into())
        .spawn(move || match child.wait() {
            Ok(status) => log::info!("abandoned {role} (pid {pid}) was reaped at last: {status}"),
            Err(e) => log::warn!("cannot reap the abandoned {role} (pid {pid}): {e}"),
        });
    if let Err(e) = spawned {
        // The Child is dropped without a wait: the zombie stays until we exit.
        log::warn!("cannot start a reaper thread for pid {pid}: {e}");
    }
}

/// Runs `cmd` to completion (or its timeout) and returns how it ended with
/// its bounded output.
///
/// A child that cannot be started (missing, not executable, not a valid
/// executable) is an [`Error::Spawn`]; a child that survives SIGKILL is an
/// [`Error::Unreaped`] (it is left to a reaper thread); anything else the
/// child does once started (non-zero exit, a signal, a timeout) is
/// reported in [`Finished`]. Returns at most [`MAX_OVERRUN`] after the
/// timeout.
pub fn run(cmd: &Command) -> Result<Finished> {
    let program = cmd.argv.first().map(String::as_str).unwrap_or_default();
    let spawn_error = |source: io::Error| Error::Spawn {
        role: cmd.role.to_string(),
        program: PathBuf::from(program),
        source,
    };
    if program.is_empty() {
        return Err(spawn_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty command",
        )));
    }

    let mut command = std::process::Command::new(program);
    command
        .args(&cmd.argv[1..])
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);

    log::debug!("starting {}: {:?}", cmd.role, cmd.argv);
    let start = Instant::now();
    let mut child = {
        #[cfg(test)]
        let _guard = test_support::SPAWN_LOCK
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        command.spawn().map_err(spawn_error)?
    };

    let wait_error = |e: io::Error| Error::io(format!("waiting for {}", cmd.role), program, e);
    // process_group(0) makes the child the leader of a group with its pid.
    let pgid = match i32::try_from(child.id()) {
        Ok(pid) => Pid::from_raw(pid),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(wait_error(io::Error::other("child pid out of range")));
        }
    };

    let (done_tx, done_rx) = mpsc::channel();
    let mut readers = Vec::with_capacity(2);
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for pipe in pipes.into_iter().flatten() {
        match spawn_reader(pipe, done_tx.clone()) {
            Ok(shared) => readers.push(shared),
            Err(e) => {
                signal_group(pgid, Signal::SIGKILL, cmd.role);
                if !matches!(reap_within(&mut child, REAP_TIMEOUT), Ok(true)) {
                    abandon(child, cmd.role, program);
                }
                return Err(Error::Runtime(format!(
                    "cannot start an output reader for {}: {e}",
                    cmd.role
                )));
            }
        }
    }
    drop(done_tx);

    let mut reaped = true;
    let termination = match wait_until(&mut child, start.checked_add(cmd.timeout), cmd.cancellable)
    {
        Ok(Waited::Exited(status)) => termination_of(status),
        Ok(Waited::Cancelled) => {
            log::info!(
                "{} {program}: the agent is stopping, killing its process group",
                cmd.role
            );
            reaped = kill_group(&mut child, pgid, cmd.role).map_err(wait_error)?;
            Termination::Cancelled
        }
        Ok(Waited::Deadline) => {
            log::warn!(
                "{} {program} timed out after {}, killing its process group",
                cmd.role,
                crate::time::human_duration(cmd.timeout)
            );
            reaped = kill_group(&mut child, pgid, cmd.role).map_err(wait_error)?;
            Termination::TimedOut
        }
        Err(e) => {
            signal_group(pgid, Signal::SIGKILL, cmd.role);
            if !matches!(reap_within(&mut child, REAP_TIMEOUT), Ok(true)) {
                abandon(child, cmd.role, program);
            }
            return Err(wait_error(e));
        }
    };

    // Its output is of no use then; the reader threads end when the pipes close.
    if !reaped {
        let pid = child.id();
        abandon(child, cmd.role, program);
        return Err(Error::Unreaped {
            role: cmd.role.to_string(),
            program: PathBuf::from(program),
            pid,
        });
    }

    // The readers end when every write end is closed; a grandchild that
    // inherited them may hold them open, so give up after a deadline and keep
    // what was read so far (the detached thread ends when the pipe closes).
    let deadline = Instant::now() + READER_JOIN_TIMEOUT;
    let mut finished_readers = 0;
    while finished_readers < readers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => finished_readers += 1,
            Err(_) => {
                log::warn!(
                    "{} {program} exited but something it started still holds its output open; \
                     not waiting for it",
                    cmd.role
                );
                break;
            }
        }
    }

    let mut outputs = readers.iter().map(take_capture);
    let (stdout, out_cut) = outputs.next().unwrap_or_default();
    let (stderr, err_cut) = outputs.next().unwrap_or_default();
    let finished = Finished {
        termination,
        stdout,
        stderr,
        truncated: out_cut || err_cut,
        duration: start.elapsed(),
        timeout: cmd.timeout,
    };
    log::debug!(
        "{} {program} {} in {}",
        cmd.role,
        finished.describe(),
        crate::time::human_duration(round_ms(finished.duration))
    );
    Ok(finished)
}

fn termination_of(status: ExitStatus) -> Termination {
    match (status.code(), status.signal()) {
        (Some(code), _) => Termination::Exited(code),
        (None, Some(sig)) => Termination::Signalled(sig),
        // Neither an exit code nor a signal cannot happen after a wait on
        // Linux; report it as a failure rather than panic.
        (None, None) => Termination::Exited(-1),
    }
}

/// `d` rounded down to whole milliseconds, for readable log lines.
pub(crate) fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Helpers shared by the unit tests of the modules that run children.
#[cfg(test)]
pub(crate) mod test_support {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{PoisonError, RwLock};
    use std::time::{Duration, Instant};

    /// Spawns hold it shared, script writers exclusively: a child forked by
    /// another test thread while a script is open for writing would inherit
    /// that descriptor until its exec, and exec'ing the script then fails
    /// with ETXTBSY ("text file busy").
    pub(crate) static SPAWN_LOCK: RwLock<()> = RwLock::new(());

    /// A directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("rebootctl-test-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes an executable `/bin/sh` script named `name` with `body`.
        pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
            self.executable(name, format!("#!/bin/sh\n{body}\n").as_bytes())
        }

        /// Writes `content` to `name` with mode 0755.
        pub(crate) fn executable(&self, name: &str, content: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            let _guard = SPAWN_LOCK.write().unwrap_or_else(PoisonError::into_inner);
            let mut f = fs::File::create(&path).expect("create script");
            f.write_all(content).expect("write script");
            f.set_permissions(fs::Permissions::from_mode(0o755))
                .expect("chmod script");
            drop(f);
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// True once `/proc/<pid>` is gone or a zombie, polled until `within`.
    pub(crate) fn process_gone(pid: i32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let gone = match fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                // Field 3, after the parenthesised command name, is the state.
                Ok(stat) => stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            };
            if gone {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A Perl script that attaches to pid `$ARGV[0]` with `PTRACE_SEIZE`,
    /// writes its own pid to `$ARGV[1]` and sleeps without ever waiting for
    /// its tracee: once killed, the tracee stays a zombie only this tracer
    /// could reap, so its parent cannot reap it (a stand-in for a child
    /// stuck in uninterruptible sleep, which no test can produce).
    pub(crate) const TRACER_PL: &str = r#"use POSIX ();
my ($pid, $marker) = @ARGV;
my $nr = eval { require "syscall.ph"; &SYS_ptrace() };
$nr //= { x86_64 => 101, aarch64 => 117 }->{ (POSIX::uname())[4] }
    // die "no ptrace syscall number for this architecture";
syscall($nr, 0x4206, $pid + 0, 0, 0) == 0 or die "PTRACE_SEIZE $pid: $!";
open(my $f, ">", "$marker.tmp") or die "$marker.tmp: $!";
print $f "$$\n";
close $f;
rename("$marker.tmp", $marker) or die "$marker: $!";
sleep 600;
"#;

    /// A child that survives SIGKILL: a script that has a tracer (in a
    /// session of its own, so the kill of the child's process group misses
    /// it, and holding the child's stdout and stderr) attach to it, then
    /// sleeps. It ignores SIGTERM, so even on a loaded machine the tracer
    /// has the timeout and the grace period to attach before the SIGKILL.
    /// Returns the script and the file the tracer writes its pid to.
    pub(crate) fn unreapable_child(dir: &TempDir) -> (PathBuf, PathBuf) {
        let tracer = dir.path().join("tracer.pl");
        std::fs::write(&tracer, TRACER_PL).expect("write tracer");
        let marker = dir.path().join("tracer.pid");
        let script = dir.script(
            "stuck",
            &format!(
                "trap '' TERM\n\
                 setsid /usr/bin/perl {} $$ {} &\n\
                 while [ ! -s {} ]; do :; done\n\
                 exec /bin/sleep 60",
                tracer.display(),
                marker.display(),
                marker.display()
            ),
        );
        (script, marker)
    }

    /// Kills a process by pid on drop (a tracer a test started).
    pub(crate) struct KillOnDrop(pub(crate) i32);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Reads a pid a script wrote, waiting for it to appear.
    pub(crate) fn read_pid(path: &Path) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(s) = fs::read_to_string(path) {
                if let Ok(pid) = s.trim().parse() {
                    return pid;
                }
            }
            assert!(Instant::now() < deadline, "no pid in {}", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{KillOnDrop, TempDir, process_gone, read_pid, unreapable_child};
    use super::*;
    use std::path::Path;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    fn run_argv(argv: &[String], timeout: Duration) -> Result<Finished> {
        run(&Command {
            role: "test child",
            argv,
            env: &[],
            timeout,
            cancellable: true,
        })
    }

    fn run_script(path: &Path, timeout: Duration) -> Finished {
        run_argv(&[path.display().to_string()], timeout).expect("script starts")
    }

    #[test]
    fn exit_codes_are_reported() {
        let dir = TempDir::new("exit");
        let ok = run_script(
            &dir.script("ok", "echo out; echo err >&2"),
            Duration::from_secs(5),
        );
        assert_eq!(ok.termination, Termination::Exited(0));
        assert!(ok.success());
        assert_eq!(ok.exit_code(), Some(0));
        assert_eq!(ok.stdout, "out\n");
        assert_eq!(ok.stderr, "err\n");
        assert!(!ok.truncated);
        assert_eq!(ok.describe(), "exited with 0");

        let three = run_script(&dir.script("three", "exit 3"), Duration::from_secs(5));
        assert_eq!(three.termination, Termination::Exited(3));
        assert!(!three.success());
        assert_eq!(three.exit_code(), Some(3));
        assert_eq!(three.describe(), "exited with 3");
    }

    #[test]
    fn arguments_are_passed_without_a_shell() {
        let f = run_argv(
            &argv(&["/bin/echo", "a b", "$HOME", "*"]),
            Duration::from_secs(5),
        )
        .expect("echo starts");
        assert_eq!(f.stdout, "a b $HOME *\n");
    }

    #[test]
    fn an_unrepresentable_timeout_means_no_timeout() {
        let f = run_argv(&argv(&["/bin/true"]), Duration::MAX).expect("true starts");
        assert!(f.success());
    }

    #[test]
    fn a_signal_is_reported() {
        let dir = TempDir::new("signal");
        let f = run_script(&dir.script("kill", "kill -9 $$"), Duration::from_secs(5));
        assert_eq!(f.termination, Termination::Signalled(9));
        assert!(!f.success());
        assert_eq!(f.exit_code(), None);
        assert_eq!(f.describe(), "killed by signal 9");
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let dir = TempDir::new("timeout");
        let pidfile = dir.path().join("pid");
        let script = dir.script(
            "slow",
            &format!("/bin/sleep 30 &\necho $! > {}\nwait", pidfile.display()),
        );
        let f = run_script(&script, Duration::from_millis(300));
        assert_eq!(f.termination, Termination::TimedOut);
        assert_eq!(f.describe(), "timed out after 300ms");
        assert_eq!(f.exit_code(), None);
        assert!(f.duration < Duration::from_millis(300) + KILL_GRACE);
        let grandchild = read_pid(&pidfile);
        assert!(
            process_gone(grandchild, Duration::from_secs(5)),
            "grandchild {grandchild} survived the timeout"
        );
    }

    #[test]
    fn timeout_escalates_to_sigkill_when_term_is_ignored() {
        let dir = TempDir::new("term-ignored");
        let pidfile = dir.path().join("pid");
        // The ignored disposition is inherited by the sleep as well.
        let script = dir.script(
            "stubborn",
            &format!(
                "trap '' TERM\n/bin/sleep 30 &\necho $! > {}\nwait\nwait",
                pidfile.display()
            ),
        );
        let f = run_script(&script, Duration::from_millis(200));
        assert_eq!(f.termination, Termination::TimedOut);
        assert!(f.duration >= Duration::from_millis(200) + KILL_GRACE);
        assert!(f.duration < Duration::from_millis(200) + KILL_GRACE + Duration::from_secs(3));
        let grandchild = read_pid(&pidfile);
        assert!(process_gone(grandchild, Duration::from_secs(5)));
    }

    #[test]
    fn environment_is_exactly_path_and_the_given_variables() {
        // Variables of the test process itself (cargo sets CARGO_*, the shell
        // HOME, ...) must not reach the child. Setting one here would need
        // the unsafe `set_var` while other test threads run.
        let inherited: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k != "PATH")
            .collect();
        assert!(!inherited.is_empty());
        let env = vec![
            ("RC_NODE_NAME".to_string(), "web-1".to_string()),
            ("WITH_SPACE".to_string(), "a b;c".to_string()),
        ];
        let cmd_argv = argv(&["/usr/bin/env"]);
        let f = run(&Command {
            role: "env",
            argv: &cmd_argv,
            env: &env,
            timeout: Duration::from_secs(5),
            cancellable: true,
        })
        .expect("env starts");
        let mut lines: Vec<&str> = f.stdout.lines().collect();
        lines.sort_unstable();
        for name in &inherited {
            assert!(!f.stdout.contains(&format!("{name}=")), "{name} leaked");
        }
        assert_eq!(
            lines,
            [
                format!("PATH={DEFAULT_PATH}").as_str(),
                "RC_NODE_NAME=web-1",
                "WITH_SPACE=a b;c"
            ]
        );
    }

    #[test]
    fn output_is_bounded_and_the_child_is_not_blocked() {
        let dir = TempDir::new("chatty");
        let script = dir.script(
            "chatty",
            "/usr/bin/head -c 300000 /dev/zero | /usr/bin/tr '\\0' a\necho done >&2",
        );
        let f = run_script(&script, Duration::from_secs(10));
        assert_eq!(f.termination, Termination::Exited(0));
        assert_eq!(f.stdout.len(), OUTPUT_LIMIT_BYTES);
        assert!(f.stdout.bytes().all(|b| b == b'a'));
        assert_eq!(f.stderr, "done\n");
        assert!(f.truncated);
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&Command {
            role: "health script",
            argv: &argv(&["/nonexistent/rebootctl-test"]),
            env: &[],
            timeout: Duration::from_secs(1),
            cancellable: true,
        })
        .expect_err("must not start");
        match &err {
            Error::Spawn {
                role,
                program,
                source,
            } => {
                assert_eq!(role, "health script");
                assert_eq!(program, Path::new("/nonexistent/rebootctl-test"));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "cannot start health script /nonexistent/rebootctl-test: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn non_executable_and_invalid_programs_are_spawn_errors() {
        let dir = TempDir::new("noexec");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\nexit 0\n").expect("write");
        let garbage = dir.executable("garbage", b"\x7fELF\x01\x02garbage");
        // No shebang: execve fails with ENOEXEC and nothing falls back to sh.
        let no_shebang = dir.executable("no-shebang", b"echo ran by a shell\n");
        for path in [plain, garbage, no_shebang] {
            let err = run_argv(&[path.display().to_string()], Duration::from_secs(1))
                .expect_err("must not start");
            assert!(
                matches!(&err, Error::Spawn { program, .. } if program == &path),
                "{err:?}"
            );
        }
        let empty = run_argv(&[], Duration::from_secs(1)).expect_err("empty argv");
        assert!(matches!(empty, Error::Spawn { .. }));
    }

    #[test]
    fn a_grandchild_holding_the_pipes_does_not_hang_run() {
        let dir = TempDir::new("holder");
        let pidfile = dir.path().join("pid");
        let script = dir.script(
            "daemonize",
            &format!(
                "/bin/sleep 30 &\necho $! > {}\necho started",
                pidfile.display()
            ),
        );
        let f = run_script(&script, Duration::from_secs(10));
        let grandchild = read_pid(&pidfile);
        // Clean up the sleep before asserting, so a failure leaves nothing behind.
        let _ = nix::sys::signal::kill(Pid::from_raw(grandchild), Signal::SIGKILL);
        assert_eq!(f.termination, Termination::Exited(0));
        assert_eq!(f.stdout, "started\n");
        assert!(
            f.duration < READER_JOIN_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            f.duration
        );
    }

    #[test]
    fn a_child_that_survives_sigkill_is_abandoned_and_reported() {
        let dir = TempDir::new("unreaped");
        let (script, marker) = unreapable_child(&dir);
        let timeout = Duration::from_secs(1);
        let started = Instant::now();
        let result = run_argv(&[script.display().to_string()], timeout);
        let took = started.elapsed();
        let tracer = KillOnDrop(read_pid(&marker));
        let err = result.expect_err("an unreaped child is an error");
        let Error::Unreaped { role, program, pid } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(role, "test child");
        assert_eq!(program, &script);
        assert!(err.to_string().contains("survived SIGKILL"), "{err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_RUNTIME);
        // Bounded: TERM, the grace, KILL, the reap wait; not the sleep 60.
        assert!(took >= timeout + KILL_GRACE + REAP_TIMEOUT, "{took:?}");
        assert!(
            took < timeout + MAX_OVERRUN + Duration::from_secs(1),
            "{took:?}"
        );
        let pid = i32::try_from(*pid).expect("pid");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.contains(") Z"), "the child is a zombie: {stat}");
        // Once its tracer is gone, the reaper thread reaps it: no zombie left.
        drop(tracer);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "pid {pid} was never reaped");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn finished(stdout: &str, stderr: &str) -> Finished {
        Finished {
            termination: Termination::Exited(1),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            truncated: false,
            duration: Duration::ZERO,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn output_excerpt_keeps_the_last_whole_lines() {
        assert_eq!(finished("", "").output_excerpt(100), "");
        assert_eq!(finished("  a\nb\n\n", "").output_excerpt(100), "a\nb");
        assert_eq!(finished("a\n", "boom\n").output_excerpt(100), "a\nboom");
        assert_eq!(finished("", "boom\n").output_excerpt(100), "boom");
        assert_eq!(
            finished("line one\nline two\nline three\n", "").output_excerpt(14),
            "line three"
        );
        // One long line is cut inside the line rather than dropped.
        assert_eq!(finished("abcdefghij", "").output_excerpt(4), "ghij");
        // Character, not byte, counting.
        assert_eq!(finished("äöü", "").output_excerpt(2), "öü");
    }

    #[test]
    fn timed_out_description_uses_humantime() {
        let mut f = finished("", "");
        f.termination = Termination::TimedOut;
        f.timeout = Duration::from_secs(90);
        assert_eq!(f.describe(), "timed out after 1m 30s");
    }
}

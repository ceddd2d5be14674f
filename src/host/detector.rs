//! Reboot-required detectors (SPEC §3, §5 step 3): a marker file, a command's
//! exit code, a running kernel older than the newest installed one, or the
//! checks of the distribution's family ([`distro`]).
//!
//! Each detector yields a [`DetectorReport`]; [`decide`] folds them into one
//! [`Need`]. A detector that cannot decide is `Failed`, never "required": no
//! error ever leads to a reboot. The kernel detector reads everything below a
//! configurable root so tests point it at a fixture tree.
//!
//! A detector that says "required" also says why, as [`Evidence`] (the
//! marker's modification time and content digest, the command's exit code,
//! the kernel releases): the reboot record keeps it so that a need that
//! survives the reboot is recognised (issue 10.2). A command's output is
//! not evidence: a detector that prints a timestamp, an uptime or a list in
//! another order would make every run new evidence and defeat the guard.
//!
//! The kernel detector counts only a kernel that could really be booted
//! into: one of the running kernel's flavour ([`kernel_flavour`]: another
//! flavour, `-lowlatency` next to `-generic`, `+debug`, `-aws`, is never
//! "newer"), with a complete modules directory (`modules.dep`, written by
//! depmod at the end of an installation), whose packages are not half
//! installed according to dpkg's status file, and not while a package
//! manager holds its lock (dpkg's or rpm's: an installation may be under
//! way).

use std::cmp::Ordering;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};

use crate::config::{DetectorKind, DetectorSpec};
use crate::host::distro::{self, Answer, Choice};
use crate::host::process::{self, Termination, round_ms};

/// Characters of a command detector's output kept in its report.
pub const OUTPUT_EXCERPT_CHARS: usize = 2000;
/// Bytes of a marker file read for its content digest.
pub const MARKER_DIGEST_BYTES: u64 = 1024 * 1024;

/// What a detector saw when it said "required": enough to tell the same
/// need from a new one after a reboot. Kept in the reboot record and the
/// reboot log in `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// A marker file exists.
    File {
        /// The detector's name.
        detector: String,
        /// The marker's path.
        path: String,
        /// Its modification time, nanoseconds since the epoch (None when
        /// not readable).
        #[serde(default)]
        mtime_ns: Option<u64>,
        /// [`digest`] of its first [`MARKER_DIGEST_BYTES`] (None for a
        /// directory or an unreadable file).
        #[serde(default)]
        digest: Option<String>,
    },
    /// A command exited with a code in `success_exit_codes`. Its exit code
    /// only: its output may change on every run (a timestamp) without the
    /// need changing.
    Command {
        /// The detector's name.
        detector: String,
        /// Its exit code.
        exit_code: i32,
    },
    /// The running kernel is older than the newest installed one.
    Kernel {
        /// The detector's name.
        detector: String,
        /// The running release.
        running: String,
        /// The newest installed release.
        newest: String,
    },
}

/// One line for people: "marker: /run/reboot-required (modified …)".
impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::File {
                detector,
                path,
                mtime_ns,
                digest,
            } => {
                write!(f, "{detector}: {path}")?;
                let mtime = mtime_ns.and_then(|ns| {
                    let secs = i64::try_from(ns / 1_000_000_000).ok()?;
                    jiff::Timestamp::from_second(secs).ok()
                });
                match (mtime, digest) {
                    (Some(t), Some(d)) => write!(f, " (modified {t}, content {d})"),
                    (Some(t), None) => write!(f, " (modified {t})"),
                    (None, Some(d)) => write!(f, " (content {d})"),
                    (None, None) => Ok(()),
                }
            }
            Evidence::Command {
                detector,
                exit_code,
            } => write!(f, "{detector}: exit code {exit_code}"),
            Evidence::Kernel {
                detector,
                running,
                newest,
            } => write!(
                f,
                "{detector}: running {running}, newest installed {newest}"
            ),
        }
    }
}

/// A short stable digest of `bytes` (FNV-1a, 64 bits, in hex). It tells
/// outputs apart; it is not cryptographic and needs not be.
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What one detector concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A reboot is required.
    Required,
    /// No reboot is required.
    NotRequired,
    /// The detector could not decide; the text says why.
    Failed(String),
}

impl Verdict {
    /// The stable label used in JSON and logs: "required", "not_required", "failed".
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Required => "required",
            Verdict::NotRequired => "not_required",
            Verdict::Failed(_) => "failed",
        }
    }
}

/// Serialised as its label; the failure text is the report's `error` field.
impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The outcome of running one detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorReport {
    /// The detector's name from the configuration.
    pub name: String,
    /// Its type: "file", "command", "kernel" or "distro".
    pub kind: &'static str,
    /// What it concluded.
    pub verdict: Verdict,
    /// One human line on how it got there.
    pub detail: String,
    /// A bounded excerpt of a command detector's output (empty otherwise).
    pub output: String,
    /// How long it took.
    pub duration: Duration,
    /// What it saw, when it says "required".
    pub evidence: Option<Evidence>,
    /// What a `distro` detector chose and why (None for the other types).
    pub distro: Option<Choice>,
}

/// The JSON shape of a report (`simulate --json`), field names stable.
#[derive(Serialize)]
struct ReportJson<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    verdict: &'a Verdict,
    detail: &'a str,
    error: Option<&'a str>,
    output: &'a str,
    duration_ms: u64,
    distro: Option<&'a Choice>,
}

/// Serialised as `{name, type, verdict, detail, error, output, duration_ms,
/// distro}`; `error` is the failure text or null, `distro` null but for a
/// `distro` detector.
impl Serialize for DetectorReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ReportJson {
            name: &self.name,
            kind: self.kind,
            verdict: &self.verdict,
            detail: &self.detail,
            error: match &self.verdict {
                Verdict::Failed(e) => Some(e),
                Verdict::Required | Verdict::NotRequired => None,
            },
            output: &self.output,
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            distro: self.distro.as_ref(),
        }
        .serialize(s)
    }
}

impl DetectorReport {
    /// The report as a JSON value (see the [`Serialize`] impl for the fields).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The combined verdict of all detectors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Need {
    /// At least one detector says a reboot is required.
    Required {
        /// Names of the detectors that said so.
        by: Vec<String>,
    },
    /// Every detector says no reboot is required.
    NotRequired,
    /// None says required and at least one failed: the need is unknown.
    Unknown {
        /// Names of the detectors that failed.
        failed: Vec<String>,
    },
}

/// Combines reports: any `Required` wins; else any `Failed` makes the need
/// unknown; else nothing is required.
pub fn decide(reports: &[DetectorReport]) -> Need {
    let names = |want: fn(&Verdict) -> bool| -> Vec<String> {
        reports
            .iter()
            .filter(|r| want(&r.verdict))
            .map(|r| r.name.clone())
            .collect()
    };
    let by = names(|v| *v == Verdict::Required);
    if !by.is_empty() {
        return Need::Required { by };
    }
    let failed = names(|v| matches!(v, Verdict::Failed(_)));
    if !failed.is_empty() {
        return Need::Unknown { failed };
    }
    Need::NotRequired
}

/// Runs every detector in order.
pub fn run_all(specs: &[DetectorSpec], env: &[(String, String)]) -> Vec<DetectorReport> {
    specs.iter().map(|spec| run_one(spec, env)).collect()
}

/// Runs one detector; `env` is the environment of a command detector
/// (besides `PATH`).
pub fn run_one(spec: &DetectorSpec, env: &[(String, String)]) -> DetectorReport {
    let start = Instant::now();
    let mut choice = None;
    let name = spec.name.clone();
    let (kind, Checked(verdict, detail, evidence), output) = match &spec.kind {
        DetectorKind::File { path } => ("file", check_file(&name, path), String::new()),
        DetectorKind::Command {
            cmd,
            success_exit_codes,
            timeout,
        } => {
            let (checked, output) = check_command(&name, cmd, success_exit_codes, *timeout, env);
            ("command", checked, output)
        }
        DetectorKind::Kernel { root } => ("kernel", check_kernel(&name, root), String::new()),
        DetectorKind::Distro { root, timeout } => {
            let c = distro::check(&spec.name, root, *timeout, env, |root| {
                let Checked(verdict, detail, _) = check_kernel(&name, root);
                let answer = match verdict {
                    Verdict::Required => Answer::Required,
                    Verdict::NotRequired => Answer::NotRequired,
                    Verdict::Failed(_) => Answer::Failed,
                };
                (answer, detail)
            });
            choice = c.choice;
            let (verdict, evidence) = match c.verdict {
                // As for a command, the answer is the evidence (its output
                // is not): the same need after the reboot does not cause
                // another one until a pass has seen it gone.
                Answer::Required => (
                    Verdict::Required,
                    Some(Evidence::Command {
                        detector: name.clone(),
                        exit_code: 0,
                    }),
                ),
                Answer::NotRequired => (Verdict::NotRequired, None),
                Answer::Failed => (Verdict::Failed(c.error), None),
            };
            ("distro", Checked(verdict, c.detail, evidence), c.output)
        }
    };
    let report = DetectorReport {
        name,
        kind,
        verdict,
        detail,
        output,
        duration: start.elapsed(),
        evidence,
        distro: choice,
    };
    log::debug!(
        "detector {} ({}): {}: {} [{}]",
        report.name,
        report.kind,
        report.verdict.as_str(),
        report.detail,
        crate::time::human_duration(round_ms(report.duration))
    );
    report
}

/// A detector's verdict, its human line, and its evidence when required.
struct Checked(Verdict, String, Option<Evidence>);

impl Checked {
    fn failed(msg: String) -> Checked {
        Checked(Verdict::Failed(msg.clone()), msg, None)
    }
}

fn check_file(name: &str, path: &Path) -> Checked {
    match fs::metadata(path) {
        Ok(meta) => {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .and_then(|d| u64::try_from(d.as_nanos()).ok());
            let digest = meta
                .is_file()
                .then(|| {
                    let mut content = Vec::new();
                    fs::File::open(path)
                        .and_then(|f| f.take(MARKER_DIGEST_BYTES).read_to_end(&mut content))
                        .ok()
                        .map(|_| digest(&content))
                })
                .flatten();
            let evidence = Evidence::File {
                detector: name.to_string(),
                path: path.display().to_string(),
                mtime_ns,
                digest,
            };
            Checked(
                Verdict::Required,
                format!("{} exists", path.display()),
                Some(evidence),
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Checked(
            Verdict::NotRequired,
            format!("{} does not exist", path.display()),
            None,
        ),
        Err(e) => Checked::failed(format!("cannot check {}: {e}", path.display())),
    }
}

fn check_command(
    name: &str,
    argv: &[String],
    success_exit_codes: &[i32],
    timeout: Duration,
    env: &[(String, String)],
) -> (Checked, String) {
    let role = format!("detector {name}");
    let finished = match process::run(&process::Command {
        role: &role,
        argv,
        env,
        timeout,
        cancellable: true,
    }) {
        Ok(f) => f,
        Err(e) => return (Checked::failed(e.to_string()), String::new()),
    };
    let output = finished.output_excerpt(OUTPUT_EXCERPT_CHARS);
    let described = finished.describe();
    let checked = match finished.termination {
        Termination::Exited(code) if success_exit_codes.contains(&code) => Checked(
            Verdict::Required,
            format!("{described} (in success_exit_codes {success_exit_codes:?})"),
            Some(Evidence::Command {
                detector: name.to_string(),
                exit_code: code,
            }),
        ),
        Termination::Exited(_) => Checked(
            Verdict::NotRequired,
            format!("{described} (not in success_exit_codes {success_exit_codes:?})"),
            None,
        ),
        Termination::Signalled(_) | Termination::TimedOut | Termination::Cancelled => {
            Checked::failed(described)
        }
    };
    (checked, output)
}

/// The package databases' lock files (below the root) that a running
/// package manager holds: dpkg and apt take `fcntl` write locks on dpkg's,
/// rpm on its transaction lock.
const PACKAGE_LOCKS: [&str; 4] = [
    "var/lib/dpkg/lock-frontend",
    "var/lib/dpkg/lock",
    "var/lib/rpm/.rpm.lock",
    "usr/lib/sysimage/rpm/.rpm.lock",
];

/// dpkg's status file, below the root.
const DPKG_STATUS: &str = "var/lib/dpkg/status";

fn check_kernel(name: &str, root: &Path) -> Checked {
    let failed = Checked::failed;
    let osrelease = root.join("proc/sys/kernel/osrelease");
    let running = match fs::read_to_string(&osrelease) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        Ok(_) => return failed(format!("{} is empty", osrelease.display())),
        Err(e) => return failed(format!("cannot read {}: {e}", osrelease.display())),
    };
    let modules = root.join("lib/modules");
    let found = match kernel_dirs(&modules) {
        Ok(k) => k,
        Err(e) => return failed(format!("cannot list {}: {e}", modules.display())),
    };
    if found.is_empty() {
        return failed(format!(
            "no installed kernel found in {} (running {running})",
            modules.display()
        ));
    }
    let flavour = kernel_flavour(&running);
    let unfinished = match dpkg_unfinished(&root.join(DPKG_STATUS)) {
        Ok(u) => u,
        Err(e) => {
            return failed(format!(
                "cannot read {}: {e}",
                root.join(DPKG_STATUS).display()
            ));
        }
    };
    let mut ignored = Vec::new();
    let mut complete = Vec::new();
    for (release, has_modules_dep) in found {
        if kernel_flavour(&release) != flavour {
            ignored.push(format!("{release} (another flavour)"));
        } else if !has_modules_dep {
            ignored.push(format!("{release} (no modules.dep)"));
        } else if let Some((package, state)) =
            unfinished.iter().find(|(p, _)| package_of(p, &release))
        {
            ignored.push(format!("{release} (package {package} is {state})"));
        } else {
            complete.push(release);
        }
    }
    complete.sort_by(|a, b| compare_versions(a, b));
    let newer: Vec<&String> = complete
        .iter()
        .filter(|k| compare_versions(&running, k) == Ordering::Less)
        .collect();
    let mut evidence = None;
    let mut detail = match complete.last() {
        Some(newest) => format!("running {running}, newest installed {newest}"),
        None => format!("running {running}, no complete kernel of its flavour installed"),
    };
    if let Some(newest) = newer.last() {
        match package_manager_busy(root) {
            Some(lock) => {
                detail = format!(
                    "running {running}, newest installed {newest}, but {lock}: an installation may be under way"
                );
            }
            None => {
                evidence = Some(Evidence::Kernel {
                    detector: name.to_string(),
                    newest: (*newest).clone(),
                    running: running.clone(),
                });
            }
        }
    }
    if !ignored.is_empty() {
        detail.push_str(&format!("; ignored: {}", ignored.join(", ")));
    }
    match evidence {
        Some(e) => Checked(Verdict::Required, detail, Some(e)),
        None => Checked(Verdict::NotRequired, detail, None),
    }
}

/// The flavour of a kernel release: what follows the version and ABI
/// numbers. Debian, Ubuntu, SUSE, Arch: the dash-separated words after the
/// last word that starts and ends with a digit (`6.8.0-45-generic` → `generic`,
/// `6.1.0-18-cloud-amd64` → `cloud-amd64`, `6.8.0-1015-aws` → `aws`,
/// `6.6.23-1-lts` → `lts`); RHEL and Fedora: the variant after `+`
/// (`+debug`, `+rt`, `+64k`) or EL7's `.debug`. Kernels of one flavour
/// replace each other; another flavour is another line of kernels.
pub fn kernel_flavour(release: &str) -> String {
    let (base, variant) = match release.rsplit_once('+') {
        Some((base, v)) => (base, format!("+{v}")),
        None => match release.strip_suffix(".debug") {
            Some(base) => (base, ".debug".to_string()),
            None => (release, String::new()),
        },
    };
    let words: Vec<&str> = base.split('-').collect();
    // A version or ABI word starts and ends with a digit (`45`,
    // `0.deb11.17`, `427.13.1.el9_4.x86_64`); `64k` is a flavour word.
    let number = |w: &&str| {
        w.starts_with(|c: char| c.is_ascii_digit()) && w.ends_with(|c: char| c.is_ascii_digit())
    };
    let last_number = words.iter().rposition(number).unwrap_or(0);
    let mut flavour = words[last_number + 1..].join("-");
    flavour.push_str(&variant);
    flavour
}

/// Every kernel directory under `modules` (`/lib/modules`) with whether
/// its `modules.dep` exists (depmod writes it once the modules are all in
/// place; package managers leave husks without it after a removal).
fn kernel_dirs(modules: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(modules)? {
        let entry = entry?;
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => found.push((name, dir.join("modules.dep").is_file())),
            Err(name) => log::debug!("ignoring non-UTF-8 kernel directory {name:?}"),
        }
    }
    Ok(found)
}

/// True when dpkg package `package` belongs to kernel `release`
/// (`linux-image-<release>`, `linux-modules-<release>`,
/// `linux-modules-extra-<release>`, `linux-headers-<release>`, …).
fn package_of(package: &str, release: &str) -> bool {
    package.starts_with("linux-")
        && package
            .strip_suffix(release)
            .is_some_and(|p| p.ends_with('-'))
}

/// The packages dpkg's status file lists as not completely installed
/// (`half-installed`, `unpacked`, `half-configured`, `triggers-awaited`,
/// `triggers-pending`), with that state; none when there is no such file
/// (not a dpkg system).
fn dpkg_unfinished(status: &Path) -> io::Result<Vec<(String, String)>> {
    let text = match fs::read_to_string(status) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
        };
        let (Some(package), Some(status)) = (field("Package:"), field("Status:")) else {
            continue;
        };
        // "want flag state", e.g. "install ok half-configured".
        let state = status.split_whitespace().nth(2).unwrap_or("");
        if !matches!(state, "installed" | "config-files" | "not-installed" | "") {
            out.push((package.to_string(), state.to_string()));
        }
    }
    Ok(out)
}

/// The lock of a package database that a running package manager holds
/// (a sentence naming it), if any. A lock that cannot be checked counts as
/// held: no reboot for a kernel that may be half installed.
fn package_manager_busy(root: &Path) -> Option<String> {
    PACKAGE_LOCKS.iter().find_map(|rel| {
        let path = root.join(rel);
        match write_locked(&path) {
            Ok(false) => None,
            Ok(true) => Some(format!("{} is locked by a package manager", path.display())),
            Err(nix::errno::Errno::ENOENT) => None,
            Err(e) => Some(format!("cannot check the lock {}: {e}", path.display())),
        }
    })
}

/// True when some process holds an `fcntl` lock on `path` that excludes a
/// write lock (checked with an open-file-description lock query, which
/// also sees the classic locks dpkg, apt and rpm take).
fn write_locked(path: &Path) -> nix::Result<bool> {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;
    let file = fs::File::open(path).map_err(|e| {
        e.raw_os_error()
            .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw)
    })?;
    let mut query = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(&file, FcntlArg::F_OFD_GETLK(&mut query))?;
    Ok(query.l_type != libc::F_UNLCK as libc::c_short)
}

/// Compares kernel release strings like `sort -V`: runs of digits compare
/// numerically, other runs character by character with `~` before
/// everything (even the end), letters before other characters (dpkg's
/// algorithm). One rule comes from rpm instead: where one side has a digit
/// and the other a non-digit, the digit is newer, so a RHEL z-stream kernel
/// `5.14.0-427.13.1.el9_4` sorts after `5.14.0-427.el9` (dpkg's order would
/// put the letter first; Debian and Ubuntu releases never hit this case).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let digit = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    // dpkg's order(), except that a digit outweighs every other character.
    let weight = |s: &[u8], i: usize| -> i32 {
        match s.get(i) {
            None => 0,
            Some(c) if c.is_ascii_digit() => 1024,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
            Some(c) => i32::from(*c) + 256,
        }
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (wa, wb) = (weight(a, i), weight(b, j));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        // A longer run of digits (leading zeros gone) is the larger number.
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::test_support::TempDir;
    use std::path::{Path, PathBuf};

    fn spec(name: &str, kind: DetectorKind) -> DetectorSpec {
        DetectorSpec {
            name: name.to_string(),
            kind,
        }
    }

    fn command(argv: &[&str], codes: &[i32], timeout: Duration) -> DetectorKind {
        DetectorKind::Command {
            cmd: argv.iter().map(|s| s.to_string()).collect(),
            success_exit_codes: codes.to_vec(),
            timeout,
        }
    }

    fn report(name: &str, verdict: Verdict) -> DetectorReport {
        DetectorReport {
            name: name.to_string(),
            kind: "file",
            verdict,
            detail: String::new(),
            output: String::new(),
            duration: Duration::ZERO,
            evidence: None,
            distro: None,
        }
    }

    #[test]
    fn version_comparison_is_like_sort_v() {
        use Ordering::*;
        let cases = [
            ("6.1.0-18-amd64", "6.1.0-21-amd64", Less),
            ("6.1.0-9-amd64", "6.1.0-10-amd64", Less),
            ("6.1.0-9", "6.1.0-10", Less),
            (
                "5.14.0-362.8.1.el9_3.x86_64",
                "5.14.0-427.13.1.el9_4.x86_64",
                Less,
            ),
            (
                "5.14.0-427.13.1.el9_4.x86_64",
                "5.14.0-427.13.1.el9_4.x86_64",
                Equal,
            ),
            ("5.14.0-427.el9", "5.14.0-427.13.1.el9_4", Less),
            ("5.14.0-70.el9", "5.14.0-70.13.1.el9", Less),
            ("6.8.0-31-generic", "6.8.0-100-generic", Less),
            ("6.1.0-21-amd64", "6.1.0-18-amd64", Greater),
            ("1.01", "1.1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("", "1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn file_detector() {
        let dir = TempDir::new("file-detector");
        let marker = dir.path().join("reboot-required");
        let r = run_one(
            &spec(
                "debian",
                DetectorKind::File {
                    path: marker.clone(),
                },
            ),
            &[],
        );
        assert_eq!(r.verdict, Verdict::NotRequired);
        assert_eq!(r.kind, "file");
        assert_eq!(r.detail, format!("{} does not exist", marker.display()));

        fs::write(&marker, "").expect("write marker");
        let r = run_one(
            &spec(
                "debian",
                DetectorKind::File {
                    path: marker.clone(),
                },
            ),
            &[],
        );
        assert_eq!(r.verdict, Verdict::Required);
        assert_eq!(r.detail, format!("{} exists", marker.display()));

        // Any error other than "not found" (here ENOTDIR; EACCES cannot be
        // provoked as root) means the detector cannot decide.
        let below_file = marker.join("x");
        let r = run_one(&spec("odd", DetectorKind::File { path: below_file }), &[]);
        assert!(matches!(&r.verdict, Verdict::Failed(e) if e.contains("Not a directory")));
    }

    #[test]
    fn command_detector_maps_exit_codes() {
        let dir = TempDir::new("command-detector");
        let one = dir.script("one", "echo needs reboot; exit 1");
        let one = one.to_str().expect("utf-8 path");
        let ten = Duration::from_secs(10);

        let r = run_one(&spec("rhel", command(&[one], &[1], ten)), &[]);
        assert_eq!(r.verdict, Verdict::Required);
        assert_eq!(r.kind, "command");
        assert_eq!(r.detail, "exited with 1 (in success_exit_codes [1])");
        assert_eq!(r.output, "needs reboot");

        let r = run_one(&spec("rhel", command(&[one], &[0], ten)), &[]);
        assert_eq!(r.verdict, Verdict::NotRequired);
        assert_eq!(r.detail, "exited with 1 (not in success_exit_codes [0])");
    }

    #[test]
    fn command_detector_errors_are_failures_not_required() {
        let dir = TempDir::new("command-failures");
        let killed = dir.script("killed", "kill -9 $$");
        let slow = dir.script("slow", "exec /bin/sleep 30");
        let cases = [
            (killed.display().to_string(), "killed by signal 9"),
            (slow.display().to_string(), "timed out after 200ms"),
            (
                "/nonexistent/rebootctl-detector".to_string(),
                "cannot start detector d /nonexistent/rebootctl-detector",
            ),
        ];
        for (program, want) in cases {
            // Even with every plausible code counted as "required".
            let r = run_one(
                &spec(
                    "d",
                    command(
                        &[&program],
                        &[0, 1, 9, 137, 143],
                        Duration::from_millis(200),
                    ),
                ),
                &[],
            );
            assert!(
                matches!(&r.verdict, Verdict::Failed(e) if e.starts_with(want)),
                "{program}: {:?}",
                r.verdict
            );
            assert!(r.detail.starts_with(want));
        }
    }

    #[test]
    fn command_detector_gets_the_given_environment() {
        let dir = TempDir::new("command-env");
        let script = dir.script("env", "test \"$RC_NODE_NAME\" = web-1");
        let script = script.to_str().expect("utf-8 path");
        let env = [("RC_NODE_NAME".to_string(), "web-1".to_string())];
        let r = run_one(
            &spec("e", command(&[script], &[0], Duration::from_secs(5))),
            &env,
        );
        assert_eq!(r.verdict, Verdict::Required);
    }

    /// A fixture root with `osrelease` and complete `/lib/modules` entries.
    fn kernel_root(dir: &TempDir, running: Option<&str>, installed: &[&str]) -> PathBuf {
        let root = dir.path().join("root");
        let proc_kernel = root.join("proc/sys/kernel");
        fs::create_dir_all(&proc_kernel).expect("mkdir proc");
        if let Some(r) = running {
            fs::write(proc_kernel.join("osrelease"), format!("{r}\n")).expect("osrelease");
        }
        fs::create_dir_all(root.join("lib/modules")).expect("mkdir modules");
        for k in installed {
            add_kernel(&root, k, true);
        }
        root
    }

    /// A kernel's modules directory, with or without `modules.dep`.
    fn add_kernel(root: &Path, release: &str, complete: bool) {
        let dir = root.join("lib/modules").join(release);
        fs::create_dir_all(dir.join("kernel")).expect("mkdir kernel");
        if complete {
            fs::write(dir.join("modules.dep"), "").expect("modules.dep");
        }
    }

    fn kernel(root: PathBuf) -> DetectorSpec {
        spec("kernel", DetectorKind::Kernel { root })
    }

    #[test]
    fn kernel_detector_debian_newer_installed() {
        let dir = TempDir::new("kernel-debian");
        let root = kernel_root(
            &dir,
            Some("6.1.0-18-amd64"),
            &["6.1.0-18-amd64", "6.1.0-21-amd64", "6.1.0-9-amd64"],
        );
        let r = run_one(&kernel(root.clone()), &[]);
        assert_eq!(r.verdict, Verdict::Required);
        assert_eq!(r.kind, "kernel");
        assert_eq!(
            r.detail,
            "running 6.1.0-18-amd64, newest installed 6.1.0-21-amd64"
        );

        // A leftover directory without modules is not an installed kernel.
        let husk_dir = TempDir::new("kernel-husk");
        let root = kernel_root(&husk_dir, Some("6.1.0-18-amd64"), &["6.1.0-18-amd64"]);
        fs::create_dir_all(root.join("lib/modules/6.1.0-30-amd64")).expect("husk");
        let r = run_one(&kernel(root), &[]);
        assert_eq!(r.verdict, Verdict::NotRequired);
    }

    #[test]
    fn kernel_detector_rhel_running_newest() {
        let dir = TempDir::new("kernel-rhel");
        let root = kernel_root(
            &dir,
            Some("5.14.0-427.13.1.el9_4.x86_64"),
            &[
                "5.14.0-362.8.1.el9_3.x86_64",
                "5.14.0-427.13.1.el9_4.x86_64",
            ],
        );
        let r = run_one(&kernel(root), &[]);
        assert_eq!(r.verdict, Verdict::NotRequired);
        assert_eq!(
            r.detail,
            "running 5.14.0-427.13.1.el9_4.x86_64, newest installed 5.14.0-427.13.1.el9_4.x86_64"
        );
    }

    #[test]
    fn kernel_flavours() {
        let cases = [
            ("6.8.0-45-generic", "generic"),
            ("6.8.0-45-lowlatency", "lowlatency"),
            ("6.8.0-1015-aws", "aws"),
            ("6.8.0-45-generic-64k", "generic-64k"),
            ("6.1.0-18-amd64", "amd64"),
            ("6.1.0-18-cloud-amd64", "cloud-amd64"),
            ("6.1.0-0.deb11.17-amd64", "amd64"),
            ("5.14.21-150500.55.52-default", "default"),
            ("6.6.23-1-lts", "lts"),
            ("6.1.0-18-686-pae", "pae"),
            ("6.8.2-arch2-1", ""),
            ("5.14.0-427.13.1.el9_4.x86_64", ""),
            ("5.14.0-427.el9.x86_64", ""),
            ("5.14.0-427.13.1.el9_4.x86_64+debug", "+debug"),
            ("5.14.0-427.13.1.el9_4.x86_64+rt", "+rt"),
            ("3.10.0-1160.el7.x86_64.debug", ".debug"),
            ("6.9.0", ""),
        ];
        for (release, want) in cases {
            assert_eq!(kernel_flavour(release), want, "{release}");
        }
    }

    #[test]
    fn kernel_detector_compares_only_the_running_flavour() {
        // Each of these sorts after the running kernel, none is its successor.
        let cases = [
            ("6.8.0-45-generic", "6.8.0-45-lowlatency"),
            ("6.8.0-45-generic", "6.8.0-1015-aws"),
            ("6.1.0-18-amd64", "6.1.0-18-rt-amd64"),
            (
                "5.14.0-427.13.1.el9_4.x86_64",
                "5.14.0-427.13.1.el9_4.x86_64+debug",
            ),
            ("3.10.0-1160.el7.x86_64", "3.10.0-1160.el7.x86_64.debug"),
        ];
        for (running, other) in cases {
            assert_eq!(compare_versions(running, other), Ordering::Less);
            let dir = TempDir::new("kernel-flavour");
            let root = kernel_root(&dir, Some(running), &[running, other]);
            let r = run_one(&kernel(root.clone()), &[]);
            assert_eq!(r.verdict, Verdict::NotRequired, "{running} vs {other}");
            assert_eq!(
                r.detail,
                format!(
                    "running {running}, newest installed {running}; ignored: {other} (another flavour)"
                )
            );
            // A newer kernel of the running flavour still counts.
            let newer = running
                .replacen("-45-", "-50-", 1)
                .replacen("-18-", "-21-", 1);
            let newer =
                newer
                    .replacen("427.13.1", "427.20.1", 1)
                    .replacen("1160.el7", "1160.2.el7", 1);
            add_kernel(&root, &newer, true);
            let r = run_one(&kernel(root), &[]);
            assert_eq!(
                r.verdict,
                Verdict::Required,
                "{running} then {newer}: {}",
                r.detail
            );
        }
    }

    #[test]
    fn kernel_detector_ignores_a_kernel_without_modules_dep() {
        let dir = TempDir::new("kernel-incomplete");
        let root = kernel_root(&dir, Some("6.8.0-45-generic"), &["6.8.0-45-generic"]);
        // Unpacked, depmod not run yet.
        add_kernel(&root, "6.8.0-50-generic", false);
        let r = run_one(&kernel(root.clone()), &[]);
        assert_eq!(r.verdict, Verdict::NotRequired);
        assert_eq!(
            r.detail,
            "running 6.8.0-45-generic, newest installed 6.8.0-45-generic; ignored: 6.8.0-50-generic (no modules.dep)"
        );
        add_kernel(&root, "6.8.0-50-generic", true);
        assert_eq!(run_one(&kernel(root), &[]).verdict, Verdict::Required);
    }

    /// dpkg's status file with `linux-image-<release>` in `state`.
    fn dpkg_status(root: &Path, release: &str, state: &str) {
        let dir = root.join("var/lib/dpkg");
        fs::create_dir_all(&dir).expect("mkdir dpkg");
        fs::write(
            dir.join("status"),
            format!(
                "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\n\
                 Package: linux-image-{release}\nStatus: install ok {state}\nVersion: 1\n\n\
                 Package: linux-image-generic\nStatus: install ok half-configured\n"
            ),
        )
        .expect("dpkg status");
    }

    #[test]
    fn kernel_detector_ignores_a_kernel_whose_package_is_half_installed() {
        for state in [
            "half-installed",
            "unpacked",
            "half-configured",
            "triggers-pending",
        ] {
            let dir = TempDir::new("kernel-dpkg");
            let root = kernel_root(
                &dir,
                Some("6.8.0-45-generic"),
                &["6.8.0-45-generic", "6.8.0-50-generic"],
            );
            dpkg_status(&root, "6.8.0-50-generic", state);
            let r = run_one(&kernel(root.clone()), &[]);
            assert_eq!(r.verdict, Verdict::NotRequired, "{state}");
            assert!(
                r.detail.ends_with(&format!(
                    "ignored: 6.8.0-50-generic (package linux-image-6.8.0-50-generic is {state})"
                )),
                "{}",
                r.detail
            );
            // A meta package (no release in its name) does not matter.
            dpkg_status(&root, "6.8.0-50-generic", "installed");
            assert_eq!(run_one(&kernel(root), &[]).verdict, Verdict::Required);
        }
        assert!(package_of(
            "linux-modules-extra-6.8.0-50-generic",
            "6.8.0-50-generic"
        ));
        assert!(!package_of("linux-image-6.8.0-50-generic", "0-50-generic"));
        assert!(!package_of(
            "xlinux-image-6.8.0-50-generic",
            "6.8.0-50-generic"
        ));
    }

    /// Holds an `fcntl` write lock on `path` (an open-file-description lock,
    /// which conflicts even with this process's own queries) until dropped.
    fn hold_lock(path: &Path) -> fs::File {
        use nix::fcntl::{FcntlArg, fcntl};
        use nix::libc;
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("lock file");
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)).expect("take the lock");
        file
    }

    #[test]
    fn kernel_detector_waits_while_a_package_manager_holds_its_lock() {
        for lock in PACKAGE_LOCKS {
            let dir = TempDir::new("kernel-lock");
            let root = kernel_root(
                &dir,
                Some("5.14.0-427.el9.x86_64"),
                &["5.14.0-427.el9.x86_64", "5.14.0-427.13.1.el9_4.x86_64"],
            );
            // The file exists when no one holds it: not busy.
            drop(hold_lock(&root.join(lock)));
            assert_eq!(
                run_one(&kernel(root.clone()), &[]).verdict,
                Verdict::Required
            );
            let held = hold_lock(&root.join(lock));
            let r = run_one(&kernel(root.clone()), &[]);
            assert_eq!(r.verdict, Verdict::NotRequired, "{lock}");
            assert!(
                r.detail.contains(&format!(
                    "{} is locked by a package manager",
                    root.join(lock).display()
                )),
                "{}",
                r.detail
            );
            drop(held);
            assert_eq!(run_one(&kernel(root), &[]).verdict, Verdict::Required);
        }
    }

    #[test]
    fn kernel_detector_fails_without_data() {
        let dir = TempDir::new("kernel-empty");
        let r = run_one(&kernel(kernel_root(&dir, None, &["6.1.0-21-amd64"])), &[]);
        assert!(matches!(&r.verdict, Verdict::Failed(e) if e.contains("osrelease")));

        let dir = TempDir::new("kernel-none");
        let r = run_one(&kernel(kernel_root(&dir, Some("6.1.0-21-amd64"), &[])), &[]);
        assert!(
            matches!(&r.verdict, Verdict::Failed(e) if e.starts_with("no installed kernel found"))
        );

        let r = run_one(&kernel(PathBuf::from("/nonexistent/rebootctl-root")), &[]);
        assert!(matches!(r.verdict, Verdict::Failed(_)));
    }

    #[test]
    fn required_detectors_say_what_they_saw() {
        let dir = TempDir::new("evidence");
        let marker = dir.path().join("reboot-required");
        let file = spec(
            "debian",
            DetectorKind::File {
                path: marker.clone(),
            },
        );
        assert_eq!(run_one(&file, &[]).evidence, None);
        fs::write(&marker, "linux-image\n").expect("marker");
        let first = run_one(&file, &[]).evidence.expect("evidence");
        assert_eq!(run_one(&file, &[]).evidence.as_ref(), Some(&first));
        let Evidence::File {
            mtime_ns,
            digest: d,
            ..
        } = &first
        else {
            panic!("{first:?}")
        };
        assert!(mtime_ns.is_some());
        assert_eq!(d.as_deref(), Some(digest(b"linux-image\n").as_str()));
        // New content (and a new mtime) is new evidence.
        fs::write(&marker, "linux-image libc6\n").expect("marker");
        assert_ne!(run_one(&file, &[]).evidence.as_ref(), Some(&first));
        assert!(
            first
                .to_string()
                .starts_with(&format!("debian: {}", marker.display()))
        );

        let out = dir.script("needs", "echo kernel updated; exit 1");
        let out = out.to_str().expect("utf-8 path");
        let r = run_one(
            &spec("rhel", command(&[out], &[1], Duration::from_secs(5))),
            &[],
        );
        assert_eq!(
            r.evidence,
            Some(Evidence::Command {
                detector: "rhel".into(),
                exit_code: 1,
            })
        );

        let kdir = TempDir::new("evidence-kernel");
        let root = kernel_root(&kdir, Some("6.1.0-18-amd64"), &["6.1.0-21-amd64"]);
        let k = run_one(&kernel(root), &[])
            .evidence
            .expect("kernel evidence");
        assert_eq!(
            k.to_string(),
            "kernel: running 6.1.0-18-amd64, newest installed 6.1.0-21-amd64"
        );
    }

    #[test]
    fn digest_is_fnv1a_64() {
        assert_eq!(digest(b""), "cbf29ce484222325");
        assert_eq!(digest(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn decide_prefers_required_then_unknown() {
        use Verdict::*;
        let fail = || Failed("boom".to_string());
        assert_eq!(decide(&[]), Need::NotRequired);
        assert_eq!(
            decide(&[report("a", NotRequired), report("b", NotRequired)]),
            Need::NotRequired
        );
        assert_eq!(
            decide(&[
                report("a", fail()),
                report("b", Required),
                report("c", Required)
            ]),
            Need::Required {
                by: vec!["b".to_string(), "c".to_string()]
            }
        );
        assert_eq!(
            decide(&[report("a", NotRequired), report("b", fail())]),
            Need::Unknown {
                failed: vec!["b".to_string()]
            }
        );
    }

    #[test]
    fn run_all_keeps_the_configured_order() {
        let dir = TempDir::new("run-all");
        let specs = [
            spec(
                "missing",
                DetectorKind::File {
                    path: dir.path().join("nope"),
                },
            ),
            spec(
                "here",
                DetectorKind::File {
                    path: dir.path().to_path_buf(),
                },
            ),
        ];
        let reports = run_all(&specs, &[]);
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["missing", "here"]);
        assert_eq!(
            decide(&reports),
            Need::Required {
                by: vec!["here".to_string()]
            }
        );
    }

    #[test]
    fn json_shape_is_stable() {
        let mut r = report("rhel", Verdict::Failed("timed out after 10s".to_string()));
        r.kind = "command";
        r.detail = "timed out after 10s".to_string();
        r.duration = Duration::from_millis(10_004);
        assert_eq!(
            r.to_json(),
            serde_json::json!({
                "name": "rhel",
                "type": "command",
                "verdict": "failed",
                "detail": "timed out after 10s",
                "error": "timed out after 10s",
                "output": "",
                "duration_ms": 10004,
                "distro": null,
            })
        );
        let ok = report("debian", Verdict::NotRequired).to_json();
        assert_eq!(ok["verdict"], "not_required");
        assert!(ok["error"].is_null());
    }
}

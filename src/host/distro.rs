//! The `distro` detector: reads `/etc/os-release` and runs the checks of
//! the distribution's family, plus the kernel check.
//!
//! - Debian, Ubuntu (`ID` or `ID_LIKE` `debian`, `ubuntu`): the marker file
//!   `/run/reboot-required` (or `/var/run/reboot-required`), written by
//!   `update-notifier-common` and the packages' maintainer scripts;
//! - RHEL, Fedora, CentOS, Rocky, Alma (`rhel`, `fedora`, `centos`,
//!   `rocky`, `almalinux`): `needs-restarting -r` when that program exists,
//!   else `dnf needs-restarting -r` (exit 1: required, 0: not, anything
//!   else: the detector cannot decide);
//! - SUSE (`suse`, `opensuse`, `sles`, `opensuse-*`): the marker
//!   `/run/reboot-needed` of zypp-boot-plugin and `zypper needs-rebooting`
//!   (exit 102, `ZYPPER_EXIT_INF_REBOOT_NEEDED`: required; 0: not; any other
//!   code: cannot decide).
//!
//! `ID` is matched first, then each word of `ID_LIKE` in order; the first
//! known name picks the family. An unknown family, an unreadable
//! os-release, a missing program or an unknown exit code is a failure,
//! never "required". Within the preset, any check that says "required"
//! decides (it is evidence of its own), else any failure makes the
//! detector fail. Everything is read, and every program found, below a
//! root (`/` on a host, a fixture tree in tests); programs run without a
//! shell through [`process::run`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::host::process::{self, Termination};

/// Where os-release is looked for below the root, in this order
/// (os-release(5): `/etc/os-release`, falling back to `/usr/lib/os-release`).
pub const OS_RELEASE_PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
/// Directories below the root where `needs-restarting`, `dnf` and `zypper` are looked for.
pub const PROGRAM_DIRS: [&str; 4] = ["usr/bin", "usr/sbin", "bin", "sbin"];
/// `zypper needs-rebooting`'s exit code when a reboot is needed.
pub const ZYPPER_EXIT_INF_REBOOT_NEEDED: i32 = 102;
/// Characters of each command's output kept in the report.
const OUTPUT_EXCERPT_CHARS: usize = 1000;

/// What one check (or the whole preset) concluded; the failure's text is
/// in the detail. Its own type, so that the detector module that runs the
/// preset is the only one that knows both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// A reboot is required.
    Required,
    /// No reboot is required.
    NotRequired,
    /// The check could not decide.
    Failed,
}

/// A family of distributions with one way to tell that a reboot is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Debian, Ubuntu and their derivatives.
    Debian,
    /// RHEL, Fedora, CentOS, Rocky, Alma.
    Rhel,
    /// SUSE Linux Enterprise, openSUSE.
    Suse,
}

impl Family {
    /// The stable label: "debian", "rhel", "suse".
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Debian => "debian",
            Family::Rhel => "rhel",
            Family::Suse => "suse",
        }
    }

    /// The family an os-release `ID` (or one word of `ID_LIKE`) names.
    pub fn of(name: &str) -> Option<Family> {
        match name {
            "debian" | "ubuntu" => Some(Family::Debian),
            "rhel" | "fedora" | "centos" | "rocky" | "almalinux" => Some(Family::Rhel),
            "suse" | "opensuse" | "sles" | "sled" => Some(Family::Suse),
            n if n.starts_with("opensuse-") => Some(Family::Suse),
            _ => None,
        }
    }
}

/// One check the preset ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: "file /run/reboot-required", "needs-restarting -r", "kernel".
    pub check: String,
    /// What it concluded.
    pub verdict: Answer,
    /// One human line.
    pub detail: String,
}

/// What the preset read, what it chose and why, and what each check said
/// (`simulate` and `status` show it; `detectors[].distro` in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// The os-release file that was read.
    pub os_release: PathBuf,
    /// `PRETTY_NAME` (else `NAME`, else `ID`).
    pub os: String,
    /// `ID` as written (empty when unset).
    pub id: String,
    /// `ID_LIKE` as written (empty when unset).
    pub id_like: String,
    /// The family chosen (None: none is known).
    pub family: Option<Family>,
    /// The field that chose it: `ID=ubuntu` or `ID_LIKE=rhel` (the word that matched).
    pub matched: Option<String>,
    /// The checks run, in order.
    pub checks: Vec<Check>,
}

/// The preset's conclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The detector's verdict.
    pub verdict: Answer,
    /// Why it failed (empty unless the verdict is [`Answer::Failed`]).
    pub error: String,
    /// One human line.
    pub detail: String,
    /// Bounded output of the commands and package lists, one block each.
    pub output: String,
    /// What was chosen (None when os-release could not be read).
    pub choice: Option<Choice>,
}

/// Parses os-release text (os-release(5)): `KEY=value` lines, values
/// optionally in single or double quotes, backslash escapes in double
/// quotes, `#` comments; lines that are none of these are ignored.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(key.to_string(), unquote(raw));
    }
    out
}

fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return inner.to_string();
    }
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('"' | '\\' | '$' | '`')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// The family of `id` and `id_like` (ID first, then each word of ID_LIKE),
/// with the field that matched.
pub fn classify(id: &str, id_like: &str) -> Option<(Family, String)> {
    if let Some(f) = Family::of(id) {
        return Some((f, format!("ID={id}")));
    }
    id_like
        .split_whitespace()
        .find_map(|w| Family::of(w).map(|f| (f, format!("ID_LIKE={w}"))))
}

/// Runs the preset below `root`: `name` is the detector's name (for the
/// children's role), `timeout` bounds each command, `env` is their
/// environment besides `PATH`, `kernel` is the kernel check.
pub fn check(
    name: &str,
    root: &Path,
    timeout: Duration,
    env: &[(String, String)],
    kernel: impl Fn(&Path) -> (Answer, String),
) -> Checked {
    let failed = |msg: String| Checked {
        verdict: Answer::Failed,
        error: msg.clone(),
        detail: msg,
        output: String::new(),
        choice: None,
    };
    let (path, fields) = match read_os_release(root) {
        Ok(found) => found,
        Err(msg) => return failed(msg),
    };
    let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let (id, id_like) = (field("ID"), field("ID_LIKE"));
    let os = [field("PRETTY_NAME"), field("NAME"), id.clone()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unnamed distribution".to_string());
    let mut choice = Choice {
        os_release: path.clone(),
        os,
        id: id.clone(),
        id_like: id_like.clone(),
        family: None,
        matched: None,
        checks: Vec::new(),
    };
    let Some((family, matched)) = classify(&id, &id_like) else {
        let shown = |v: &str| {
            if v.is_empty() {
                "unset".to_string()
            } else {
                format!("{v:?}")
            }
        };
        let msg = format!(
            "unknown distribution in {}: ID {}, ID_LIKE {} name no Debian/Ubuntu, RHEL/Fedora or SUSE family (use file, command and kernel detectors)",
            path.display(),
            shown(&id),
            shown(&id_like)
        );
        return Checked {
            choice: Some(choice),
            ..failed(msg)
        };
    };
    choice.family = Some(family);
    choice.matched = Some(matched.clone());
    let mut runner = Runner {
        name,
        root,
        timeout,
        env,
        output: Vec::new(),
    };
    let mut checks = match family {
        Family::Debian => vec![runner.marker("run/reboot-required", "var/run/reboot-required")],
        Family::Rhel => vec![runner.needs_restarting()],
        Family::Suse => vec![
            runner.marker("run/reboot-needed", "var/run/reboot-needed"),
            runner.zypper(),
        ],
    };
    let (verdict, detail) = kernel(root);
    checks.push(Check {
        check: "kernel".to_string(),
        verdict,
        detail,
    });
    let verdict = combine(&checks);
    let summary = match &verdict {
        Answer::Required => format!("required by {}", names(&checks, |v| *v == Answer::Required)),
        Answer::NotRequired => "no check requires a reboot".to_string(),
        Answer::Failed => format!(
            "cannot decide: {}",
            names(&checks, |v| *v == Answer::Failed)
        ),
    };
    let detail = format!(
        "{}: {} preset ({matched}); {summary}",
        choice.os,
        family.as_str()
    );
    let error = checks
        .iter()
        .filter(|c| verdict == Answer::Failed && c.verdict == Answer::Failed)
        .map(|c| format!("{}: {}", c.check, c.detail))
        .collect::<Vec<_>>()
        .join("; ");
    choice.checks = checks;
    Checked {
        verdict,
        error,
        detail,
        output: runner.output.join("\n"),
        choice: Some(choice),
    }
}

/// Any "required" decides; else any failure; else not required.
fn combine(checks: &[Check]) -> Answer {
    if checks.iter().any(|c| c.verdict == Answer::Required) {
        Answer::Required
    } else if checks.iter().any(|c| c.verdict == Answer::Failed) {
        Answer::Failed
    } else {
        Answer::NotRequired
    }
}

fn names(checks: &[Check], want: impl Fn(&Answer) -> bool) -> String {
    checks
        .iter()
        .filter(|c| want(&c.verdict))
        .map(|c| c.check.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_os_release(root: &Path) -> Result<(PathBuf, BTreeMap<String, String>), String> {
    let mut tried = Vec::new();
    for rel in OS_RELEASE_PATHS {
        let path = root.join(rel);
        match fs::read_to_string(&path) {
            Ok(text) => return Ok((path, parse_os_release(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => tried.push(path),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    Err(format!(
        "no os-release file: neither {} exists",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" nor ")
    ))
}

/// Runs the checks of one preset and gathers their output.
struct Runner<'a> {
    name: &'a str,
    root: &'a Path,
    timeout: Duration,
    env: &'a [(String, String)],
    output: Vec<String>,
}

impl Runner<'_> {
    /// A marker file at `rel` or `alt_rel` below the root; a package list
    /// beside it (`<marker>.pkgs`, Debian) goes into the output.
    fn marker(&mut self, rel: &str, alt_rel: &str) -> Check {
        let main = self.root.join(rel);
        let check = format!("file /{rel}");
        for path in [main.clone(), self.root.join(alt_rel)] {
            match fs::metadata(&path) {
                Ok(_) => {
                    let pkgs = path.with_extension("pkgs");
                    if let Ok(list) = fs::read_to_string(&pkgs) {
                        let list: Vec<&str> = list.split_whitespace().collect();
                        if !list.is_empty() {
                            self.output.push(excerpt(&format!(
                                "{}: {}",
                                pkgs.display(),
                                list.join(" ")
                            )));
                        }
                    }
                    return Check {
                        check,
                        verdict: Answer::Required,
                        detail: format!("{} exists", path.display()),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let msg = format!("cannot check {}: {e}", path.display());
                    return Check {
                        check,
                        verdict: Answer::Failed,
                        detail: msg,
                    };
                }
            }
        }
        Check {
            check,
            verdict: Answer::NotRequired,
            detail: format!("{} does not exist", main.display()),
        }
    }

    /// `needs-restarting -r`, else `dnf needs-restarting -r`.
    fn needs_restarting(&mut self) -> Check {
        let (check, argv) = if let Some(p) = self.program("needs-restarting") {
            ("needs-restarting -r", vec![p, "-r".to_string()])
        } else if let Some(dnf) = self.program("dnf") {
            (
                "dnf needs-restarting -r",
                vec![dnf, "needs-restarting".to_string(), "-r".to_string()],
            )
        } else {
            let msg = format!(
                "neither needs-restarting nor dnf found in {} (install dnf-utils or yum-utils)",
                self.dirs()
            );
            return failed_check("needs-restarting -r", msg);
        };
        self.exit_code_check(check, &argv, |code, output| match code {
            // dnf without the plugin: "No such command", also exit 1.
            1 if output.contains("No such command") => {
                Err("dnf has no needs-restarting command (install dnf-plugins-core)".to_string())
            }
            1 => Ok(Answer::Required),
            0 => Ok(Answer::NotRequired),
            other => Err(format!(
                "exit code {other} means neither 1 (required) nor 0 (not required)"
            )),
        })
    }

    /// `zypper needs-rebooting`.
    fn zypper(&mut self) -> Check {
        let check = "zypper needs-rebooting";
        let Some(zypper) = self.program("zypper") else {
            return failed_check(check, format!("zypper not found in {}", self.dirs()));
        };
        let argv = [zypper, "needs-rebooting".to_string()];
        self.exit_code_check(check, &argv, |code, _| match code {
            ZYPPER_EXIT_INF_REBOOT_NEEDED => Ok(Answer::Required),
            0 => Ok(Answer::NotRequired),
            other => Err(format!(
                "exit code {other}{} means neither {ZYPPER_EXIT_INF_REBOOT_NEEDED} (required) nor 0 (not required)",
                zypper_exit_name(other)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            )),
        })
    }

    /// Runs `argv` and maps its exit code with `map` (Err: cannot decide).
    fn exit_code_check(
        &mut self,
        check: &str,
        argv: &[String],
        map: impl Fn(i32, &str) -> Result<Answer, String>,
    ) -> Check {
        let role = format!("detector {}", self.name);
        let finished = match process::run(&process::Command {
            role: &role,
            argv,
            env: self.env,
            timeout: self.timeout,
            cancellable: true,
        }) {
            Ok(f) => f,
            Err(e) => return failed_check(check, e.to_string()),
        };
        let output = finished.output_excerpt(OUTPUT_EXCERPT_CHARS);
        if !output.is_empty() {
            self.output.push(format!("{check}: {output}"));
        }
        let described = finished.describe();
        match finished.termination {
            Termination::Exited(code) => match map(code, &output) {
                Ok(verdict) => Check {
                    check: check.to_string(),
                    verdict,
                    detail: format!("{} {described}", argv[0]),
                },
                Err(why) => failed_check(check, format!("{} {described}: {why}", argv[0])),
            },
            Termination::Signalled(_) | Termination::TimedOut | Termination::Cancelled => {
                failed_check(check, format!("{} {described}", argv[0]))
            }
        }
    }

    /// The first executable `name` in [`PROGRAM_DIRS`] below the root.
    fn program(&self, name: &str) -> Option<String> {
        PROGRAM_DIRS
            .iter()
            .map(|d| self.root.join(d).join(name))
            .find(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map(|p| p.display().to_string())
    }

    fn dirs(&self) -> String {
        PROGRAM_DIRS
            .iter()
            .map(|d| self.root.join(d).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn failed_check(check: &str, msg: String) -> Check {
    Check {
        check: check.to_string(),
        verdict: Answer::Failed,
        detail: msg,
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(OUTPUT_EXCERPT_CHARS).collect()
}

/// zypper(8)'s name of an exit code, where it has one.
fn zypper_exit_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "ZYPPER_EXIT_ERR_BUG",
        2 => "ZYPPER_EXIT_ERR_SYNTAX",
        3 => "ZYPPER_EXIT_ERR_INVALID_ARGS",
        4 => "ZYPPER_EXIT_ERR_ZYPP",
        5 => "ZYPPER_EXIT_ERR_PRIVILEGES",
        6 => "ZYPPER_EXIT_NO_REPOS",
        7 => "ZYPPER_EXIT_ZYPP_LOCKED",
        8 => "ZYPPER_EXIT_ERR_COMMIT",
        100 => "ZYPPER_EXIT_INF_UPDATE_NEEDED",
        101 => "ZYPPER_EXIT_INF_SEC_UPDATE_NEEDED",
        103 => "ZYPPER_EXIT_INF_RESTART_NEEDED",
        104 => "ZYPPER_EXIT_INF_CAP_NOT_FOUND",
        105 => "ZYPPER_EXIT_ON_SIGNAL",
        106 => "ZYPPER_EXIT_INF_REPOS_SKIPPED",
        107 => "ZYPPER_EXIT_INF_RPM_SCRIPT_FAILED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_is_parsed_like_a_shell_assignment_list() {
        let text = "# comment\nNAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n\
            VERSION_ID='9.4'\nPRETTY_NAME=\"Say \\\"hi\\\" \\$x\"\nBAD LINE\n=nokey\nBUG_REPORT_URL=https://x/y\n";
        let f = parse_os_release(text);
        assert_eq!(f["NAME"], "Rocky Linux");
        assert_eq!(f["ID"], "rocky");
        assert_eq!(f["ID_LIKE"], "rhel centos fedora");
        assert_eq!(f["VERSION_ID"], "9.4");
        assert_eq!(f["PRETTY_NAME"], "Say \"hi\" $x");
        assert_eq!(f["BUG_REPORT_URL"], "https://x/y");
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn families_from_id_then_id_like() {
        let cases = [
            ("debian", "", Some((Family::Debian, "ID=debian"))),
            ("ubuntu", "debian", Some((Family::Debian, "ID=ubuntu"))),
            (
                "linuxmint",
                "ubuntu debian",
                Some((Family::Debian, "ID_LIKE=ubuntu")),
            ),
            ("rhel", "fedora", Some((Family::Rhel, "ID=rhel"))),
            ("fedora", "", Some((Family::Rhel, "ID=fedora"))),
            (
                "almalinux",
                "rhel centos fedora",
                Some((Family::Rhel, "ID=almalinux")),
            ),
            ("ol", "fedora", Some((Family::Rhel, "ID_LIKE=fedora"))),
            (
                "amzn",
                "centos rhel fedora",
                Some((Family::Rhel, "ID_LIKE=centos")),
            ),
            (
                "opensuse-leap",
                "suse opensuse",
                Some((Family::Suse, "ID=opensuse-leap")),
            ),
            ("sles", "suse", Some((Family::Suse, "ID=sles"))),
            ("sle-micro", "suse", Some((Family::Suse, "ID_LIKE=suse"))),
            ("arch", "", None),
            ("alpine", "", None),
            ("", "", None),
        ];
        for (id, like, want) in cases {
            let got = classify(id, like);
            let got = got.as_ref().map(|(f, m)| (*f, m.as_str()));
            assert_eq!(got, want, "{id} / {like}");
        }
    }

    #[test]
    fn zypper_codes_are_named() {
        assert_eq!(zypper_exit_name(7), Some("ZYPPER_EXIT_ZYPP_LOCKED"));
        assert_eq!(zypper_exit_name(42), None);
    }
}

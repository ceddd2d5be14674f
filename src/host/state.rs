//! What survives the reboot: the record this node writes into `state_dir`
//! just before it runs the reboot command, the intent written before the
//! `pre_reboot` hook, the local cooldown stamp, since when logged-in users
//! postpone the reboot, and the current boot id and
//! boot-time clock. The record is what lets the next boot know that the
//! reboot was ours (SPEC §5 step 1); the intent is what lets the next start
//! undo a `pre_reboot` hook that no reboot followed.
//!
//! Every write is atomic and durable (temp file, fsync, rename, fsync of
//! the directory), and so is every removal (unlink, fsync of the
//! directory): after a crash a file is either there whole or gone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::detector::Evidence;

/// File name of the reboot record inside `state_dir`.
pub const RECORD_FILE: &str = "reboot-record.json";
/// File name of the pre-reboot intent inside `state_dir`.
pub const INTENT_FILE: &str = "pre-reboot-intent.json";
/// File name of the last completed reboot inside `state_dir` (local cooldown).
pub const LAST_REBOOT_FILE: &str = "last-reboot.json";
/// File name of the logged-in users gate's postponement inside `state_dir`.
pub const USERS_POSTPONED_FILE: &str = "users-postponed.json";
/// File name of the single-instance lock inside `state_dir`.
pub const INSTANCE_LOCK_FILE: &str = "agent.lock";

/// Held while a `rebootctl run` works on this `state_dir`; released on drop.
pub struct InstanceLock {
    _flock: nix::fcntl::Flock<fs::File>,
}

/// Makes sure only one `rebootctl run` works on `state_dir` at a time: two
/// agents of one node would fight over its slot and its reboot record.
pub fn lock_instance(state_dir: &Path) -> Result<InstanceLock> {
    fs::create_dir_all(state_dir)
        .map_err(|e| Error::io("creating the state directory", state_dir, e))?;
    let path = state_dir.join(INSTANCE_LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening the instance lock", &path, e))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(flock) => Ok(InstanceLock { _flock: flock }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(Error::Runtime(format!(
            "another 'rebootctl run' is already working on {} (it holds {}); stop it first",
            state_dir.display(),
            path.display()
        ))),
        Err((_, e)) => Err(Error::io("locking", &path, std::io::Error::from(e))),
    }
}

/// Written before the reboot command runs; read after the next boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootRecord {
    /// This node's name when it went down.
    pub node: String,
    /// The boot id of the boot that issued the reboot.
    pub boot_id: String,
    /// The lock slot key held through the reboot (cluster mode).
    #[serde(default)]
    pub slot: Option<String>,
    /// When the reboot was issued (RFC 3339).
    pub at: String,
    /// The detectors that asked for the reboot.
    #[serde(default)]
    pub reason: Vec<String>,
    /// Alertmanager silences created for the reboot, expired once back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silences: Vec<String>,
    /// The create revision of the slot held through the reboot: with the
    /// key and the boot id, it proves that a slot in phase rebooting is
    /// this host's own (another host may use the same node name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_create_revision: Option<i64>,
    /// The boot clock when the reboot was issued (milliseconds since boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// What the detectors saw: a need with the same evidence after the
    /// reboot does not cause another one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// `CLOCK_BOOTTIME` in milliseconds when the record was written: the
    /// clock that gives up a reboot that never happened (same boot, so the
    /// values compare; it never steps). Absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boottime_ms: Option<u64>,
    /// How far the completion after the reboot got (absent until the
    /// `post_reboot` hook succeeded), so that a retry repeats nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<Completion>,
}

/// The steps of a completion already done, kept in the reboot record.
/// Its presence means: the post-reboot health check and the `post_reboot`
/// hook passed; what follows (cooldown, release, history, last reboot,
/// clearing) is idempotent or keyed by what is recorded here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// When the `post_reboot` hook succeeded (RFC 3339): the time of the
    /// history entry, of the cooldown record and of `last-reboot.json`, the
    /// same on every retry.
    pub at: String,
    /// The lease of the cluster cooldown, granted once: a retry puts the
    /// cooldown on this lease while it lives, never on a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_lease: Option<i64>,
}

/// Written before the `pre_reboot` hook runs and removed just before the
/// reboot command runs: while it exists, the reboot command has not been
/// run. Found at the start of a pass without a reboot since, it means the
/// hook's work must be undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// This node's name.
    pub node: String,
    /// The boot id when the hook was started.
    pub boot_id: String,
    /// The agent's pid.
    pub pid: u32,
    /// When the hook was started (RFC 3339).
    pub at: String,
    /// The detectors that asked for the reboot.
    #[serde(default)]
    pub reason: Vec<String>,
}

/// The last completed reboot of this node, for the local-mode cooldown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReboot {
    /// When the node came back healthy (RFC 3339).
    pub completed_at: String,
}

/// Since when logged-in users postpone the reboot (the start of
/// `users_max_postpone_sec`), in this boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsersPostponed {
    /// When the gate first found someone logged in (RFC 3339).
    pub since: String,
    /// The boot it was in: a postponement of another boot does not count.
    pub boot_id: String,
}

/// Reads the current boot id (trimmed) from `path`.
pub fn read_boot_id(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("reading the boot id", path, e))?;
    let id = text.trim().to_string();
    if id.is_empty() {
        return Err(Error::Runtime(format!(
            "boot id file {} is empty",
            path.display()
        )));
    }
    Ok(id)
}

/// Reads this machine's id (trimmed); empty when the file is missing or
/// unreadable (some containers have none): the checks that use it are then
/// skipped.
pub fn read_machine_id(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().to_string(),
        Err(e) => {
            log::debug!("no machine id from {}: {e}", path.display());
            String::new()
        }
    }
}

/// Reads the reboot record, if one exists.
pub fn read_record(state_dir: &Path) -> Result<Option<RebootRecord>> {
    read_json(&state_dir.join(RECORD_FILE), "reading the reboot record")
}

/// Writes the reboot record atomically and durably (temp file, fsync, rename).
pub fn write_record(state_dir: &Path, record: &RebootRecord) -> Result<()> {
    write_json(
        &state_dir.join(RECORD_FILE),
        record,
        "writing the reboot record",
    )
}

/// Removes the reboot record durably; a missing record is fine.
pub fn clear_record(state_dir: &Path) -> Result<()> {
    remove(&state_dir.join(RECORD_FILE), "removing the reboot record")
}

/// Reads the pre-reboot intent, if one exists.
pub fn read_intent(state_dir: &Path) -> Result<Option<Intent>> {
    read_json(
        &state_dir.join(INTENT_FILE),
        "reading the pre-reboot intent",
    )
}

/// Writes the pre-reboot intent atomically and durably.
pub fn write_intent(state_dir: &Path, intent: &Intent) -> Result<()> {
    write_json(
        &state_dir.join(INTENT_FILE),
        intent,
        "writing the pre-reboot intent",
    )
}

/// Removes the pre-reboot intent durably; a missing intent is fine.
pub fn clear_intent(state_dir: &Path) -> Result<()> {
    remove(
        &state_dir.join(INTENT_FILE),
        "removing the pre-reboot intent",
    )
}

/// Proves that `state_dir` can be written now: creates, fills, syncs and
/// removes a small file in it. The error names the path and the errno
/// (`EROFS`, `ENOSPC`, `EPERM` of an immutable directory, …).
pub fn check_writable(state_dir: &Path) -> Result<()> {
    let path = state_dir.join(format!(".write-test-{}", std::process::id()));
    let probe = || -> std::io::Result<()> {
        fs::create_dir_all(state_dir)?;
        let mut f = fs::File::create(&path)?;
        // More than nothing, so a full file system fails here.
        f.write_all(&[b'x'; 512])?;
        f.sync_all()?;
        drop(f);
        fs::remove_file(&path)?;
        fs::File::open(state_dir)?.sync_all()
    };
    probe().map_err(|e| {
        let _ = fs::remove_file(&path);
        Error::io("cannot write the state directory: writing", &path, e)
    })
}

/// Like [`check_writable`] but writing nothing (for `status`): the write
/// permission of `state_dir` (or of its nearest existing parent), which
/// also reports a read-only file system (`EROFS`) and an immutable
/// directory (`EPERM`) for root, and whether its file system has a free
/// block and inode left (`ENOSPC`). Permission bits (`EACCES`, an
/// operator's `status` without sudo) are not a problem: they never stop
/// root, which the agent runs as.
pub fn check_writable_without_writing(state_dir: &Path) -> Result<()> {
    let dir = state_dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let fail = |e: nix::errno::Errno| {
        Error::io(
            "cannot write the state directory",
            state_dir,
            std::io::Error::from(e),
        )
    };
    if !dir.is_dir() {
        return Err(fail(nix::errno::Errno::ENOTDIR));
    }
    match nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK) {
        Err(nix::errno::Errno::EACCES) => {}
        other => other.map_err(fail)?,
    }
    let fs = nix::sys::statvfs::statvfs(dir).map_err(fail)?;
    // A file system that does not count inodes reports none at all.
    let full =
        (fs.blocks() > 0 && fs.blocks_free() == 0) || (fs.files() > 0 && fs.files_free() == 0);
    if full {
        return Err(fail(nix::errno::Errno::ENOSPC));
    }
    Ok(())
}

/// `CLOCK_BOOTTIME`: time since this boot, including suspend; it never
/// steps (unlike the wall clock under NTP) and restarts with every boot.
pub fn boottime() -> Result<Duration> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map_err(|e| Error::Runtime(format!("cannot read CLOCK_BOOTTIME: {e}")))?;
    Ok(Duration::new(
        u64::try_from(ts.tv_sec()).unwrap_or(0),
        u32::try_from(ts.tv_nsec()).unwrap_or(0),
    ))
}

/// [`boottime`] in whole milliseconds, as recorded.
pub fn boottime_ms() -> Result<u64> {
    Ok(u64::try_from(boottime()?.as_millis()).unwrap_or(u64::MAX))
}

/// Reads the last completed reboot, if recorded.
pub fn read_last_reboot(state_dir: &Path) -> Result<Option<LastReboot>> {
    read_json(&state_dir.join(LAST_REBOOT_FILE), "reading the last reboot")
}

/// Records a completed reboot.
pub fn write_last_reboot(state_dir: &Path, last: &LastReboot) -> Result<()> {
    write_json(
        &state_dir.join(LAST_REBOOT_FILE),
        last,
        "writing the last reboot",
    )
}

/// Since when logged-in users postpone the reboot in boot `boot_id`; a
/// stamp of another boot, or one that cannot be read, is none (the
/// postponement then starts again: it is never cut short by a bad file).
pub fn read_users_postponed(state_dir: &Path, boot_id: &str) -> Option<jiff::Timestamp> {
    let path = state_dir.join(USERS_POSTPONED_FILE);
    match read_json::<UsersPostponed>(&path, "reading the users postponement") {
        Ok(Some(p)) if p.boot_id == boot_id => p.since.parse().ok(),
        Ok(_) => None,
        Err(e) => {
            log::warn!("{e}");
            None
        }
    }
}

/// Records since when logged-in users postpone the reboot.
pub fn write_users_postponed(state_dir: &Path, stamp: &UsersPostponed) -> Result<()> {
    write_json(
        &state_dir.join(USERS_POSTPONED_FILE),
        stamp,
        "writing the users postponement",
    )
}

/// Ends the postponement (nobody is logged in any more).
pub fn clear_users_postponed(state_dir: &Path) -> Result<()> {
    remove(
        &state_dir.join(USERS_POSTPONED_FILE),
        "removing the users postponement",
    )
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    action: &str,
) -> Result<Option<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(action, path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Runtime(format!(
            "{action} {}: not valid JSON ({e}); remove the file after checking it",
            path.display()
        ))
    })
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T, action: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(|e| Error::io("creating the state directory", dir, e))?;
    let tmp: PathBuf = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Runtime(format!("{action}: {e}")))?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| Error::io(action, path, e))
}

/// Removes `path` and syncs its directory, so the removal survives a
/// crash or power loss (a reboot record that comes back would make the
/// next boot complete the reboot a second time).
fn remove(path: &Path, action: &str) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(action, path, e)),
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(action, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rebootctl-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn record_round_trip_and_clear() {
        let dir = temp_dir("rt");
        assert_eq!(read_record(&dir).unwrap(), None);
        let rec = RebootRecord {
            node: "n1".into(),
            boot_id: "b1".into(),
            slot: Some("/rebootctl/lock/slot-0".into()),
            at: "2026-01-01T00:00:00Z".into(),
            reason: vec!["kernel".into()],
            silences: vec!["8f0c…".into()],
            boottime_ms: Some(12_345),
            completion: Some(Completion {
                at: "2026-01-01T00:10:00Z".into(),
                cooldown_lease: Some(7),
            }),
            slot_create_revision: Some(7),
            uptime_ms: Some(1234),
            evidence: vec![Evidence::Kernel {
                detector: "kernel".into(),
                running: "6.1.0-18-amd64".into(),
                newest: "6.1.0-21-amd64".into(),
            }],
        };
        write_record(&dir, &rec).unwrap();
        assert_eq!(read_record(&dir).unwrap(), Some(rec));
        clear_record(&dir).unwrap();
        clear_record(&dir).unwrap();
        assert_eq!(read_record(&dir).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_of_an_older_version_reads_without_the_new_fields() {
        let dir = temp_dir("old");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(RECORD_FILE),
            r#"{"node":"n1","boot_id":"b1","at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let rec = read_record(&dir).unwrap().unwrap();
        assert_eq!((rec.boottime_ms, rec.completion), (None, None));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn intent_round_trip_and_clear() {
        let dir = temp_dir("intent");
        assert_eq!(read_intent(&dir).unwrap(), None);
        let intent = Intent {
            node: "n1".into(),
            boot_id: "b1".into(),
            pid: 42,
            at: "2026-01-01T00:00:00Z".into(),
            reason: vec!["marker".into()],
        };
        write_intent(&dir, &intent).unwrap();
        assert_eq!(read_intent(&dir).unwrap(), Some(intent));
        clear_intent(&dir).unwrap();
        clear_intent(&dir).unwrap();
        assert_eq!(read_intent(&dir).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_state_dir_is_an_error_naming_the_path_and_errno() {
        let dir = temp_dir("unwritable");
        fs::create_dir_all(&dir).unwrap();
        check_writable(&dir).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "probe left behind");
        // A file where the directory should be stops root too.
        let file = dir.join("not-a-dir");
        fs::write(&file, "").unwrap();
        for err in [
            check_writable(&file).unwrap_err(),
            check_writable_without_writing(&file.join("state")).unwrap_err(),
        ] {
            let err = err.to_string();
            assert!(err.contains("not-a-dir"), "{err}");
            assert!(err.contains("os error"), "{err}");
        }
        check_writable_without_writing(&dir).unwrap();
        check_writable_without_writing(&dir.join("not-yet/created")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn boottime_moves_forward() {
        let a = boottime().unwrap();
        let b = boottime().unwrap();
        assert!(a > Duration::ZERO && b >= a);
    }

    #[test]
    fn corrupt_record_is_an_error_not_a_panic() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(RECORD_FILE), "{not json").unwrap();
        let err = read_record(&dir).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_boot_id_is_an_error() {
        let dir = temp_dir("boot");
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("boot_id");
        fs::write(&f, "\n").unwrap();
        assert!(read_boot_id(&f).is_err());
        fs::write(&f, "abc\n").unwrap();
        assert_eq!(read_boot_id(&f).unwrap(), "abc");
        fs::remove_dir_all(&dir).unwrap();
    }
}

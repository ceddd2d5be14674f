//! What survives the reboot: the record this node writes into `state_dir`
//! just before it runs the reboot command, the local cooldown stamp, and the
//! current boot id. The record is what lets the next boot know that the
//! reboot was ours (SPEC §5 step 1).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::detector::Evidence;

/// File name of the reboot record inside `state_dir`.
pub const RECORD_FILE: &str = "reboot-record.json";
/// File name of the last completed reboot inside `state_dir` (local cooldown).
pub const LAST_REBOOT_FILE: &str = "last-reboot.json";
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
}

/// The last completed reboot of this node, for the local-mode cooldown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReboot {
    /// When the node came back healthy (RFC 3339).
    pub completed_at: String,
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

/// Removes the reboot record; a missing record is fine.
pub fn clear_record(state_dir: &Path) -> Result<()> {
    remove(&state_dir.join(RECORD_FILE), "removing the reboot record")
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

fn remove(path: &Path, action: &str) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(action, path, e)),
    }
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

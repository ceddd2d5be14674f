//! The `distro` detector through the real binary (issue 15.3): a fixture
//! root per family (os-release, the kernel files, fake `needs-restarting`,
//! `dnf` and `zypper` scripts below the root), checked with `simulate`
//! (text and JSON) and `run --once`.

use crate::common;

use common::fixture::{Fixture, Run};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A host whose only detector is `type: distro` below `root/`, with a
/// running kernel that is the newest installed one.
fn host(name: &str, os_release: &str) -> (Fixture, PathBuf) {
    let mut fx = Fixture::new(name);
    let root = fx.path("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), os_release).unwrap();
    fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-21-amd64\n").unwrap();
    fs::create_dir_all(root.join("lib/modules/6.1.0-21-amd64")).unwrap();
    fs::write(root.join("lib/modules/6.1.0-21-amd64/modules.dep"), "").unwrap();
    fs::create_dir_all(root.join("run")).unwrap();
    fx.set(
        "reboot_required_detectors",
        &format!(
            "[{{type: distro, root: {}, timeout_sec: 5}}]",
            root.display()
        ),
    );
    (fx, root)
}

/// Writes an executable script at `rel` below `root`.
fn program(root: &std::path::Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A newer kernel installed below `root`: the kernel check says "required".
fn newer_kernel(root: &std::path::Path) {
    let k = root.join("lib/modules/6.1.0-30-amd64");
    fs::create_dir_all(&k).unwrap();
    fs::write(k.join("modules.dep"), "").unwrap();
}

fn simulate_json(fx: &Fixture) -> (Run, Value) {
    let r = fx.rebootctl(&["simulate", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    (r, v)
}

/// (check, verdict) of every check of the first detector.
fn checks(v: &Value) -> Vec<(String, String)> {
    v["detectors"][0]["distro"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const UBUNTU: &str =
    "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nNAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n";
const ROCKY: &str = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n";
const LEAP: &str = "NAME=\"openSUSE Leap\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nPRETTY_NAME=\"openSUSE Leap 15.6\"\n";

#[test]
fn debian_family_uses_the_reboot_required_marker() {
    let (fx, root) = host("distro-deb", UBUNTU);
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["need"], "not_required");
    let d = &v["detectors"][0];
    assert_eq!(d["name"], "distro");
    assert_eq!(d["type"], "distro");
    assert_eq!(d["distro"]["family"], "debian");
    assert_eq!(d["distro"]["matched"], "ID=ubuntu");
    assert_eq!(d["distro"]["os"], "Ubuntu 24.04 LTS");
    assert_eq!(
        checks(&v),
        [
            ("file /run/reboot-required".into(), "not_required".into()),
            ("kernel".into(), "not_required".into())
        ]
    );

    // /var/run is a separate directory in the fixture: either path counts.
    fs::create_dir_all(root.join("var/run")).unwrap();
    fs::write(root.join("var/run/reboot-required"), "").unwrap();
    fs::write(
        root.join("var/run/reboot-required.pkgs"),
        "libc6\nlinux-base\n",
    )
    .unwrap();
    let (_, v) = simulate_json(&fx);
    assert_eq!(v["need"], "required");
    assert!(
        v["detectors"][0]["output"]
            .as_str()
            .unwrap()
            .contains("libc6 linux-base"),
        "{v}"
    );

    let text = fx.rebootctl(&["simulate"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .contains("chose: debian preset, matched by ID=ubuntu"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("file /run/reboot-required"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("=> reboot required (by distro)"),
        "{}",
        text.stdout
    );

    let run = fx.rebootctl(&["run", "--once"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fx.reboots().len(), 1);
}

#[test]
fn rhel_family_prefers_needs_restarting_then_dnf() {
    let (fx, root) = host("distro-rhel", ROCKY);
    // Neither program: the detector cannot decide (exit 6), never "required".
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(v["need"], "unknown");
    assert_eq!(v["detectors"][0]["distro"]["matched"], "ID=rocky");
    assert!(
        v["detectors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("neither needs-restarting nor dnf found"),
        "{v}"
    );

    // dnf only: `dnf needs-restarting -r`, its arguments recorded.
    let args = fx.path("dnf-args");
    program(
        &root,
        "usr/bin/dnf",
        &format!(
            "echo \"$@\" > {}\necho 'Reboot is required'\nexit 1\n",
            args.display()
        ),
    );
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["need"], "required");
    assert_eq!(
        checks(&v)[0],
        ("dnf needs-restarting -r".into(), "required".into())
    );
    assert_eq!(
        fs::read_to_string(&args).unwrap().trim(),
        "needs-restarting -r"
    );

    // dnf without the plugin says "No such command" with exit 1: not "required".
    program(
        &root,
        "usr/bin/dnf",
        "echo 'No such command: needs-restarting.' >&2\nexit 1\n",
    );
    let (r, _) = simulate_json(&fx);
    assert_eq!(r.code, 6, "{r:?}");

    // needs-restarting wins over dnf; exit 0 is "not required".
    program(
        &root,
        "usr/bin/needs-restarting",
        "echo 'Reboot should not be necessary.'\nexit 0\n",
    );
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["need"], "not_required");
    assert_eq!(
        checks(&v)[0],
        ("needs-restarting -r".into(), "not_required".into())
    );

    // Any other exit code is an error.
    program(&root, "usr/bin/needs-restarting", "exit 2\n");
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        v["detectors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("exited with 2"),
        "{v}"
    );

    // The kernel check alone can require the reboot.
    program(&root, "usr/bin/needs-restarting", "exit 0\n");
    newer_kernel(&root);
    let (_, v) = simulate_json(&fx);
    assert_eq!(v["need"], "required");
    assert_eq!(checks(&v)[1], ("kernel".into(), "required".into()));
}

#[test]
fn suse_family_uses_the_marker_and_zypper() {
    let (fx, root) = host("distro-suse", LEAP);
    program(
        &root,
        "usr/bin/zypper",
        "[ \"$1\" = needs-rebooting ] || exit 2\nexit 0\n",
    );
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["need"], "not_required");
    assert_eq!(v["detectors"][0]["distro"]["family"], "suse");
    assert_eq!(v["detectors"][0]["distro"]["matched"], "ID=opensuse-leap");
    assert_eq!(
        checks(&v),
        [
            ("file /run/reboot-needed".into(), "not_required".into()),
            ("zypper needs-rebooting".into(), "not_required".into()),
            ("kernel".into(), "not_required".into())
        ]
    );

    // 102 is ZYPPER_EXIT_INF_REBOOT_NEEDED.
    program(&root, "usr/bin/zypper", "exit 102\n");
    let (_, v) = simulate_json(&fx);
    assert_eq!(v["need"], "required");

    // 7 (the zypp lock is held) is not an answer.
    program(&root, "usr/bin/zypper", "exit 7\n");
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        v["detectors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("ZYPPER_EXIT_ZYPP_LOCKED"),
        "{v}"
    );

    // The marker is evidence on its own, even while zypper fails.
    fs::write(root.join("run/reboot-needed"), "reboot\n").unwrap();
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["need"], "required");
}

#[test]
fn unknown_family_is_a_clear_error_never_required() {
    let (fx, root) = host("distro-arch", "NAME=\"Arch Linux\"\nID=arch\n");
    newer_kernel(&root);
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(v["need"], "unknown");
    assert!(v["detectors"][0]["distro"]["family"].is_null());
    let err = v["detectors"][0]["error"].as_str().unwrap();
    assert!(err.contains("unknown distribution"), "{err}");
    assert!(err.contains("ID \"arch\", ID_LIKE unset"), "{err}");

    let text = fx.rebootctl(&["simulate"]);
    assert!(text.stdout.contains("no preset"), "{}", text.stdout);
    let run = fx.rebootctl(&["run", "--once"]);
    assert_eq!(run.code, 6, "{run:?}");
    assert!(fx.reboots().is_empty());

    // No os-release at all: the same.
    fs::remove_file(root.join("etc/os-release")).unwrap();
    let (r, v) = simulate_json(&fx);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        v["detectors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no os-release file"),
        "{v}"
    );
}

#[test]
fn distro_keys_are_validated() {
    let mut fx = Fixture::new("distro-keys");
    fx.set(
        "reboot_required_detectors",
        "[{type: distro, path: /run/x, root: relative}]",
    );
    let r = fx.rebootctl(&["validate-config"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("reboot_required_detectors[0].path: only applies to type file"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("reboot_required_detectors[0].root"),
        "{}",
        r.stderr
    );

    // The defaults: root /, 60 s per command.
    fx.set("reboot_required_detectors", "[{type: distro}]");
    let r = fx.rebootctl(&["validate-config", "--show"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("name: distro\n  type: distro\n  root: /\n  timeout_sec: 60"),
        "{}",
        r.stdout
    );
}

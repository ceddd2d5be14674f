//! Issue 10.2, the kernel detector, through `rebootctl simulate` on a
//! fixture root: only kernels of the running flavour count, a kernel whose
//! modules directory is incomplete (no `modules.dep`) or whose package is
//! half installed (dpkg's status file) does not, and nothing counts while
//! a package manager holds its lock.

use crate::common;

use std::fs;
use std::path::Path;

use common::fixture::Fixture;
use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

fn add_kernel(root: &Path, release: &str, modules_dep: bool) {
    let dir = root.join("lib/modules").join(release);
    fs::create_dir_all(dir.join("kernel")).unwrap();
    if modules_dep {
        fs::write(dir.join("modules.dep"), "").unwrap();
    }
}

/// The kernel detector's verdict and detail, from `simulate --json`.
fn simulate(fx: &Fixture) -> (String, String) {
    let r = fx.rebootctl(&["simulate", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let d = &v["detectors"][0];
    assert_eq!(d["type"], "kernel", "{v}");
    (
        d["verdict"].as_str().unwrap().to_string(),
        d["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_kernel_detector_counts_only_complete_kernels_of_the_running_flavour() {
    let mut fx = Fixture::new("kernel");
    let root = fx.path("root");
    fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    fs::write(root.join("proc/sys/kernel/osrelease"), "6.8.0-45-generic\n").unwrap();
    for k in ["6.8.0-45-generic", "6.8.0-45-lowlatency", "6.8.0-1015-aws"] {
        add_kernel(&root, k, true);
    }
    fx.set(
        "reboot_required_detectors",
        &format!("[{{type: kernel, root: {}}}]", root.display()),
    );

    // Other flavours sort after the running kernel but are not its successors.
    let (verdict, detail) = simulate(&fx);
    assert_eq!(verdict, "not_required", "{detail}");
    assert!(
        detail.contains("6.8.0-45-lowlatency (another flavour)"),
        "{detail}"
    );
    assert!(
        detail.contains("6.8.0-1015-aws (another flavour)"),
        "{detail}"
    );

    // Being unpacked: modules there, depmod not run yet.
    add_kernel(&root, "6.8.0-50-generic", false);
    let (verdict, detail) = simulate(&fx);
    assert_eq!(verdict, "not_required", "{detail}");
    assert!(
        detail.contains("6.8.0-50-generic (no modules.dep)"),
        "{detail}"
    );

    // depmod ran, but dpkg has not finished configuring the package.
    add_kernel(&root, "6.8.0-50-generic", true);
    let dpkg = root.join("var/lib/dpkg");
    fs::create_dir_all(&dpkg).unwrap();
    let status = |state: &str| {
        format!(
            "Package: linux-image-6.8.0-50-generic\nStatus: install ok {state}\n\n\
             Package: linux-modules-6.8.0-50-generic\nStatus: install ok installed\n"
        )
    };
    fs::write(dpkg.join("status"), status("half-configured")).unwrap();
    let (verdict, detail) = simulate(&fx);
    assert_eq!(verdict, "not_required", "{detail}");
    assert!(
        detail
            .contains("6.8.0-50-generic (package linux-image-6.8.0-50-generic is half-configured)"),
        "{detail}"
    );

    // Configured, but a package manager is still running (it holds dpkg's lock).
    fs::write(dpkg.join("status"), status("installed")).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dpkg.join("lock"))
        .unwrap();
    let request = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(&lock, FcntlArg::F_OFD_SETLK(&request)).unwrap();
    let (verdict, detail) = simulate(&fx);
    assert_eq!(verdict, "not_required", "{detail}");
    assert!(
        detail.contains("is locked by a package manager"),
        "{detail}"
    );

    // Done: now it is a reboot.
    drop(lock);
    let (verdict, detail) = simulate(&fx);
    assert_eq!(verdict, "required", "{detail}");
    assert!(
        detail.starts_with("running 6.8.0-45-generic, newest installed 6.8.0-50-generic"),
        "{detail}"
    );
}

//! utmp files for the logged-in users tests, written byte by byte from
//! glibc's `struct utmp` (bits/utmp.h) independently of the parser in
//! `rebootctl::host::sessions`, so a wrong offset there fails a test.

/// One record to write.
pub struct Login<'a> {
    /// `ut_type`: 7 is USER_PROCESS, 2 BOOT_TIME, 8 DEAD_PROCESS.
    pub kind: i16,
    pub user: &'a str,
    pub tty: &'a str,
    pub host: &'a str,
    /// `ut_tv.tv_sec`.
    pub since: i64,
    pub pid: i32,
}

impl Login<'_> {
    /// A live session of this test process (its pid runs).
    pub fn live<'a>(user: &'a str, tty: &'a str, host: &'a str, since: i64) -> Login<'a> {
        Login {
            kind: 7,
            user,
            tty,
            host,
            since,
            pid: i32::try_from(std::process::id()).unwrap(),
        }
    }
}

/// glibc's record size and the offset of `ut_tv.tv_sec` (32-bit on x86,
/// 64-bit on aarch64).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const SIZE_AND_TV: (usize, usize, bool) = (384, 340, false);
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
const SIZE_AND_TV: (usize, usize, bool) = (400, 344, true);

/// The bytes of a utmp file holding `logins`, after a BOOT_TIME record.
pub fn utmp(logins: &[Login]) -> Vec<u8> {
    let boot = Login {
        kind: 2,
        user: "reboot",
        tty: "~",
        host: "6.1.0-21-amd64",
        since: 1_700_000_000,
        pid: 0,
    };
    let (size, tv, wide) = SIZE_AND_TV;
    let mut out = Vec::new();
    for l in std::iter::once(&boot).chain(logins) {
        let mut r = vec![0u8; size];
        r[0..2].copy_from_slice(&l.kind.to_ne_bytes());
        r[4..8].copy_from_slice(&l.pid.to_ne_bytes());
        r[8..8 + l.tty.len()].copy_from_slice(l.tty.as_bytes());
        r[44..44 + l.user.len()].copy_from_slice(l.user.as_bytes());
        r[76..76 + l.host.len()].copy_from_slice(l.host.as_bytes());
        if wide {
            r[tv..tv + 8].copy_from_slice(&l.since.to_ne_bytes());
        } else {
            let s = i32::try_from(l.since).unwrap();
            r[tv..tv + 4].copy_from_slice(&s.to_ne_bytes());
        }
        out.extend(r);
    }
    out
}

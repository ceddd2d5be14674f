//! Maintenance windows (SPEC §3): parse `DAYS HH:MM-[DAY ]HH:MM` entries and
//! decide, as a pure function of a given instant, whether reboots are allowed.

use jiff::Timestamp;

/// Parsed maintenance windows with their time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    allow_src: Vec<String>,
    deny_src: Vec<String>,
}

/// The verdict of the windows at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum WindowVerdict {
    /// Reboots are allowed now.
    Open,
    /// A deny entry covers now.
    Denied {
        /// The deny entry, as written.
        entry: String,
    },
    /// An allow list exists and no entry covers now.
    OutsideAllow,
}

impl Windows {
    /// Parses the `windows` section; every problem is returned with its path
    /// (`windows.allow[1]: …`).
    pub fn parse(
        timezone: &str,
        allow: &[String],
        deny: &[String],
    ) -> Result<Windows, Vec<String>> {
        let _ = timezone;
        Ok(Windows {
            allow_src: allow.to_vec(),
            deny_src: deny.to_vec(),
        })
    }

    /// Windows that never block.
    pub fn always_open() -> Windows {
        Windows {
            allow_src: Vec::new(),
            deny_src: Vec::new(),
        }
    }

    /// The allow entries as written.
    pub fn allow_entries(&self) -> &[String] {
        &self.allow_src
    }

    /// The deny entries as written.
    pub fn deny_entries(&self) -> &[String] {
        &self.deny_src
    }

    /// Decides whether reboots are allowed at `now`.
    pub fn verdict(&self, now: Timestamp) -> WindowVerdict {
        let _ = now;
        WindowVerdict::Open
    }
}

impl Windows {
    /// STUB.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        Some(now)
    }
}

//! Maintenance windows (SPEC §3): parse `DAYS HH:MM-[DAY ]HH:MM` entries and
//! decide, as a pure function of a given instant, whether reboots are allowed.
//!
//! Each entry is parsed once into a set of half-open intervals on a weekly
//! minute timeline (minute 0 is Monday 00:00, [`MINUTES_PER_WEEK`] is the next
//! Monday 00:00). An instant is judged by converting it to the *civil*
//! wall-clock time of the configured time zone and looking its minute of the
//! week up in those intervals. That makes DST behave the way a wall clock
//! does: on a spring-forward day a skipped wall time never occurs, and on a
//! fall-back day a repeated hour is inside a window twice. Deny entries always
//! win; a non-empty allow list means "only inside one of these".

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Minutes in one day.
const MINUTES_PER_DAY: u32 = 24 * 60;
/// Minutes in one week; the length of the weekly timeline.
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;
/// How far ahead [`Windows::next_open`] looks, in minutes (8 days).
const NEXT_OPEN_HORIZON_MINUTES: i64 = 8 * 24 * 60;
/// The accepted syntax, quoted in error messages.
const SYNTAX: &str = "expected DAYS HH:MM-[DAY ]HH:MM";
/// Day names, Monday first, as they appear in error messages.
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Parsed maintenance windows with their time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    allow_src: Vec<String>,
    deny_src: Vec<String>,
    allow: Vec<WeeklySet>,
    deny: Vec<WeeklySet>,
    tz: TimeZone,
    tz_name: String,
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
        let mut problems = Vec::new();
        let tz = match parse_timezone(timezone) {
            Ok(tz) => Some(tz),
            Err(msg) => {
                problems.push(format!("windows.timezone: {msg}"));
                None
            }
        };
        let allow_sets = parse_list("windows.allow", allow, &mut problems);
        let deny_sets = parse_list("windows.deny", deny, &mut problems);
        match tz {
            Some(tz) if problems.is_empty() => {
                let tz_name = tz.iana_name().unwrap_or(timezone.trim()).to_string();
                Ok(Windows {
                    allow_src: allow.to_vec(),
                    deny_src: deny.to_vec(),
                    allow: allow_sets,
                    deny: deny_sets,
                    tz,
                    tz_name,
                })
            }
            _ => Err(problems),
        }
    }

    /// Windows that never block.
    pub fn always_open() -> Windows {
        Windows {
            allow_src: Vec::new(),
            deny_src: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            tz: TimeZone::UTC,
            tz_name: "UTC".to_string(),
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

    /// The name of the time zone the windows are evaluated in.
    pub fn timezone_name(&self) -> String {
        self.tz_name.clone()
    }

    /// The time zone the windows are evaluated in.
    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// Decides whether reboots are allowed at `now`.
    pub fn verdict(&self, now: Timestamp) -> WindowVerdict {
        if self.allow.is_empty() && self.deny.is_empty() {
            return WindowVerdict::Open;
        }
        let minute = minute_of_week(self.tz.to_datetime(now));
        if let Some((src, _)) = self
            .deny_src
            .iter()
            .zip(&self.deny)
            .find(|(_, set)| set.contains(minute))
        {
            return WindowVerdict::Denied { entry: src.clone() };
        }
        if self.allow.is_empty() || self.allow.iter().any(|set| set.contains(minute)) {
            WindowVerdict::Open
        } else {
            WindowVerdict::OutsideAllow
        }
    }

    /// The first instant, at most 8 days after `now`, at which the verdict is
    /// [`WindowVerdict::Open`]: `Some(now)` when open now, `None` when never.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        if self.verdict(now) == WindowVerdict::Open {
            return Some(now);
        }
        // Civil minutes start on whole UTC minutes in every zone with a
        // whole-minute offset, so stepping UTC minutes visits each of them.
        let first_minute = now.as_second().div_euclid(60) + 1;
        (0..NEXT_OPEN_HORIZON_MINUTES)
            .filter_map(|i| Timestamp::from_second((first_minute + i) * 60).ok())
            .find(|&t| self.verdict(t) == WindowVerdict::Open)
    }
}

/// A union of half-open intervals on the weekly minute timeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct WeeklySet {
    /// Sorted, non-overlapping `[start, end)` minute ranges within one week.
    spans: Vec<(u32, u32)>,
}

impl WeeklySet {
    /// Adds `[start, end)` where `start` is within the week and the span is
    /// at most one week long; a span past the week's end wraps to Monday.
    fn add(&mut self, start: u32, end: u32) {
        if end <= MINUTES_PER_WEEK {
            self.spans.push((start, end));
        } else {
            self.spans.push((start, MINUTES_PER_WEEK));
            self.spans.push((0, end - MINUTES_PER_WEEK));
        }
    }

    /// Sorts and merges overlapping or touching spans.
    fn normalize(&mut self) {
        self.spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.spans.len());
        for &(s, e) in &self.spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.spans = merged;
    }

    /// Whether `minute` (of the week) is inside the set.
    fn contains(&self, minute: u32) -> bool {
        self.spans.iter().any(|&(s, e)| s <= minute && minute < e)
    }
}

/// The minute of the week (Monday 00:00 = 0) of a civil date and time.
fn minute_of_week(dt: DateTime) -> u32 {
    let day = u32::try_from(dt.weekday().to_monday_zero_offset()).unwrap_or(0);
    let hour = u32::try_from(dt.hour()).unwrap_or(0);
    let minute = u32::try_from(dt.minute()).unwrap_or(0);
    day * MINUTES_PER_DAY + hour * 60 + minute
}

/// Resolves `local`, `UTC` or an IANA name.
fn parse_timezone(name: &str) -> Result<TimeZone, String> {
    let trimmed = name.trim();
    if trimmed.eq_ignore_ascii_case("local") {
        Ok(TimeZone::system())
    } else if trimmed.eq_ignore_ascii_case("UTC") {
        Ok(TimeZone::UTC)
    } else if trimmed.is_empty() {
        Err("must not be empty (use local, UTC or an IANA name)".to_string())
    } else {
        TimeZone::get(trimmed).map_err(|_| format!("unknown time zone {name:?}"))
    }
}

/// Parses every entry of one list, appending problems prefixed with `path[i]`.
fn parse_list(path: &str, entries: &[String], problems: &mut Vec<String>) -> Vec<WeeklySet> {
    let mut sets = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match parse_entry(entry) {
            Ok(set) => sets.push(set),
            Err(errs) => {
                problems.extend(
                    errs.into_iter()
                        .map(|e| format!("{path}[{i}]: {entry}: {e}")),
                );
            }
        }
    }
    sets
}

/// Parses one `DAYS HH:MM-[DAY ]HH:MM` entry into its weekly minute set.
fn parse_entry(entry: &str) -> Result<WeeklySet, Vec<String>> {
    let trimmed = entry.trim();
    if trimmed.is_empty() {
        return Err(vec!["empty entry".to_string()]);
    }
    // DAYS ends at the last space before the first digit, so that
    // `Mon, Wed 10:00-11:00` reads too; day names hold no digits.
    let Some(first_digit) = trimmed.find(|c: char| c.is_ascii_digit()) else {
        return Err(vec![format!("missing time range ({SYNTAX})")]);
    };
    let split = trimmed[..first_digit]
        .rfind(char::is_whitespace)
        .unwrap_or(first_digit);
    let (days_src, times_src) = (trimmed[..split].trim(), trimmed[split..].trim());
    if days_src.is_empty() {
        return Err(vec![format!("missing days ({SYNTAX})")]);
    }
    let Some((start_src, end_src)) = times_src.split_once('-') else {
        return Err(vec![format!(
            "missing \"-\" between start and end time ({SYNTAX})"
        )]);
    };

    let end_tokens: Vec<&str> = end_src.split_whitespace().collect();
    let has_end_day = end_tokens.len() == 2;

    // Parse every part, in reading order, collecting all problems.
    let mut errs = Vec::new();
    let (start_day, days) = if has_end_day {
        let start_day = match parse_day(days_src) {
            Ok(d) => Ok(d),
            Err(_) if parse_days(days_src).is_ok() => Err(format!(
                "with an end day the start must be a single day, not {days_src:?}"
            )),
            Err(e) => Err(e),
        };
        (keep(&mut errs, start_day), None)
    } else {
        (None, keep(&mut errs, parse_days(days_src)))
    };
    let start = keep(&mut errs, parse_time(start_src.trim(), false));
    let (end_day, end) = match end_tokens.as_slice() {
        [time] => (None, keep(&mut errs, parse_time(time, true))),
        [day, time] => (
            keep(&mut errs, parse_day(day)),
            keep(&mut errs, parse_time(time, true)),
        ),
        [] => {
            errs.push(format!("missing end time ({SYNTAX})"));
            (None, None)
        }
        _ => {
            errs.push(format!("unexpected text after the end time ({SYNTAX})"));
            (None, None)
        }
    };

    let mut set = WeeklySet::default();
    if let (Some(sd), Some(st), Some(ed), Some(et)) = (start_day, start, end_day, end) {
        // One span across days: `Fri 18:00-Mon 08:00`.
        let s = sd * MINUTES_PER_DAY + st;
        let e = ed * MINUTES_PER_DAY + et;
        if e == s {
            errs.push("start and end are the same; the window would be empty".to_string());
        } else {
            // An end at or before the start is in the following week.
            set.add(s, if e < s { e + MINUTES_PER_WEEK } else { e });
        }
    } else if let (Some(days), Some(start), Some(end), false) = (days, start, end, has_end_day) {
        // Each of DAYS from start to end, past midnight if end < start.
        if start == end {
            errs.push("start and end are the same; use 00:00-24:00 for a whole day".to_string());
        }
        let len = if end > start {
            end - start
        } else {
            end + MINUTES_PER_DAY - start
        };
        for (day, _) in days.iter().enumerate().filter(|(_, on)| **on) {
            let s = day_index(day) * MINUTES_PER_DAY + start;
            set.add(s, s + len);
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    set.normalize();
    Ok(set)
}

/// Moves a problem into `errs`, keeping the value when there was none.
fn keep<T>(errs: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errs.push(e)).ok()
}

/// Converts a day position (0..7) to `u32`.
fn day_index(day: usize) -> u32 {
    u32::try_from(day).unwrap_or(0)
}

/// Parses `*`, `Mon`, `Tue-Thu` (may wrap) or a comma list of those.
fn parse_days(src: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in src.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("empty day in list {src:?}"));
        }
        if item == "*" {
            days = [true; 7];
            continue;
        }
        match item.split_once('-') {
            Some((from, to)) => {
                let from = parse_day(from)?;
                let to = parse_day(to)?;
                let mut d = from;
                loop {
                    if let Some(slot) = days.get_mut(usize::try_from(d).unwrap_or(0)) {
                        *slot = true;
                    }
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => {
                let d = parse_day(item)?;
                if let Some(slot) = days.get_mut(usize::try_from(d).unwrap_or(0)) {
                    *slot = true;
                }
            }
        }
    }
    Ok(days)
}

/// Parses a day name (`Mon` … `Sun`, any case) to 0 (Monday) … 6 (Sunday).
fn parse_day(src: &str) -> Result<u32, String> {
    DAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(src.trim()))
        .map(day_index)
        .ok_or_else(|| {
            format!("unknown day {src:?} (expected Mon, Tue, Wed, Thu, Fri, Sat, Sun or *)")
        })
}

/// Parses `HH:MM` (00:00..23:59, plus 24:00 when `is_end`) to minutes of day.
fn parse_time(src: &str, is_end: bool) -> Result<u32, String> {
    let err = || {
        if is_end {
            format!("invalid end time {src:?} (expected HH:MM from 00:00 to 24:00)")
        } else {
            format!("invalid start time {src:?} (expected HH:MM from 00:00 to 23:59)")
        }
    };
    let (h, m) = src.split_once(':').ok_or_else(err)?;
    let digits = |s: &str, max_len: usize| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(err());
    }
    let h: u32 = h.parse().map_err(|_| err())?;
    let m: u32 = m.parse().map_err(|_| err())?;
    match (h, m) {
        (0..=23, 0..=59) => Ok(h * 60 + m),
        (24, 0) if is_end => Ok(MINUTES_PER_DAY),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    fn windows(tz: &str, allow: &[&str], deny: &[&str]) -> Windows {
        match Windows::parse(tz, &strings(allow), &strings(deny)) {
            Ok(w) => w,
            Err(e) => panic!("unexpected parse errors: {e:?}"),
        }
    }

    /// The instant of a civil time in `tz` (the earlier one if ambiguous).
    fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        let tz = TimeZone::get(tz).expect("test time zone");
        tz.to_timestamp(date(y, mo, d).at(h, mi, 0, 0))
            .expect("valid test time")
    }

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        at("UTC", y, mo, d, h, mi)
    }

    fn is_open(w: &Windows, t: Timestamp) -> bool {
        w.verdict(t) == WindowVerdict::Open
    }

    /// Counts open minutes in `[from, to)` stepping one real minute.
    fn open_minutes(w: &Windows, from: Timestamp, to: Timestamp) -> i64 {
        let (a, b) = (from.as_second() / 60, to.as_second() / 60);
        (a..b)
            .filter(|m| is_open(w, Timestamp::from_second(m * 60).expect("in range")))
            .count() as i64
    }

    // 2026-01-05 is a Monday; days 5..=11 are Mon..Sun.
    #[test]
    fn syntax_forms() {
        #[rustfmt::skip]
        let cases: &[(&str, (i8, i8, i8), bool)] = &[
            // (entry, (day of Jan 2026, hour, minute) in UTC, open?)
            ("* 03:00-05:00", (7, 3, 0), true),
            ("* 03:00-05:00", (11, 4, 59), true),
            ("* 03:00-05:00", (7, 5, 0), false),
            ("* 03:00-05:00", (7, 2, 59), false),
            ("Mon 10:00-11:00", (5, 10, 30), true),
            ("Mon 10:00-11:00", (6, 10, 30), false),
            ("mon 10:00-11:00", (5, 10, 30), true),
            ("MON 10:00-11:00", (5, 10, 30), true),
            ("Tue-Thu 10:00-11:00", (5, 10, 30), false),
            ("Tue-Thu 10:00-11:00", (6, 10, 30), true),
            ("Tue-Thu 10:00-11:00", (8, 10, 30), true),
            ("Tue-Thu 10:00-11:00", (9, 10, 30), false),
            ("Fri-Mon 10:00-11:00", (9, 10, 30), true),
            ("Fri-Mon 10:00-11:00", (11, 10, 30), true),
            ("Fri-Mon 10:00-11:00", (5, 10, 30), true),
            ("Fri-Mon 10:00-11:00", (6, 10, 30), false),
            ("Mon,Wed 10:00-11:00", (5, 10, 0), true),
            ("Mon,Wed 10:00-11:00", (6, 10, 0), false),
            ("Mon,Wed 10:00-11:00", (7, 10, 0), true),
            ("Mon,Wed-Thu 10:00-11:00", (8, 10, 0), true),
            ("Mon, Wed 10:00-11:00", (7, 10, 0), true),
            ("Mon - Wed 10:00-11:00", (6, 10, 0), true),
            ("* 00:00-24:00", (9, 23, 59), true),
            ("Sat 20:00-24:00", (10, 23, 59), true),
            ("Sat 20:00-24:00", (11, 0, 0), false),
            ("* 9:05-9:10", (5, 9, 5), true),
            // midnight wrap
            ("Mon-Thu 22:00-04:00", (5, 22, 0), true),
            ("Mon-Thu 22:00-04:00", (6, 3, 59), true),
            ("Mon-Thu 22:00-04:00", (6, 4, 0), false),
            ("Mon-Thu 22:00-04:00", (9, 3, 0), true),  // Thu night into Fri
            ("Mon-Thu 22:00-04:00", (9, 22, 0), false), // Fri night
            ("Mon-Thu 22:00-04:00", (5, 3, 0), false),  // Sun night is not covered
            // week wrap
            ("Sun 22:00-02:00", (12, 1, 0), true),
            ("Sun 22:00-02:00", (11, 23, 0), true),
            ("Sun 22:00-02:00", (12, 2, 0), false),
            ("Sun 22:00-02:00", (5, 1, 0), true), // Monday of the first week
            // spans with an end day
            ("Fri 18:00-Mon 08:00", (9, 18, 0), true),
            ("Fri 18:00-Mon 08:00", (9, 17, 59), false),
            ("Fri 18:00-Mon 08:00", (10, 12, 0), true),
            ("Fri 18:00-Mon 08:00", (12, 7, 59), true),
            ("Fri 18:00-Mon 08:00", (12, 8, 0), false),
            ("Fri 18:00-Mon 08:00", (7, 12, 0), false),
            ("Fri 18:00 - Mon 08:00", (10, 12, 0), true),
            ("Tue 10:00-Tue 09:00", (13, 9, 30), false), // almost a week
            ("Tue 10:00-Tue 09:00", (12, 9, 30), true),
            ("Tue 10:00-Tue 11:00", (6, 10, 30), true),
            ("Tue 10:00-Tue 11:00", (7, 10, 30), false),
            ("Sun 20:00-Sun 24:00", (11, 23, 59), true),
            ("Sun 20:00-Sun 24:00", (12, 0, 0), false),
        ];
        for &(entry, (d, h, m), want) in cases {
            let w = windows("UTC", &[entry], &[]);
            assert_eq!(
                is_open(&w, utc(2026, 1, d, h, m)),
                want,
                "{entry} at Jan {d} {h}:{m}"
            );
        }
    }

    #[test]
    fn parse_errors() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("Mnd 10:00-11:00", "windows.allow[0]: Mnd 10:00-11:00: unknown day \"Mnd\""),
            ("Mon-Fry 10:00-11:00", "unknown day \"Fry\""),
            ("Mon,,Tue 10:00-11:00", "empty day in list"),
            ("Mon 25:00-11:00", "invalid start time \"25:00\""),
            ("Mon 10:60-11:00", "invalid start time \"10:60\""),
            ("Mon 24:00-11:00", "invalid start time \"24:00\""),
            ("Mon 10:00-24:01", "invalid end time \"24:01\""),
            ("Mon 10-11", "invalid start time \"10\""),
            ("Mon 10:0-11:00", "invalid start time \"10:0\""),
            ("Mon +1:00-11:00", "invalid start time \"+1:00\""),
            ("Mon 10:00 11:00", "missing \"-\" between start and end time"),
            ("Mon 10:00", "missing \"-\""),
            ("Mon-Thu 18:00-Fri 08:00", "with an end day the start must be a single day, not \"Mon-Thu\""),
            ("* 18:00-Fri 08:00", "start must be a single day, not \"*\""),
            ("Mon,Tue 18:00-Fri 08:00", "start must be a single day"),
            ("Fri 18:00-Mun 08:00", "unknown day \"Mun\""),
            ("Fri 18:00-Mon 08:00 extra", "unexpected text after the end time"),
            ("Mon 10:00-", "missing end time"),
            ("", "windows.allow[0]: : empty entry"),
            ("   ", "empty entry"),
            ("Mon", "missing time range"),
            ("10:00-11:00", "missing days"),
            ("Mon 10:00-10:00", "start and end are the same"),
            ("Mon 10:00-Mon 10:00", "start and end are the same"),
        ];
        for &(entry, want) in cases {
            match Windows::parse("UTC", &strings(&[entry]), &[]) {
                Ok(_) => panic!("{entry:?} should not parse"),
                Err(errs) => assert!(
                    errs.iter()
                        .any(|e| e.contains(want) && e.starts_with("windows.allow[0]: ")),
                    "{entry:?}: {errs:?} lacks {want:?}"
                ),
            }
        }
    }

    #[test]
    fn all_problems_are_reported_with_paths() {
        let errs = Windows::parse(
            "Mars/Base",
            &strings(&["* 03:00-05:00", "Mnd 25:00-04:00"]),
            &strings(&["Fri 18:00-Mon 08:00", "Sat 1:00"]),
        )
        .expect_err("invalid");
        assert_eq!(
            errs,
            vec![
                "windows.timezone: unknown time zone \"Mars/Base\"".to_string(),
                "windows.allow[1]: Mnd 25:00-04:00: unknown day \"Mnd\" \
                 (expected Mon, Tue, Wed, Thu, Fri, Sat, Sun or *)"
                    .to_string(),
                "windows.allow[1]: Mnd 25:00-04:00: invalid start time \"25:00\" \
                 (expected HH:MM from 00:00 to 23:59)"
                    .to_string(),
                "windows.deny[1]: Sat 1:00: missing \"-\" between start and end time \
                 (expected DAYS HH:MM-[DAY ]HH:MM)"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let garbage = [
            "-",
            "--",
            ":-:",
            "* :-:",
            "* -",
            "Mon -",
            "é 10:00-11:00",
            "Mon 1é:00-11:00",
            "Mon 10:00-1é:00",
            "Mon\u{0}10:00-11:00",
            "🦀 🦀-🦀 🦀",
            "* 99999999999999999999:00-1:00",
            "* 00:00-Mon",
            ",,, 1:00-2:00",
            "Mon-Mon-Mon 1:00-2:00",
            "* 00:00--01:00",
            "\t\n",
            "Sun 24:00-Sun 24:00",
            "*,* 00:00-00:01",
        ];
        for g in garbage {
            let _ = Windows::parse("UTC", &strings(&[g]), &strings(&[g]));
        }
        for tz in [
            "",
            " ",
            "../../../etc/passwd",
            "/",
            "Europe/",
            "Europe/Berlin/x",
            "\u{0}",
            "é",
        ] {
            assert!(
                Windows::parse(tz, &[], &[]).is_err(),
                "{tz:?} should be rejected"
            );
        }
        // The odd-but-valid ones behave sensibly.
        let w = windows("UTC", &["Mon-Mon 01:00-02:00", "*,* 05:00-05:01"], &[]);
        assert!(is_open(&w, utc(2026, 1, 5, 1, 30)));
        assert!(!is_open(&w, utc(2026, 1, 6, 1, 30)));
        assert!(is_open(&w, utc(2026, 1, 9, 5, 0)));
    }

    #[test]
    fn timezones_and_names() {
        assert_eq!(windows("UTC", &[], &[]).timezone_name(), "UTC");
        assert_eq!(windows("utc", &[], &[]).timezone_name(), "UTC");
        assert_eq!(
            windows("europe/berlin", &[], &[]).timezone_name(),
            "Europe/Berlin"
        );
        assert_eq!(Windows::always_open().timezone_name(), "UTC");
        // `local` must resolve on any host (jiff falls back to UTC).
        assert!(Windows::parse("local", &[], &[]).is_ok());
        let w = windows("Europe/Berlin", &["* 03:00-04:00"], &[]);
        assert_eq!(w.allow_entries(), &["* 03:00-04:00".to_string()][..]);
        assert!(w.deny_entries().is_empty());
        assert_eq!(w.clone(), w);
        assert_ne!(w, windows("UTC", &["* 03:00-04:00"], &[]));
    }

    #[test]
    fn verdicts_and_deny_wins() {
        let w = windows(
            "UTC",
            &["* 00:00-24:00"],
            &["Fri 18:00-Mon 08:00", "* 12:00-13:00"],
        );
        #[rustfmt::skip]
        let cases: &[((i8, i8, i8), WindowVerdict)] = &[
            ((7, 10, 0), WindowVerdict::Open),
            ((10, 10, 0), WindowVerdict::Denied { entry: "Fri 18:00-Mon 08:00".into() }),
            ((7, 12, 30), WindowVerdict::Denied { entry: "* 12:00-13:00".into() }),
            ((12, 8, 0), WindowVerdict::Open),
        ];
        for &((d, h, m), ref want) in cases {
            assert_eq!(&w.verdict(utc(2026, 1, d, h, m)), want, "Jan {d} {h}:{m}");
        }
        let only = windows("UTC", &["Mon 10:00-11:00"], &[]);
        assert_eq!(
            only.verdict(utc(2026, 1, 6, 10, 0)),
            WindowVerdict::OutsideAllow
        );
        let deny_only = windows("UTC", &[], &["Mon 10:00-11:00"]);
        assert_eq!(
            deny_only.verdict(utc(2026, 1, 6, 10, 0)),
            WindowVerdict::Open
        );
        assert_eq!(
            Windows::always_open().verdict(utc(2026, 1, 6, 10, 0)),
            WindowVerdict::Open
        );
    }

    #[test]
    fn civil_time_in_zone() {
        // 03:00 in Berlin in January is 02:00 UTC.
        let w = windows("Europe/Berlin", &["* 03:00-04:00"], &[]);
        assert!(is_open(&w, utc(2026, 1, 7, 2, 0)));
        assert!(!is_open(&w, utc(2026, 1, 7, 3, 0)));
        // In July (CEST) it is 01:00 UTC.
        assert!(is_open(&w, utc(2026, 7, 7, 1, 0)));
        assert!(!is_open(&w, utc(2026, 7, 7, 2, 0)));
    }

    #[test]
    fn dst_change_days() {
        // (zone, date of the change, the civil day's UTC bounds, entry, open minutes)
        #[rustfmt::skip]
        let cases: &[(&str, (i8, i8), &str, i64)] = &[
            // Berlin spring forward 2026-03-29: 02:00 CET -> 03:00 CEST.
            ("Europe/Berlin", (3, 29), "* 02:00-03:00", 0),
            ("Europe/Berlin", (3, 29), "Sun 01:00-04:00", 120),
            ("Europe/Berlin", (3, 29), "* 00:00-24:00", 23 * 60),
            // Berlin fall back 2026-10-25: 03:00 CEST -> 02:00 CET.
            ("Europe/Berlin", (10, 25), "* 02:00-03:00", 120),
            ("Europe/Berlin", (10, 25), "Sun 01:00-04:00", 240),
            ("Europe/Berlin", (10, 25), "* 00:00-24:00", 25 * 60),
            // New York spring forward 2026-03-08: 02:00 EST -> 03:00 EDT.
            ("America/New_York", (3, 8), "* 02:00-03:00", 0),
            ("America/New_York", (3, 8), "Sun 01:00-04:00", 120),
            // New York fall back 2026-11-01: 02:00 EDT -> 01:00 EST.
            ("America/New_York", (11, 1), "* 01:00-02:00", 120),
            ("America/New_York", (11, 1), "* 02:00-03:00", 60),
            ("America/New_York", (11, 1), "Sun 01:00-04:00", 240),
        ];
        for &(tz, (mo, d), entry, want) in cases {
            let w = windows(tz, &[entry], &[]);
            let from = at(tz, 2026, mo, d, 0, 0);
            let to = at(tz, 2026, mo, d + 1, 0, 0);
            assert_eq!(open_minutes(&w, from, to), want, "{tz} {mo}-{d} {entry}");
        }
    }

    #[test]
    fn dst_instants_around_the_change() {
        #[rustfmt::skip]
        let cases: &[(&str, Timestamp, bool)] = &[
            // Berlin 2026-03-29, change at 01:00 UTC.
            ("Europe/Berlin", utc(2026, 3, 28, 23, 59), false), // 00:59 CET
            ("Europe/Berlin", utc(2026, 3, 29, 0, 0), true),    // 01:00 CET
            ("Europe/Berlin", utc(2026, 3, 29, 0, 59), true),   // 01:59 CET
            ("Europe/Berlin", utc(2026, 3, 29, 1, 0), true),    // 03:00 CEST
            ("Europe/Berlin", utc(2026, 3, 29, 1, 59), true),   // 03:59 CEST
            ("Europe/Berlin", utc(2026, 3, 29, 2, 0), false),   // 04:00 CEST
            // Berlin 2026-10-25, change at 01:00 UTC.
            ("Europe/Berlin", utc(2026, 10, 24, 22, 59), false), // 00:59 CEST
            ("Europe/Berlin", utc(2026, 10, 24, 23, 0), true),   // 01:00 CEST
            ("Europe/Berlin", utc(2026, 10, 25, 0, 59), true),   // 02:59 CEST
            ("Europe/Berlin", utc(2026, 10, 25, 1, 0), true),    // 02:00 CET again
            ("Europe/Berlin", utc(2026, 10, 25, 2, 59), true),   // 03:59 CET
            ("Europe/Berlin", utc(2026, 10, 25, 3, 0), false),   // 04:00 CET
            // New York 2026-03-08, change at 07:00 UTC.
            ("America/New_York", utc(2026, 3, 8, 5, 59), false), // 00:59 EST
            ("America/New_York", utc(2026, 3, 8, 6, 0), true),   // 01:00 EST
            ("America/New_York", utc(2026, 3, 8, 7, 0), true),   // 03:00 EDT
            ("America/New_York", utc(2026, 3, 8, 7, 59), true),  // 03:59 EDT
            ("America/New_York", utc(2026, 3, 8, 8, 0), false),  // 04:00 EDT
            // New York 2026-11-01, change at 06:00 UTC.
            ("America/New_York", utc(2026, 11, 1, 4, 59), false), // 00:59 EDT
            ("America/New_York", utc(2026, 11, 1, 5, 0), true),   // 01:00 EDT
            ("America/New_York", utc(2026, 11, 1, 6, 0), true),   // 01:00 EST again
            ("America/New_York", utc(2026, 11, 1, 8, 59), true),  // 03:59 EST
            ("America/New_York", utc(2026, 11, 1, 9, 0), false),  // 04:00 EST
        ];
        for &(tz, t, want) in cases {
            let w = windows(tz, &["Sun 01:00-04:00"], &[]);
            assert_eq!(is_open(&w, t), want, "{tz} at {t}");
        }
    }

    #[test]
    fn next_open() {
        let w = windows("UTC", &["Mon-Thu 22:00-04:00"], &["Wed 00:00-24:00"]);
        #[rustfmt::skip]
        let cases: &[(Timestamp, Option<Timestamp>)] = &[
            // Open now: now itself, seconds and all.
            (utc(2026, 1, 5, 23, 0) + jiff::SignedDuration::from_secs(17),
             Some(utc(2026, 1, 5, 23, 0) + jiff::SignedDuration::from_secs(17))),
            // Monday noon: opens at 22:00.
            (utc(2026, 1, 5, 12, 0), Some(utc(2026, 1, 5, 22, 0))),
            (utc(2026, 1, 5, 21, 59) + jiff::SignedDuration::from_secs(30),
             Some(utc(2026, 1, 5, 22, 0))),
            // Tuesday 22:00 runs into the Wednesday deny: reopens Wed 24:00.
            (utc(2026, 1, 7, 0, 0), Some(utc(2026, 1, 8, 0, 0))),
            // Friday: next is Monday 22:00.
            (utc(2026, 1, 9, 5, 0), Some(utc(2026, 1, 12, 22, 0))),
        ];
        for &(now, want) in cases {
            assert_eq!(w.next_open(now), want, "from {now}");
        }
        let never = windows("UTC", &["Mon 10:00-11:00"], &["Mon 00:00-24:00"]);
        assert_eq!(never.next_open(utc(2026, 1, 5, 0, 0)), None);
        // Across the Berlin spring-forward: 02:30 never happens, 03:00 CEST does.
        let berlin = windows("Europe/Berlin", &["Sun 02:30-03:30"], &[]);
        assert_eq!(
            berlin.next_open(utc(2026, 3, 28, 12, 0)),
            Some(utc(2026, 3, 29, 1, 0))
        );
    }

    /// One entry, described the way a person reads it, for the reference.
    struct Naive {
        days: &'static [u32],
        start: u32,
        end_day: Option<u32>,
        end: u32,
    }

    /// A straightforward reading of one entry, without a weekly timeline.
    fn naive_contains(n: &Naive, day: u32, tod: u32) -> bool {
        match n.end_day {
            None => n.days.iter().any(|&d| {
                if n.start < n.end {
                    day == d && n.start <= tod && tod < n.end
                } else {
                    (day == d && tod >= n.start) || (day == (d + 1) % 7 && tod < n.end)
                }
            }),
            Some(ed) => {
                let s = n.days[0] * 1440 + n.start;
                let e = ed * 1440 + n.end;
                let now = day * 1440 + tod;
                let len = (e + 10080 - s) % 10080;
                let since = (now + 10080 - s) % 10080;
                since < len
            }
        }
    }

    #[test]
    fn matches_naive_reference() {
        let allow = [
            (
                "Mon-Thu 22:00-04:00",
                Naive {
                    days: &[0, 1, 2, 3],
                    start: 1320,
                    end_day: None,
                    end: 240,
                },
            ),
            (
                "* 03:00-05:00",
                Naive {
                    days: &[0, 1, 2, 3, 4, 5, 6],
                    start: 180,
                    end_day: None,
                    end: 300,
                },
            ),
            (
                "Sat,Sun-Mon 01:30-02:45",
                Naive {
                    days: &[5, 6, 0],
                    start: 90,
                    end_day: None,
                    end: 165,
                },
            ),
            (
                "Wed 11:00-Thu 13:00",
                Naive {
                    days: &[2],
                    start: 660,
                    end_day: Some(3),
                    end: 780,
                },
            ),
            (
                "Sun 23:00-Mon 00:30",
                Naive {
                    days: &[6],
                    start: 1380,
                    end_day: Some(0),
                    end: 30,
                },
            ),
        ];
        let deny = [
            (
                "Fri 18:00-Mon 08:00",
                Naive {
                    days: &[4],
                    start: 1080,
                    end_day: Some(0),
                    end: 480,
                },
            ),
            (
                "Tue 02:00-02:30",
                Naive {
                    days: &[1],
                    start: 120,
                    end_day: None,
                    end: 150,
                },
            ),
        ];
        let allow_src: Vec<&str> = allow.iter().map(|(s, _)| *s).collect();
        let deny_src: Vec<&str> = deny.iter().map(|(s, _)| *s).collect();
        let tz_name = "Europe/Berlin";
        let w = windows(tz_name, &allow_src, &deny_src);
        let tz = TimeZone::get(tz_name).expect("zone");
        // Three weeks spanning the 2026-03-29 spring-forward.
        let start = utc(2026, 3, 16, 0, 3);
        for step in 0..(3 * 7 * 24 * 60 / 7) {
            let t = start + jiff::SignedDuration::from_mins(step * 7);
            let dt = tz.to_datetime(t);
            let day = dt.weekday().to_monday_zero_offset() as u32;
            let tod = dt.hour() as u32 * 60 + dt.minute() as u32;
            let want =
                if let Some((src, _)) = deny.iter().find(|(_, n)| naive_contains(n, day, tod)) {
                    WindowVerdict::Denied {
                        entry: (*src).to_string(),
                    }
                } else if allow.iter().any(|(_, n)| naive_contains(n, day, tod)) {
                    WindowVerdict::Open
                } else {
                    WindowVerdict::OutsideAllow
                };
            assert_eq!(w.verdict(t), want, "at {t} ({dt})");
        }
    }
}

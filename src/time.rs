//! Time as rebootctl writes and shows it: the RFC 3339 timestamps of its
//! records, the age of such a timestamp, and durations for people. A leaf:
//! it imports nothing from the crate, and every layer may use it.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The current time as written into records: RFC 3339 in UTC with
/// millisecond precision (`2026-11-27T10:29:06.388Z`).
pub fn timestamp_now() -> String {
    let now = Timestamp::now();
    now.round(jiff::Unit::Millisecond)
        .unwrap_or(now)
        .to_string()
}

/// Whole seconds from `a` to `b`, zero when `b` is before `a`.
pub fn secs_between(a: Timestamp, b: Timestamp) -> Duration {
    Duration::from_secs(b.duration_since(a).as_secs().max(0).unsigned_abs())
}

/// Formats a duration for people in the one short style used everywhere:
/// its two largest units ("1d 6h", "3m 12s", "2h", "1s 250ms", "120ms").
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(4);
    let mut out = format!("{}{}", parts[first].0, parts[first].1);
    if let Some((n, unit)) = parts.get(first + 1).filter(|(n, _)| *n > 0) {
        out.push_str(&format!(" {n}{unit}"));
    }
    out
}

/// An instant for people in `tz`: weekday, time and zone ("Tue 22:00
/// CET"), with the date too when it is six days or more from `now` (the
/// weekday alone would be ambiguous).
pub fn local_time(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let zoned = t.to_zoned_datetime(tz.clone());
    let far = t.duration_since(now).as_secs().abs() >= 6 * 86_400;
    let pattern = if far {
        "%a %-d %b %H:%M %Z"
    } else {
        "%a %H:%M %Z"
    };
    zoned.strftime(pattern).to_string()
}

/// When something happens, for people: the local time and how far from
/// `now` ("Tue 22:00 CET, in 1d 6h", "Mon 09:12 UTC, 3h 2m ago").
pub fn when(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let at = local_time(t, now, tz);
    if t >= now {
        format!("{at}, in {}", human_duration(secs_between(now, t)))
    } else {
        format!("{at}, {} ago", human_duration(secs_between(t, now)))
    }
}

/// The age at `now` of an RFC 3339 time for people ("3m 12s"), or "?" when
/// it does not parse.
pub fn human_age(at: &str, now: Timestamp) -> String {
    at.parse::<Timestamp>()
        .map(|t| human_duration(secs_between(t, now)))
        .unwrap_or_else(|_| "?".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        let cases = [
            (Duration::from_millis(120), "120ms"),
            (Duration::from_millis(1_900), "1s 900ms"),
            (Duration::ZERO, "0ms"),
            (Duration::from_secs(192), "3m 12s"),
            (Duration::from_secs(7_200), "2h"),
            (Duration::from_secs(59), "59s"),
            (Duration::from_secs(3_600 + 59), "1h"),
            (
                Duration::from_secs(86_400 + 6 * 3_600 + 21 * 60 + 56),
                "1d 6h",
            ),
            (Duration::from_secs(3 * 86_400 + 59), "3d"),
            (Duration::from_secs(86_400 - 1), "23h 59m"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn ages_are_whole_seconds_never_negative_and_unparsable_is_a_question_mark() {
        let now: Timestamp = "2026-11-27T10:30:00Z".parse().unwrap();
        assert_eq!(human_age("2026-11-27T10:26:48.388Z", now), "3m 11s");
        assert_eq!(human_age("2026-11-27T10:31:00Z", now), "0ms");
        assert_eq!(human_age("yesterday", now), "?");
    }

    #[test]
    fn instants_for_people_name_the_weekday_the_zone_and_how_far() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // Sunday 2026-11-29 15:38 in Berlin (CET, UTC+1).
        let now: Timestamp = "2026-11-29T14:38:04Z".parse().unwrap();
        let opens: Timestamp = "2026-11-30T21:00:00Z".parse().unwrap();
        assert_eq!(when(opens, now, &tz), "Mon 22:00 CET, in 1d 6h");
        let past: Timestamp = "2026-11-29T11:36:00Z".parse().unwrap();
        assert_eq!(when(past, now, &tz), "Sun 12:36 CET, 3h 2m ago");
        let far: Timestamp = "2026-12-06T21:00:00Z".parse().unwrap();
        assert_eq!(local_time(far, now, &tz), "Sun 6 Dec 22:00 CET");
        assert_eq!(when(opens, now, &TimeZone::UTC), "Mon 21:00 UTC, in 1d 6h");
    }

    #[test]
    fn timestamps_have_milliseconds_and_parse_back() {
        let t = timestamp_now();
        assert!(t.ends_with('Z'), "{t}");
        assert!(t.parse::<Timestamp>().is_ok(), "{t}");
    }
}

//! Time as rebootctl writes and shows it: the RFC 3339 timestamps of its
//! records, the age of such a timestamp, and durations for people. A leaf:
//! it imports nothing from the crate, and every layer may use it.

use std::time::Duration;

use jiff::Timestamp;

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

/// Formats a duration for people ("3m 12s", "120ms").
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
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
            (Duration::from_millis(1_900), "1s"),
            (Duration::from_secs(192), "3m 12s"),
            (Duration::from_secs(7_200), "2h"),
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
    fn timestamps_have_milliseconds_and_parse_back() {
        let t = timestamp_now();
        assert!(t.ends_with('Z'), "{t}");
        assert!(t.parse::<Timestamp>().is_ok(), "{t}");
    }
}

//! Jittered exponential backoff between `backoff_min_sec` and
//! `backoff_max_sec` after transient errors. The delay is a pure function
//! of the attempt and a jitter value so it can be tested.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The delay before retry number `attempt` (1-based): `min * 2^(attempt-1)`
/// capped at `max`, then scaled by a factor in [0.5, 1.0] taken from
/// `jitter` (0.0..=1.0), never below `min`.
pub fn delay(attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let base = min.saturating_mul(1u32 << exp.min(31)).min(max);
    let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor).max(min).min(max)
}

/// A jitter value in [0, 1) from the clock and the process id; good enough
/// to spread a fleet's retries, no random crate needed.
pub fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (v >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn grows_exponentially_and_caps() {
        let cases = [
            (1, 1.0, 5),
            (2, 1.0, 10),
            (3, 1.0, 20),
            (4, 1.0, 40),
            (5, 1.0, 60),
            (50, 1.0, 60),
        ];
        for (attempt, j, secs) in cases {
            assert_eq!(
                delay(attempt, MIN, MAX, j),
                Duration::from_secs(secs),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for attempt in 0..40 {
            for j in [0.0, 0.25, 0.5, 0.99, 1.0, -3.0, 7.0] {
                let d = delay(attempt, MIN, MAX, j);
                assert!(d >= MIN && d <= MAX, "attempt {attempt} jitter {j}: {d:?}");
            }
        }
        assert_eq!(delay(4, MIN, MAX, 0.0), Duration::from_secs(20));
    }

    #[test]
    fn jitter_source_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}

//! The generic cell rate algorithm (GCRA), as arithmetic on one number per
//! subject: its theoretical arrival time (TAT), the time at which its
//! bucket would be empty again if no more requests came. A request costs
//! one emission interval `T` (a minute over the per-minute rate); it is
//! allowed while the TAT it would leave is at most `burst × T` ahead of
//! now. One number per subject is what makes the shared store cheap: a
//! read, a comparison and a write, done in one script.
//!
//! Times are microseconds on one clock (the store's): both the per-process
//! store and the Redis script feed the same two constructors of
//! [`Decision`], so what a client is told does not depend on which store
//! answered.

use std::time::Duration;

use crate::RateLimitError;

const MINUTE_MICROS: u64 = 60_000_000;

/// A rate (requests per minute) and a burst (requests allowed at once on a
/// full bucket). Both at least 1; the rate at most one a microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    per_minute: u32,
    burst: u32,
}

impl Quota {
    pub fn new(per_minute: u32, burst: u32) -> Result<Self, RateLimitError> {
        if per_minute == 0 {
            return Err(RateLimitError::InvalidQuota(
                "the rate must be at least 1 a minute",
            ));
        }
        if u64::from(per_minute) > MINUTE_MICROS {
            return Err(RateLimitError::InvalidQuota(
                "the rate must be at most 60000000 a minute",
            ));
        }
        if burst == 0 {
            return Err(RateLimitError::InvalidQuota("the burst must be at least 1"));
        }
        Ok(Self { per_minute, burst })
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `T`: what one request costs, in microseconds.
    pub fn emission_interval(&self) -> u64 {
        MINUTE_MICROS / u64::from(self.per_minute)
    }

    /// `burst × T`: how far ahead of now the TAT may be after a request.
    pub fn capacity(&self) -> u64 {
        self.emission_interval() * u64::from(self.burst)
    }
}

/// What a check decided, in the terms of the RateLimit header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests that would be allowed right after this one, at once.
    pub remaining: u32,
    /// Until one more request is allowed: for a refused request, when to
    /// retry; for an allowed one, when `remaining` grows by one.
    pub reset: Duration,
}

impl Decision {
    /// An allowed request that left the TAT `used` microseconds ahead of
    /// now (`0 < used <= capacity`).
    pub fn allowed(quota: &Quota, used: u64) -> Self {
        let (interval, capacity) = (quota.emission_interval(), quota.capacity());
        let used = used.min(capacity);
        let remaining = (capacity - used) / interval;
        // One more fits once the TAT is `(remaining + 1) × T` inside the
        // capacity again.
        let reset = (used + (remaining + 1) * interval).saturating_sub(capacity);
        Self {
            allowed: true,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(reset),
        }
    }

    /// A refused request, the TAT `used` microseconds ahead of now (one
    /// more request would have put it past the capacity).
    pub fn refused(quota: &Quota, used: u64) -> Self {
        let wait = (used + quota.emission_interval()).saturating_sub(quota.capacity());
        Self {
            allowed: false,
            remaining: 0,
            // Never zero: a refusal always asks for some patience.
            reset: Duration::from_micros(wait.max(1)),
        }
    }
}

/// One check: the subject's stored TAT (`None`: never seen, or expired)
/// at `now`. Returns the decision and, when allowed, the TAT to store.
pub fn check(quota: &Quota, stored: Option<u64>, now: u64) -> (Decision, Option<u64>) {
    let tat = stored.unwrap_or(now).max(now);
    let next = tat + quota.emission_interval();
    let used = next - now;
    if used > quota.capacity() {
        (Decision::refused(quota, tat - now), None)
    } else {
        (Decision::allowed(quota, used), Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn quotas_refuse_what_cannot_be_enforced() {
        assert!(Quota::new(0, 1).is_err());
        assert!(Quota::new(1, 0).is_err());
        assert!(Quota::new(60_000_001, 1).is_err());
        let quota = Quota::new(60, 10).unwrap();
        assert_eq!(quota.emission_interval(), SECOND);
        assert_eq!(quota.capacity(), 10 * SECOND);
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let quota = Quota::new(60, 3).unwrap();
        let now = 1_000 * SECOND;
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (decision, next) = check(&quota, tat, now);
            assert!(decision.allowed);
            remaining.push(decision.remaining);
            tat = next;
        }
        assert_eq!(remaining, [2, 1, 0]);
        let (refused, next) = check(&quota, tat, now);
        assert!(!refused.allowed);
        assert_eq!(next, None, "a refusal stores nothing");
        assert_eq!(refused.remaining, 0);
        assert_eq!(
            refused.reset,
            Duration::from_secs(1),
            "one interval to wait"
        );
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let quota = Quota::new(60, 2).unwrap();
        let start = 50 * SECOND;
        let (_, tat) = check(&quota, None, start);
        let (_, tat) = check(&quota, tat, start);
        // Empty now; half an interval later still refused, with half to go.
        let (refused, _) = check(&quota, tat, start + SECOND / 2);
        assert!(!refused.allowed);
        assert_eq!(refused.reset, Duration::from_micros(SECOND / 2));
        // One interval later exactly one more.
        let (allowed, tat) = check(&quota, tat, start + SECOND);
        assert!(allowed.allowed);
        assert_eq!(allowed.remaining, 0);
        let (refused, _) = check(&quota, tat, start + SECOND);
        assert!(!refused.allowed);
        // Long idle: back to a full bucket, not beyond it.
        let (fresh, _) = check(&quota, tat, start + 3600 * SECOND);
        assert_eq!(fresh.remaining, 1);
    }

    #[test]
    fn reset_is_when_one_more_request_fits() {
        let quota = Quota::new(60, 5).unwrap();
        let (first, _) = check(&quota, None, 0);
        // A full bucket less one: the spent unit comes back in one interval.
        assert_eq!(first.remaining, 4);
        assert_eq!(first.reset, Duration::from_secs(1));
        // Part of an interval already recovered: the rest of it.
        let allowed = Decision::allowed(&quota, 3 * SECOND + SECOND / 4);
        assert_eq!(allowed.remaining, 1);
        assert_eq!(allowed.reset, Duration::from_micros(SECOND / 4));
    }

    #[test]
    fn uneven_rates_round_the_interval_down() {
        // 7 a minute: 8.571428 s each; never more than the rate over time.
        let quota = Quota::new(7, 1).unwrap();
        assert_eq!(quota.emission_interval(), 8_571_428);
        let mut tat = None;
        let mut now = 0;
        let mut allowed = 0;
        while now < 60 * SECOND {
            let (decision, next) = check(&quota, tat, now);
            if decision.allowed {
                allowed += 1;
                tat = next;
            }
            now += SECOND / 10;
        }
        assert_eq!(allowed, 7);
    }
}

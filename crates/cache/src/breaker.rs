//! A circuit breaker in front of Redis. After `THRESHOLD` consecutive
//! failures Redis is skipped entirely for a cool-down, so a dead or hung
//! Redis costs requests nothing instead of one timeout each; then one call
//! (the probe) is let through per cool-down, and the cool-down doubles up to
//! a ceiling while probes keep failing. One success closes it.
//!
//! Time is passed in, so the logic is tested without clocks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const THRESHOLD: u32 = 3;
pub(crate) const FIRST_COOL_DOWN: Duration = Duration::from_secs(1);
pub(crate) const MAX_COOL_DOWN: Duration = Duration::from_secs(10);

/// How a call was let through; a failure counts differently for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Closed,
    Probe,
}

#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open: Option<Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    /// When the next probe may go.
    retry_at: Instant,
    cool_down: Duration,
}

impl Breaker {
    /// `None` when the call must skip Redis. While open, the first caller
    /// after `retry_at` becomes the probe and pushes `retry_at` one cool-down
    /// further, so at most one probe goes per cool-down without having to
    /// track whether a probe was cancelled.
    pub(crate) fn admit(&self, now: Instant) -> Option<Admission> {
        let mut state = self.lock();
        match &mut state.open {
            None => Some(Admission::Closed),
            Some(open) if now >= open.retry_at => {
                open.retry_at = now + open.cool_down;
                Some(Admission::Probe)
            }
            Some(_) => None,
        }
    }

    /// Whether a call made now would be let through (without claiming it).
    pub(crate) fn would_admit(&self, now: Instant) -> bool {
        self.lock().open.is_none_or(|open| now >= open.retry_at)
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.lock().open.is_some()
    }

    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.open = None;
    }

    /// Returns true when this failure opened the breaker.
    pub(crate) fn failed(&self, admission: Admission, now: Instant) -> bool {
        let mut state = self.lock();
        match (&mut state.open, admission) {
            (Some(open), Admission::Probe) => {
                open.cool_down = (open.cool_down * 2).min(MAX_COOL_DOWN);
                open.retry_at = now + open.cool_down;
                false
            }
            // A call admitted before the breaker opened, failing late: the
            // breaker already knows.
            (Some(_), Admission::Closed) => false,
            (None, _) => {
                state.consecutive_failures += 1;
                if state.consecutive_failures >= THRESHOLD {
                    state.open = Some(Open {
                        retry_at: now + FIRST_COOL_DOWN,
                        cool_down: FIRST_COOL_DOWN,
                    });
                    true
                } else {
                    false
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain fields, valid after any panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_it(breaker: &Breaker, now: Instant) {
        for i in 1..=THRESHOLD {
            let admission = breaker.admit(now).unwrap();
            assert_eq!(breaker.failed(admission, now), i == THRESHOLD);
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let breaker = Breaker::default();
        let now = Instant::now();
        breaker.failed(Admission::Closed, now);
        breaker.failed(Admission::Closed, now);
        breaker.succeeded();
        breaker.failed(Admission::Closed, now);
        assert!(!breaker.is_open(), "a success resets the count");
        let breaker = Breaker::default();
        open_it(&breaker, now);
        assert!(breaker.is_open());
        assert_eq!(breaker.admit(now), None);
        assert_eq!(breaker.admit(now + FIRST_COOL_DOWN / 2), None);
    }

    #[test]
    fn one_probe_per_cool_down_doubling_up_to_the_ceiling() {
        let breaker = Breaker::default();
        let start = Instant::now();
        open_it(&breaker, start);
        let mut now = start + FIRST_COOL_DOWN;
        let mut expected = FIRST_COOL_DOWN;
        for _ in 0..6 {
            assert!(breaker.would_admit(now));
            assert_eq!(breaker.admit(now), Some(Admission::Probe));
            assert_eq!(breaker.admit(now), None, "only one probe at a time");
            breaker.failed(Admission::Probe, now);
            expected = (expected * 2).min(MAX_COOL_DOWN);
            assert!(!breaker.would_admit(now + expected - Duration::from_millis(1)));
            now += expected;
        }
        assert_eq!(expected, MAX_COOL_DOWN);
        assert_eq!(breaker.admit(now), Some(Admission::Probe));
        breaker.succeeded();
        assert_eq!(breaker.admit(now), Some(Admission::Closed));
    }

    #[test]
    fn late_failures_of_calls_admitted_before_opening_do_not_extend_it() {
        let breaker = Breaker::default();
        let now = Instant::now();
        open_it(&breaker, now);
        breaker.failed(Admission::Closed, now + Duration::from_millis(900));
        assert_eq!(breaker.admit(now + FIRST_COOL_DOWN), Some(Admission::Probe));
    }
}

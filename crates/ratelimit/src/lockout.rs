//! Failed admin authentications, per client address: after
//! `max_failures` failures, each less than `window` after the one before,
//! the address is locked out for a delay that doubles with every further
//! failure (1 s, 2 s, 4 s, ... up to [`MAX_DELAY`]). While locked out the
//! password is not even checked, so guessing stops; a success clears the
//! address's record. With 5 failures allowed, a brute force gets about 15
//! guesses in its first 17 minutes and one per quarter hour after that.
//!
//! Per process: with N instances behind a load balancer an attacker gets
//! up to N × `max_failures` guesses before every instance locks it out;
//! the doubling is the same on each.
//!
//! Memory is bounded as in the per-process rate store: records older than
//! the window and not locked go first, then the oldest.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::subject::Subject;

/// The first lockout's length; each further failure doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest lockout.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most.
pub const CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// 0: failures are counted and logged, never locked out.
    pub max_failures: u32,
    /// How long a failure is remembered (from the latest one).
    pub window: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(900),
        }
    }
}

/// What one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the address is not locked out (yet).
    Counted { failures: u32 },
    /// The address is now locked out for `delay`.
    LockedOut { failures: u32, delay: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    capacity: usize,
    records: Mutex<HashMap<Subject, Record>>,
}

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Self {
        Self::with_capacity(policy, CAPACITY)
    }

    pub fn with_capacity(policy: LockoutPolicy, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            records: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> LockoutPolicy {
        self.policy
    }

    /// How long `subject` is still locked out, if it is.
    pub fn locked(&self, subject: &Subject, now: Instant) -> Option<Duration> {
        let records = self.lock();
        let until = records.get(subject)?.locked_until?;
        (until > now).then(|| until - now)
    }

    pub fn failed(&self, subject: &Subject, now: Instant) -> Failure {
        let mut records = self.lock();
        if !records.contains_key(subject) && records.len() >= self.capacity {
            self.evict(&mut records, now);
        }
        let record = records.entry(subject.clone()).or_insert(Record {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.duration_since(record.last_failure) >= self.policy.window {
            // Remembered no longer: this is a first failure again.
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        let failures = record.failures;
        if self.policy.max_failures == 0 || failures < self.policy.max_failures {
            return Failure::Counted { failures };
        }
        let doublings = (failures - self.policy.max_failures).min(30);
        let delay = FIRST_DELAY.saturating_mul(1u32 << doublings).min(MAX_DELAY);
        record.locked_until = Some(now + delay);
        Failure::LockedOut { failures, delay }
    }

    pub fn succeeded(&self, subject: &Subject) {
        self.lock().remove(subject);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, records: &mut HashMap<Subject, Record>, now: Instant) {
        let window = self.policy.window;
        records.retain(|_, record| {
            record.locked_until.is_some_and(|until| until > now)
                || now.duration_since(record.last_failure) < window
        });
        let target = self.capacity - self.capacity / 4;
        if records.len() <= target {
            return;
        }
        let mut by_age: Vec<(Instant, Subject)> = records
            .iter()
            .map(|(subject, record)| (record.last_failure, subject.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(at, _)| *at);
        for (_, subject) in by_age.into_iter().take(records.len() - target) {
            records.remove(&subject);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Record>> {
        // Plain records, valid after any panic.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Subject {
        Subject::address(text.parse().unwrap())
    }

    #[test]
    fn locks_out_after_the_allowed_failures_with_a_doubling_delay() {
        let lockout = Lockout::new(LockoutPolicy::default());
        let client = address("192.0.2.9");
        let mut now = Instant::now();
        for failures in 1..=4 {
            assert_eq!(lockout.failed(&client, now), Failure::Counted { failures });
            assert_eq!(lockout.locked(&client, now), None);
        }
        let mut delays = Vec::new();
        for failures in 5..=10 {
            let Failure::LockedOut { delay, failures: n } = lockout.failed(&client, now) else {
                panic!("locked out at failure {failures}");
            };
            assert_eq!(n, failures);
            assert_eq!(lockout.locked(&client, now), Some(delay));
            assert!(lockout.locked(&client, now + delay).is_none());
            delays.push(delay.as_secs());
            now += delay;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32]);
        assert_eq!(
            lockout.locked(&address("192.0.2.10"), now),
            None,
            "per address"
        );
    }

    #[test]
    fn the_delay_is_capped() {
        let lockout = Lockout::new(LockoutPolicy {
            max_failures: 1,
            window: Duration::from_secs(86_400),
        });
        let client = address("192.0.2.9");
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            if let Failure::LockedOut { delay, .. } = lockout.failed(&client, now) {
                last = delay;
            }
        }
        assert_eq!(last, MAX_DELAY);
    }

    #[test]
    fn a_success_or_a_quiet_window_forgets_the_failures() {
        let policy = LockoutPolicy {
            max_failures: 2,
            window: Duration::from_secs(60),
        };
        let lockout = Lockout::new(policy);
        let client = address("2001:db8::1");
        let now = Instant::now();
        lockout.failed(&client, now);
        lockout.succeeded(&client);
        assert_eq!(
            lockout.failed(&client, now),
            Failure::Counted { failures: 1 },
            "a success cleared it"
        );
        let later = now + policy.window;
        assert_eq!(
            lockout.failed(&client, later),
            Failure::Counted { failures: 1 },
            "a window without failures cleared it"
        );
        assert!(matches!(
            lockout.failed(&client, later + Duration::from_secs(59)),
            Failure::LockedOut { failures: 2, .. }
        ));
    }

    #[test]
    fn zero_failures_allowed_means_never_locked() {
        let lockout = Lockout::new(LockoutPolicy {
            max_failures: 0,
            window: Duration::from_secs(60),
        });
        let client = address("192.0.2.9");
        let now = Instant::now();
        for failures in 1..=50 {
            assert_eq!(lockout.failed(&client, now), Failure::Counted { failures });
        }
        assert_eq!(lockout.locked(&client, now), None);
    }

    #[test]
    fn memory_is_bounded_stale_records_first_then_the_oldest() {
        let policy = LockoutPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
        };
        let lockout = Lockout::with_capacity(policy, 4);
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        for i in 1..=4 {
            lockout.failed(&address(&format!("192.0.2.{i}")), start);
        }
        assert_eq!(lockout.len(), 4);
        // A window later all four are stale: they go, the new one stays.
        lockout.failed(&address("192.0.2.50"), at(60));
        assert_eq!(lockout.len(), 1);
        for i in 51..=53 {
            lockout.failed(&address(&format!("192.0.2.{i}")), at(i - 50 + 60));
        }
        // Full of live records: the oldest (.50) makes room.
        lockout.failed(&address("192.0.2.99"), at(70));
        assert_eq!(lockout.len(), 4);
        assert_eq!(
            lockout.failed(&address("192.0.2.51"), at(71)),
            Failure::Counted { failures: 2 },
            "remembered"
        );
        assert_eq!(
            lockout.failed(&address("192.0.2.50"), at(72)),
            Failure::Counted { failures: 1 },
            "the oldest was forgotten"
        );
    }
}

//! The circuit breaker of one connector: pure transitions. Its state lives in the connector item,
//! so it is read with the connector and written with the test result in one conditional write.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

/// Stored breaker state. `retry_at_ms` is when an open circuit admits a trial, or when a
/// half-open trial's lease runs out (so a trial that died does not hold the circuit forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Breaker {
    pub state: CircuitState,
    /// Consecutive counted failures.
    pub failures: u32,
    /// Opens in the current streak; each re-open doubles the open period.
    pub opens: u32,
    pub retry_at_ms: u64,
}

/// Thresholds and periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub threshold: u32,
    pub base_open: Duration,
    pub max_open: Duration,
    /// How long a half-open trial may take before another caller may try.
    pub trial_lease: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_open: Duration::from_secs(60),
            max_open: Duration::from_secs(15 * 60),
            trial_lease: Duration::from_secs(30),
        }
    }
}

/// Whether a probe may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allow,
    /// The circuit is ready for its one trial: the caller must claim it with a conditional write.
    Trial,
    Reject {
        retry_at_ms: u64,
    },
}

/// What a probe's result means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Nothing was sent (invalid config, blocked destination): not the destination's fault.
    NotCounted,
}

impl BreakerPolicy {
    pub fn admit(&self, b: &Breaker, now_ms: u64) -> Admission {
        match b.state {
            CircuitState::Closed => Admission::Allow,
            CircuitState::Open | CircuitState::HalfOpen if now_ms < b.retry_at_ms => {
                Admission::Reject {
                    retry_at_ms: b.retry_at_ms,
                }
            }
            CircuitState::Open | CircuitState::HalfOpen => Admission::Trial,
        }
    }

    /// The state that claims the trial.
    pub fn start_trial(&self, b: &Breaker, now_ms: u64) -> Breaker {
        Breaker {
            state: CircuitState::HalfOpen,
            retry_at_ms: now_ms + self.trial_lease.as_millis() as u64,
            ..*b
        }
    }

    /// How long the `opens`-th open (0-based) lasts: base, doubled per re-open, capped.
    pub fn open_period(&self, opens: u32) -> Duration {
        let factor = 1u32.checked_shl(opens).unwrap_or(u32::MAX);
        self.base_open
            .checked_mul(factor)
            .map_or(self.max_open, |d| d.min(self.max_open))
    }

    pub fn record(&self, b: &Breaker, outcome: Outcome, now_ms: u64) -> Breaker {
        let open = |opens: u32, failures: u32| Breaker {
            state: CircuitState::Open,
            failures,
            opens: opens + 1,
            retry_at_ms: now_ms + self.open_period(opens).as_millis() as u64,
        };
        match (outcome, b.state) {
            (Outcome::Success, _) => Breaker::default(),
            (Outcome::NotCounted, CircuitState::HalfOpen) => Breaker {
                state: CircuitState::Open,
                retry_at_ms: now_ms,
                ..*b
            },
            (Outcome::NotCounted, _) => *b,
            (Outcome::Failure, CircuitState::HalfOpen | CircuitState::Open) => {
                open(b.opens, b.failures + 1)
            }
            (Outcome::Failure, CircuitState::Closed) if b.failures + 1 >= self.threshold => {
                open(0, b.failures + 1)
            }
            (Outcome::Failure, CircuitState::Closed) => Breaker {
                failures: b.failures + 1,
                ..*b
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn five_consecutive_failures_open_the_circuit() {
        let p = BreakerPolicy::default();
        let mut b = Breaker::default();
        for i in 1..5 {
            b = p.record(&b, Outcome::Failure, 0);
            assert_eq!((b.state, b.failures), (CircuitState::Closed, i));
            assert_eq!(p.admit(&b, 0), Admission::Allow);
        }
        b = p.record(&b, Outcome::Failure, 1000);
        assert_eq!(b.state, CircuitState::Open);
        assert_eq!(b.retry_at_ms, 1000 + MIN);
        assert_eq!(
            p.admit(&b, 1000 + MIN - 1),
            Admission::Reject {
                retry_at_ms: 1000 + MIN
            }
        );
        assert_eq!(p.admit(&b, 1000 + MIN), Admission::Trial);
    }

    #[test]
    fn a_success_resets_the_count() {
        let p = BreakerPolicy::default();
        let mut b = Breaker::default();
        for _ in 0..4 {
            b = p.record(&b, Outcome::Failure, 0);
        }
        b = p.record(&b, Outcome::Success, 0);
        assert_eq!(b, Breaker::default());
        b = p.record(&b, Outcome::Failure, 0);
        assert_eq!((b.state, b.failures), (CircuitState::Closed, 1));
    }

    #[test]
    fn uncounted_outcomes_change_nothing_when_closed() {
        let p = BreakerPolicy::default();
        let b = Breaker {
            failures: 4,
            ..Default::default()
        };
        assert_eq!(p.record(&b, Outcome::NotCounted, 0), b);
    }

    #[test]
    fn half_open_admits_one_trial_until_its_lease_ends() {
        let p = BreakerPolicy::default();
        let open = Breaker {
            state: CircuitState::Open,
            failures: 5,
            opens: 1,
            retry_at_ms: MIN,
        };
        assert_eq!(p.admit(&open, MIN), Admission::Trial);
        let trial = p.start_trial(&open, MIN);
        assert_eq!(trial.state, CircuitState::HalfOpen);
        assert_eq!(
            p.admit(&trial, MIN + 1),
            Admission::Reject {
                retry_at_ms: MIN + 30_000
            }
        );
        assert_eq!(
            p.admit(&trial, MIN + 30_000),
            Admission::Trial,
            "a dead trial's lease runs out"
        );
    }

    #[test]
    fn a_failed_trial_reopens_for_twice_as_long_up_to_fifteen_minutes() {
        let p = BreakerPolicy::default();
        let mut b = Breaker {
            state: CircuitState::Open,
            failures: 5,
            opens: 1,
            retry_at_ms: 0,
        };
        let mut periods = Vec::new();
        for _ in 0..6 {
            let trial = p.start_trial(&b, 0);
            b = p.record(&trial, Outcome::Failure, 0);
            assert_eq!(b.state, CircuitState::Open);
            periods.push(b.retry_at_ms / MIN);
        }
        assert_eq!(periods, [2, 4, 8, 15, 15, 15]);
        assert_eq!(p.open_period(40), Duration::from_secs(900), "no overflow");
    }

    #[test]
    fn a_successful_trial_closes_and_an_uncounted_one_returns_the_trial() {
        let p = BreakerPolicy::default();
        let trial = p.start_trial(
            &Breaker {
                state: CircuitState::Open,
                failures: 5,
                opens: 1,
                retry_at_ms: 0,
            },
            0,
        );
        assert_eq!(p.record(&trial, Outcome::Success, 5), Breaker::default());
        let back = p.record(&trial, Outcome::NotCounted, 5);
        assert_eq!((back.state, back.retry_at_ms), (CircuitState::Open, 5));
        assert_eq!(p.admit(&back, 5), Admission::Trial);
    }
}

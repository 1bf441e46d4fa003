//! The per-tenant rate limit of the test endpoint: GCRA (the generic cell rate algorithm), a
//! bucket of `limit` requests refilled at `limit` per `window`.
//!
//! A fixed window admits `limit` at 12:00:59 and `limit` more at 12:01:00; here a burst is never
//! more than `limit`, and what follows it is paced by the refill (one request per
//! `window / limit`). The state is one number per tenant, the theoretical arrival time (TAT): the
//! moment the bucket would be full again. A request at `now` is admitted when
//! `max(TAT, now) + interval - now <= window`, and moves TAT to `max(TAT, now) + interval`.
//!
//! In DynamoDB the item `TENANT#<tenant>` / `RATE` holds TAT (µs). `max` is not an update
//! expression, so the store offers the two cases as conditional writes: "start a burst" (the
//! bucket is full: TAT absent or ≤ now → now + interval) and "continue a burst" (now < TAT ≤
//! now + window - interval → TAT + interval). Each is atomic, so admission is exact under any
//! concurrency. One round trip in the common cases (a first request after a quiet spell; a refused
//! one, whose failed condition returns the stored TAT); two inside a burst.

use crate::store::{RateBucket, StoreError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The policy: a bucket of `limit` requests, refilled at `limit` per `window`, per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub limit: u32,
    pub window: Duration,
}

/// The outcome of one request against the limit, with what the rate headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Requests that would be admitted right now (after this one).
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub full_in_secs: u64,
    /// Whole seconds until the next request would be admitted (0 when one would be now).
    pub retry_after_secs: u64,
}

/// What GCRA says of one request at `now` given the stored TAT (µs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gcra {
    /// Admitted; the new TAT.
    Admit(u64),
    /// Refused; the TAT stays.
    Refuse,
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

impl RatePolicy {
    /// Time between two refills, in µs (at least 1).
    pub fn interval_us(&self) -> u64 {
        (self.window.as_micros() as u64 / u64::from(self.limit.max(1))).max(1)
    }

    /// The bucket's depth in µs: `limit` intervals (≤ the window, so a burst is at most `limit`).
    fn depth_us(&self) -> u64 {
        self.interval_us() * u64::from(self.limit.max(1))
    }

    /// The algorithm itself, pure: `tat` is the stored TAT (None when absent), `now` in µs.
    pub fn step(&self, tat: Option<u64>, now: u64) -> Gcra {
        let next = tat.unwrap_or(0).max(now) + self.interval_us();
        if next - now <= self.depth_us() {
            Gcra::Admit(next)
        } else {
            Gcra::Refuse
        }
    }

    /// The headers' view of a bucket whose TAT is `tat` at `now` (µs).
    pub fn decision(&self, allowed: bool, tat: u64, now: u64) -> RateDecision {
        let interval = self.interval_us();
        let ahead = tat.saturating_sub(now);
        let room = self.depth_us().saturating_sub(ahead);
        // The next request needs TAT + interval - t <= depth, i.e. t >= TAT + interval - depth.
        let wait = (tat + interval).saturating_sub(self.depth_us() + now);
        RateDecision {
            allowed,
            remaining: (room / interval).min(u64::from(self.limit)) as u32,
            full_in_secs: ahead.div_ceil(1_000_000),
            retry_after_secs: wait.div_ceil(1_000_000),
        }
    }

    /// `RateLimit-Policy` (IETF httpapi draft, structured-field form): quota and window.
    pub fn policy_header(&self) -> String {
        format!("\"tenant\";q={};w={}", self.limit, self.window.as_secs())
    }

    /// Takes one request from the tenant's bucket, in DynamoDB.
    pub async fn admit<B: RateBucket>(
        &self,
        bucket: &B,
        tenant: &str,
        now: SystemTime,
    ) -> Result<RateDecision, StoreError> {
        let now = micros(now);
        let interval = self.interval_us();
        // Kept until the bucket is full again; a bucket TTL has removed reads as full, which it is.
        let expires_at = (now + self.depth_us()).div_ceil(1_000_000) + 1;
        let stored = match bucket
            .start_burst(tenant, now, now + interval, expires_at)
            .await?
        {
            Ok(()) => return Ok(self.decision(true, now + interval, now)),
            Err(tat) => tat,
        };
        let Gcra::Admit(_) = self.step(Some(stored), now) else {
            return Ok(self.decision(false, stored, now));
        };
        let highest = now + self.depth_us() - interval;
        match bucket
            .continue_burst(tenant, now, interval, highest, expires_at)
            .await?
        {
            Ok(tat) => Ok(self.decision(true, tat, now)),
            // TAT only grows: it passed `highest` meanwhile (concurrent requests took the room).
            Err(tat) => Ok(self.decision(false, tat, now)),
        }
    }
}

impl RateDecision {
    /// `RateLimit` (IETF httpapi draft): `r` requests admitted now, `t` seconds until full.
    pub fn header(&self) -> String {
        format!("\"tenant\";r={};t={}", self.remaining, self.full_in_secs)
    }

    /// `Retry-After` of a 429: whole seconds until the next admission, at least 1.
    pub fn retry_after(&self) -> u64 {
        self.retry_after_secs.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    const S: u64 = 1_000_000;

    fn per_minute(limit: u32) -> RatePolicy {
        RatePolicy {
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// Runs `n` requests at `now` through the pure step; returns how many were admitted.
    fn burst(p: &RatePolicy, tat: &mut Option<u64>, now: u64, n: usize) -> usize {
        (0..n)
            .filter(|_| match p.step(*tat, now) {
                Gcra::Admit(next) => {
                    *tat = Some(next);
                    true
                }
                Gcra::Refuse => false,
            })
            .count()
    }

    #[test]
    fn no_double_burst_at_a_window_edge() {
        let p = per_minute(100);
        let mut tat = None;
        let t0 = 1_700_000_000 * S; // 12:00:59, say
        assert_eq!(burst(&p, &mut tat, t0 + 59 * S, 100), 100);
        assert_eq!(burst(&p, &mut tat, t0 + 59 * S, 1), 0, "the 101st waits");
        // One second later (a fixed window's edge): only what refilled in that second, 100/60.
        assert_eq!(burst(&p, &mut tat, t0 + 60 * S, 100), 1);
        // Ten seconds after the first burst: 10 s of refill is 16, one of them taken at +60.
        assert_eq!(burst(&p, &mut tat, t0 + 69 * S, 100), 15);
        // A full window of quiet refills the whole bucket, never more.
        assert_eq!(burst(&p, &mut tat, t0 + 200 * S, 150), 100);
    }

    #[test]
    fn paced_after_a_burst() {
        let p = per_minute(100); // one every 0.6 s
        let mut tat = None;
        let t = 1_000 * S;
        assert_eq!(burst(&p, &mut tat, t, 100), 100);
        assert_eq!(burst(&p, &mut tat, t + 599_999, 1), 0);
        assert_eq!(burst(&p, &mut tat, t + 600_000, 1), 1);
        assert_eq!(burst(&p, &mut tat, t + 600_000, 1), 0);
        assert_eq!(burst(&p, &mut tat, t + 1_200_000, 1), 1);
    }

    #[test]
    fn headers_say_what_is_admitted_now_when_full_and_when_to_retry() {
        let p = per_minute(100);
        let now = 5_000 * S;
        // A full bucket after one request: 99 left, full again in 0.6 s → 1 s.
        let d = p.decision(true, now + p.interval_us(), now);
        assert_eq!(
            (d.remaining, d.full_in_secs, d.retry_after_secs),
            (99, 1, 0)
        );
        assert_eq!(d.header(), "\"tenant\";r=99;t=1");
        // An empty bucket: nothing now, full in 60 s, next admission in 0.6 s → 1 s.
        let d = p.decision(false, now + 60 * S, now);
        assert_eq!((d.remaining, d.full_in_secs, d.retry_after()), (0, 60, 1));
        // A slow refill (2 per hour): the next admission is 30 minutes away.
        let slow = RatePolicy {
            limit: 2,
            window: Duration::from_secs(3600),
        };
        let d = slow.decision(false, now + 3600 * S, now);
        assert_eq!(
            (d.remaining, d.full_in_secs, d.retry_after()),
            (0, 3600, 1800)
        );
        assert_eq!(p.policy_header(), "\"tenant\";q=100;w=60");
    }

    /// The two conditional writes, as DynamoDB evaluates them (one item per tenant).
    #[derive(Default)]
    struct Fake(Mutex<HashMap<String, u64>>, Mutex<usize>);

    impl RateBucket for Fake {
        async fn start_burst(
            &self,
            tenant: &str,
            now: u64,
            tat: u64,
            _expires_at: u64,
        ) -> Result<Result<(), u64>, StoreError> {
            *self.1.lock().unwrap() += 1;
            let mut map = self.0.lock().unwrap();
            match map.get(tenant) {
                Some(&stored) if stored > now => Ok(Err(stored)),
                _ => {
                    map.insert(tenant.into(), tat);
                    Ok(Ok(()))
                }
            }
        }

        async fn continue_burst(
            &self,
            tenant: &str,
            now: u64,
            step: u64,
            highest: u64,
            _expires_at: u64,
        ) -> Result<Result<u64, u64>, StoreError> {
            *self.1.lock().unwrap() += 1;
            let mut map = self.0.lock().unwrap();
            let stored = map.get(tenant).copied().unwrap_or(0);
            if stored > now && stored <= highest {
                map.insert(tenant.into(), stored + step);
                Ok(Ok(stored + step))
            } else {
                Ok(Err(stored))
            }
        }
    }

    #[tokio::test]
    async fn admission_through_the_store_takes_one_or_two_round_trips() {
        let p = per_minute(3);
        let fake = Fake::default();
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let trips = || *fake.1.lock().unwrap();
        let d = p.admit(&fake, "t", now).await.unwrap();
        assert_eq!((d.allowed, d.remaining, trips()), (true, 2, 1));
        let d = p.admit(&fake, "t", now).await.unwrap();
        assert_eq!((d.allowed, d.remaining, trips()), (true, 1, 3));
        let d = p.admit(&fake, "t", now).await.unwrap();
        assert_eq!((d.allowed, d.remaining, trips()), (true, 0, 5));
        let d = p.admit(&fake, "t", now).await.unwrap();
        assert_eq!(
            (d.allowed, d.retry_after(), trips()),
            (false, 20, 6),
            "refused in one"
        );
        // Another tenant has its own bucket.
        assert!(p.admit(&fake, "u", now).await.unwrap().allowed);
        // A quiet window later the bucket is full: one round trip again.
        let later = now + Duration::from_secs(61);
        let d = p.admit(&fake, "t", later).await.unwrap();
        assert_eq!((d.allowed, d.remaining, trips()), (true, 2, 8));
    }
}

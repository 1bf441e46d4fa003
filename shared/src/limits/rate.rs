//! A fixed-window rate limit per tenant, counted in DynamoDB.
//!
//! The window item `TENANT#<tenant>` / `RATE#<window start>` is incremented by one conditional
//! `UpdateItem` per request (`hits < limit`), so admission is exact under any concurrency. Window
//! items carry a TTL attribute; they are never read again after their window, so it does not matter
//! when (or whether) TTL deletes them.

use crate::store::{HitCounter, StoreError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The policy: `limit` requests per `window` per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub limit: u32,
    pub window: Duration,
}

/// The outcome of one request against the limit, with what the `RateLimit` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub remaining: u32,
    /// Seconds until the window resets (at least 1).
    pub reset_secs: u64,
}

/// The window a moment falls in: (start, end) in whole seconds since the epoch.
pub fn window_of(now: SystemTime, window: Duration) -> (u64, u64) {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let len = window.as_secs().max(1);
    let start = now - now % len;
    (start, start + len)
}

/// Seconds from `now` to `end`, never 0 (a client told to retry in 0 s would retry at once).
fn secs_until(now: SystemTime, end: u64) -> u64 {
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    ((end as f64 - now).ceil() as u64).max(1)
}

impl RatePolicy {
    /// `RateLimit-Policy` (IETF httpapi draft, structured-field form).
    pub fn policy_header(&self) -> String {
        format!("\"tenant\";q={};w={}", self.limit, self.window.as_secs())
    }

    /// Counts one request against the tenant's current window.
    pub async fn admit<C: HitCounter>(
        &self,
        counter: &C,
        tenant: &str,
        now: SystemTime,
    ) -> Result<RateDecision, StoreError> {
        let (start, end) = window_of(now, self.window);
        // Kept a window past its end; never read after its window, so TTL timing does not matter.
        let expires_at = end + self.window.as_secs();
        let reset_secs = secs_until(now, end);
        Ok(
            match counter
                .count_hit(tenant, start, self.limit, expires_at)
                .await?
            {
                Some(hits) => RateDecision {
                    allowed: true,
                    remaining: self.limit.saturating_sub(hits),
                    reset_secs,
                },
                None => RateDecision {
                    allowed: false,
                    remaining: 0,
                    reset_secs,
                },
            },
        )
    }
}

impl RateDecision {
    /// `RateLimit` (IETF httpapi draft, structured-field form).
    pub fn header(&self) -> String {
        format!("\"tenant\";r={};t={}", self.remaining, self.reset_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_their_length() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_millis(s);
        let w = Duration::from_secs(60);
        assert_eq!(window_of(at(120_000), w), (120, 180));
        assert_eq!(window_of(at(179_999), w), (120, 180));
        assert_eq!(window_of(at(180_000), w), (180, 240));
        assert_eq!(secs_until(at(179_999), 180), 1);
        assert_eq!(secs_until(at(120_000), 180), 60);
        assert_eq!(secs_until(at(150_500), 180), 30);
        assert_eq!(secs_until(at(181_000), 180), 1, "never 0 or negative");
    }

    #[test]
    fn headers() {
        let p = RatePolicy {
            limit: 100,
            window: Duration::from_secs(60),
        };
        assert_eq!(p.policy_header(), "\"tenant\";q=100;w=60");
        assert_eq!(
            RateDecision {
                allowed: true,
                remaining: 42,
                reset_secs: 17
            }
            .header(),
            "\"tenant\";r=42;t=17"
        );
    }
}

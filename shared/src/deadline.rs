//! Every invocation answers before its Lambda timeout: a stalled dependency (DynamoDB or KMS that
//! accept a connection and never answer) becomes our own `503 unavailable` with `Retry-After`, not
//! a function timeout that API Gateway turns into its own error.
//!
//! The deadline is Lambda's (`Lambda-Runtime-Deadline-Ms`, in the request context) when the runtime
//! gives a usable one, capped by `FUNCTION_TIMEOUT_SECONDS` (the template mirrors each function's
//! `Timeout` into it); local runtimes send a relative or zero deadline, which reads as a moment in
//! the past, so there only the configured timeout counts. The answer is due `MARGIN` before it.

use crate::error::ApiError;
use lambda_http::{Request, RequestExt};
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// The function timeout when `FUNCTION_TIMEOUT_SECONDS` is not set (the template's default).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Time kept in hand before the function's own timeout: the 503 is built and returned, and the
/// runtime posts it, well inside this.
pub const MARGIN: Duration = Duration::from_millis(1500);

/// The configured function timeout, read from the environment once (at init, by `Settings`).
pub fn function_timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT.get_or_init(|| match std::env::var("FUNCTION_TIMEOUT_SECONDS") {
        Err(_) => DEFAULT_FUNCTION_TIMEOUT,
        Ok(v) if v.trim().is_empty() => DEFAULT_FUNCTION_TIMEOUT,
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or_else(|| panic!("FUNCTION_TIMEOUT_SECONDS must be a positive whole number")),
    })
}

/// The longest any single call may take: the whole invocation less the margin.
pub fn operation_budget() -> Duration {
    function_timeout().saturating_sub(MARGIN)
}

/// The most a list or CRUD request takes in all: DynamoDB and KMS answer in milliseconds, so a
/// stalled one becomes a 503 within 5 s, whatever the function's timeout. (An attempt may take
/// `config::AWS_ATTEMPT_TIMEOUT`, which leaves time for the one retry of a lost connection.)
pub const REQUEST_BUDGET: Duration = Duration::from_secs(4);

/// When a list or CRUD request's answer is due: the invocation's deadline, or `REQUEST_BUDGET`
/// from now if that comes first.
pub fn crud_answer_by(req: &Request) -> Instant {
    answer_by(req).min(Instant::now() + REQUEST_BUDGET)
}

/// When the answer to this invocation is due.
pub fn answer_by(req: &Request) -> Instant {
    let lambda = req.lambda_context_ref().map(|c| c.deadline());
    due_at(
        lambda,
        SystemTime::now(),
        Instant::now(),
        function_timeout(),
    )
}

/// Pure form of [`answer_by`]: the earlier of Lambda's deadline (when it lies ahead) and
/// `now + timeout`, less the margin.
pub fn due_at(
    lambda: Option<SystemTime>,
    now: SystemTime,
    now_instant: Instant,
    timeout: Duration,
) -> Instant {
    let left = lambda
        .and_then(|d| d.duration_since(now).ok())
        .filter(|left| !left.is_zero())
        .map_or(timeout, |left| left.min(timeout));
    now_instant + left.saturating_sub(MARGIN)
}

/// Runs `work` until `by`; past it the work is dropped (its calls cancelled: DynamoDB applies a
/// write or transaction whole or not at all) and the answer is 503 `unavailable`.
pub async fn within<T>(
    by: Instant,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    // Boxed: a handler's whole future is large in unoptimized builds, and the timer wrapping it
    // inline doubled the stack the test threads need (one allocation per request).
    match tokio::time::timeout_at(by.into(), Box::pin(work)).await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("a dependency did not answer before the invocation's deadline");
            Err(ApiError::unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_of_lambdas_deadline_and_the_configured_timeout_less_the_margin() {
        let now = SystemTime::now();
        let at = Instant::now();
        let ten = Duration::from_secs(10);
        // Lambda's deadline 4 s ahead: due 2.5 s from now.
        let d = due_at(Some(now + Duration::from_secs(4)), now, at, ten);
        assert_eq!(d - at, Duration::from_millis(2500));
        // A deadline beyond the configured timeout is capped by it.
        let d = due_at(Some(now + Duration::from_secs(60)), now, at, ten);
        assert_eq!(d - at, Duration::from_millis(8500));
        // Local runtimes: none, zero, or relative (in the past as an absolute time).
        for lambda in [
            None,
            Some(SystemTime::UNIX_EPOCH),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(600_000)),
            Some(now),
        ] {
            assert_eq!(
                due_at(lambda, now, at, ten) - at,
                Duration::from_millis(8500)
            );
        }
        // Less time than the margin: due at once.
        let d = due_at(Some(now + Duration::from_secs(1)), now, at, ten);
        assert_eq!(d, at);
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_a_503_with_retry_after() {
        let by = Instant::now() + Duration::from_millis(50);
        let stalled = within(by, std::future::pending::<Result<(), ApiError>>()).await;
        let e = stalled.unwrap_err();
        assert_eq!(
            (e.status, e.code, e.retry_after),
            (503, "unavailable", Some(1))
        );
        let quick = within(by, async { Ok::<_, ApiError>(7) }).await;
        assert_eq!(quick.unwrap(), 7);
    }
}

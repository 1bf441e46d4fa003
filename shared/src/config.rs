//! Configuration read once at init from the environment.

use crate::limits::breaker::BreakerPolicy;
use crate::limits::rate::RatePolicy;
use crate::token::{ClaimNames, TokenVerifier};
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Settings every function reads at init; a missing required variable stops the function with a clear message.
pub struct Settings {
    pub table_name: String,
    /// Only the functions that encrypt or decrypt need it.
    pub kms_key_id: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// JWKS URL of the token issuer (RS256/ES256); takes precedence over `JWT_SECRET`.
    pub jwks_url: Option<String>,
    /// Claim names for tenants and role (`TENANT_CLAIM`, `ROLE_CLAIM`).
    pub claim_names: ClaimNames,
    /// Tests admitted per tenant per window (`TEST_RATE_LIMIT`, default 100).
    pub test_rate_limit: u32,
    /// The rate-limit window (`TEST_RATE_WINDOW_SECONDS`, default 60).
    pub test_rate_window: Duration,
    pub sweep: SweepSettings,
    /// The sweep's shard queue (`SWEEP_QUEUE_URL`): set, a scheduled event fans out one message
    /// per shard; unset, it sweeps every shard itself.
    pub sweep_queue_url: Option<String>,
    /// Consecutive probe failures that open a connector's circuit (`BREAKER_FAILURE_THRESHOLD`, default 5).
    pub breaker_threshold: u32,
    /// How long test results stay in a connector's history (`HISTORY_DAYS`, default 30).
    pub history: Duration,
    /// The EventBridge bus of status-change events (`EVENT_BUS_NAME`, default `default`).
    pub event_bus_name: String,
    /// The queue that keeps an event EventBridge would not take (`EVENTS_DLQ_URL`).
    pub events_dlq_url: Option<String>,
}

/// The scheduled sweep's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSettings {
    /// Time between two scheduled probes of one connector (`SWEEP_INTERVAL_SECONDS`, default 3600).
    pub interval: Duration,
    /// Probes run at once (`SWEEP_CONCURRENCY`, default 16).
    pub concurrency: usize,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            concurrency: 16,
        }
    }
}

pub const DEFAULT_JWT_ISSUER: &str = "connectors-api-local";
pub const DEFAULT_JWT_AUDIENCE: &str = "connectors-api";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match var(name) {
        None => default,
        Some(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a positive whole number")),
    }
}

/// `true` or `false` (absent: false); anything else stops the function at init.
fn flag(name: &str) -> bool {
    match var(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => panic!("{name} must be true or false"),
    }
}

impl Settings {
    pub fn from_env() -> Self {
        // Read now, so a bad value stops the function at init rather than at its first request.
        crate::deadline::function_timeout();
        crate::kinds::aws::allow_function_role(flag("ALLOW_FUNCTION_ROLE"));
        let settings = Self::from_env_for_authorizer();
        if settings.table_name.is_empty() {
            panic!("TABLE_NAME must be set to the DynamoDB table name");
        }
        settings
    }

    /// The settings without the table, which the authorizer does not use.
    pub fn from_env_for_authorizer() -> Self {
        Self {
            table_name: var("TABLE_NAME").unwrap_or_default(),
            kms_key_id: var("KMS_KEY_ID"),
            jwt_secret: var("JWT_SECRET"),
            jwt_issuer: var("JWT_ISSUER").unwrap_or_else(|| DEFAULT_JWT_ISSUER.to_string()),
            jwt_audience: var("JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.to_string()),
            jwks_url: var("JWKS_URL"),
            claim_names: ClaimNames {
                tenant: var("TENANT_CLAIM"),
                role: var("ROLE_CLAIM"),
            },
            test_rate_limit: number("TEST_RATE_LIMIT", 100),
            test_rate_window: Duration::from_secs(number("TEST_RATE_WINDOW_SECONDS", 60)),
            breaker_threshold: number("BREAKER_FAILURE_THRESHOLD", 5),
            sweep: SweepSettings {
                interval: Duration::from_secs(number("SWEEP_INTERVAL_SECONDS", 3600)),
                concurrency: number("SWEEP_CONCURRENCY", 16),
            },
            sweep_queue_url: var("SWEEP_QUEUE_URL"),
            history: Duration::from_secs(86_400 * number::<u64>("HISTORY_DAYS", 30).max(1)),
            event_bus_name: var("EVENT_BUS_NAME").unwrap_or_else(|| "default".to_string()),
            events_dlq_url: var("EVENTS_DLQ_URL"),
        }
    }

    pub fn breaker_policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            threshold: self.breaker_threshold.max(1),
            ..BreakerPolicy::default()
        }
    }

    pub fn rate_policy(&self) -> RatePolicy {
        RatePolicy {
            limit: self.test_rate_limit,
            window: self.test_rate_window,
        }
    }

    /// The KMS key for envelope encryption; panics at init when a function that needs it lacks it.
    pub fn require_kms_key(&self) -> &str {
        self.kms_key_id
            .as_deref()
            .unwrap_or_else(|| panic!("KMS_KEY_ID must be set to the KMS key id or ARN"))
    }

    /// The token verifier: JWKS when `JWKS_URL` is set (fetched now; init fails loudly if it cannot
    /// be), else HS256 when `JWT_SECRET` is set, else none. Behind API Gateway the handlers get the
    /// identity from the authorizer and need none.
    pub async fn token_verifier(&self) -> Option<TokenVerifier> {
        let verifier = match (&self.jwks_url, &self.jwt_secret) {
            (Some(url), _) => TokenVerifier::jwks(url, &self.jwt_issuer, &self.jwt_audience)
                .await
                .unwrap_or_else(|e| panic!("JWKS_URL: {e}")),
            (None, Some(secret)) => {
                TokenVerifier::hs256(secret.as_bytes(), &self.jwt_issuer, &self.jwt_audience)
            }
            (None, None) => return None,
        };
        Some(verifier.with_claims(self.claim_names.clone()))
    }
}

/// Loads the one `SdkConfig` of the process (region, credentials, and `AWS_ENDPOINT_URL` when set),
/// with an HTTPS client that trusts the bundled Amazon roots (see `tls`). In Lambda, region and
/// credentials come from the environment, so nothing here waits on instance metadata.
pub async fn load_aws() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::tls::aws_http_client())
        .timeout_config(aws_timeouts(crate::deadline::operation_budget()))
        // One retry: a lost connection is tried again at once; a stalled answer is the request
        // budget's to end (deadline::REQUEST_BUDGET), not a third attempt's.
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        // The attempt timeout already bounds a stalled answer (our bodies are kilobytes); the
        // throughput monitor wrapped every body and cost ~2% of a warm request's instructions.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .load()
        .await
}

/// How long an AWS call may wait to connect (loopback or in-region: milliseconds when healthy).
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one attempt may wait for its answer before the SDK retries on another connection.
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Timeouts for every AWS SDK client: connect, attempt, and the whole operation (retries
/// included) bounded by `operation_budget`. Each request is also bounded by its own invocation's
/// deadline (`deadline::within`), which is what answers a stall with 503 in time.
pub fn aws_timeouts(operation_budget: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT.min(operation_budget))
        .operation_timeout(operation_budget)
        .build()
}

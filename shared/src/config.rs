//! Configuration read once at init from the environment.

use crate::handlers::test::SweepSettings;
use crate::limits::rate::RatePolicy;
use crate::token::TokenVerifier;
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
    /// Tests admitted per tenant per window (`TEST_RATE_LIMIT`, default 100).
    pub test_rate_limit: u32,
    /// The rate-limit window (`TEST_RATE_WINDOW_SECONDS`, default 60).
    pub test_rate_window: Duration,
    pub sweep: SweepSettings,
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

impl Settings {
    pub fn from_env() -> Self {
        Self {
            table_name: var("TABLE_NAME")
                .unwrap_or_else(|| panic!("TABLE_NAME must be set to the DynamoDB table name")),
            kms_key_id: var("KMS_KEY_ID"),
            jwt_secret: var("JWT_SECRET"),
            jwt_issuer: var("JWT_ISSUER").unwrap_or_else(|| DEFAULT_JWT_ISSUER.to_string()),
            jwt_audience: var("JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.to_string()),
            test_rate_limit: number("TEST_RATE_LIMIT", 100),
            test_rate_window: Duration::from_secs(number("TEST_RATE_WINDOW_SECONDS", 60)),
            sweep: SweepSettings {
                interval: Duration::from_secs(number("SWEEP_INTERVAL_SECONDS", 3600)),
                concurrency: number("SWEEP_CONCURRENCY", 16),
            },
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

    /// The local bearer-token fallback, enabled only when `JWT_SECRET` is set. Behind API Gateway the
    /// authorizer sets the identity and this stays unset.
    pub fn token_verifier(&self) -> Option<TokenVerifier> {
        self.jwt_secret.as_ref().map(|secret| {
            TokenVerifier::hs256(secret.as_bytes(), &self.jwt_issuer, &self.jwt_audience)
        })
    }
}

/// Loads the one `SdkConfig` of the process (region, credentials, and `AWS_ENDPOINT_URL` when set).
pub async fn load_aws() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

//! Policies built on the store: the per-tenant rate limit and the per-connector circuit breaker.

pub mod breaker;
pub mod rate;

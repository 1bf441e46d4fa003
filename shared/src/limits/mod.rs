//! Policies built on the store: the per-tenant rate limit and the per-connector circuit breaker.

pub use connectors_core::limits::breaker;
pub mod rate;

//! The circuit breaker's rules (pure; its state lives in the store, see `shared::limits`).

pub mod breaker;

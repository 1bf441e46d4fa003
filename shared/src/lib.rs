//! connectors-api: everything the Lambda functions share. Layers, lowest first:
//! leaves (`model`, `validate`, `vendor`, `masking`, `ids`, `error`, `http`, `paging`, the
//! breaker's rules and the SSRF address rules come from the pure `connectors-core` crate in
//! `shared/core`, re-exported here under the same names; `token`, `identity`, `config`),
//! I/O edges (`store`, `envelope`, `probe`), then the `handlers`, one per endpoint.

// The pure core, under the same names (`crate::model`, `crate::validate`, … keep working).
pub use connectors_core::{
    destination, emf, error, http, ids, keys, kinds, masking, model, paging, strict_json, validate,
    vendor,
};

pub mod audit;
pub mod config;
pub mod connector_check;
pub mod custody;
pub mod deadline;
pub mod envelope;
pub mod handlers;
pub mod idempotency;
pub mod identity;
pub mod limits;
pub mod probe;
pub mod publisher;
pub mod shard_queue;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub mod testing;
pub mod tls;
pub mod token;

//! connectors-api: everything the Lambda functions share. Layers, lowest first:
//! leaves (`model`, `validate`, `masking`, `ids`, `error`, `token`, `identity`, `config`),
//! I/O edges (`store`, `envelope`), then the `handlers`, one per endpoint.

pub mod audit;
pub mod config;
pub mod deadline;
pub mod envelope;
pub mod error;
pub mod handlers;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod masking;
pub mod model;
pub mod probe;
#[cfg(test)]
mod props;
pub mod store;
pub mod strict_json;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod validate;
pub mod vendor;

//! The pure core of connectors-api (no AWS, no network): leaves that every layer above may use.
//! `shared` re-exports each module under the same name.

pub mod destination;
pub mod emf;
pub mod error;
pub mod http;
pub mod ids;
pub mod keys;
pub mod kinds;
pub mod limits;
pub mod masking;
pub mod model;
pub mod paging;
#[cfg(test)]
mod props;
pub mod ssrf;
pub mod strict_json;
pub mod validate;
pub mod vendor;

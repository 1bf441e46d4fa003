//! One module per endpoint; each reads top to bottom: identity → parse → validate → act → respond.

pub mod authorizer;
pub mod create;
pub mod delete;
pub mod dry_run;
pub mod list;
pub mod sweep;
pub mod test;
pub mod update;

use crate::envelope::CryptoError;
use crate::error::ApiError;
use crate::store::StoreError;
use lambda_http::{Body, Response};

/// How many times a write is retried after a concurrent change before answering 409.
const WRITE_ATTEMPTS: usize = 3;

/// The path every connector lives under; `Location` headers point below it.
pub const BASE_PATH: &str = "/api/v1/connectors";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::NameTaken => ApiError::name_taken(),
            StoreError::KeyUsed | StoreError::AlreadyApplied => ApiError::conflict(),
            StoreError::Conflict => ApiError::conflict(),
            StoreError::Unavailable => ApiError::unavailable(),
            StoreError::Internal => ApiError::internal(),
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Unavailable => ApiError::unavailable(),
            CryptoError::Refused(_) => ApiError::internal(),
        }
    }
}

/// Turns a handler's result into the response, errors included.
fn respond(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}

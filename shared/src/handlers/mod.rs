//! One module per endpoint; each reads top to bottom: identity → parse → validate → act → respond.

pub mod authorizer;
pub mod create;
pub mod delete;
pub mod dry_run;
pub mod history;
pub mod list;
pub mod sweep;
pub mod test;
pub mod tunnel_key;
pub mod update;

use crate::audit::AuditEvent;
use crate::deadline::within;
use crate::envelope::CryptoError;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::telemetry::request::observed;
use lambda_http::{Body, Request, Response};
use std::time::Instant;

use crate::store::WRITE_ATTEMPTS;

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

/// The frame of a mutating endpoint: observed (request id, closing line, metrics), bounded by
/// `due` (`crud_answer_by` for CRUD, the invocation's deadline for a test, whose probe takes
/// seconds), and audited with its final status whatever happened.
async fn audited(
    action: &'static str,
    due: fn(&Request) -> Instant,
    req: Request,
    run: impl AsyncFnOnce(&Request, &mut AuditEvent) -> Result<Response<Body>, ApiError>,
) -> Response<Body> {
    observed(action, req, |req| async move {
        let mut audit = AuditEvent::new(action);
        let resp = respond(within(due(&req), run(&req, &mut audit)).await);
        audit.emit(resp.status().as_u16());
        resp
    })
    .await
}

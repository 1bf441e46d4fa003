//! Request parsing and response building shared by every handler.

use crate::error::{ApiError, FieldProblem};
use crate::strict_json::Strict;
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds a JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    response(
        status,
        Body::Text(String::from_utf8_lossy(&bytes).into_owned()),
    )
}

/// Sets `ETag: "<version>"`, the value `If-Match` takes on update.
pub fn with_etag(mut resp: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The versions an `If-Match` header allows: `None` when absent or `*` (any), else the listed
/// entity tags (`"3"`, `W/"3"` or a bare `3`). A header that names no version is a 400.
pub fn if_match(req: &Request) -> Result<Option<Vec<u64>>, ApiError> {
    let Some(raw) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            400,
            "invalid_if_match",
            "If-Match must be \"*\" or entity tags like \"3\" (the connector's version)",
        )
        .with_details(vec![FieldProblem::new(
            "If-Match",
            "not a list of versions",
        )])
    };
    let text = raw.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    text.split(',')
        .map(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let tag = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            tag.parse::<u64>().map_err(|_| bad())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A JSON response from text already serialized (e.g. a kept idempotent answer).
pub fn json_text(status: u16, body: String) -> Response<Body> {
    response(status, Body::Text(body))
}

/// An empty response (e.g. 204); still typed as JSON so every response carries the same header.
pub fn empty(status: u16) -> Response<Body> {
    response(status, Body::Empty)
}

fn response(status: u16, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

impl ApiError {
    /// The single place where errors become HTTP responses.
    pub fn into_response(self) -> Response<Body> {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        let mut resp = json(self.status, &json!({ "error": error }));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}

/// Parses the body as one JSON object, enforcing the size limit.
pub fn json_object(req: &Request) -> Result<Map<String, Value>, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            400,
            "invalid_json",
            "request body is empty; expected a JSON object",
        ));
    }
    match serde_json::from_slice::<Strict>(bytes).map(|s| s.0) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            400,
            "invalid_body",
            "request body must be a JSON object",
        )),
        // serde_json's message names line and column, never echoes the input.
        Err(e) => Err(ApiError::new(
            400,
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )),
    }
}

/// A single query-string parameter; repeated parameters are an error.
pub fn query_param(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    let params = req.query_string_parameters();
    match params.all(name) {
        None => Ok(None),
        Some(values) if values.len() == 1 => Ok(Some(values[0].to_string())),
        Some(_) => Err(ApiError::new(
            400,
            "invalid_query",
            format!("query parameter {name} is given more than once"),
        )
        .with_details(vec![FieldProblem::new(name, "given more than once")])),
    }
}

/// A path parameter set by API Gateway (or the local router).
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters().first(name).map(str::to_string)
}

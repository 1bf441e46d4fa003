//! OAuth 2.0 client credentials (RFC 6749 §4.4), shared by the SaaS logins and the generic HTTP
//! probe: the form body token endpoints take, and what their answer means.

use super::report::{Failure, ProbeCode};
use reqwest::RequestBuilder;
use serde_json::Value;

/// An `application/x-www-form-urlencoded` body (what OAuth token endpoints take).
pub fn form(request: RequestBuilder, pairs: &[(&str, &str)]) -> RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
}

/// The access token of a token endpoint's answer, or the failure its `error` names
/// (`invalid_client`, `invalid_grant`, `unauthorized_client` → `auth_failed`).
pub fn access_token(status: u16, json: &Value, endpoint: &str) -> Result<String, Failure> {
    match json.get("access_token").and_then(Value::as_str) {
        Some(token) if (200..300).contains(&status) && !token.is_empty() => Ok(token.to_string()),
        _ => {
            let error = json
                .get("error")
                .and_then(Value::as_str)
                .filter(|e| {
                    e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or("no access_token");
            let code = match status {
                400 | 401 | 403 => ProbeCode::AuthFailed,
                _ => ProbeCode::HttpError,
            };
            Err(Failure::new(
                code,
                format!(
                    "the token endpoint {endpoint} refused the client credentials (HTTP {status}, {error})"
                ),
            ))
        }
    }
}

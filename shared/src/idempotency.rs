//! `Idempotency-Key` on create: the first successful answer is kept for 24 hours under the key
//! (per tenant, in the same table, with a TTL); the same key with the same body gets that answer
//! again and creates nothing, the same key with another body gets a 422.

use crate::error::{ApiError, FieldProblem};
use lambda_http::http::header::{HeaderName, HeaderValue, ETAG, LOCATION};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use std::time::Duration;

pub const HEADER: &str = "idempotency-key";
/// How long an answer is kept (and the key is bound to its body).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
const MAX_KEY_CHARS: usize = 255;

/// A create's answer kept under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub key: String,
    /// SHA-256 of the request body as parsed and re-serialized (whitespace does not matter).
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub location: String,
    pub version: u64,
    /// Unix seconds; DynamoDB's TTL removes the item some time after, reads ignore it at once.
    pub expires_at: u64,
}

/// The request's key: `None` without the header, 400 when it is empty, too long or not visible ASCII.
pub fn key(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
        .with_details(vec![FieldProblem::new(
            "Idempotency-Key",
            "1 to 255 visible ASCII characters",
        )]));
    }
    Ok(Some(key.to_string()))
}

/// Hex SHA-256 of the body's JSON text (its parsed form, so spacing does not change it).
pub fn fingerprint(body: &Map<String, Value>) -> String {
    let text = serde_json::to_vec(body).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The kept answer when the body matches, a 422 when the key was used for another body.
pub fn replay(kept: &Remembered, fingerprint: &str) -> Result<Response<Body>, ApiError> {
    if kept.fingerprint != fingerprint {
        return Err(ApiError::new(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
        .with_details(vec![FieldProblem::new(
            "Idempotency-Key",
            "already used with another body",
        )]));
    }
    let mut resp = crate::http::json_text(kept.status, kept.body.clone());
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&kept.location) {
        headers.insert(LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", kept.version)) {
        headers.insert(ETAG, v);
    }
    headers.insert(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn fingerprint_ignores_spacing_but_not_values() {
        let a = object(serde_json::from_str(r#"{"name":"a","type":"mysql"}"#).unwrap());
        let b =
            object(serde_json::from_str("{ \"name\" : \"a\",\n \"type\": \"mysql\" }").unwrap());
        let c = object(json!({"name": "b", "type": "mysql"}));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_eq!(fingerprint(&a).len(), 64);
    }

    fn with_key(v: &str) -> Request {
        let mut req = Request::default();
        req.headers_mut()
            .insert(HEADER, HeaderValue::from_str(v).unwrap());
        req
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert_eq!(key(&Request::default()).unwrap(), None);
        assert_eq!(
            key(&with_key("order-42")).unwrap().as_deref(),
            Some("order-42")
        );
        assert_eq!(
            key(&with_key(&"k".repeat(255))).unwrap().map(|k| k.len()),
            Some(255)
        );
        for bad in ["", "   ", "two words", &"k".repeat(256)] {
            assert_eq!(
                key(&with_key(bad)).unwrap_err().code,
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn replay_answers_the_same_body_and_refuses_another() {
        let kept = Remembered {
            key: "k".into(),
            fingerprint: "f1".into(),
            status: 201,
            body: r#"{"id":"conn_x"}"#.into(),
            location: "/api/v1/connectors/conn_x".into(),
            version: 1,
            expires_at: 0,
        };
        let resp = replay(&kept, "f1").unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["location"], "/api/v1/connectors/conn_x");
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        assert_eq!(replay(&kept, "f2").unwrap_err().status, 422);
    }
}

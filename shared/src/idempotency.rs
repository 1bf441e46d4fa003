//! `Idempotency-Key` on create: the first successful answer is kept for 24 hours under the key
//! (per tenant, in the same table, with a TTL); the same key with the same body gets that answer
//! again and creates nothing, the same key with another body gets a 422.
//!
//! The kept fingerprint must not help anyone who can read the table guess a password, so it is
//! `v2:<SHA-256 of tenant and body without authConfig>:<MAC of authConfig>`, the MAC keyed from
//! the data key that seals the new connector's authConfig (wrapped by KMS, kept beside it). The
//! first request computes it while sealing (no extra round trip); only a replay whose body
//! matches pays one KMS Decrypt to check the MAC. Records of the first format (an unkeyed
//! SHA-256 of the whole body) are compared the old way until they expire.

use crate::envelope::{CryptoError, SecretContext, SecretSealer, SecretTag};
use crate::error::{ApiError, FieldProblem};
use lambda_http::http::header::{HeaderName, HeaderValue, ETAG, LOCATION};
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use std::time::Duration;

pub const HEADER: &str = "idempotency-key";
/// How long an answer is kept (and the key is bound to its body).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
const MAX_KEY_CHARS: usize = 255;

/// The records a kept answer is stored as (the store knows records, not responses).
pub use crate::store::{MacKey, Remembered};

/// What a request presents to be compared with a kept fingerprint.
pub struct Presented<'a> {
    pub tenant_id: &'a str,
    /// The v2 body hash (tenant and body without authConfig).
    pub body_hash: String,
    /// The first format's fingerprint, for records written before v2.
    pub legacy: String,
    /// authConfig as create seals it (None when absent or empty).
    pub secret: Option<&'a Map<String, Value>>,
}

const V2: &str = "v2:";

/// The v2 fingerprint kept with a new answer.
pub fn fingerprint_v2(body_hash: &str, tag: Option<&SecretTag>) -> String {
    match tag {
        Some(t) => format!("{V2}{body_hash}:{}", t.0),
        None => format!("{V2}{body_hash}"),
    }
}

/// Hex SHA-256 of the tenant and the body without `authConfig` (parsed, so spacing and key order
/// do not matter): equal bodies of two tenants do not share it.
pub fn body_hash(tenant_id: &str, body: &Map<String, Value>) -> String {
    let rest: Map<String, Value> = body
        .iter()
        .filter(|(k, _)| k.as_str() != "authConfig")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"connectors-api:idempotency:v2\0");
    ctx.update(tenant_id.as_bytes());
    ctx.update(&[0]);
    ctx.update(&serde_json::to_vec(&rest).unwrap_or_default());
    hex::encode(ctx.finish().as_ref())
}

/// True when the request is the one the kept answer was for. Only a v2 record whose body hash
/// matches and that has a MAC costs a KMS Decrypt.
pub async fn same_request<E: SecretSealer>(
    sealer: &E,
    kept: &Remembered,
    presented: &Presented<'_>,
) -> Result<bool, CryptoError> {
    let Some(v2) = kept.fingerprint.strip_prefix(V2) else {
        return Ok(kept.fingerprint == presented.legacy);
    };
    let (body, mac) = match v2.split_once(':') {
        Some((body, mac)) => (body, Some(mac)),
        None => (v2, None),
    };
    if body != presented.body_hash {
        return Ok(false);
    }
    match (mac, presented.secret, &kept.mac_key) {
        (None, None, _) => Ok(true),
        (Some(mac), Some(secret), Some(key)) => {
            let ctx = SecretContext {
                tenant_id: presented.tenant_id,
                connector_id: &key.connector_id,
            };
            let tag = sealer
                .tag_with(ctx, &key.wrapped_key, &key.key_id, secret)
                .await?;
            Ok(tag == SecretTag(mac.to_string()))
        }
        _ => Ok(false),
    }
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

/// The first format: hex SHA-256 of the body's JSON text (parsed, so spacing does not change it).
/// Only compared with records written before v2, until they expire.
pub fn legacy_fingerprint(body: &Map<String, Value>) -> String {
    let text = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text).as_ref())
}

/// The kept answer when the request is the same, a 422 when the key was used for another body.
pub async fn replay<E: SecretSealer>(
    sealer: &E,
    kept: &Remembered,
    presented: &Presented<'_>,
) -> Result<Response<Body>, ApiError> {
    if !same_request(sealer, kept, presented).await? {
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
    fn body_hash_ignores_spacing_and_authconfig_but_not_values_or_tenant() {
        let a = object(serde_json::from_str(r#"{"name":"a","type":"mysql"}"#).unwrap());
        let b =
            object(serde_json::from_str("{ \"name\" : \"a\",\n \"type\": \"mysql\" }").unwrap());
        let c = object(json!({"name": "b", "type": "mysql"}));
        let secret = object(json!({"name": "a", "type": "mysql", "authConfig": {"password": "p"}}));
        assert_eq!(body_hash("t", &a), body_hash("t", &b));
        assert_eq!(body_hash("t", &a), body_hash("t", &secret));
        assert_ne!(body_hash("t", &a), body_hash("t", &c));
        assert_ne!(body_hash("t", &a), body_hash("u", &a));
        assert_ne!(body_hash("t", &a), legacy_fingerprint(&a));
        assert_eq!(body_hash("t", &a).len(), 64);
    }

    /// A sealer whose MAC key is fixed: enough to exercise the comparison.
    struct FixedKey(std::sync::atomic::AtomicUsize);

    impl SecretSealer for FixedKey {
        async fn seal(
            &self,
            _: SecretContext<'_>,
            _: &Map<String, Value>,
        ) -> Result<crate::model::SealedSecret, CryptoError> {
            unreachable!()
        }
        async fn seal_tagged(
            &self,
            _: SecretContext<'_>,
            _: &Map<String, Value>,
        ) -> Result<(crate::model::SealedSecret, SecretTag), CryptoError> {
            unreachable!()
        }
        async fn open(
            &self,
            _: SecretContext<'_>,
            _: &crate::model::SealedSecret,
        ) -> Result<crate::model::PlainSecret, CryptoError> {
            unreachable!()
        }
        async fn tag_with(
            &self,
            ctx: SecretContext<'_>,
            wrapped_key: &[u8],
            _: &str,
            secret: &Map<String, Value>,
        ) -> Result<SecretTag, CryptoError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let text = format!(
                "{wrapped_key:?}{}{}",
                ctx.connector_id,
                Value::Object(secret.clone())
            );
            Ok(SecretTag(hex::encode(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
            )))
        }
    }

    fn kept(fingerprint: String, mac_key: Option<MacKey>) -> Remembered {
        Remembered {
            key: "k".into(),
            fingerprint,
            mac_key,
            status: 201,
            body: r#"{"id":"conn_x"}"#.into(),
            location: "/api/v1/connectors/conn_x".into(),
            version: 1,
            expires_at: 0,
        }
    }

    fn presented<'a>(
        body: &Map<String, Value>,
        secret: Option<&'a Map<String, Value>>,
    ) -> Presented<'a> {
        Presented {
            tenant_id: "t",
            body_hash: body_hash("t", body),
            legacy: legacy_fingerprint(body),
            secret,
        }
    }

    #[tokio::test]
    async fn replay_answers_the_same_request_and_refuses_another() {
        let sealer = FixedKey(Default::default());
        let body = object(json!({"name": "a", "type": "mysql", "authConfig": {"password": "p1"}}));
        let secret = object(json!({"password": "p1"}));
        let other_secret = object(json!({"password": "p2"}));
        let key = MacKey {
            connector_id: "conn_x".into(),
            wrapped_key: vec![1, 2, 3],
            key_id: "k".into(),
        };
        let ctx = SecretContext {
            tenant_id: "t",
            connector_id: "conn_x",
        };
        let tag = sealer
            .tag_with(ctx, &key.wrapped_key, "k", &secret)
            .await
            .unwrap();
        let v2 = kept(
            fingerprint_v2(&body_hash("t", &body), Some(&tag)),
            Some(key),
        );
        let calls = || sealer.0.load(std::sync::atomic::Ordering::SeqCst);

        let resp = replay(&sealer, &v2, &presented(&body, Some(&secret)))
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["location"], "/api/v1/connectors/conn_x");
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        assert_eq!(
            calls(),
            2,
            "a matching body pays one unwrap to check the MAC"
        );
        // Same body, another password: 422.
        let e = replay(&sealer, &v2, &presented(&body, Some(&other_secret)))
            .await
            .unwrap_err();
        assert_eq!(e.status, 422);
        // Another body: 422 without touching KMS.
        let other = object(json!({"name": "b", "type": "mysql"}));
        assert_eq!(
            replay(&sealer, &v2, &presented(&other, Some(&secret)))
                .await
                .unwrap_err()
                .status,
            422
        );
        assert_eq!(calls(), 3);
        // No authConfig either time: the body hash decides.
        let plain = object(json!({"name": "a", "type": "mysql"}));
        let v2_plain = kept(fingerprint_v2(&body_hash("t", &plain), None), None);
        assert!(replay(&sealer, &v2_plain, &presented(&plain, None))
            .await
            .is_ok());
        assert_eq!(
            replay(&sealer, &v2_plain, &presented(&plain, Some(&secret)))
                .await
                .unwrap_err()
                .status,
            422
        );
        // Records of the first format are compared the first way.
        let v1 = kept(legacy_fingerprint(&body), None);
        assert!(replay(&sealer, &v1, &presented(&body, Some(&secret)))
            .await
            .is_ok());
        assert_eq!(
            replay(&sealer, &v1, &presented(&other, None))
                .await
                .unwrap_err()
                .status,
            422
        );
        assert_eq!(calls(), 3);
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
}

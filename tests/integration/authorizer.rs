//! The Lambda authorizer: HS256 and a JWKS (ES256) served over HTTP, key rotation, the role matrix,
//! tenant selection, and every kind of bad token.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde_json::{json, Value};
use shared::handlers::authorizer::authorize;
use shared::token::{ClaimNames, TokenVerifier};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://issuer.example";
const AUD: &str = "connectors-api";

fn event(
    route: &str,
    token: Option<&str>,
    tenant: Option<&str>,
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let text = std::fs::read_to_string(format!(
        "{}/../events/authorizer.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut e: Value = serde_json::from_str(&text).unwrap();
    e["routeKey"] = json!(route);
    let headers = e["headers"].as_object_mut().unwrap();
    headers.remove("authorization");
    headers.remove("x-tenant-id");
    if let Some(t) = token {
        headers.insert("authorization".into(), json!(format!("Bearer {t}")));
    }
    if let Some(t) = tenant {
        headers.insert("x-tenant-id".into(), json!(t));
    }
    serde_json::from_value(e).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"sub": "u-1", "iss": ISS, "aud": AUD, "exp": now() + 300});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(b"authorizer-secret"),
    )
    .unwrap()
}

async fn allowed(
    v: &TokenVerifier,
    route: &str,
    token: &str,
    tenant: Option<&str>,
) -> Option<Value> {
    crate::logs::route_metrics();
    let resp = authorize(v, event(route, Some(token), tenant)).await;
    resp.is_authorized.then_some(resp.context)
}

#[tokio::test]
async fn hs256_tokens_and_the_role_matrix() {
    let v = TokenVerifier::hs256(b"authorizer-secret", ISS, AUD);
    let viewer = hs(&claims(json!({"tenant": "acme", "role": "viewer"})));
    let ctx = allowed(&v, "GET /api/v1/connectors", &viewer, None)
        .await
        .expect("viewer may list");
    assert_eq!(
        ctx,
        json!({"tenantId": "acme", "role": "viewer", "sub": "u-1"})
    );
    assert!(allowed(&v, "GET /api/v1/connectors/{id}", &viewer, None)
        .await
        .is_some());
    for route in [
        "POST /api/v1/connectors",
        "PUT /api/v1/connectors",
        "DELETE /api/v1/connectors",
        "POST /api/v1/connectors/test",
    ] {
        assert!(
            allowed(&v, route, &viewer, None).await.is_none(),
            "viewer on {route}"
        );
    }
    let editor = hs(&claims(json!({"tenants": ["a", "b"], "role": "editor"})));
    assert_eq!(
        allowed(&v, "POST /api/v1/connectors/test", &editor, Some("b"))
            .await
            .unwrap()["tenantId"],
        "b"
    );
    assert!(
        allowed(&v, "POST /api/v1/connectors", &editor, None)
            .await
            .is_none(),
        "several tenants need X-Tenant-Id"
    );
    assert!(
        allowed(&v, "POST /api/v1/connectors", &editor, Some("c"))
            .await
            .is_none(),
        "a tenant the token does not hold"
    );
    assert!(
        allowed(&v, "GET /api/v1/secrets", &editor, Some("a"))
            .await
            .is_none(),
        "unknown route"
    );
    assert!(
        !authorize(&v, event("GET /api/v1/connectors", None, Some("a")))
            .await
            .is_authorized,
        "no token"
    );
}

#[tokio::test]
async fn bad_tokens_are_denied() {
    let v = TokenVerifier::hs256(b"authorizer-secret", ISS, AUD);
    let good = claims(json!({"tenant": "acme", "role": "admin"}));
    let mut bad = Vec::new();
    for (k, val) in [
        ("exp", json!(now() - 120)),
        ("iss", json!("https://evil.example")),
        ("aud", json!("other")),
        ("nbf", json!(now() + 600)),
    ] {
        let mut c = good.clone();
        c[k] = val;
        bad.push((k.to_string(), hs(&c)));
    }
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    bad.push(("no exp".into(), hs(&no_exp)));
    let other_secret = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"another-secret"),
    )
    .unwrap();
    bad.push(("signature".into(), other_secret));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(good.to_string());
    bad.push(("alg none".into(), format!("{header}.{body}.")));
    for (why, token) in bad {
        assert!(
            allowed(&v, "GET /api/v1/connectors", &token, None)
                .await
                .is_none(),
            "{why}"
        );
    }
    assert!(allowed(&v, "GET /api/v1/connectors", &hs(&good), None)
        .await
        .is_some());
}

/// An ES256 key, its JWK, and a signer.
struct EcKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn ec_key(kid: &str) -> EcKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let (x, y) = (&point[1..33], &point[33..65]);
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
    EcKey {
        kid: kid.to_string(),
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk,
    }
}

impl EcKey {
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

/// Serves whatever JWKS is current, and counts the fetches.
async fn jwks_server(initial: Value) -> (String, Arc<Mutex<Value>>, Arc<Mutex<u32>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let set = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(Mutex::new(0));
    let (s, f) = (set.clone(), fetches.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf).await;
            *f.lock().unwrap() += 1;
            let body = s.lock().unwrap().to_string();
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    (url, set, fetches)
}

#[tokio::test]
async fn jwks_keys_rotation_and_algorithm_mismatch() {
    let first = ec_key("key-1");
    let (url, set, fetches) = jwks_server(json!({"keys": [first.jwk]})).await;
    let names = ClaimNames {
        tenant: Some("custom:tenantId".into()),
        role: Some("cognito:groups".into()),
    };
    let v = TokenVerifier::jwks(&url, ISS, AUD)
        .await
        .unwrap()
        .with_claims(names.clone())
        .with_jwks_refetch_interval(Duration::ZERO);
    assert_eq!(*fetches.lock().unwrap(), 1, "fetched once at init");

    let cognito =
        claims(json!({"custom:tenantId": "acme", "cognito:groups": ["viewer", "editor"]}));
    let ctx = allowed(&v, "POST /api/v1/connectors", &first.sign(&cognito), None)
        .await
        .expect("ES256 via JWKS");
    assert_eq!(
        (ctx["tenantId"].as_str(), ctx["role"].as_str()),
        (Some("acme"), Some("editor"))
    );
    assert_eq!(*fetches.lock().unwrap(), 1, "known kid: no refetch");

    // The issuer rotates: a token with the new kid makes the verifier refetch once.
    let second = ec_key("key-2");
    *set.lock().unwrap() = json!({"keys": [first.jwk, second.jwk]});
    assert!(
        allowed(&v, "GET /api/v1/connectors", &second.sign(&cognito), None)
            .await
            .is_some()
    );
    assert_eq!(*fetches.lock().unwrap(), 2);

    // With the default interval, unknown kids right after a fetch do not fetch again (no storm).
    let throttled = TokenVerifier::jwks(&url, ISS, AUD)
        .await
        .unwrap()
        .with_claims(names);
    assert_eq!(*fetches.lock().unwrap(), 3);
    let stranger = ec_key("key-3");
    for _ in 0..5 {
        assert!(allowed(
            &throttled,
            "GET /api/v1/connectors",
            &stranger.sign(&cognito),
            None
        )
        .await
        .is_none());
    }
    assert_eq!(*fetches.lock().unwrap(), 3);

    // HS256 signed with the public key's bytes under a known kid: the algorithm does not match the key.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-1".into());
    let confused = encode(
        &header,
        &cognito,
        &EncodingKey::from_secret(first.jwk["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    assert!(allowed(&v, "GET /api/v1/connectors", &confused, None)
        .await
        .is_none());
}

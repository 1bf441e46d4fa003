//! What the handlers' unit tests share: a sealer without KMS, and API Gateway requests.

use crate::envelope::{CryptoError, SecretContext, SecretSealer, SecretTag};
use crate::model::{PlainSecret, SealedSecret};
use lambda_http::Request;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Seals by writing the JSON with its context (no encryption: tests only); opening checks the
/// context as KMS would, and counts how often a secret was opened.
#[derive(Default)]
pub struct FakeSealer {
    pub opened: AtomicUsize,
}

fn aad(ctx: SecretContext<'_>) -> String {
    format!("{}/{}", ctx.tenant_id, ctx.connector_id)
}

impl SecretSealer for FakeSealer {
    async fn seal(
        &self,
        ctx: SecretContext<'_>,
        secret: &Map<String, Value>,
    ) -> Result<SealedSecret, CryptoError> {
        Ok(self.seal_tagged(ctx, secret).await?.0)
    }

    async fn seal_tagged(
        &self,
        ctx: SecretContext<'_>,
        secret: &Map<String, Value>,
    ) -> Result<(SealedSecret, SecretTag), CryptoError> {
        let text =
            serde_json::to_string(secret).map_err(|_| CryptoError::Refused("json".into()))?;
        let sealed = SealedSecret {
            v: 1,
            ciphertext: text.clone().into_bytes(),
            nonce: vec![0; 12],
            wrapped_key: aad(ctx).into_bytes(),
            key_id: "fake".into(),
        };
        Ok((sealed, SecretTag(text)))
    }

    async fn tag_with(
        &self,
        _ctx: SecretContext<'_>,
        _wrapped_key: &[u8],
        _key_id: &str,
        secret: &Map<String, Value>,
    ) -> Result<SecretTag, CryptoError> {
        let text =
            serde_json::to_string(secret).map_err(|_| CryptoError::Refused("json".into()))?;
        Ok(SecretTag(text))
    }

    async fn open(
        &self,
        ctx: SecretContext<'_>,
        sealed: &SealedSecret,
    ) -> Result<PlainSecret, CryptoError> {
        if sealed.wrapped_key != aad(ctx).into_bytes() {
            return Err(CryptoError::Refused("another context".into()));
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        serde_json::from_slice(&sealed.ciphertext)
            .map(PlainSecret)
            .map_err(|_| CryptoError::Refused("json".into()))
    }
}

/// Every metric line the unit tests' handlers write, kept in memory (a passing run prints none).
pub fn metric_lines() -> &'static std::sync::Mutex<Vec<String>> {
    static LINES: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    let lines = LINES.get_or_init(Default::default);
    crate::telemetry::metrics::set_sink(|l| metric_lines().lock().unwrap().push(l.to_string()));
    lines
}

/// An API Gateway (HTTP API, payload 2.0) request as the authorizer lets it through for
/// `tenant` with `role`.
pub fn request(method: &str, path: &str, tenant: &str, role: &str, body: Option<Value>) -> Request {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "unit",
            "authorizer": {"lambda": {"tenantId": tenant, "role": role, "sub": "user-1"}},
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "unit"},
            "requestId": "unit-request",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "06/Dec/2026:10:30:00 +0000",
            "timeEpoch": 1796553000000u64
        },
        "isBase64Encoded": false,
        "body": body.map(|b| b.to_string()),
    });
    metric_lines();
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

/// Status and JSON body of a response.
pub fn reply(resp: lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

/// A prober that answers what it is told, and keeps what each probe was given.
pub struct FakeProbe {
    /// The code every probe answers (`ok`, or a failure that reached the network).
    pub code: std::sync::Mutex<crate::probe::report::ProbeCode>,
    /// The authConfig each probe received, in order.
    pub secrets: std::sync::Mutex<Vec<Option<Map<String, Value>>>>,
    /// The tenant tunnel key (PEM) each call was given.
    pub tunnel_keys: std::sync::Mutex<Vec<Option<String>>>,
}

impl FakeProbe {
    pub fn answering(code: crate::probe::report::ProbeCode) -> Self {
        Self {
            code: std::sync::Mutex::new(code),
            secrets: Default::default(),
            tunnel_keys: Default::default(),
        }
    }

    pub fn calls(&self) -> usize {
        self.secrets.lock().unwrap().len()
    }
}

impl crate::probe::Probe for FakeProbe {
    async fn probe(&self, source: crate::kinds::Source<'_>) -> crate::probe::report::Diagnostics {
        use crate::probe::report::{Failure, ProbeCode, Recorder};
        self.secrets.lock().unwrap().push(source.secret.cloned());
        self.tunnel_keys
            .lock()
            .unwrap()
            .push(source.tunnel_key.map(str::to_string));
        // A real probe waits on the network: others may run meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let code = *self.code.lock().unwrap();
        let result = match code {
            ProbeCode::Ok => Ok("fake: ok".to_string()),
            other => Err(Failure::new(other, "fake: failed")),
        };
        Recorder::default().finish(result)
    }

    fn budget(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}

/// A test endpoint on the in-memory store, the fake sealer and `probe`, with `breaker`.
pub fn tester(
    probe: FakeProbe,
    breaker: crate::limits::breaker::BreakerPolicy,
) -> crate::handlers::test::Tester<crate::store::MemoryStore, FakeSealer, FakeProbe> {
    crate::handlers::test::Tester {
        store: Default::default(),
        sealer: FakeSealer::default(),
        prober: probe,
        rate: crate::limits::rate::RatePolicy {
            limit: 100,
            window: std::time::Duration::from_secs(60),
        },
        breaker,
        verifier: None,
        sweep: Default::default(),
        fanout: None,
    }
}

//! The test stack: the emulator's DynamoDB and KMS over their real wire protocol, one table and
//! one key per test run, and helpers that drive the handlers with API Gateway v2 events.

pub mod listeners;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared::envelope::KmsEnvelope;
use shared::handlers::test::{SweepSettings, Tester};
use shared::handlers::{create, delete, list, tunnel_key, update};
use shared::limits::breaker::BreakerPolicy;
use shared::limits::rate::RatePolicy;
use shared::probe::ssrf::Guard;
use shared::probe::{ProbeSettings, Prober};
use shared::store::DynamoStore;
use shared::token::TokenVerifier;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

pub const TABLE: &str = "connectors-it";
/// The table of the history and event tests, with the template's stream. Apart: the emulator
/// copies a table's stream records into every transaction it runs on it, so a stream that grows
/// with the whole suite's writes slows every create (moto; DynamoDB has no such cost).
pub const STREAM_TABLE: &str = "connectors-it-stream";
/// How long results stay in a history (`HISTORY_DAYS`'s default).
pub const HISTORY: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
const SECRET: &str = "integration-test-secret";
const ISSUER: &str = "connectors-api-local";
const AUDIENCE: &str = "connectors-api";

/// Clients and handler dependencies against the emulator.
pub struct Stack {
    pub sdk: aws_config::SdkConfig,
    pub tester: Tester<DynamoStore, KmsEnvelope>,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub key_id: String,
    pub store: DynamoStore,
    pub sealer: KmsEnvelope,
    pub verifier: TokenVerifier,
}

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        let port = std::env::var("AWS_EMULATOR_PORT").unwrap_or_else(|_| "4566".into());
        format!("http://127.0.0.1:{port}")
    })
}

/// The shared stack; the first caller creates the table and the key.
pub async fn stack() -> &'static Stack {
    static STACK: OnceCell<Stack> = OnceCell::const_new();
    STACK.get_or_init(build).await
}

async fn build() -> Stack {
    crate::logs::route_metrics();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let kms = aws_sdk_kms::Client::new(&sdk);
    create_table(&dynamo, TABLE, false).await;
    create_table(&dynamo, STREAM_TABLE, true).await;
    let key = kms
        .create_key()
        .description("connectors-api integration tests")
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach the AWS emulator at {} (run `make test`, which starts it): {e:?}",
                endpoint()
            )
        });
    let key_id = key.key_metadata.expect("key metadata").key_id;
    Stack {
        tester: tester_with(&sdk, &key_id, BreakerPolicy::default(), 100),
        store: DynamoStore::from_sdk(&sdk, TABLE),
        sealer: KmsEnvelope::from_sdk(&sdk, &key_id),
        verifier: TokenVerifier::hs256(SECRET.as_bytes(), ISSUER, AUDIENCE),
        dynamo,
        kms,
        key_id,
        sdk,
    }
}

/// Probe limits for tests: short, and only 127.0.0.1 allowed (the tests' own listeners).
pub fn probe_settings() -> ProbeSettings {
    ProbeSettings {
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(2000),
        guard: Guard::from_allow_list("127.0.0.1").unwrap(),
        dns_server: None,
        resolve: Default::default(),
    }
}

/// The verifier of the tokens `token()` mints.
pub fn verifier() -> TokenVerifier {
    TokenVerifier::hs256(SECRET.as_bytes(), ISSUER, AUDIENCE)
}

/// A test endpoint with its own breaker policy and rate limit.
pub fn tester_with(
    sdk: &aws_config::SdkConfig,
    key_id: &str,
    breaker: BreakerPolicy,
    rate_limit: u32,
) -> Tester<DynamoStore, KmsEnvelope> {
    Tester {
        store: DynamoStore::from_sdk(sdk, TABLE),
        sealer: KmsEnvelope::from_sdk(sdk, key_id),
        prober: Prober::new(probe_settings(), sdk),
        rate: RatePolicy {
            limit: rate_limit,
            window: Duration::from_secs(60),
        },
        breaker,
        verifier: Some(TokenVerifier::hs256(SECRET.as_bytes(), ISSUER, AUDIENCE)),
        sweep: SweepSettings::default(),
        fanout: None,
    }
}

/// The table as template.yaml defines it: pk/sk, and the sparse keys-only `due` index.
/// Creates `table` as the template does; `stream`: with its NEW_AND_OLD_IMAGES stream.
pub async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &str, stream: bool) {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let result = dynamo
        .create_table()
        .table_name(table)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("dueShard"))
        .attribute_definitions(attr("nextProbeAt"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(shared::store::DUE_INDEX)
                .key_schema(key("dueShard", KeyType::Hash))
                .key_schema(key("nextProbeAt", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        // As the template: the publisher's outbox.
        .set_stream_specification(stream.then(|| {
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .unwrap()
        }))
        .send()
        .await;
    if let Err(e) = result {
        let in_use = e
            .as_service_error()
            .is_some_and(|se| se.is_resource_in_use_exception());
        assert!(
            in_use,
            "cannot create the table on the emulator at {}: {e:?}",
            endpoint()
        );
    }
}

/// A tenant id no other test uses.
/// A fresh API Gateway request id per event (`requestContext.requestId`).
fn request_id() -> String {
    format!(
        "req-{}",
        shared::ids::new_connector_id().trim_start_matches("conn_")
    )
}

pub fn unique_tenant(prefix: &str) -> String {
    format!("{prefix}-{}", ulid_suffix())
}

fn ulid_suffix() -> String {
    shared::ids::new_connector_id()
        .trim_start_matches("conn_")
        .to_lowercase()
}

/// A bearer token the stack accepts.
pub fn token(tenants: &[&str], role: &str) -> String {
    signed(&token_claims(tenants, role))
}

/// The claims of `token()`, valid for ten minutes, to alter before signing.
pub fn token_claims(tenants: &[&str], role: &str) -> Value {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    json!({"sub": "tester", "tenants": tenants, "role": role, "iss": ISSUER, "aud": AUDIENCE, "exp": exp})
}

/// Claims signed with the stack's HS256 secret.
pub fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The shared tester, but probing with other settings (guard, name server).
pub async fn tester_probing_with(settings: ProbeSettings) -> Tester<DynamoStore, KmsEnvelope> {
    let st = stack().await;
    let mut tester = tester_with(&st.sdk, &st.key_id, BreakerPolicy::default(), 100);
    tester.prober = Prober::new(settings, &st.sdk);
    tester
}

/// `POST /api/v1/connectors/test` for `id`, sent to a tester of the test's own.
pub async fn test_through(
    tester: &Tester<DynamoStore, KmsEnvelope>,
    t: &Tenant,
    id: &str,
) -> Reply {
    let event = Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(json!({ "id": id }))
        .event();
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    Reply::from(tester.handle(req).await)
}

/// A request as API Gateway (HTTP API, payload 2.0) delivers it.
#[derive(Clone, Default)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub authorizer: Option<Value>,
    pub path_id: Option<String>,
}

impl Call {
    pub fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: path.to_string(),
            ..Default::default()
        }
    }
    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_lowercase(), v.into()));
        self
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self
    }
    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self
    }
    /// Sets the identity as the API Gateway Lambda authorizer would.
    pub fn authorizer(mut self, tenant: &str, role: &str) -> Self {
        self.authorizer = Some(json!({"tenantId": tenant, "role": role, "sub": "authorizer-user"}));
        self
    }
    pub fn path_id(mut self, id: &str) -> Self {
        self.path_id = Some(id.to_string());
        self
    }

    pub fn event(&self) -> Value {
        let raw_query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut headers = serde_json::Map::new();
        headers.insert("content-type".into(), json!("application/json"));
        for (k, v) in &self.headers {
            headers.insert(k.clone(), json!(v));
        }
        let mut ctx = json!({
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "http": {"method": self.method, "path": self.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests"},
            "requestId": request_id(), "routeKey": "$default", "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        });
        if let Some(lambda) = &self.authorizer {
            ctx["authorizer"] = json!({ "lambda": lambda });
        }
        let mut event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": self.path, "rawQueryString": raw_query.join("&"),
            "headers": headers, "requestContext": ctx, "isBase64Encoded": false
        });
        if !self.query.is_empty() {
            let q: serde_json::Map<String, Value> = self
                .query
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            event["queryStringParameters"] = Value::Object(q);
        }
        if let Some(id) = &self.path_id {
            event["pathParameters"] = json!({ "id": id });
        }
        if let Some(body) = &self.body {
            event["body"] = json!(body);
        }
        event
    }

    /// Routes the call to its handler, as the API's routes do.
    pub async fn send(self) -> Reply {
        let st = stack().await;
        self.send_to(&st.store, &st.tester).await
    }

    /// Routes the call to its handler on `store` (and `tester` for a test).
    pub async fn send_to(
        self,
        store: &DynamoStore,
        tester: &Tester<DynamoStore, KmsEnvelope>,
    ) -> Reply {
        let st = stack().await;
        let req = lambda_http::request::from_str(&self.event().to_string())
            .expect("a valid API Gateway v2 event");
        let v = Some(&st.verifier);
        let resp = match (self.method, self.path.as_str()) {
            ("GET", tunnel_key::PATH) => tunnel_key::handle(store, &st.sealer, v, req).await,
            ("GET", _) => list::handle(store, v, req, crate::support::HISTORY).await,
            ("POST", "/api/v1/connectors") => create::handle(store, &st.sealer, v, req).await,
            ("PUT", "/api/v1/connectors") => update::handle(store, &st.sealer, v, req).await,
            ("DELETE", "/api/v1/connectors") => delete::handle(store, v, req).await,
            ("POST", "/api/v1/connectors/test") => tester.handle(req).await,
            other => panic!("no route for {other:?}"),
        };
        Reply::from(resp)
    }
}

/// A response, its body parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub raw: String,
    pub body: Value,
}

impl From<Response<Body>> for Reply {
    fn from(resp: Response<Body>) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = match resp.into_body() {
            Body::Text(t) => t,
            Body::Binary(b) => String::from_utf8(b).expect("utf-8 body"),
            _ => String::new(),
        };
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw).expect("JSON body")
        };
        Reply {
            status,
            headers,
            raw,
            body,
        }
    }
}

impl Reply {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The fields named in an error response's details, in order.
    pub fn fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|p| p["field"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A tenant with an admin token, and shortcuts for its calls.
pub struct Tenant {
    pub id: String,
    pub token: String,
}

impl Tenant {
    pub fn new(prefix: &str) -> Self {
        let id = unique_tenant(prefix);
        let token = token(&[&id], "admin");
        Self { id, token }
    }

    pub fn with_role(&self, role: &str) -> String {
        token(&[&self.id], role)
    }

    pub async fn create(&self, body: Value) -> Reply {
        Call::new("POST", "/api/v1/connectors")
            .bearer(&self.token)
            .json(body)
            .send()
            .await
    }

    pub async fn get(&self, id: &str) -> Reply {
        Call::new("GET", &format!("/api/v1/connectors/{id}"))
            .path_id(id)
            .bearer(&self.token)
            .send()
            .await
    }

    pub async fn list(&self, limit: Option<&str>, cursor: Option<&str>) -> Reply {
        let mut call = Call::new("GET", "/api/v1/connectors").bearer(&self.token);
        if let Some(l) = limit {
            call = call.query("limit", l);
        }
        if let Some(c) = cursor {
            call = call.query("cursor", c);
        }
        call.send().await
    }

    pub async fn update(&self, body: Value) -> Reply {
        Call::new("PUT", "/api/v1/connectors")
            .bearer(&self.token)
            .json(body)
            .send()
            .await
    }

    pub async fn test(&self, id: &str) -> Reply {
        Call::new("POST", "/api/v1/connectors/test")
            .bearer(&self.token)
            .json(json!({ "id": id }))
            .send()
            .await
    }

    /// `GET /api/v1/tunnel-key` with `role`.
    pub async fn tunnel_key(&self, role: &str) -> Reply {
        Call::new("GET", tunnel_key::PATH)
            .bearer(&self.with_role(role))
            .send()
            .await
    }

    /// Creates a connector and returns its id, failing the test when the create fails.
    pub async fn create_id(&self, body: Value) -> String {
        let r = self.create(body).await;
        assert_eq!(r.status, 201, "{}", r.raw);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub async fn delete(&self, id: &str) -> Reply {
        Call::new("DELETE", "/api/v1/connectors")
            .query("id", id)
            .bearer(&self.token)
            .send()
            .await
    }
}

/// A valid postgres connector body.
pub fn postgres(name: &str) -> Value {
    json!({"name": name, "type": "postgresql", "config": {"host": "db.example.com", "port": 5432, "database": "app"}})
}

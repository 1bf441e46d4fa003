//! Captured logs: every endpoint and error path driven with `RUST_LOG=trace` leaks no secret into
//! a response body, a header or a log line, and every mutating request leaves one audit event.

use crate::support::listeners::{listen, Peer};
use crate::support::{stack, verifier, Call, Reply, Tenant, TABLE};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use shared::emf::{self, total, Datum};
use shared::envelope::KmsEnvelope;
use shared::handlers::test::{SweepSettings, Tester};
use shared::handlers::{create, delete, list, update};
use shared::limits::breaker::BreakerPolicy;
use shared::limits::rate::RatePolicy;
use shared::probe::Prober;
use shared::store::DynamoStore;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Collects what the functions' subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Where the current test thread's log lines go (none: dropped).
    static SINK: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the calling thread's sink.
struct Routed;

impl Write for Routed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|s| match &*s.borrow() {
            Some(c) => c.0.lock().unwrap().extend_from_slice(buf),
            // Another test's line: to that test's own output, which the harness shows only when
            // the test fails (a passing run's log stays quiet).
            None => print!("{}", String::from_utf8_lossy(buf)),
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Metric lines (EMF) go the way log lines go: to a capturing test's scan, else to the emitting
/// test's own output. Installed by the stack for every test (the handlers write one per request).
pub fn route_metrics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        shared::telemetry::metrics::set_sink(|line| {
            let mut routed = Routed;
            let _ = routed.write_all(format!("{line}\n").as_bytes());
        });
    });
}

/// Captures this thread's log lines in the functions' format at `trace` (`RUST_LOG=trace`).
/// One process-wide subscriber routes each line to the thread that emitted it: a thread-scoped
/// subscriber would race tracing's per-callsite interest cache with the other test threads.
fn capture() -> Captured {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = shared::telemetry::subscriber(|| Routed, EnvFilter::new("trace"));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other subscriber in the tests");
    });
    route_metrics();
    let captured = Captured::default();
    SINK.with(|s| *s.borrow_mut() = Some(captured.clone()));
    captured
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    /// The metric lines (EMF), each checked against the specification: their metrics.
    fn metrics(&self) -> Vec<Datum> {
        let text = self.text();
        let lines: Vec<&str> = text.lines().filter(|l| emf::is_emf(l)).collect();
        lines
            .iter()
            .flat_map(|l| emf::check(l).unwrap_or_else(|e| panic!("not EMF: {e}: {l}")))
            .collect()
    }

    /// The JSON log lines (the functions' format).
    fn events(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Handlers on clients built inside this test's runtime, so every task they spawn (connection
/// drivers included) runs on this thread, under the capturing subscriber.
struct Local {
    store: DynamoStore,
    sealer: KmsEnvelope,
    tester: Tester<DynamoStore, KmsEnvelope>,
}

async fn local() -> Local {
    let st = stack().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(shared::tls::aws_http_client())
        .endpoint_url(std::env::var("AWS_ENDPOINT_URL").expect("make test sets AWS_ENDPOINT_URL"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Local {
        store: DynamoStore::from_sdk(&sdk, TABLE),
        sealer: KmsEnvelope::from_sdk(&sdk, &st.key_id),
        tester: Tester {
            store: DynamoStore::from_sdk(&sdk, TABLE),
            sealer: KmsEnvelope::from_sdk(&sdk, &st.key_id),
            prober: Prober::new(crate::saas::vendor_settings(), &sdk),
            rate: RatePolicy {
                limit: 1000,
                window: Duration::from_secs(60),
            },
            breaker: BreakerPolicy::default(),
            verifier: Some(verifier()),
            sweep: SweepSettings::default(),
            fanout: None,
        },
    }
}

impl Local {
    async fn send(&self, call: Call) -> (Reply, String) {
        let st = stack().await;
        let req = lambda_http::request::from_str(&call.event().to_string()).unwrap();
        let v = Some(&st.verifier);
        let resp: Response<Body> = match (call.method, call.path.as_str()) {
            ("GET", _) => list::handle(&self.store, v, req, crate::support::HISTORY).await,
            ("POST", "/api/v1/connectors") => {
                create::handle(&self.store, &self.sealer, v, req).await
            }
            ("PUT", "/api/v1/connectors") => {
                update::handle(&self.store, &self.sealer, v, req).await
            }
            ("DELETE", "/api/v1/connectors") => delete::handle(&self.store, v, req).await,
            ("POST", "/api/v1/connectors/test") => self.tester.handle(req).await,
            other => panic!("no route for {other:?}"),
        };
        let headers: String = resp
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        (Reply::from(resp), headers)
    }
}

fn secret(label: &str) -> String {
    format!(
        "{label}-{}",
        shared::ids::new_connector_id().trim_start_matches("conn_")
    )
}

#[tokio::test]
async fn no_secret_reaches_a_response_header_or_log_line_at_trace() {
    let captured = capture();
    let l = local().await;
    let t = Tenant::new("leak");
    let http = listen(Peer::Http).await;
    let s = |label: &str| secret(label);
    let (pg_pass, api_token, sf_key, s3_secret, new_pass, bad_pass, typo_pass, raw_pass) = (
        s("pgpass"),
        s("apitoken"),
        s("sfkey"),
        s("s3secret"),
        s("newpass"),
        s("badpass"),
        s("typopass"),
        s("rawpass"),
    );
    let secrets = [
        &pg_pass, &api_token, &sf_key, &s3_secret, &new_pass, &bad_pass, &typo_pass, &raw_pass,
    ];

    let post = |body: Value| {
        Call::new("POST", "/api/v1/connectors")
            .bearer(&t.token)
            .json(body)
    };
    let put = |body: Value| {
        Call::new("PUT", "/api/v1/connectors")
            .bearer(&t.token)
            .json(body)
    };
    let mut exchanges: Vec<(Reply, String)> = Vec::new();
    let mut run = |r: (Reply, String)| {
        let status = r.0.status;
        exchanges.push(r);
        status
    };

    // The real PostgreSQL of `make integration`: the test logs in (SCRAM with a wrong password).
    let pg_port: u16 = std::env::var("PG_TEST_PORT")
        .expect("make integration starts PostgreSQL")
        .parse()
        .unwrap();
    let plain_port = pg_port + 1;
    let pg = json!({"name": "pg", "type": "postgresql", "config": {"host": "127.0.0.1", "port": pg_port, "database": "appdb"},
                    "authMethod": "password", "authConfig": {"username": "app", "password": pg_pass}});
    let (created, h) = l
        .send(post(pg.clone()).header("Idempotency-Key", "leak-1"))
        .await;
    let pg_id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(run((created, h)), 201);
    assert_eq!(
        run(l
            .send(post(pg.clone()).header("Idempotency-Key", "leak-1"))
            .await),
        201,
        "replay"
    );
    let mut other = pg.clone();
    other["authConfig"]["password"] = json!(bad_pass);
    assert_eq!(
        run(l
            .send(post(other.clone()).header("Idempotency-Key", "leak-1"))
            .await),
        422
    );
    assert_eq!(run(l.send(post(other.clone())).await), 409, "name taken");
    let mut invalid = other.clone();
    invalid["name"] = json!("invalid");
    invalid["config"]["port"] = json!(70000);
    assert_eq!(run(l.send(post(invalid)).await), 400);
    assert_eq!(
        run(l
            .send(post(
                json!({"name": "typo", "type": "mysql", "authconfig": {"password": typo_pass}})
            ))
            .await),
        400
    );
    assert_eq!(run(l.send(post(json!({"name": "flat", "type": "mysql", "config": {"host": "h.example.com", "database": "d"}, "authConfig": typo_pass}))).await), 400);
    let truncated = format!("{{\"name\": \"raw\", \"authConfig\": {{\"password\": \"{raw_pass}\"");
    assert_eq!(
        run(l
            .send(
                Call::new("POST", "/api/v1/connectors")
                    .bearer(&t.token)
                    .raw_body(&truncated)
            )
            .await),
        400
    );
    let viewer = Call::new("POST", "/api/v1/connectors")
        .bearer(&t.with_role("viewer"))
        .json(pg.clone());
    assert_eq!(run(l.send(viewer).await), 403);

    let rest = json!({"name": "rest", "type": "rest_api", "config": {"url": format!("http://{http}/needs-token")},
                      "authMethod": "bearer", "authConfig": {"token": api_token}});
    let rest_id = {
        let (r, h) = l.send(post(rest)).await;
        let id = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(run((r, h)), 201);
        id
    };
    let sf = json!({"name": "sf", "type": "salesforce", "config": {"instanceUrl": crate::saas::SALESFORCE}, "authConfig": {"apiKey": sf_key}});
    let sf_id = {
        let (r, h) = l.send(post(sf)).await;
        let id = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(run((r, h)), 201, "{}", r_raw(&exchanges));
        id
    };
    let s3 = json!({"name": "s3", "type": "aws_s3", "config": {"bucket": "no-such-bucket-leak", "region": "us-east-1"},
                    "authMethod": "access_key", "authConfig": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": s3_secret}});
    let s3_id = {
        let (r, h) = l.send(post(s3)).await;
        let id = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(run((r, h)), 201);
        id
    };

    assert_eq!(
        run(l
            .send(Call::new("GET", "/api/v1/connectors").bearer(&t.token))
            .await),
        200
    );
    let detail = Call::new("GET", &format!("/api/v1/connectors/{pg_id}"))
        .path_id(&pg_id)
        .bearer(&t.token);
    assert_eq!(run(l.send(detail).await), 200);
    for id in [&pg_id, &rest_id, &sf_id, &s3_id] {
        let test = Call::new("POST", "/api/v1/connectors/test")
            .bearer(&t.token)
            .json(json!({"id": id}));
        assert_eq!(run(l.send(test).await), 200);
    }
    // Dry runs that send a password in clear (over TLS) and as MD5 (TLS disabled), and one refused
    // before sending it (cleartext asked on a connection without TLS).
    for (user, port, sslmode) in [
        ("clearuser", pg_port, "require"),
        ("md5user", plain_port, "disable"),
        ("clearuser", plain_port, "prefer"),
    ] {
        let dry = Call::new("POST", "/api/v1/connectors/test")
            .bearer(&t.token)
            .json(json!({"type": "postgresql", "config": {"host": "127.0.0.1", "port": port, "database": "appdb", "sslmode": sslmode},
                         "authConfig": {"username": user, "password": pg_pass}}));
        assert_eq!(run(l.send(dry).await), 200);
    }
    // Every other login protocol, each sending the secret its own way: MySQL's native scramble
    // over TLS, caching_sha2's RSA exchange, Kafka's PLAIN and SCRAM, MongoDB's SCRAM.
    let port = |name: &str| -> u16 { std::env::var(name).unwrap().parse().unwrap() };
    let (maria, sha2, kafka, mongo, ssh) = (
        port("MYSQL_TEST_PORT"),
        port("MYSQL_SHA2_TEST_PORT"),
        port("KAFKA_TEST_PORT"),
        port("MONGO_TEST_PORT"),
        port("SSH_TEST_PORT"),
    );
    for body in [
        json!({"type": "mysql", "config": {"host": "127.0.0.1", "port": maria, "database": "appdb"}, "authConfig": {"username": "app", "password": pg_pass}}),
        json!({"type": "mysql", "config": {"host": "127.0.0.1", "port": sha2, "database": "appdb"}, "authConfig": {"username": "sha2user", "password": pg_pass}}),
        json!({"type": "kafka", "config": {"bootstrapServers": format!("127.0.0.1:{kafka}"), "securityProtocol": "SASL_PLAINTEXT"}, "authConfig": {"username": "app", "password": pg_pass}}),
        json!({"type": "kafka", "config": {"bootstrapServers": format!("127.0.0.1:{kafka}"), "securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "SCRAM-SHA-512"}, "authConfig": {"username": "app", "password": pg_pass}}),
        json!({"type": "mongodb", "config": {"connectionString": format!("mongodb://127.0.0.1:{mongo}/appdb")}, "authConfig": {"username": "app", "password": pg_pass}}),
        json!({"type": "sftp", "config": {"host": "127.0.0.1", "port": ssh}, "authConfig": {"username": "sftpprobe", "password": pg_pass}}),
    ] {
        let dry = Call::new("POST", "/api/v1/connectors/test")
            .bearer(&t.token)
            .json(body);
        assert_eq!(run(l.send(dry).await), 200);
    }
    // The SaaS logins (local/saas_peer.py): access tokens and client secrets sent, and the access
    // tokens their token endpoints return.
    for body in crate::saas::one_login_per_credential() {
        let dry = Call::new("POST", "/api/v1/connectors/test")
            .bearer(&t.token)
            .json(body);
        assert_eq!(run(l.send(dry).await), 200);
    }
    // Masked values sent back, a new secret, and an invalid update carrying a secret.
    let (shown, _) = l
        .send(
            Call::new("GET", &format!("/api/v1/connectors/{pg_id}"))
                .path_id(&pg_id)
                .bearer(&t.token),
        )
        .await;
    assert_eq!(
        run(l
            .send(put(
                json!({"id": pg_id, "authConfig": shown.body["authConfig"]})
            ))
            .await),
        200
    );
    assert_eq!(
        run(l
            .send(put(
                json!({"id": pg_id, "authConfig": {"username": "app", "password": new_pass}})
            ))
            .await),
        200
    );
    assert_eq!(
        run(l
            .send(put(
                json!({"id": pg_id, "config": {"port": "x"}, "authConfig": {"password": bad_pass}})
            ))
            .await),
        400
    );
    assert_eq!(
        run(l
            .send(put(
                json!({"id": pg_id, "version": 1, "authConfig": {"password": bad_pass}})
            ))
            .await),
        412
    );
    assert_eq!(
        run(l
            .send(
                Call::new("DELETE", "/api/v1/connectors")
                    .query("id", &rest_id)
                    .bearer(&t.token)
            )
            .await),
        204
    );

    let logs = captured.text();
    assert!(
        logs.lines().count() > 50,
        "trace logging was captured ({} lines)",
        logs.lines().count()
    );
    assert!(
        logs.contains("\"audit\":true"),
        "the capture holds the handlers' events"
    );
    let mut saas = crate::saas::SECRETS.map(str::to_string).to_vec();
    // A line from the middle of the key-pair login's private key (PEM body).
    saas.push(
        crate::saas::login_key(false)
            .lines()
            .nth(2)
            .unwrap()
            .to_string(),
    );
    for secret in secrets.into_iter().chain(saas.iter()) {
        for (reply, headers) in &exchanges {
            assert!(
                !reply.raw.contains(secret.as_str()),
                "secret in a response body: {}",
                reply.raw
            );
            assert!(
                !headers.contains(secret.as_str()),
                "secret in response headers: {headers}"
            );
        }
        if let Some(line) = logs.lines().find(|l| l.contains(secret.as_str())) {
            panic!("secret in a log line: {line}");
        }
    }
    // Tokens the vendors' look-alikes hand out (Google access tokens, Snowflake session tokens)
    // are random: their fixed prefixes must not show anywhere either.
    for issued in ["ya29.c.", "ver:1-hint:"] {
        assert!(!logs.contains(issued), "an issued token in the logs");
        assert!(
            exchanges
                .iter()
                .all(|(r, h)| !r.raw.contains(issued) && !h.contains(issued)),
            "an issued token in a response"
        );
    }
    // The JWT assertions the key-pair logins sign (Snowflake, Google: RS256) show nowhere either.
    assert_eq!(
        rs256_jwts(&logs),
        Vec::<String>::new(),
        "a signed assertion in the logs"
    );
    for (reply, headers) in &exchanges {
        assert!(rs256_jwts(&reply.raw).is_empty() && rs256_jwts(headers).is_empty());
    }
    // The KMS data key travels in GenerateDataKey's answer; at trace it must not be logged either.
    assert!(!logs.contains("\"Plaintext\""), "a data key in the logs");
    // The metric lines were scanned with the rest: one per request at least, each valid EMF, and
    // no tenant or connector id among their dimensions.
    let metrics = captured.metrics();
    let requests: f64 = metrics
        .iter()
        .filter(|d| d.name == "Requests")
        .map(Datum::sum)
        .sum();
    // (+1: the GET that read the masked values back is not among the exchanges.)
    assert_eq!(
        requests as usize,
        exchanges.len() + 1,
        "one Requests count per request"
    );
    let ids = [t.id.as_str(), &pg_id, &rest_id, &sf_id, &s3_id];
    for d in &metrics {
        for value in d.dimensions.values() {
            assert!(
                !ids.contains(&value.as_str()),
                "an id as a dimension: {d:?}"
            );
        }
    }
}

/// Every RS256 JWT in `text` (the tests' own bearer tokens are HS256).
fn rs256_jwts(text: &str) -> Vec<String> {
    use base64::Engine;
    text.match_indices("eyJ")
        .filter_map(|(i, _)| {
            let token: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            let header = token.split('.').next()?;
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .ok()?;
            String::from_utf8(decoded)
                .ok()?
                .contains("RS256")
                .then_some(token)
        })
        .collect()
}

fn r_raw(exchanges: &[(Reply, String)]) -> String {
    exchanges
        .last()
        .map(|(r, _)| r.raw.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_mutating_request_leaves_one_audit_event() {
    let captured = capture();
    let l = local().await;
    let t = Tenant::new("audit");
    let body = json!({"name": "audited", "type": "postgresql", "config": {"host": "127.0.0.1", "port": 1, "database": "d"},
                      "authMethod": "password", "authConfig": {"password": "audit-secret-value"}});
    let (created, _) = l
        .send(
            Call::new("POST", "/api/v1/connectors")
                .bearer(&t.token)
                .json(body.clone()),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let calls = [
        (
            "update",
            Call::new("PUT", "/api/v1/connectors")
                .bearer(&t.token)
                .json(json!({"id": id, "description": "d"})),
        ),
        (
            "test",
            Call::new("POST", "/api/v1/connectors/test")
                .bearer(&t.token)
                .json(json!({"id": id})),
        ),
        (
            "test_dry_run",
            Call::new("POST", "/api/v1/connectors/test")
                .bearer(&t.token)
                .json(
                    json!({"id": id, "config": {"host": "127.0.0.1", "port": 1, "database": "e"}}),
                ),
        ),
        (
            "create",
            Call::new("POST", "/api/v1/connectors")
                .bearer(&t.token)
                .json(body.clone()),
        ),
        (
            "create",
            Call::new("POST", "/api/v1/connectors")
                .bearer(&t.with_role("viewer"))
                .json(body.clone()),
        ),
        ("create", Call::new("POST", "/api/v1/connectors").json(body)),
        (
            "delete",
            Call::new("DELETE", "/api/v1/connectors")
                .query("id", &id)
                .bearer(&t.token),
        ),
    ];
    let mut statuses = vec![created.status];
    for (_, call) in calls {
        statuses.push(l.send(call).await.0.status);
    }
    assert_eq!(statuses, [201, 200, 200, 200, 409, 403, 401, 204]);
    // Reads are not audited.
    l.send(Call::new("GET", "/api/v1/connectors").bearer(&t.token))
        .await;

    let audits: Vec<Value> = captured
        .events()
        .into_iter()
        .filter(|e| e["fields"]["audit"] == true)
        .map(|e| e["fields"].clone())
        .filter(|f| f["tenant"] == t.id.as_str() || f["status"] == 401)
        .collect();
    let expected: Vec<(&str, u16, &str)> = vec![
        ("create", 201, "success"),
        ("update", 200, "success"),
        ("test", 200, "success"),
        ("test_dry_run", 200, "success"),
        ("create", 409, "rejected"),
        ("create", 403, "denied"),
        ("create", 401, "denied"),
        ("delete", 204, "success"),
    ];
    let got: Vec<(&str, u16, &str)> = audits
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["status"].as_u64().unwrap() as u16,
                a["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{audits:#?}");
    for a in &audits {
        let known = a["status"] != 401;
        assert_eq!(a["subject"] != "-", known, "{a}");
        assert_eq!(a["tenant"] == t.id.as_str(), known, "{a}");
        if a["status"] == 201 || a["status"] == 200 || a["status"] == 204 {
            assert_eq!(a["connector"], id.as_str(), "{a}");
        }
        assert!(!a.to_string().contains("audit-secret-value"));
    }
    assert!(!captured.text().contains("audit-secret-value"));
}

#[tokio::test]
async fn metrics_count_requests_and_probes_and_every_error_names_its_log_lines() {
    let captured = capture();
    let l = local().await;
    let t = Tenant::new("metrics");
    let post = |body: Value| {
        Call::new("POST", "/api/v1/connectors")
            .bearer(&t.token)
            .json(body)
    };
    // A port nothing listens on: the probe is refused at once.
    let body = json!({"name": "measured", "type": "postgresql", "config": {"host": "127.0.0.1", "port": 1, "database": "d"},
                      "authMethod": "password", "authConfig": {"password": "metrics-secret-value"}});
    let (created, _) = l.send(post(body.clone())).await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_string();
    let mut errors = Vec::new();
    for call in [
        post(json!({"name": "bad", "type": "postgresql", "config": {"port": 70000}})),
        post(body.clone()),
        Call::new("GET", "/api/v1/connectors/conn_missing")
            .path_id("conn_missing")
            .bearer(&t.token),
        Call::new("POST", "/api/v1/connectors/test").json(json!({"id": id})),
    ] {
        let (reply, headers) = l.send(call).await;
        assert!(reply.status >= 400, "{}", reply.raw);
        errors.push((reply, headers));
    }
    let (tested, _) = l
        .send(
            Call::new("POST", "/api/v1/connectors/test")
                .bearer(&t.token)
                .json(json!({"id": id})),
        )
        .await;
    assert_eq!(tested.status, 200);
    let code = tested.body["diagnostics"]["code"]
        .as_str()
        .unwrap()
        .to_string();

    // Every error body names its request; that id is the X-Request-Id header and is on the
    // request's log lines: the handler's own events (span) and the request line.
    for (reply, headers) in &errors {
        let rid = reply.body["error"]["requestId"]
            .as_str()
            .unwrap_or_else(|| panic!("no requestId: {}", reply.raw));
        assert!(rid.starts_with("req-"), "{rid}");
        assert!(
            headers.contains(&format!("x-request-id: {rid}\n")),
            "{headers}"
        );
        let lines: Vec<String> = captured
            .text()
            .lines()
            .filter(|line| line.contains(rid))
            .map(str::to_string)
            .collect();
        assert!(
            lines
                .iter()
                .any(|line| line.contains("\"message\":\"request\"")
                    && line.contains(&format!("\"status\":{}", reply.status))),
            "no request line for {rid}: {lines:#?}"
        );
    }
    // The create 400 and 409 were audited with the id.
    let audited: Vec<String> = captured
        .events()
        .into_iter()
        .filter(|e| e["fields"]["audit"] == true && e["fields"]["tenant"] == t.id.as_str())
        .map(|e| e["fields"]["requestId"].as_str().unwrap_or("-").to_string())
        .collect();
    for (reply, _) in &errors[..2] {
        let rid = reply.body["error"]["requestId"].as_str().unwrap();
        assert!(audited.iter().any(|a| a == rid), "{rid} not in {audited:?}");
    }
    // The request lines carry the time per step.
    let line = captured
        .text()
        .lines()
        .find(|line| line.contains("\"function\":\"test\"") && line.contains("\"status\":200"))
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .expect("the test request's line");
    for step in ["identity", "store", "kms", "probe"] {
        assert!(line["timings"][step].as_f64().is_some(), "{line}");
    }
    assert!(line["timings"]["store"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["timings"]["probe"].as_f64().unwrap() > 0.0, "{line}");
    assert_eq!(line["tenant"], t.id.as_str());

    let m = captured.metrics();
    let requests = |function: &str, class: &str| {
        total(
            &m,
            "Requests",
            &[("function", function), ("statusClass", class)],
        )
    };
    assert_eq!(requests("create", "2xx"), 1.0);
    assert_eq!(requests("create", "4xx"), 2.0);
    assert_eq!(requests("list", "4xx"), 1.0);
    assert_eq!(requests("test", "4xx"), 1.0, "the unauthenticated test");
    assert_eq!(requests("test", "2xx"), 1.0);
    assert_eq!(total(&m, "ProbeResult", &[("code", &code)]), 1.0);
    assert_eq!(
        total(
            &m,
            "ProbeResult",
            &[("type", "postgresql"), ("code", &code), ("depth", "none")]
        ),
        1.0
    );
    let latencies: usize = m
        .iter()
        .filter(|d| d.name == "ProbeLatency" && d.dimensions.contains_key("service"))
        .map(|d| d.values.len())
        .sum();
    assert_eq!(latencies, 1);
    assert!(!captured.text().contains("metrics-secret-value"));
}

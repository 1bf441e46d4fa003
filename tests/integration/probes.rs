//! The test endpoint against local peers: every protocol, HTTP behaviours, SSRF and recording.

use crate::support::listeners::{closed_port, listen, Peer};
use crate::support::{stack, Tenant};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

fn tcp(kind: &str, addr: SocketAddr) -> Value {
    let config = match kind {
        "mongodb" => json!({"host": addr.ip().to_string(), "port": addr.port()}),
        "kafka" | "confluent_kafka" => json!({"bootstrapServers": format!("{addr}")}),
        _ => json!({"host": addr.ip().to_string(), "port": addr.port(), "database": "app"}),
    };
    json!({"name": format!("{kind}-{}", addr.port()), "type": kind, "config": config})
}

fn rest(url: &str) -> Value {
    json!({"name": format!("rest-{}", shared::ids::new_connector_id()), "type": "rest_api", "config": {"url": url}})
}

fn steps(body: &Value) -> Vec<(String, bool)> {
    body["diagnostics"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn test_code(t: &Tenant, body: Value) -> (String, Value) {
    let id = t.create_id(body).await;
    let r = t.test(&id).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    (
        r.body["diagnostics"]["code"].as_str().unwrap().to_string(),
        r.body,
    )
}

#[tokio::test]
async fn every_tcp_protocol_is_recognized() {
    let t = Tenant::new("proto");
    let pg = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    for (kind, peer) in [
        ("postgresql", pg),
        ("redshift", pg),
        ("mysql", listen(Peer::Mysql).await),
        ("mongodb", listen(Peer::Mongo).await),
        ("kafka", listen(Peer::Kafka).await),
    ] {
        let (code, body) = test_code(&t, tcp(kind, peer)).await;
        assert_eq!(code, "ok", "{kind}: {body}");
        assert_eq!(body["diagnostics"]["depth"], "reachable", "{kind}: {body}");
        // Kafka also asks the cluster for its metadata (no SASL: credentials not checked).
        let mut expected: Vec<(String, bool)> = vec![
            ("dns".into(), true),
            ("tcp".into(), true),
            ("protocol".into(), true),
        ];
        if kind == "kafka" {
            expected.push(("access".into(), true));
        }
        assert_eq!(steps(&body), expected, "{kind}");
        assert_eq!(body["status"], "active");
        assert_eq!(body["lastError"], Value::Null);
        assert!(body["lastTestedAt"].is_string());
    }
    let ssh = listen(Peer::Ssh).await;
    let (code, _) = test_code(&t, json!({"name": "sftp", "type": "sftp", "config": {"host": "127.0.0.1", "port": ssh.port()}})).await;
    assert_eq!(code, "ok");
}

#[tokio::test]
async fn another_protocol_is_a_mismatch() {
    let t = Tenant::new("mismatch");
    let ssh = listen(Peer::Ssh).await;
    let http = listen(Peer::Http).await;
    // A server-first probe (MySQL) facing a client-first service would only time out, so each
    // pairing here has the peer say something the probe can judge.
    for (kind, addr) in [
        ("postgresql", ssh),
        ("postgresql", http),
        ("mysql", ssh),
        ("kafka", http),
        ("kafka", ssh),
        ("mongodb", http),
    ] {
        let (code, body) = test_code(&t, tcp(kind, addr)).await;
        assert_eq!(code, "protocol_mismatch", "{kind}: {body}");
        assert_eq!(body["status"], "error");
        assert!(
            body["lastError"]
                .as_str()
                .unwrap()
                .contains("does not answer like")
                || body["lastError"].as_str().unwrap().contains("closed"),
            "{body}"
        );
    }
    let mysql = listen(Peer::Mysql).await;
    let (code, _) = test_code(&t, json!({"name": "sftp-on-mysql", "type": "sftp", "config": {"host": "127.0.0.1", "port": mysql.port()}})).await;
    assert_eq!(code, "protocol_mismatch");
}

#[tokio::test]
async fn refused_and_silent_peers() {
    let t = Tenant::new("refused");
    let (code, body) = test_code(&t, tcp("postgresql", closed_port().await)).await;
    assert_eq!(code, "connection_refused", "{body}");
    assert_eq!(steps(&body), [("dns".into(), true), ("tcp".into(), false)]);
    let (code, body) = test_code(&t, tcp("postgresql", listen(Peer::Silent).await)).await;
    assert_eq!(code, "timeout", "{body}");
    assert!(
        body["diagnostics"]["latencyMs"].as_u64().unwrap() < 2_500,
        "within the probe budget: {body}"
    );
}

#[tokio::test]
async fn http_status_classes() {
    let t = Tenant::new("http");
    let base = format!("http://{}", listen(Peer::Http).await);
    for (path, expected) in [
        ("/ok", "ok"),
        ("/moved", "ok"),
        ("/chain", "ok"),
        ("/nohead", "ok"),
        ("/loop", "ok"),
        // Without credentials any answer shows the service reachable; nothing was checked.
        ("/auth", "ok"),
        ("/forbidden", "ok"),
        ("/missing", "not_found"),
        ("/boom", "http_error"),
    ] {
        let (code, body) = test_code(&t, rest(&format!("{base}{path}"))).await;
        assert_eq!(code, expected, "{path}: {body}");
        assert_eq!(body["diagnostics"]["depth"], "reachable", "{path}: {body}");
    }
    // With credentials: 2xx authorized, 401 refused (reachable), 403 accepted without access.
    for (path, expected, depth) in [
        ("/ok", "ok", "authorized"),
        ("/auth", "auth_failed", "reachable"),
        ("/forbidden", "permission_denied", "authenticated"),
    ] {
        let mut body = rest(&format!("{base}{path}"));
        body["authConfig"] = json!({"token": "depth-token"});
        let (code, body) = test_code(&t, body).await;
        assert_eq!(
            (code.as_str(), body["diagnostics"]["depth"].as_str()),
            (expected, Some(depth)),
            "{path}: {body}"
        );
    }
    let (_, body) = test_code(&t, rest(&format!("{base}/chain"))).await;
    let http_steps = steps(&body).iter().filter(|(n, _)| n == "http").count();
    assert_eq!(http_steps, 3, "two redirects followed by hand: {body}");
}

#[tokio::test]
async fn credentials_are_sent_and_masked_in_the_answer() {
    let t = Tenant::new("creds");
    let base = format!("http://{}", listen(Peer::Http).await);
    let mut body = rest(&format!("{base}/needs-token"));
    body["authConfig"] = json!({"token": "s3cret-token", "username": "svc_kaireon", "pin": 1234});
    let (code, body) = test_code(&t, body).await;
    assert_eq!(code, "ok", "{body}");
    assert_eq!(
        body["authConfig"],
        json!({"token": "s3***en", "username": "sv***on", "pin": "****"})
    );
    assert!(!body.to_string().contains("s3cret-token"));

    let mut wrong = rest(&format!("{base}/needs-token"));
    wrong["authConfig"] = json!({"token": "wrong-token"});
    let (code, _) = test_code(&t, wrong).await;
    assert_eq!(code, "auth_failed");
}

#[tokio::test]
async fn rest_apis_take_a_named_header_key_or_oauth_client_credentials() {
    use crate::support::listeners::{API_KEY, CLIENT, ISSUED_TOKEN};
    let t = Tenant::new("restauth");
    let base = format!("http://{}", listen(Peer::Http).await);
    let with = |path: &str, auth: Value| {
        let mut body = rest(&format!("{base}{path}"));
        body["authConfig"] = auth;
        body
    };
    let cc = |secret: &str, token_url: &str| json!({"tokenUrl": token_url, "clientId": CLIENT.0, "clientSecret": secret, "scope": "read"});
    let token_url = format!("{base}/oauth/token");
    for (name, body, code, depth) in [
        (
            "header",
            with(
                "/needs-api-key",
                json!({"headerName": "X-Api-Key", "apiKey": API_KEY}),
            ),
            "ok",
            "authorized",
        ),
        (
            "header-wrong",
            with(
                "/needs-api-key",
                json!({"headerName": "X-Api-Key", "apiKey": "nope-key-000"}),
            ),
            "auth_failed",
            "reachable",
        ),
        // Without headerName the key stays a bearer token, as before.
        (
            "bearer-not-header",
            with("/needs-api-key", json!({"apiKey": API_KEY})),
            "auth_failed",
            "reachable",
        ),
        (
            "client-credentials",
            with("/needs-cc-token", cc(CLIENT.1, &token_url)),
            "ok",
            "authorized",
        ),
        (
            "client-credentials-wrong",
            with("/needs-cc-token", cc("wrong-secret-000", &token_url)),
            "auth_failed",
            "reachable",
        ),
        // The token URL goes through the guard like the target.
        (
            "token-url-blocked",
            with(
                "/needs-cc-token",
                cc(CLIENT.1, "http://169.254.169.254/token"),
            ),
            "destination_blocked",
            "-",
        ),
    ] {
        let (got, answer) = test_code(&t, body).await;
        let d = &answer["diagnostics"];
        let depth = (depth != "-").then_some(depth);
        assert_eq!(
            (got.as_str(), d["depth"].as_str()),
            (code, depth),
            "{name}: {answer}"
        );
        for secret in [API_KEY, CLIENT.1, ISSUED_TOKEN] {
            assert!(!answer.to_string().contains(secret), "{name}: leaked");
        }
        if name == "client-credentials" {
            assert!(
                answer.to_string().contains("token endpoint: HTTP 200"),
                "{answer}"
            );
        }
    }
    // A header name that is not one, or one the client must own, is a 400 naming the field.
    for header in ["Bad Header", "Host", "Content-Length"] {
        let r = t
            .create(with(
                "/needs-api-key",
                json!({"headerName": header, "apiKey": API_KEY}),
            ))
            .await;
        assert_eq!(r.fields(), ["authConfig.headerName"], "{header}: {}", r.raw);
    }
    let r = t
        .create(with(
            "/x",
            json!({"tokenUrl": "ftp://idp/token", "clientId": "c", "clientSecret": "s"}),
        ))
        .await;
    assert_eq!(r.fields(), ["authConfig.tokenUrl"], "{}", r.raw);
}

#[tokio::test]
async fn blocked_destinations_send_nothing() {
    let t = Tenant::new("ssrf");
    let base = format!("http://{}", listen(Peer::Http).await);
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:9/",
        "http://0x7f.2/",
        "http://[::1]/",
        "http://localhost:1/",
    ] {
        let (code, body) = test_code(&t, rest(url)).await;
        // localhost resolves to 127.0.0.1, which the tests allow; port 1 refuses instead.
        let expected = if url.contains("localhost") {
            "connection_refused"
        } else {
            "destination_blocked"
        };
        assert_eq!(code, expected, "{url}: {body}");
        if expected == "destination_blocked" {
            assert!(
                body["diagnostics"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("blocked"),
                "{body}"
            );
            assert_eq!(
                steps(&body).iter().filter(|(n, _)| n == "http").count(),
                0,
                "no request was sent: {body}"
            );
        }
    }
    for path in ["/to-private", "/to-metadata"] {
        let (code, body) = test_code(&t, rest(&format!("{base}{path}"))).await;
        assert_eq!(code, "destination_blocked", "{path}: {body}");
    }
    let (code, body) = test_code(&t, tcp("postgresql", "192.168.1.10:5432".parse().unwrap())).await;
    assert_eq!(code, "destination_blocked", "{body}");
    assert!(
        body["lastError"]
            .as_str()
            .unwrap()
            .contains("192.168.0.0/16"),
        "names the range: {body}"
    );
}

#[tokio::test]
async fn invalid_config_is_reported_without_network() {
    let t = Tenant::new("badcfg");
    // The create rules take any non-empty region; only the probe knows AWS region names.
    let id = t.create_id(json!({"name": "s3", "type": "aws_s3", "config": {"bucket": "b", "region": "not-a-region"}})).await;
    let r = t.test(&id).await;
    assert_eq!(r.body["diagnostics"]["code"], "invalid_config", "{}", r.raw);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["diagnostics"]["steps"], json!([]));
}

#[tokio::test]
async fn s3_buckets_and_kinesis_streams_in_the_emulator() {
    let st = stack().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&st.sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!(
        "probe-{}",
        shared::ids::new_connector_id()
            .to_lowercase()
            .replace('_', "-")
    );
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let kinesis = aws_sdk_kinesis::Client::new(&st.sdk);
    let stream = format!("events-{}", shared::ids::new_connector_id());
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();

    let t = Tenant::new("aws");
    let creds = json!({"accessKeyId": "test", "secretAccessKey": "test"});
    let s3_body = |bucket: &str| json!({"name": format!("s3-{bucket}"), "type": "aws_s3", "config": {"bucket": bucket, "region": "us-east-1"}, "authConfig": creds});
    let (code, body) = test_code(&t, s3_body(&bucket)).await;
    assert_eq!(code, "ok", "{body}");
    // The keys are proven first (STS GetCallerIdentity), then the bucket.
    assert_eq!(
        steps(&body),
        [("auth".into(), true), ("bucket".into(), true)]
    );
    let (code, body) = test_code(&t, s3_body("no-such-bucket-here")).await;
    assert_eq!(code, "not_found", "{body}");

    let k_body = |stream: &str| json!({"name": format!("k-{stream}"), "type": "amazon_kinesis", "config": {"streamName": stream, "region": "us-east-1"}, "authConfig": creds});
    let (code, body) = test_code(&t, k_body(&stream)).await;
    assert_eq!(code, "ok", "{body}");
    let (code, _) = test_code(&t, k_body("no-such-stream")).await;
    assert_eq!(code, "not_found");
    let (code, _) = test_code(&t, json!({"name": "nocreds", "type": "aws_s3", "config": {"bucket": bucket, "region": "us-east-1"}})).await;
    assert_eq!(code, "invalid_config");
}

#[tokio::test]
async fn results_are_recorded_and_errors_are_clear() {
    let t = Tenant::new("record");
    let pg = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let id = t.create_id(tcp("postgresql", pg)).await;
    assert_eq!(t.get(&id).await.body["status"], "pending");
    let r = t.test(&id).await;
    assert_eq!(r.headers["ratelimit-policy"], "\"tenant\";q=100;w=60");
    assert!(r.headers["ratelimit"]
        .to_str()
        .unwrap()
        .starts_with("\"tenant\";r=99;t="));
    let stored = t.get(&id).await.body;
    assert_eq!(
        (stored["status"].as_str(), stored["lastTestedAt"].clone()),
        (Some("active"), r.body["lastTestedAt"].clone())
    );

    let r = crate::support::Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .raw_body("{")
        .send()
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    let r = crate::support::Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(json!({}))
        .send()
        .await;
    assert_eq!((r.status, r.code()), (400, "missing_id"));
    assert_eq!(t.test("conn_01ARZ3NDEKTSV4RRFFQ69G5FAV").await.status, 404);
    let viewer = crate::support::Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.with_role("viewer"))
        .json(json!({"id": id}))
        .send()
        .await;
    assert_eq!(viewer.status, 403);
    assert_eq!(
        Tenant::new("other").test(&id).await.status,
        404,
        "another tenant's connector"
    );
}

#[tokio::test]
async fn names_that_resolve_to_blocked_addresses_are_blocked() {
    // Without the tests' allow-list, `localhost` (127.0.0.1 here) is loopback like any other name
    // resolving into a blocked range.
    let mut settings = crate::support::probe_settings();
    settings.guard = shared::probe::ssrf::Guard::default();
    let tester = crate::support::tester_probing_with(settings).await;
    let t = Tenant::new("dnsblock");
    let base = listen(Peer::Http).await;
    for (kind, body) in [
        (
            "rest_api",
            rest(&format!("http://localhost:{}/ok", base.port())),
        ),
        (
            "postgresql",
            json!({"name": "pg-localhost", "type": "postgresql", "config": {"host": "localhost", "port": base.port(), "database": "d"}}),
        ),
    ] {
        let id = t.create_id(body).await;
        let r = crate::support::test_through(&tester, &t, &id).await;
        assert_eq!(
            r.body["diagnostics"]["code"], "destination_blocked",
            "{kind}: {}",
            r.raw
        );
        let message = r.body["diagnostics"]["message"].as_str().unwrap();
        assert!(
            message.contains("localhost resolves to 127.0.0.1")
                && message.contains("127.0.0.0/8 loopback"),
            "{message}"
        );
        assert_eq!(
            steps(&r.body),
            [("dns".to_string(), false)],
            "nothing after the lookup"
        );
    }
}

#[tokio::test]
async fn mongodb_srv_probes_the_first_target() {
    let mongo = listen(Peer::Mongo).await;
    let dns = crate::support::listeners::srv_dns("localhost", mongo.port()).await;
    let mut settings = crate::support::probe_settings();
    settings.dns_server = Some(dns);
    let tester = crate::support::tester_probing_with(settings).await;
    let t = Tenant::new("srv");
    // mongodb+srv means TLS by default; this peer speaks plain MongoDB.
    let id = t.create_id(json!({"name": "atlas", "type": "mongodb", "config": {"connectionString": "mongodb+srv://cluster0.example.net/app?tls=false"}})).await;
    let r = crate::support::test_through(&tester, &t, &id).await;
    assert_eq!(r.body["diagnostics"]["code"], "ok", "{}", r.raw);
    let first = r.body["diagnostics"]["steps"][0]["detail"]
        .as_str()
        .unwrap();
    assert_eq!(
        first,
        format!(
            "SRV _mongodb._tcp.cluster0.example.net. → localhost:{}",
            mongo.port()
        )
    );
    assert_eq!(steps(&r.body).len(), 4, "srv, dns, tcp, protocol");

    // The SRV target goes through the guard like any name.
    let mut blocked = crate::support::probe_settings();
    blocked.dns_server = Some(dns);
    blocked.guard = shared::probe::ssrf::Guard::default();
    let tester = crate::support::tester_probing_with(blocked).await;
    let id = t.create_id(json!({"name": "atlas-2", "type": "mongodb", "config": {"connectionString": "mongodb+srv://cluster1.example.net/app"}})).await;
    let r = crate::support::test_through(&tester, &t, &id).await;
    assert_eq!(
        r.body["diagnostics"]["code"], "destination_blocked",
        "{}",
        r.raw
    );
}

//! Bad input gets a 4xx naming the problem, and nothing is written.

use crate::support::{Call, Tenant};
use serde_json::json;

async fn post_raw(t: &Tenant, body: &str) -> crate::support::Reply {
    Call::new("POST", "/api/v1/connectors")
        .bearer(&t.token)
        .raw_body(body)
        .send()
        .await
}

#[tokio::test]
async fn malformed_bodies() {
    let t = Tenant::new("body");
    let r = post_raw(&t, "{\"name\": ").await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    let r = post_raw(&t, "").await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    for not_object in ["[]", "\"x\"", "42", "null"] {
        let r = post_raw(&t, not_object).await;
        assert_eq!((r.status, r.code()), (400, "invalid_body"), "{not_object}");
    }
    let big = json!({"name": "big", "type": "webhook", "config": {"url": "https://example.com", "pad": "x".repeat(70_000)}});
    let r = t.create(big).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(t.list(None, None).await.body["total"], 0);
}

#[tokio::test]
async fn an_unknown_type_lists_the_supported_ones() {
    let t = Tenant::new("type");
    let r = t.create(json!({"name": "x", "type": "oracle"})).await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let problem = r.body["error"]["details"][0]["problem"].as_str().unwrap();
    for ty in [
        "postgresql",
        "confluent_kafka",
        "aws_s3",
        "amazon_kinesis",
        "hubspot",
    ] {
        assert!(problem.contains(ty), "{problem}");
    }
}

#[tokio::test]
async fn every_problem_is_named_by_field() {
    let t = Tenant::new("fields");
    let r = t
        .create(json!({"type": "postgresql", "config": {"host": "https://db.example.com/x", "port": 70000}, "authMethod": "Bad-Method", "authConfig": "x", "extra": 1}))
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let mut got = r.fields();
    got.sort();
    assert_eq!(
        got,
        [
            "authConfig",
            "authMethod",
            "config.database",
            "config.host",
            "config.port",
            "extra",
            "name"
        ]
    );
    assert_eq!(
        t.list(None, None).await.body["total"],
        0,
        "nothing is written"
    );
}

#[tokio::test]
async fn either_or_requirements() {
    let t = Tenant::new("either");
    let r = t
        .create(json!({"name": "m", "type": "mongodb", "config": {}}))
        .await;
    assert_eq!(r.fields(), ["config.host|config.connectionString"]);
    let r = t.create(json!({"name": "m", "type": "mongodb", "config": {"connectionString": "mongodb+srv://cluster0.example.net/db"}})).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = t
        .create(
            json!({"name": "sf", "type": "salesforce", "authConfig": {"apiKey": "k-123456789"}}),
        )
        .await;
    assert_eq!(r.status, 201, "apiKey may sit in authConfig: {}", r.raw);
    assert_eq!(r.body["config"], json!({}));
    let r = t
        .create(json!({"name": "hs", "type": "hubspot", "config": {"instanceUrl": "ftp://x"}}))
        .await;
    assert_eq!(r.fields(), ["config.instanceUrl"]);
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_invalid_json() {
    // API Gateway base64-encodes a body that is not valid UTF-8.
    let t = Tenant::new("binary");
    let mut event = Call::new("POST", "/api/v1/connectors")
        .bearer(&t.token)
        .event();
    event["body"] = json!("/w8yfn4=");
    event["isBase64Encoded"] = json!(true);
    let st = crate::support::stack().await;
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let r = crate::support::Reply::from(
        shared::handlers::create::handle(&st.store, &st.sealer, Some(&st.verifier), req).await,
    );
    assert_eq!((r.status, r.code()), (400, "invalid_json"), "{}", r.raw);
    assert_eq!(t.list(None, None).await.body["total"], 0);
}

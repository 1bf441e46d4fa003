//! The sample events in events/ (for `sam local invoke` and `cargo lambda invoke`) parse as API
//! Gateway v2 requests and get the answers they should.

use crate::support::stack;
use shared::handlers::{create, delete, list, tunnel_key, update};

fn request(file: &str) -> lambda_http::Request {
    let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("{file} is not an API Gateway v2 event: {e}"))
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_status() {
    let st = stack().await;
    // No verifier: the events carry the authorizer context, as API Gateway delivers them.
    let created = create::handle(&st.store, &st.sealer, None, request("create.json")).await;
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = match created.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    };
    let id = body["id"].as_str().unwrap().to_string();

    assert_eq!(
        list::handle(
            &st.store,
            None,
            request("list.json"),
            crate::support::HISTORY
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        list::handle(
            &st.store,
            None,
            request("list-cursor.json"),
            crate::support::HISTORY
        )
        .await
        .status(),
        200
    );
    // The sample id names no stored connector.
    assert_eq!(
        list::handle(
            &st.store,
            None,
            request("detail.json"),
            crate::support::HISTORY
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        update::handle(&st.store, &st.sealer, None, request("update.json"))
            .await
            .status(),
        404
    );
    assert_eq!(
        delete::handle(&st.store, None, request("delete.json"))
            .await
            .status(),
        404
    );

    // The dry run of a body: probed (db.example.com does not resolve here), nothing stored.
    let dry = st.tester.handle(request("test-dry-run.json")).await;
    assert_eq!(dry.status(), 200);
    let dry: serde_json::Value = match dry.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    };
    assert_eq!(
        (dry["dryRun"].as_bool(), dry["type"].as_str()),
        (Some(true), Some("postgresql")),
        "{dry}"
    );
    assert_eq!(dry["authConfig"]["password"], "a-***rd");

    // The tenant's tunnel key (a viewer may read it), the same on a second call.
    let key = |resp: lambda_http::Response<lambda_http::Body>| -> serde_json::Value {
        assert_eq!(resp.status(), 200);
        match resp.body() {
            lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
            _ => panic!("no body"),
        }
    };
    let first =
        key(tunnel_key::handle(&st.store, &st.sealer, None, request("tunnel-key.json")).await);
    let again =
        key(tunnel_key::handle(&st.store, &st.sealer, None, request("tunnel-key.json")).await);
    assert!(first["publicKey"]
        .as_str()
        .unwrap()
        .ends_with(" connectors-api:acme"));
    assert_eq!(first, again);
    // A dry run through a bastion: bastion.example.com does not resolve here, so the tunnel's
    // first step fails, and nothing else is tried.
    let dry = st.tester.handle(request("test-tunnel-dry-run.json")).await;
    assert_eq!(dry.status(), 200);
    let dry: serde_json::Value = match dry.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    };
    let steps = dry["diagnostics"]["steps"].as_array().unwrap();
    assert_eq!(
        (steps.len(), steps[0]["name"].as_str()),
        (1, Some("tunnel.tcp")),
        "{dry}"
    );

    // The history of the sample connector: its id names no stored connector here.
    assert_eq!(
        list::handle(
            &st.store,
            None,
            request("history.json"),
            crate::support::HISTORY
        )
        .await
        .status(),
        404
    );
    // A stream batch (a test that took the sample connector pending → active): the publisher
    // writes its history item and publishes its event; nothing fails.
    let publisher = shared::publisher::Publisher {
        store: st.store.clone(),
        bus: shared::publisher::EventBridgeBus::from_sdk(&st.sdk, "default"),
        dead_letters: None::<shared::publisher::SqsDeadLetters>,
        history: crate::support::HISTORY,
    };
    let batch = request("stream-batch.json");
    let records = shared::publisher::stream_batch(&batch).expect("a stream batch");
    let answer = publisher.respond(&batch, &records).await;
    let answer: serde_json::Value = match answer.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    };
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
    let items = shared::store::History::results(
        &st.store,
        "acme",
        "conn_01JDX6B3N0Q4Z8M7K2V5T9R1SA",
        None,
        "00000000000000000000000000",
        10,
    )
    .await
    .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].result_id, "01JDX6F2M8K3N5P7Q9R1S3T5V7");

    // Clean up so the fixed tenant of the samples starts empty on a reused emulator.
    let mut cleanup = request("delete.json");
    *cleanup.uri_mut() = format!("/api/v1/connectors?id={id}").parse().unwrap();
    let mut q = std::collections::HashMap::new();
    q.insert("id".to_string(), id.clone());
    let cleanup = lambda_http::RequestExt::with_query_string_parameters(cleanup, q);
    assert_eq!(delete::handle(&st.store, None, cleanup).await.status(), 204);
}

//! Concurrency: one name among simultaneous creates, optimistic locking with If-Match / version,
//! concurrent updates of different fields, and idempotent creates.

use crate::support::{postgres, stack, Call, Reply, Tenant, TABLE};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use serde_json::json;
use shared::ids::unix_now;

fn create_with_key(t: &Tenant, key: &str, body: serde_json::Value) -> Call {
    Call::new("POST", "/api/v1/connectors")
        .bearer(&t.token)
        .header("Idempotency-Key", key)
        .json(body)
}

#[tokio::test]
async fn twenty_simultaneous_creates_of_one_name_admit_exactly_one() {
    let t = Tenant::new("race");
    let calls = (0..20).map(|i| {
        // Same name in different cases: names are unique ignoring case.
        let name = if i % 2 == 0 { "Orders DB" } else { "orders db" };
        t.create(postgres(name))
    });
    let replies: Vec<Reply> = join_all(calls).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let taken = replies
        .iter()
        .filter(|r| r.status == 409 && r.code() == "name_taken")
        .count();
    assert_eq!(
        (created, taken),
        (1, 19),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let list = t.list(None, None).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn if_match_and_version_guard_updates() {
    let t = Tenant::new("ifmatch");
    let created = t.create(postgres("guarded")).await;
    assert_eq!(created.headers["etag"], "\"1\"");
    let id = created.body["id"].as_str().unwrap().to_string();
    let put = |etag: Option<&str>, body: serde_json::Value| {
        let mut call = Call::new("PUT", "/api/v1/connectors")
            .bearer(&t.token)
            .json(body);
        if let Some(e) = etag {
            call = call.header("If-Match", e);
        }
        call.send()
    };

    let ok = put(Some("\"1\""), json!({"id": id, "description": "v2"})).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    assert_eq!(ok.body["version"], 2);
    assert_eq!(ok.headers["etag"], "\"2\"");

    let stale = put(Some("\"1\""), json!({"id": id, "description": "lost"})).await;
    assert_eq!(stale.status, 412, "{}", stale.raw);
    assert_eq!(stale.code(), "version_mismatch");
    let stale_body = put(None, json!({"id": id, "description": "lost", "version": 1})).await;
    assert_eq!(stale_body.status, 412, "{}", stale_body.raw);
    assert_eq!(
        t.get(&id).await.body["description"],
        "v2",
        "a refused update changed nothing"
    );

    // Strong comparison (RFC 9110 §13.1.1): a weak tag never matches, even of the current
    // version; any well-formed tag that is not the current one is a 412, not a 400.
    for tag in ["W/\"2\"", "\"stale-0\"", "\"\"", "\"02\""] {
        let r = put(Some(tag), json!({"id": id, "description": "lost"})).await;
        assert_eq!(
            (r.status, r.code()),
            (412, "version_mismatch"),
            "{tag}: {}",
            r.raw
        );
    }
    assert_eq!(
        put(
            Some("W/\"1\", \"2\""),
            json!({"id": id, "description": "v3"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        put(Some("\"1\", \"3\""), json!({"id": id, "description": "v4"}))
            .await
            .status,
        200
    );
    assert_eq!(
        put(Some("*"), json!({"id": id, "description": "v5"}))
            .await
            .status,
        200
    );
    assert_eq!(
        put(None, json!({"id": id, "description": "v6", "version": 5}))
            .await
            .status,
        200
    );
    for header in ["6", "abc", "\"6", "W/6", "\"6\" \"7\""] {
        let bad = put(Some(header), json!({"id": id, "description": "x"})).await;
        assert_eq!(
            (bad.status, bad.code()),
            (400, "invalid_if_match"),
            "{header}"
        );
    }
    let bad = put(None, json!({"id": id, "description": "x", "version": "6"})).await;
    assert_eq!((bad.status, bad.code()), (400, "validation_failed"));
    let only_version = put(None, json!({"id": id, "version": 6})).await;
    assert_eq!(only_version.code(), "nothing_to_update");
    let detail = t.get(&id).await;
    assert_eq!(
        (
            detail.body["version"].as_u64(),
            detail.headers["etag"].to_str().unwrap()
        ),
        (Some(6), "\"6\"")
    );
}

#[tokio::test]
async fn concurrent_updates_of_different_fields_both_survive() {
    let t = Tenant::new("both");
    for round in 0..5 {
        let id = t.create_id(postgres(&format!("both-{round}"))).await;
        let (a, b) = tokio::join!(
            t.update(json!({"id": id, "description": format!("described {round}")})),
            t.update(json!({"id": id, "name": format!("renamed-{round}")})),
        );
        assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.raw, b.raw);
        let now = t.get(&id).await;
        assert_eq!(now.body["description"], format!("described {round}"));
        assert_eq!(now.body["name"], format!("renamed-{round}"));
        assert_eq!(now.body["version"], 3);
    }
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_creates_once() {
    let t = Tenant::new("idem");
    let body = json!({"name": "once", "type": "mysql", "config": {"host": "db.example.com", "port": 3306, "database": "x"},
                      "authMethod": "password", "authConfig": {"username": "u", "password": "idem-pass-1"}});
    let first = create_with_key(&t, "order-1", body.clone()).send().await;
    assert_eq!(first.status, 201, "{}", first.raw);
    assert!(first.headers.get("idempotent-replayed").is_none());
    // Same JSON with other spacing: the same request.
    let again = create_with_key(&t, "order-1", body.clone())
        .raw_body(&serde_json::to_string_pretty(&body).unwrap())
        .send()
        .await;
    assert_eq!(again.status, 201, "{}", again.raw);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(t.list(None, None).await.body["total"], 1);

    let mut other = body.clone();
    other["authConfig"]["password"] = json!("idem-pass-2");
    let reused = create_with_key(&t, "order-1", other).send().await;
    assert_eq!(
        (reused.status, reused.code()),
        (422, "idempotency_key_reused"),
        "{}",
        reused.raw
    );
    assert!(!reused.raw.contains("idem-pass"), "{}", reused.raw);

    // Another key with the same body is another request: the name is taken.
    let second_key = create_with_key(&t, "order-2", body).send().await;
    assert_eq!((second_key.status, second_key.code()), (409, "name_taken"));
    assert_eq!(t.list(None, None).await.body["total"], 1);

    let bad = create_with_key(&t, "has space", postgres("x")).send().await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_idempotency_key"));
}

#[tokio::test]
async fn simultaneous_retries_with_one_key_all_get_the_first_answer() {
    let t = Tenant::new("idemrace");
    let calls = (0..8).map(|_| create_with_key(&t, "retry-storm", postgres("storm")).send());
    let replies = join_all(calls).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies.iter().map(|r| &r.raw).collect::<Vec<_>>()
    );
    let ids: std::collections::HashSet<_> =
        replies.iter().map(|r| r.body["id"].to_string()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every retry answers with the one connector created"
    );
    assert_eq!(t.list(None, None).await.body["total"], 1);
}

#[tokio::test]
async fn an_expired_key_not_yet_removed_by_ttl_is_free_again() {
    let t = Tenant::new("idemttl");
    let st = stack().await;
    // What DynamoDB may still hold days after expiresAt: the key must count as unused.
    st.dynamo
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(format!("TENANT#{}", t.id)))
        .item("sk", AttributeValue::S("IDEMPOTENCY#old".into()))
        .item("fingerprint", AttributeValue::S("0".repeat(64)))
        .item("status", AttributeValue::N("201".into()))
        .item("body", AttributeValue::S("{}".into()))
        .item(
            "location",
            AttributeValue::S("/api/v1/connectors/conn_gone".into()),
        )
        .item("version", AttributeValue::N("1".into()))
        .item(
            "expiresAt",
            AttributeValue::N((unix_now() - 10).to_string()),
        )
        .send()
        .await
        .unwrap();
    let r = create_with_key(&t, "old", postgres("fresh")).send().await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert!(r.headers.get("idempotent-replayed").is_none());
    let kept = st
        .dynamo
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(format!("TENANT#{}", t.id)))
        .key("sk", AttributeValue::S("IDEMPOTENCY#old".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: u64 = kept["expiresAt"].as_n().unwrap().parse().unwrap();
    assert!(expires >= unix_now() + 24 * 3600 - 60, "kept for 24 h");
}

/// The kept fingerprint of `key` in the tenant's partition, as stored.
async fn stored_fingerprint(tenant: &str, key: &str) -> String {
    let item = stack()
        .await
        .dynamo
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .key("sk", AttributeValue::S(format!("IDEMPOTENCY#{key}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("the kept answer");
    item["fingerprint"].as_s().unwrap().clone()
}

#[tokio::test]
async fn the_kept_fingerprint_helps_no_one_guess_a_password() {
    let body = json!({"name": "mac", "type": "mysql", "config": {"host": "db.example.com", "port": 3306, "database": "x"},
                      "authConfig": {"username": "u", "password": "guess-me-1"}});
    let (a, b) = (Tenant::new("idemmac"), Tenant::new("idemmac"));
    for t in [&a, &b] {
        let r = create_with_key(t, "same-key", body.clone()).send().await;
        assert_eq!(r.status, 201, "{}", r.raw);
    }
    let (fa, fb) = (
        stored_fingerprint(&a.id, "same-key").await,
        stored_fingerprint(&b.id, "same-key").await,
    );
    assert_ne!(fa, fb, "the same body in two tenants is kept differently");
    // Not the unkeyed SHA-256 of the body (which an offline guesser could recompute).
    let plain = shared::idempotency::legacy_fingerprint(body.as_object().unwrap());
    for f in [&fa, &fb] {
        assert!(!f.contains(&plain), "{f}");
        assert!(!f.contains("guess-me"), "{f}");
    }
    // A guess with the right body and a wrong password is refused; the right one replays.
    let mut guess = body.clone();
    guess["authConfig"]["password"] = json!("guess-me-2");
    let r = create_with_key(&a, "same-key", guess).send().await;
    assert_eq!(
        (r.status, r.code()),
        (422, "idempotency_key_reused"),
        "{}",
        r.raw
    );
    let r = create_with_key(&a, "same-key", body.clone()).send().await;
    assert_eq!(
        (r.status, r.headers["idempotent-replayed"].to_str().unwrap()),
        (201, "true")
    );
}

#[tokio::test]
async fn answers_kept_in_the_first_format_are_still_replayed() {
    let t = Tenant::new("idemv1");
    let st = stack().await;
    let body = json!({"name": "before-deploy", "type": "mysql", "config": {"host": "db.example.com", "port": 3306, "database": "x"},
                      "authConfig": {"password": "v1-secret"}});
    // What the previous release kept: the unkeyed SHA-256 of the body, no MAC key.
    let kept_body =
        json!({"id": "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV", "name": "before-deploy"}).to_string();
    st.dynamo
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(format!("TENANT#{}", t.id)))
        .item("sk", AttributeValue::S("IDEMPOTENCY#deploy".into()))
        .item(
            "fingerprint",
            AttributeValue::S(shared::idempotency::legacy_fingerprint(
                body.as_object().unwrap(),
            )),
        )
        .item("status", AttributeValue::N("201".into()))
        .item("body", AttributeValue::S(kept_body.clone()))
        .item(
            "location",
            AttributeValue::S("/api/v1/connectors/conn_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()),
        )
        .item("version", AttributeValue::N("1".into()))
        .item(
            "expiresAt",
            AttributeValue::N((unix_now() + 3600).to_string()),
        )
        .send()
        .await
        .unwrap();
    let r = create_with_key(&t, "deploy", body.clone()).send().await;
    assert_eq!((r.status, r.raw.as_str()), (201, kept_body.as_str()));
    let mut other = body;
    other["authConfig"]["password"] = json!("v1-other");
    let r = create_with_key(&t, "deploy", other).send().await;
    assert_eq!(r.status, 422, "{}", r.raw);
}

//! Test before saving: a connector body (or an id plus a proposed change) is validated like a
//! write, probed for real (the PostgreSQL of `make integration`), and nothing is stored but the
//! rate-limit count.

use crate::faults::partition;
use crate::support::{probe_settings, tester_probing_with, Call, Reply, Tenant};
use serde_json::{json, Value};
use shared::envelope::KmsEnvelope;
use shared::handlers::test::Tester;
use shared::store::DynamoStore;

fn pg(database: &str, password: &str) -> Value {
    let port: u16 = std::env::var("PG_TEST_PORT")
        .expect("make integration starts PostgreSQL")
        .parse()
        .unwrap();
    json!({"type": "postgresql", "config": {"host": "127.0.0.1", "port": port, "database": database},
           "authConfig": {"username": "app", "password": password}})
}

fn right() -> String {
    std::env::var("PG_TEST_PASSWORD").unwrap()
}

async fn dry(tester: &Tester<DynamoStore, KmsEnvelope>, t: &Tenant, body: Value) -> Reply {
    let event = Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(body)
        .event();
    Reply::from(
        tester
            .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
            .await,
    )
}

/// The sort keys of the tenant's partition.
async fn keys(tenant: &str) -> Vec<String> {
    partition(tenant)
        .await
        .into_iter()
        .map(|(sk, _)| sk)
        .collect()
}

#[tokio::test]
async fn a_body_is_probed_and_nothing_is_stored_but_the_rate_count() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("dryrun");
    let r = dry(&tester, &t, pg("appdb", "wrong-dry-password")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["dryRun"], true);
    assert_eq!(r.body["type"], "postgresql");
    assert!(r.body.get("id").is_none());
    assert_eq!(r.body["diagnostics"]["code"], "auth_failed", "{}", r.raw);
    assert_eq!(
        r.body["authConfig"]["password"], "wr***rd",
        "masked as the spec masks"
    );
    assert!(!r.raw.contains("wrong-dry-password"));

    let r = dry(&tester, &t, pg("appdb", &right())).await;
    assert_eq!(
        (
            r.body["diagnostics"]["code"].as_str(),
            r.body["diagnostics"]["depth"].as_str()
        ),
        (Some("ok"), Some("authorized")),
        "{}",
        r.raw
    );
    // A raw read of the partition: the rate bucket, and nothing else.
    assert_eq!(keys(&t.id).await, ["RATE"]);
    assert_eq!(t.list(None, None).await.body["total"], 0);
}

#[tokio::test]
async fn bad_bodies_get_the_same_400s_as_create() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("dry400");
    for body in [
        json!({"type": "postgresql", "config": {"port": 70000}}),
        json!({"type": "nosql"}),
        json!({"type": "mongodb", "config": {"connectionString": "mongodb://u:p@db.example.com"}}),
        json!({"type": "postgresql", "config": {"host": "db.example.com", "port": 5432, "database": "d"}, "bogus": 1}),
        json!({"type": "postgresql", "name": "", "config": {"host": "db.example.com", "port": 5432, "database": "d"}}),
    ] {
        let r = dry(&tester, &t, body.clone()).await;
        let mut named = body.clone();
        named
            .as_object_mut()
            .unwrap()
            .entry("name")
            .or_insert(json!("dry-400"));
        let created = t.create(named).await;
        assert_eq!(
            (r.status, r.code()),
            (400, created.code()),
            "{body}: {}",
            r.raw
        );
        assert_eq!(r.fields(), created.fields(), "{body}");
    }
    let r = dry(&tester, &t, json!({"config": {}})).await;
    assert_eq!((r.status, r.code()), (400, "missing_id"));
    assert_eq!(keys(&t.id).await, ["RATE"]);
}

#[tokio::test]
async fn an_edit_of_a_stored_connector_is_probed_merged_and_the_stored_one_stays() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("dryedit");
    let mut stored = pg("appdb", "stale-password");
    stored["name"] = json!("edited");
    let id = t.create_id(stored).await;
    let before = t.get(&id).await.body;

    // The stored (wrong) password fails; the proposed one passes.
    let r = dry(
        &tester,
        &t,
        json!({"id": id, "authConfig": {"username": "app", "password": right()}}),
    )
    .await;
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["diagnostics"]["code"], "ok", "{}", r.raw);
    // Another database, credentials as stored (masked values restore the stored secret).
    let r = dry(&tester, &t, json!({"id": id, "config": {"host": "127.0.0.1", "port": before["config"]["port"], "database": "nosuchdb"},
                                    "authConfig": {"username": "app", "password": "****"}})).await;
    assert_eq!(
        r.body["diagnostics"]["code"], "auth_failed",
        "stored password: {}",
        r.raw
    );
    // An invalid merged config is refused like update refuses it.
    let r = dry(&tester, &t, json!({"id": id, "config": {"port": 0}})).await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let r = dry(&tester, &t, json!({"id": "conn_001", "config": {}})).await;
    assert_eq!(r.status, 404);

    let after = t.get(&id).await.body;
    assert_eq!(after, before, "the stored connector did not change");
    assert_eq!(after["status"], "pending");
}

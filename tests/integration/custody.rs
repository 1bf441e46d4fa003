//! Credential custody (Hardening III, point 1): a stored secret backs a probe only toward the
//! connector's stored type and destination. An editor who moves a connector (or dry-runs it
//! elsewhere) gets no stored value sent to the new place: a recording listener stands there and
//! must receive none of it.

use crate::support::listeners::{recorder, Received};
use crate::support::{Call, Reply, Tenant};
use base64::Engine;
use serde_json::{json, Value};

const USER: &str = "svc_custody_user";
const PASSWORD: &str = "custody-password-0123";
const CLIENT_SECRET: &str = "client-secret-custody-9876";

/// A test-endpoint call (a dry run when the body proposes a change) as `role`.
async fn dry(t: &Tenant, role: &str, body: Value) -> Reply {
    Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.with_role(role))
        .json(body)
        .send()
        .await
}

async fn update(t: &Tenant, role: &str, body: Value) -> Reply {
    Call::new("PUT", "/api/v1/connectors")
        .bearer(&t.with_role(role))
        .json(body)
        .send()
        .await
}

/// Asserts the listener was reached (the probe went there) and holds no form of the secrets.
fn reached_without_secrets(seen: &Received, secrets: &[&str]) {
    let bytes = seen.lock().unwrap().clone();
    assert!(!bytes.is_empty(), "the probe reached the listener");
    let text = String::from_utf8_lossy(&bytes);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for s in secrets.iter().copied().chain([basic.as_str()]) {
        assert!(!text.contains(s), "{s:?} reached the listener: {text}");
    }
}

fn warned_stored_not_used(r: &Reply) {
    let warnings = r.body["diagnostics"]["warnings"].to_string();
    assert!(
        warnings.contains("stored credentials were not used"),
        "{}",
        r.raw
    );
}

#[tokio::test]
async fn a_dry_run_to_another_type_or_url_sends_no_stored_secret() {
    let t = Tenant::new("custody-dry");
    let snowflake = t
        .create_id(json!({"name": "wh", "type": "snowflake",
            "config": {"account": "xy12345.us-east-1", "warehouse": "W", "database": "D"},
            "authConfig": {"username": USER, "password": PASSWORD}}))
        .await;
    let (addr, seen) = recorder().await;
    let url = format!("http://{addr}/");
    // Another type pointed at the attacker: the Snowflake login must not arrive as HTTP Basic.
    let r = dry(
        &t,
        "editor",
        json!({"id": snowflake, "type": "rest_api", "config": {"url": url}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    warned_stored_not_used(&r);
    assert_eq!(r.body["authConfig"], json!({}), "{}", r.raw);
    reached_without_secrets(&seen, &[PASSWORD, USER]);

    // A REST connector whose url alone changes, masked values sent back as shown.
    let api = t
        .create_id(json!({"name": "api", "type": "rest_api",
            "config": {"url": "https://api.example.com/v1"},
            "authConfig": {"username": USER, "password": PASSWORD}}))
        .await;
    let (addr, seen) = recorder().await;
    let r = dry(
        &t,
        "admin",
        json!({"id": api, "config": {"url": format!("http://{addr}/v1")},
        "authConfig": {"username": "sv***er", "password": "cu***23"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    warned_stored_not_used(&r);
    reached_without_secrets(&seen, &[PASSWORD, USER]);

    // On a shared host (a webhook relay) the path names the receiver: same origin, another
    // path is a move too.
    let (addr, seen) = recorder().await;
    let hook = t
        .create_id(json!({"name": "hook", "type": "webhook",
            "config": {"url": format!("http://{addr}/services/ours")},
            "authConfig": {"username": USER, "password": PASSWORD}}))
        .await;
    let r = dry(
        &t,
        "editor",
        json!({"id": hook, "config": {"url": format!("http://{addr}/services/theirs")}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    warned_stored_not_used(&r);
    reached_without_secrets(&seen, &[PASSWORD, USER]);
}

#[tokio::test]
async fn a_token_url_moved_with_masked_client_credentials_gets_nothing() {
    let t = Tenant::new("custody-oauth");
    let (addr, seen) = recorder().await;
    let id = t
        .create_id(json!({"name": "oauth", "type": "rest_api",
            "config": {"url": format!("http://{addr}/api")},
            "authConfig": {"tokenUrl": "https://idp.example.com/token",
                           "clientId": "client-id-custody", "clientSecret": CLIENT_SECRET}}))
        .await;
    let r = dry(&t, "editor", json!({"id": id, "authConfig": {
        "tokenUrl": format!("http://{addr}/token"), "clientId": "cl***dy", "clientSecret": "cl***76"}}))
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    warned_stored_not_used(&r);
    reached_without_secrets(&seen, &[CLIENT_SECRET, "client-id-custody"]);
    // An update doing the same is refused, naming the masked fields to re-enter.
    let r = update(&t, "admin", json!({"id": id, "authConfig": {
        "tokenUrl": format!("http://{addr}/token"), "clientId": "cl***dy", "clientSecret": "cl***76"}}))
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "credentials_required"),
        "{}",
        r.raw
    );
    assert_eq!(
        r.fields(),
        ["authConfig.clientId", "authConfig.clientSecret"]
    );
    assert!(!r.raw.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn an_update_that_moves_the_destination_must_spell_out_the_credentials() {
    let t = Tenant::new("custody-upd");
    let body = json!({"name": "db", "type": "postgresql",
        "config": {"host": "db.example.com", "port": 5432, "database": "app", "sslmode": "verify-full"},
        "authConfig": {"username": USER, "password": PASSWORD}});
    let id = t.create_id(body).await;
    let before = t.get(&id).await.body;
    let moves = [
        json!({"type": "mysql"}),
        json!({"config": {"host": "evil.example.com", "port": 5432, "database": "app", "sslmode": "verify-full"}}),
        json!({"config": {"host": "db.example.com", "port": 6432, "database": "app", "sslmode": "verify-full"}}),
        json!({"config": {"host": "db.example.com", "port": 5432, "database": "app", "sslmode": "disable"}}),
    ];
    for role in ["editor", "admin"] {
        for change in &moves {
            let mut body = change.clone();
            body["id"] = json!(id);
            let r = update(&t, role, body).await;
            assert_eq!(
                (r.status, r.code()),
                (400, "credentials_required"),
                "{role} {change}: {}",
                r.raw
            );
            assert_eq!(
                r.fields(),
                ["authConfig.password", "authConfig.username"],
                "{change}"
            );
        }
    }
    // A masked password with a new host: only the password is named.
    let r = update(
        &t,
        "editor",
        json!({"id": id,
        "config": {"host": "evil.example.com", "port": 5432, "database": "app"},
        "authConfig": {"username": "other-user", "password": "cu***23"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["authConfig.password".to_string()]),
        "{}",
        r.raw
    );
    assert_eq!(t.get(&id).await.body, before, "nothing was written");

    // Another database on the same server keeps the stored secret; so does a new spelling of the host.
    let r = update(&t, "editor", json!({"id": id,
        "config": {"host": "DB.example.com", "port": 5432, "database": "other", "sslmode": "verify-full"}}))
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["authConfigFields"], json!(["password", "username"]));
    // Moving with every secret spelled out is allowed.
    let r = update(
        &t,
        "editor",
        json!({"id": id,
        "config": {"host": "new.example.com", "port": 5432, "database": "app"},
        "authConfig": {"username": USER, "password": "a-new-password-456"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // Or dropping the credentials.
    let r = update(
        &t,
        "editor",
        json!({"id": id, "type": "redshift", "authConfig": null}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["authConfigFields"], json!([]));
}

/// The raw item of a connector, as the table holds it.
async fn raw_item(
    tenant: &str,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    crate::faults::partition(tenant)
        .await
        .into_iter()
        .find(|(sk, _)| sk == &format!("CONNECTOR#{id}"))
        .map(|(_, item)| item)
        .unwrap()
}

fn config_holds_api_key(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> bool {
    item["config"].as_m().unwrap().contains_key("apiKey")
}

#[tokio::test]
async fn an_api_key_given_in_config_is_sealed_and_never_shown() {
    const KEY: &str = "hubspot-config-key-0123456789";
    let t = Tenant::new("custody-apikey");
    let r = t
        .create(json!({"name": "hs", "type": "hubspot", "config": {"apiKey": KEY}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(r.body["config"].get("apiKey").is_none(), "{}", r.raw);
    assert_eq!(r.body["authConfigFields"], json!(["apiKey"]));
    let item = raw_item(&t.id, &id).await;
    assert!(
        !config_holds_api_key(&item) && item.contains_key("authConfig"),
        "stored sealed"
    );
    for reply in [t.get(&id).await, t.list(None, None).await] {
        assert!(!reply.raw.contains(KEY), "{}", reply.raw);
    }

    // An item stored before the rule: hidden on read, moved into the sealed secret on its next update.
    let legacy = t
        .create_id(json!({"name": "legacy", "type": "salesforce", "config": {"instanceUrl": "https://acme.my.salesforce.com"}}))
        .await;
    crate::support::stack()
        .await
        .dynamo
        .update_item()
        .table_name(crate::support::TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", t.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CONNECTOR#{legacy}")),
        )
        .update_expression("SET config.apiKey = :k")
        .expression_attribute_values(":k", aws_sdk_dynamodb::types::AttributeValue::S(KEY.into()))
        .send()
        .await
        .unwrap();
    let viewer = Call::new("GET", &format!("/api/v1/connectors/{legacy}"))
        .path_id(&legacy)
        .bearer(&t.with_role("viewer"))
        .send()
        .await;
    assert!(!viewer.raw.contains(KEY), "{}", viewer.raw);
    assert_eq!(
        viewer.body["authConfigFields"],
        json!(["apiKey"]),
        "{}",
        viewer.raw
    );
    let r = update(
        &t,
        "editor",
        json!({"id": legacy, "description": "renamed"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(!r.raw.contains(KEY));
    let item = raw_item(&t.id, &legacy).await;
    assert!(
        !config_holds_api_key(&item) && item.contains_key("authConfig"),
        "moved on its next write"
    );
    assert_eq!(
        t.get(&legacy).await.body["authConfigFields"],
        json!(["apiKey"])
    );
}

//! authConfig is sealed with KMS envelope encryption, never shown, and masks round-trip.

use crate::support::{stack, Tenant, TABLE};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Map, Value};
use shared::envelope::{SecretContext, SecretSealer};

fn contains(haystack: &AttributeValue, needle: &[u8]) -> bool {
    let has = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    match haystack {
        AttributeValue::S(s) | AttributeValue::N(s) => has(s.as_bytes()),
        AttributeValue::B(b) => has(b.as_ref()),
        AttributeValue::M(m) => m
            .iter()
            .any(|(k, v)| has(k.as_bytes()) || contains(v, needle)),
        AttributeValue::L(l) => l.iter().any(|v| contains(v, needle)),
        AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.iter().any(|s| has(s.as_bytes())),
        AttributeValue::Bs(l) => l.iter().any(|b| has(b.as_ref())),
        _ => false,
    }
}

#[tokio::test]
async fn the_raw_item_holds_no_plaintext_secret() {
    let t = Tenant::new("raw");
    let secret = format!("S3cr3t-{}", shared::ids::new_connector_id());
    let username = format!("user-{}", shared::ids::new_connector_id());
    let r = t
        .create(json!({"name": "sealed", "type": "rest_api", "config": {"url": "https://api.example.com/v1"},
            "authConfig": {"username": username, "nested": {"token": secret}}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().unwrap();
    let st = stack().await;
    let item = st
        .dynamo
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(format!("TENANT#{}", t.id)))
        .key("sk", AttributeValue::S(format!("CONNECTOR#{id}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("the connector item");
    let item = AttributeValue::M(item);
    assert!(
        contains(&item, b"sealed"),
        "the scan itself finds plaintext fields"
    );
    for needle in [
        secret.as_bytes(),
        username.as_bytes(),
        &secret.as_bytes()[3..15],
    ] {
        assert!(
            !contains(&item, needle),
            "plaintext secret bytes in the raw item"
        );
    }
    let sealed = match &item {
        AttributeValue::M(m) => m["authConfig"].as_m().unwrap().clone(),
        _ => unreachable!(),
    };
    assert_eq!(sealed["v"].as_n().unwrap(), "1");
    assert_eq!(sealed["nonce"].as_b().unwrap().as_ref().len(), 12);
    assert!(!sealed["wrappedKey"].as_b().unwrap().as_ref().is_empty());
}

#[tokio::test]
async fn opening_with_another_context_fails() {
    let st = stack().await;
    let secret: Map<String, Value> = json!({"password": "correct horse battery staple"})
        .as_object()
        .unwrap()
        .clone();
    let ctx = SecretContext {
        tenant_id: "tenant-a",
        connector_id: "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    };
    let sealed = st.sealer.seal(ctx, &secret).await.expect("seal");
    assert_eq!(st.sealer.open(ctx, &sealed).await.expect("open").0, secret);

    let other_tenant = SecretContext {
        tenant_id: "tenant-b",
        ..ctx
    };
    let other_connector = SecretContext {
        connector_id: "conn_01ARZ3NDEKTSV4RRFFQ69G5FAW",
        ..ctx
    };
    assert!(st.sealer.open(other_tenant, &sealed).await.is_err());
    assert!(st.sealer.open(other_connector, &sealed).await.is_err());

    // KMS itself refuses to unwrap the data key under another context.
    let refused = st
        .kms
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
            sealed.wrapped_key.clone(),
        ))
        .encryption_context("tenantId", "tenant-b")
        .encryption_context("connectorId", ctx.connector_id)
        .send()
        .await;
    assert!(
        refused.is_err(),
        "the emulator must enforce the encryption context"
    );

    let mut tampered = sealed.clone();
    tampered.ciphertext[0] ^= 1;
    assert!(st.sealer.open(ctx, &tampered).await.is_err());
}

#[tokio::test]
async fn each_write_uses_a_fresh_data_key() {
    let st = stack().await;
    let secret: Map<String, Value> = json!({"k": "same value"}).as_object().unwrap().clone();
    let ctx = SecretContext {
        tenant_id: "t",
        connector_id: "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    };
    let (a, b) = (
        st.sealer.seal(ctx, &secret).await.unwrap(),
        st.sealer.seal(ctx, &secret).await.unwrap(),
    );
    assert_ne!(a.wrapped_key, b.wrapped_key);
    assert_ne!(a.ciphertext, b.ciphertext);
    assert_eq!(a.key_id, b.key_id);
    assert!(a.key_id.contains(&st.key_id));
}

#[tokio::test]
async fn masked_values_sent_back_keep_the_stored_secret() {
    let t = Tenant::new("mask");
    let r = t
        .create(json!({"name": "masked", "type": "postgresql", "config": {"host": "db.example.com", "port": 5432, "database": "d"},
            "authConfig": {"username": "svc_kaireon", "password": "hunter2", "sslKey": "-----BEGIN KEY-----"}}))
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    // What the test endpoint shows, with one value really changed.
    let r = t.update(json!({"id": id, "authConfig": {"username": "sv***on", "password": "****", "sslKey": "a-new-key-value"}})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        r.body["authConfigFields"],
        json!(["password", "sslKey", "username"])
    );

    let st = stack().await;
    let stored = shared::store::ConnectorReader::get(&st.store, &t.id, &id)
        .await
        .unwrap()
        .unwrap();
    let plain = st
        .sealer
        .open(
            SecretContext {
                tenant_id: &t.id,
                connector_id: &id,
            },
            stored.auth_config.as_ref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(plain.0.clone()),
        json!({"username": "svc_kaireon", "password": "hunter2", "sslKey": "a-new-key-value"})
    );
}

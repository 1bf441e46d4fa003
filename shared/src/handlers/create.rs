//! POST /api/v1/connectors: validate, seal authConfig, write connector + name claim + count (and,
//! with an Idempotency-Key, the answer) at once.

use super::{audited, BASE_PATH, WRITE_ATTEMPTS};
use crate::audit::AuditEvent;
use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::http::{json, json_object, with_etag};
use crate::idempotency::{self, MacKey, Remembered};
use crate::identity::{caller, permit, WRITE_ROLES};
use crate::ids::{new_connector_id, now_rfc3339, unix_now};
use crate::kinds::aws as aws_identity;
use crate::model::{field_names, Connector, Status};
use crate::store::{ConnectorWriter, IdempotentAnswers, StoreError};
use crate::token::TokenVerifier;
use crate::validate::parse_create;
use lambda_http::http::header::{HeaderValue, LOCATION};
use lambda_http::{Body, Request, Response};

pub async fn handle<S: ConnectorWriter + IdempotentAnswers, E: SecretSealer>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: Request,
) -> Response<Body> {
    audited(
        "create",
        crate::deadline::crud_answer_by,
        req,
        async |req, audit| run(store, sealer, verifier, req, audit).await,
    )
    .await
}

async fn run<S: ConnectorWriter + IdempotentAnswers, E: SecretSealer>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: &Request,
    audit: &mut AuditEvent,
) -> Result<Response<Body>, ApiError> {
    // Known before the role is checked, so a refused caller is in the audit trail too.
    let who = caller(req, verifier).await?;
    audit.identity(&who);
    permit(&who, WRITE_ROLES)?;
    let key = idempotency::key(req)?;
    let body = json_object(req)?;
    // Hashed before parsing consumes the body; only when a key asks for it.
    let hashes = key.as_ref().map(|_| {
        (
            idempotency::body_hash(&who.tenant_id, &body),
            idempotency::legacy_fingerprint(&body),
        )
    });
    let new = parse_create(body)?;
    let aws = aws_identity::check(
        new.kind,
        &who.tenant_id,
        &new.auth_method,
        new.auth_config.as_ref().map(|s| &s.0),
        aws_identity::function_role_allowed(),
    );
    if !aws.is_empty() {
        return Err(ApiError::validation(aws));
    }
    let id = new_connector_id();
    audit.connector(&id);
    // Wrapped so the plaintext is zeroized however this function returns.
    let secret = new.auth_config.filter(|s| !s.0.is_empty());
    let ctx = SecretContext {
        tenant_id: &who.tenant_id,
        connector_id: &id,
    };
    // The kept answer is looked up while the secret is sealed: one round trip for both.
    let recall = async {
        match &key {
            Some(k) => store.recall(&who.tenant_id, k, unix_now()).await,
            None => Ok(None),
        }
    };
    let seal = async {
        match &secret {
            Some(s) => sealer.seal_tagged(ctx, &s.0).await.map(Some),
            None => Ok(None),
        }
    };
    let (kept, sealed) = tokio::join!(recall, seal);
    let presented = hashes.map(|(body_hash, legacy)| idempotency::Presented {
        tenant_id: &who.tenant_id,
        body_hash,
        legacy,
        secret: secret.as_ref().map(|s| &s.0),
    });
    if let (Some(kept), Some(p)) = (kept?, &presented) {
        return idempotency::replay(sealer, &kept, p).await;
    }
    let (sealed, tag) = match sealed? {
        Some((sealed, tag)) => (Some(sealed), Some(tag)),
        None => (None, None),
    };
    let now = now_rfc3339();
    let mut connector = Connector {
        id,
        tenant_id: who.tenant_id.clone(),
        name: new.name,
        kind: new.kind,
        description: new.description,
        config: new.config,
        auth_method: new.auth_method,
        auth_config: sealed,
        auth_config_fields: secret
            .as_ref()
            .map(|s| field_names(&s.0))
            .unwrap_or_default(),
        status: Status::Pending,
        last_tested_at: None,
        last_error: None,
        created_at: now.clone(),
        updated_at: now,
        version: 1,
        breaker: None,
        due_shard: None,
        next_probe_at: None,
        result_id: None,
        last_result: None,
        last_success_at: None,
        status_changed_at: None,
        outbox: None,
    };
    // Due at once: the next sweep probes it.
    connector.schedule(None);
    let location = format!("{BASE_PATH}/{}", connector.id);
    let mut resp = with_etag(json(201, &connector.view()), connector.version);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    let once = match (key, &presented) {
        (Some(key), Some(p)) => Some(Remembered {
            key,
            fingerprint: idempotency::fingerprint_v2(&p.body_hash, tag.as_ref()),
            mac_key: connector.auth_config.as_ref().map(|s| MacKey {
                connector_id: connector.id.clone(),
                wrapped_key: s.wrapped_key.clone(),
                key_id: s.key_id.clone(),
            }),
            status: 201,
            body: match resp.body() {
                Body::Text(t) => t.clone(),
                _ => String::new(),
            },
            location,
            version: connector.version,
            expires_at: unix_now() + idempotency::RETENTION.as_secs(),
        }),
        _ => None,
    };
    let mut attempt = 1;
    loop {
        match store.insert(&connector, once.as_ref()).await {
            Ok(()) => return Ok(resp),
            // A transaction collided with another write on the same items: it had no effect, so retry.
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => attempt += 1,
            // A concurrent request with the same key won (its name claim fails first when the body
            // is the same): answer as it did, or 422 when its body differed.
            Err(e @ (StoreError::KeyUsed | StoreError::NameTaken)) => {
                let Some(r) = &once else {
                    return Err(e.into());
                };
                return match (
                    store.recall(&who.tenant_id, &r.key, unix_now()).await?,
                    &presented,
                ) {
                    (Some(kept), Some(p)) => idempotency::replay(sealer, &kept, p).await,
                    _ => Err(e.into()),
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConnectorReader, MemoryStore};
    use crate::testing::{reply, request, FakeSealer};
    use serde_json::json;

    fn body(name: &str) -> serde_json::Value {
        json!({"name": name, "type": "postgresql",
               "config": {"host": "db.example.com", "port": 5432, "database": "app"},
               "authConfig": {"username": "svc_user", "password": "unit-secret-1"}})
    }

    async fn create(
        store: &MemoryStore,
        role: &str,
        b: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let req = request("POST", "/api/v1/connectors", "acme", role, Some(b));
        reply(handle(store, &FakeSealer::default(), None, req).await)
    }

    #[tokio::test]
    async fn a_connector_is_stored_sealed_named_once_and_counted() {
        let store = MemoryStore::default();
        let (status, view) = create(&store, "editor", body("Warehouse")).await;
        assert_eq!(status, 201, "{view}");
        assert_eq!(view["authConfigFields"], json!(["password", "username"]));
        assert!(!view.to_string().contains("unit-secret-1"));
        let stored = store
            .get("acme", view["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(stored.auth_config.is_some(), "sealed, not in clear");
        // Names are unique per tenant ignoring case.
        let (status, e) = create(&store, "admin", body("WAREHOUSE")).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (409, Some("name_taken"))
        );
        assert_eq!(store.count("acme"), 1);
    }

    #[tokio::test]
    async fn viewers_bad_bodies_and_foreign_external_ids_store_nothing() {
        let store = MemoryStore::default();
        assert_eq!(create(&store, "viewer", body("v")).await.0, 403);
        let (status, e) = create(&store, "admin", json!({"name": "n", "type": "mysql"})).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("validation_failed"))
        );
        let aws = json!({"name": "s3", "type": "aws_s3", "config": {"bucket": "b", "region": "us-east-1"},
                         "authConfig": {"roleArn": "arn:aws:iam::111111111111:role/r", "externalId": "theirs"}});
        let (status, e) = create(&store, "admin", aws).await;
        assert_eq!(status, 400);
        assert_eq!(e["error"]["details"][0]["field"], "authConfig.externalId");
        assert_eq!(store.count("acme"), 0);
    }
}

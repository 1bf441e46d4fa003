//! POST /api/v1/connectors: validate, seal authConfig, write connector + name claim + count at once.

use super::{respond, BASE_PATH, WRITE_ATTEMPTS};
use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::http::{json, json_object};
use crate::identity::{identify, WRITE_ROLES};
use crate::ids::{new_connector_id, now_rfc3339};
use crate::model::{field_names, Connector, Status};
use crate::store::{ConnectorWriter, StoreError};
use crate::token::TokenVerifier;
use crate::validate::parse_create;
use lambda_http::http::header::{HeaderValue, LOCATION};
use lambda_http::{Body, Request, Response};

pub async fn handle<S: ConnectorWriter, E: SecretSealer>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: Request,
) -> Response<Body> {
    respond(run(store, sealer, verifier, &req).await)
}

async fn run<S: ConnectorWriter, E: SecretSealer>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let who = identify(req, verifier, WRITE_ROLES).await?;
    let new = parse_create(json_object(req)?)?;
    let id = new_connector_id();
    // Wrapped so the plaintext is zeroized however this function returns.
    let secret = new.auth_config.filter(|s| !s.0.is_empty());
    let sealed = match &secret {
        Some(s) => Some(
            sealer
                .seal(
                    SecretContext {
                        tenant_id: &who.tenant_id,
                        connector_id: &id,
                    },
                    &s.0,
                )
                .await?,
        ),
        None => None,
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
    };
    // Due at once: the next sweep probes it.
    connector.schedule(None);
    let mut attempt = 1;
    loop {
        match store.insert(&connector).await {
            Ok(()) => break,
            // A transaction collided with another write on the same items: it had no effect, so retry.
            Err(StoreError::Conflict) if attempt < WRITE_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(tenant = %who.tenant_id, subject = %who.subject, connector = %connector.id, "connector created");
    let mut resp = json(201, &connector.view());
    if let Ok(location) = HeaderValue::from_str(&format!("{BASE_PATH}/{}", connector.id)) {
        resp.headers_mut().insert(LOCATION, location);
    }
    Ok(resp)
}

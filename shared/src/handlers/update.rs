//! PUT /api/v1/connectors: apply the fields present to the stored connector, guarded by its version.

use super::{audited, WRITE_ATTEMPTS};
use crate::audit::AuditEvent;
use crate::custody::propose;
use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::http::{if_match, json, json_object, with_etag};
use crate::identity::{caller, permit, WRITE_ROLES};
use crate::ids::now_rfc3339;
use crate::kinds::aws as aws_identity;
use crate::kinds::saas_api::take_config_api_key;
use crate::kinds::sftp::carry_host_key_pin;
use crate::kinds::{check_auth_config, check_config, present_fields};
use crate::model::{field_names, Connector, Outbox, PlainSecret, Status, Trigger};
use crate::store::{ConnectorReader, ConnectorWriter, StoreError};
use crate::token::TokenVerifier;
use crate::validate::{parse_update, Change, ConnectorPatch};
use lambda_http::{Body, Request, Response};
use serde_json::Map;

pub async fn handle<S, E>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: Request,
) -> Response<Body>
where
    S: ConnectorReader + ConnectorWriter,
    E: SecretSealer,
{
    audited(
        "update",
        crate::deadline::crud_answer_by,
        req,
        async |req, audit| run(store, sealer, verifier, req, audit).await,
    )
    .await
}

async fn run<S, E>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: &Request,
    audit: &mut AuditEvent,
) -> Result<Response<Body>, ApiError>
where
    S: ConnectorReader + ConnectorWriter,
    E: SecretSealer,
{
    // Known before the role is checked, so a refused caller is in the audit trail too.
    let who = caller(req, verifier).await?;
    audit.identity(&who);
    permit(&who, WRITE_ROLES)?;
    let allowed = if_match(req)?;
    let patch = parse_update(json_object(req)?)?;
    audit.connector(&patch.id);
    for _ in 0..WRITE_ATTEMPTS {
        let current = store
            .get(&who.tenant_id, &patch.id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        // Checked on every read: after a concurrent write the re-read version no longer matches.
        let expected_ok = allowed.allows(current.version)
            && patch.expected_version.is_none_or(|v| v == current.version);
        if !expected_ok {
            return Err(ApiError::version_mismatch(current.version));
        }
        let next = apply(sealer, &current, &patch).await?;
        match store.replace(&current, &next).await {
            Ok(()) => return Ok(with_etag(json(200, &next.view()), next.version)),
            // Another write landed between our read and write: apply the patch to the fresh item.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict())
}

/// The connector after the patch: validated, authConfig re-sealed with a fresh data key.
async fn apply<E: SecretSealer>(
    sealer: &E,
    current: &Connector,
    patch: &ConnectorPatch,
) -> Result<Connector, ApiError> {
    let mut next = current.next_write();
    if let Some(name) = &patch.name {
        next.name = name.clone();
    }
    if let Some(kind) = patch.kind {
        next.kind = kind;
    }
    if let Some(method) = &patch.auth_method {
        next.auth_method = method.clone();
    }
    match &patch.description {
        Change::Keep => {}
        Change::Clear => next.description = None,
        Change::Set(d) => next.description = Some(d.clone()),
    }
    match &patch.config {
        Change::Keep => {}
        Change::Clear => next.config = Map::new(),
        Change::Set(c) => {
            next.config = c.clone();
            carry_host_key_pin(next.kind, &current.config, &mut next.config);
            crate::kinds::tunnel::carry_pin(&current.config, &mut next.config);
        }
    }
    if patch.touches_config() {
        let auth_fields = match &patch.auth_config {
            Change::Keep => current.auth_config_fields.clone(),
            Change::Clear => Vec::new(),
            Change::Set(s) => present_fields(&s.0),
        };
        let problems = check_config(next.kind, &next.config, &auth_fields);
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
    }
    let ctx = SecretContext {
        tenant_id: &current.tenant_id,
        connector_id: &current.id,
    };
    if patch.touches_config() {
        let proposed = propose(
            sealer,
            current,
            next.kind,
            &next.config,
            &patch.auth_config,
            false,
        )
        .await?;
        if !proposed.withheld.is_empty() {
            return Err(ApiError::credentials_required(proposed.withheld));
        }
        let aws = aws_identity::check(
            next.kind,
            &current.tenant_id,
            &next.auth_method,
            match &patch.auth_config {
                Change::Set(_) => proposed.secret.as_ref().map(|s| &s.0),
                _ => None,
            },
            // The method is judged below, also when only it changes.
            true,
        );
        if !aws.is_empty() {
            return Err(ApiError::validation(aws));
        }
        if let (Change::Set(_), Some(secret)) = (&patch.auth_config, proposed.secret) {
            let problems = check_auth_config(next.kind, &secret.0);
            if !problems.is_empty() {
                return Err(ApiError::validation(problems));
            }
            next.auth_config_fields = field_names(&secret.0);
            next.auth_config = match secret.0.is_empty() {
                true => None,
                false => Some(sealer.seal(ctx, &secret.0).await?),
            };
        }
    }
    if patch.auth_method.is_some() || patch.kind.is_some() {
        let allowed = aws_identity::function_role_allowed();
        let aws = aws_identity::check(
            next.kind,
            &current.tenant_id,
            &next.auth_method,
            None,
            allowed,
        );
        if !aws.is_empty() {
            return Err(ApiError::validation(aws));
        }
    }
    if let Change::Clear = &patch.auth_config {
        next.auth_config = None;
        next.auth_config_fields = Vec::new();
    }
    if patch.touches_config() {
        // A new destination or credential deserves a fresh start.
        next.breaker = None;
    }
    match patch.status {
        Some(status) => next.status = status,
        // A changed destination or credential has not been tested yet.
        None if patch.touches_config() && current.status != Status::Inactive => {
            next.status = Status::Pending;
            next.last_error = None;
        }
        None => {}
    }
    // A salesforce / hubspot config.apiKey (given now, or stored before it was sealed) moves into
    // the sealed secret; custody above has already judged the secret it joins.
    if let Some((field, key)) = take_config_api_key(next.kind, &mut next.config) {
        let mut secret = match &next.auth_config {
            Some(sealed) => sealer.open(ctx, sealed).await?,
            None => PlainSecret::default(),
        };
        secret.0.entry(field).or_insert(key);
        next.auth_config_fields = field_names(&secret.0);
        next.auth_config = Some(sealer.seal(ctx, &secret.0).await?);
    }
    next.updated_at = now_rfc3339();
    next.version = current.version + 1;
    // A status change is an event: the write carries it (the stream is the outbox), with an id
    // derived from the write so a redelivered record repeats it.
    if next.status != current.status {
        next.status_changed_at = Some(next.updated_at.clone());
        next.outbox = Some(Outbox {
            event_id: format!("{}-v{}", next.id, next.version),
            trigger: Trigger::Update,
            request_id: crate::telemetry::scope::request_id(),
        });
    }
    // A changed destination is due at once; otherwise the schedule stays (or leaves, if inactive).
    let due_now = patch.touches_config() || current.status == Status::Inactive;
    next.schedule(due_now.then(|| next.updated_at.clone()));
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{reply, request, FakeSealer};
    use serde_json::{json, Value};

    /// A stored postgres connector of tenant acme, created through the create handler.
    async fn stored(store: &MemoryStore, sealer: &FakeSealer) -> String {
        let b = json!({"name": "db", "type": "postgresql",
                       "config": {"host": "db.example.com", "port": 5432, "database": "app"},
                       "authConfig": {"username": "svc_user", "password": "unit-secret-1"}});
        let req = request("POST", "/api/v1/connectors", "acme", "admin", Some(b));
        let (status, view) = reply(super::super::create::handle(store, sealer, None, req).await);
        assert_eq!(status, 201, "{view}");
        view["id"].as_str().unwrap().to_string()
    }

    async fn update(store: &MemoryStore, sealer: &FakeSealer, b: Value) -> (u16, Value) {
        let req = request("PUT", "/api/v1/connectors", "acme", "editor", Some(b));
        reply(handle(store, sealer, None, req).await)
    }

    #[tokio::test]
    async fn a_version_conflict_is_retried_on_the_fresh_item_then_answered_409() {
        let (store, sealer) = (MemoryStore::default(), FakeSealer::default());
        let id = stored(&store, &sealer).await;
        store.conflict_next(1);
        let (status, view) =
            update(&store, &sealer, json!({"id": id, "description": "once"})).await;
        assert_eq!((status, view["version"].as_u64()), (200, Some(2)), "{view}");
        store.conflict_next(WRITE_ATTEMPTS);
        let (status, e) = update(&store, &sealer, json!({"id": id, "description": "never"})).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (409, Some("conflict"))
        );
        let (status, e) = update(
            &store,
            &sealer,
            json!({"id": id, "description": "x", "version": 1}),
        )
        .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (412, Some("version_mismatch"))
        );
    }

    #[tokio::test]
    async fn a_move_without_the_credentials_is_refused_and_writes_nothing() {
        let (store, sealer) = (MemoryStore::default(), FakeSealer::default());
        let id = stored(&store, &sealer).await;
        let moved = json!({"host": "evil.example.com", "port": 5432, "database": "app"});
        let (status, e) = update(&store, &sealer, json!({"id": id, "config": moved})).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("credentials_required")),
            "{e}"
        );
        let (status, e) = update(
            &store,
            &sealer,
            json!({"id": id, "config": moved,
            "authConfig": {"username": "svc_user", "password": "un***-1"}}),
        )
        .await;
        assert_eq!(
            e["error"]["details"][0]["field"], "authConfig.password",
            "{status} {e}"
        );
        let current = crate::store::ConnectorReader::get(&store, "acme", &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.version, 1);
        // The same server under another database keeps the secret without reading it back.
        let opened = sealer.opened.load(std::sync::atomic::Ordering::Relaxed);
        let same = json!({"host": "DB.example.com", "port": 5432, "database": "other"});
        let (status, view) = update(&store, &sealer, json!({"id": id, "config": same})).await;
        assert_eq!(
            (status, view["authConfigFields"].clone()),
            (200, json!(["password", "username"]))
        );
        assert_eq!(
            sealer.opened.load(std::sync::atomic::Ordering::Relaxed),
            opened,
            "no decrypt"
        );
    }
}

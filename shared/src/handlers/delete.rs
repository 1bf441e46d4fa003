//! DELETE /api/v1/connectors?id=: remove the connector, free its name and uncount it at once.

use super::{audited, WRITE_ATTEMPTS};
use crate::audit::AuditEvent;
use crate::error::{ApiError, FieldProblem};
use crate::http::{empty, if_match, query_param};
use crate::identity::{caller, permit, WRITE_ROLES};
use crate::ids::is_requested_id;
use crate::store::{ConnectorReader, ConnectorWriter, StoreError};
use crate::token::TokenVerifier;
use lambda_http::{Body, Request, Response};

pub async fn handle<S: ConnectorReader + ConnectorWriter>(
    store: &S,
    verifier: Option<&TokenVerifier>,
    req: Request,
) -> Response<Body> {
    audited(
        "delete",
        crate::deadline::crud_answer_by,
        req,
        async |req, audit| run(store, verifier, req, audit).await,
    )
    .await
}

async fn run<S: ConnectorReader + ConnectorWriter>(
    store: &S,
    verifier: Option<&TokenVerifier>,
    req: &Request,
    audit: &mut AuditEvent,
) -> Result<Response<Body>, ApiError> {
    // Known before the role is checked, so a refused caller is in the audit trail too.
    let who = caller(req, verifier).await?;
    audit.identity(&who);
    permit(&who, WRITE_ROLES)?;
    let id = query_param(req, "id")?.ok_or_else(|| {
        ApiError::new(400, "missing_id", "query parameter id is required")
            .with_details(vec![FieldProblem::new("id", "required")])
    })?;
    if !is_requested_id(&id) {
        return Err(ApiError::invalid_id("id"));
    }
    audit.connector(&id);
    let allowed = if_match(req)?;
    let mut tried = false;
    for _ in 0..WRITE_ATTEMPTS {
        let Some(current) = store.get(&who.tenant_id, &id).await? else {
            // Gone after our delete was sent: that delete went through, and the SDK's retry of
            // it (an answer lost to a timeout or cut) found nothing to delete. The emulator does
            // not honour the transaction's ClientRequestToken as DynamoDB does. Either way the
            // connector the client named is deleted.
            return if tried {
                Ok(empty(204))
            } else {
                Err(ApiError::not_found())
            };
        };
        // Checked on every read: after a concurrent write the re-read version no longer matches.
        if !allowed.allows(current.version) {
            return Err(ApiError::version_mismatch(current.version));
        }
        tried = true;
        match store.remove(&current).await {
            Ok(()) => return Ok(empty(204)),
            // Changed (or deleted) since we read it: read again.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{reply, request, FakeSealer};
    use serde_json::json;

    #[tokio::test]
    async fn a_connector_is_deleted_once_and_uncounted() {
        let store = MemoryStore::default();
        let b = json!({"name": "gone", "type": "webhook", "config": {"url": "https://hooks.example.com/a"}});
        let req = request("POST", "/api/v1/connectors", "acme", "admin", Some(b));
        let (_, view) =
            reply(super::super::create::handle(&store, &FakeSealer::default(), None, req).await);
        let id = view["id"].as_str().unwrap();
        let delete = |role: &str| {
            request(
                "DELETE",
                &format!("/api/v1/connectors?id={id}"),
                "acme",
                role,
                None,
            )
        };
        assert_eq!(reply(handle(&store, None, delete("viewer")).await).0, 403);
        assert_eq!(reply(handle(&store, None, delete("editor")).await).0, 204);
        assert_eq!(store.count("acme"), 0);
        assert_eq!(reply(handle(&store, None, delete("editor")).await).0, 404);
    }
}

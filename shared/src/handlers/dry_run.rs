//! POST /api/v1/connectors/test with a connector body instead of (or beside) an id: test before
//! saving. The body is validated as create (or, with `id`, merged into the stored connector as
//! update would merge it, masked values restoring the stored secrets) and probed; nothing is
//! stored but the rate-limit count — no connector, name, count, status or breaker state, and the
//! breaker is neither consulted nor moved (the user is testing a change on purpose).

use crate::audit::AuditEvent;
use crate::connector_check::{masked, tunnel_pem, TenantKey, Tester};
use crate::custody::propose;
use crate::envelope::SecretSealer;
use crate::error::ApiError;
use crate::http::json;
use crate::kinds::aws as aws_identity;
use crate::kinds::sftp::carry_host_key_pin;
use crate::kinds::{check_auth_config, check_config, present_fields};
use crate::kinds::{tunnel, Source};
use crate::model::{ConnectorType, PlainSecret};
use crate::probe::report::Diagnostics;
use crate::probe::Probe;
use crate::store::{ConnectorReader, TunnelKeys};
use crate::validate::{parse_create, parse_update, Change};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// The fields that make a body with an `id` a proposed change rather than a test of the stored one.
const CHANGES: [&str; 4] = ["type", "config", "authMethod", "authConfig"];

/// A body without `id` but with `type`, or with `id` and any of the changes, is a dry run.
pub fn is_dry_run(body: &Map<String, Value>) -> bool {
    match body.get("id") {
        None | Some(Value::Null) => body.contains_key("type"),
        Some(_) => CHANGES.iter().any(|f| body.contains_key(*f)),
    }
}

/// The warning of a dry run whose destination moved away from the stored one.
pub const STORED_NOT_USED: &str = "the stored credentials were not used: the destination (type, host, url, port or TLS mode) changed; only the credentials in this request were sent";

/// What is probed: the proposal, validated (and merged) like a write would be.
struct Proposal {
    id: Option<String>,
    kind: ConnectorType,
    config: Map<String, Value>,
    auth_method: String,
    secret: Option<PlainSecret>,
    /// The destination moved, so the stored credentials were not used.
    stored_withheld: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DryRunBody<'a> {
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: ConnectorType,
    diagnostics: &'a Diagnostics,
    auth_config: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws_external_id: Option<String>,
}

impl<S, E, P> Tester<S, E, P>
where
    S: ConnectorReader + TunnelKeys,
    E: SecretSealer,
    P: Probe,
{
    pub(super) async fn dry_run(
        &self,
        tenant: &str,
        body: Map<String, Value>,
        audit: &mut AuditEvent,
    ) -> Result<Response<Body>, ApiError> {
        let proposal = match body.get("id") {
            None | Some(Value::Null) => new_connector(tenant, body)?,
            Some(_) => self.merged(tenant, body, audit).await?,
        };
        let given = proposal.secret;
        let (secret, tunnel_key) = self
            .open_with_tunnel_key(
                tenant,
                proposal.kind,
                &proposal.config,
                TenantKey::Unread,
                async { Ok(given) },
            )
            .await?;
        let mut diagnostics = self
            .probe_counted(Source {
                kind: proposal.kind,
                tenant,
                config: &proposal.config,
                auth_method: &proposal.auth_method,
                secret: secret.as_ref().map(|s| &s.0),
                tunnel_key: tunnel_pem(tunnel_key.as_ref()),
            })
            .await;
        if proposal.stored_withheld {
            diagnostics.warnings.insert(0, STORED_NOT_USED.to_string());
        }
        tracing::info!(tenant = %tenant, connector = proposal.id.as_deref().unwrap_or("-"), code = ?diagnostics.code, "dry run tested");
        Ok(json(
            200,
            &DryRunBody {
                dry_run: true,
                id: proposal.id.as_deref(),
                kind: proposal.kind,
                diagnostics: &diagnostics,
                auth_config: masked(secret.as_ref()),
                aws_external_id: aws_identity::is_aws(proposal.kind)
                    .then(|| aws_identity::external_id(tenant)),
            },
        ))
    }

    /// The stored connector with the proposed change applied, as update would apply it.
    async fn merged(
        &self,
        tenant: &str,
        body: Map<String, Value>,
        audit: &mut AuditEvent,
    ) -> Result<Proposal, ApiError> {
        let patch = parse_update(body)?;
        audit.connector(&patch.id);
        let current = self
            .store
            .get(tenant, &patch.id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let kind = patch.kind.unwrap_or(current.kind);
        let config = match &patch.config {
            Change::Keep => current.config.clone(),
            Change::Clear => Map::new(),
            Change::Set(c) => {
                let mut c = c.clone();
                carry_host_key_pin(kind, &current.config, &mut c);
                tunnel::carry_pin(&current.config, &mut c);
                c
            }
        };
        let proposed = propose(
            &self.sealer,
            &current,
            kind,
            &config,
            &patch.auth_config,
            true,
        )
        .await?;
        let auth_method = patch.auth_method.unwrap_or(current.auth_method);
        // As update judges it: an ExternalId the body sets (masks restored), the method always.
        aws_checked(
            kind,
            tenant,
            &auth_method,
            match &patch.auth_config {
                Change::Set(_) => proposed.secret.as_ref(),
                _ => None,
            },
        )?;
        let secret = proposed.secret.filter(|s| !s.0.is_empty());
        let auth_fields = secret
            .as_ref()
            .map(|s| present_fields(&s.0))
            .unwrap_or_default();
        let mut problems = check_config(kind, &config, &auth_fields);
        if let Some(s) = &secret {
            problems.extend(check_auth_config(kind, &s.0));
        }
        if !problems.is_empty() {
            return Err(ApiError::validation(problems));
        }
        Ok(Proposal {
            id: Some(current.id.clone()),
            kind,
            config,
            auth_method,
            secret,
            stored_withheld: proposed.moved,
        })
    }
}

/// The AWS identity rules of create and update (`aws_identity::check`).
fn aws_checked(
    kind: ConnectorType,
    tenant: &str,
    auth_method: &str,
    secret: Option<&PlainSecret>,
) -> Result<(), ApiError> {
    let allowed = aws_identity::function_role_allowed();
    let problems = aws_identity::check(kind, tenant, auth_method, secret.map(|s| &s.0), allowed);
    match problems.is_empty() {
        true => Ok(()),
        false => Err(ApiError::validation(problems)),
    }
}

/// A connector body validated exactly as create validates it; only `name` may be left out.
fn new_connector(tenant: &str, mut body: Map<String, Value>) -> Result<Proposal, ApiError> {
    body.entry("name")
        .or_insert_with(|| Value::String("dry run".into()));
    let new = parse_create(body)?;
    aws_checked(new.kind, tenant, &new.auth_method, new.auth_config.as_ref())?;
    Ok(Proposal {
        id: None,
        kind: new.kind,
        config: new.config,
        auth_method: new.auth_method,
        secret: new.auth_config.filter(|s| !s.0.is_empty()),
        stored_withheld: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn which_bodies_are_dry_runs() {
        let dry = |v: Value| is_dry_run(v.as_object().unwrap());
        assert!(dry(json!({"type": "postgresql", "config": {}})));
        assert!(dry(json!({"id": null, "type": "mysql"})));
        assert!(dry(
            json!({"id": "conn_x", "authConfig": {"password": "p"}})
        ));
        assert!(dry(json!({"id": "conn_x", "config": {"port": 1}})));
        assert!(!dry(json!({"id": "conn_x"})));
        assert!(
            !dry(json!({"id": "conn_x", "name": "n"})),
            "a name is no probe input"
        );
        assert!(!dry(json!({})), "neither id nor type: missing_id");
        assert!(!dry(json!({"config": {}})));
    }
}

//! The AWS identity of aws_s3 and amazon_kinesis connectors: which role the probe may use, and
//! the ExternalId it sends. The ExternalId is the platform's, one per tenant, derived here and
//! never chosen by a caller: a tenant who names another customer's role cannot make the service
//! send that customer's ExternalId, so a trust policy that requires it admits only its own tenant
//! (the confused-deputy guard AWS documents). It is not a secret: it is shown as `awsExternalId`.

use crate::error::FieldProblem;
use crate::model::ConnectorType;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};

/// The tenant's ExternalId: `cnx-` and 32 hex digits of SHA-256 over a fixed label and the tenant.
pub fn external_id(tenant: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"connectors-api/aws-external-id/v1\n")
        .chain_update(tenant.as_bytes())
        .finalize();
    format!("cnx-{}", hex::encode(&digest[..16]))
}

/// True for the types that sign AWS calls.
pub fn is_aws(kind: ConnectorType) -> bool {
    matches!(kind, ConnectorType::AwsS3 | ConnectorType::AmazonKinesis)
}

/// `authMethod: iam_role` uses the function's own role against the named bucket or stream.
pub const FUNCTION_ROLE: &str = "iam_role";

static FUNCTION_ROLE_ALLOWED: AtomicBool = AtomicBool::new(false);

/// Set once at init from `ALLOW_FUNCTION_ROLE` (the template's `AllowFunctionRole`, off by
/// default): only a single-tenant install may lend its function's role to connectors.
pub fn allow_function_role(allowed: bool) {
    FUNCTION_ROLE_ALLOWED.store(allowed, Ordering::Relaxed);
}

pub fn function_role_allowed() -> bool {
    FUNCTION_ROLE_ALLOWED.load(Ordering::Relaxed)
}

/// Why this deployment refuses `iam_role`.
pub const FUNCTION_ROLE_REFUSED: &str = "iam_role (the service's own AWS role) is off in this deployment (a single-tenant install may turn it on: AllowFunctionRole); give authConfig.roleArn, a role whose trust policy requires this tenant's awsExternalId, or access keys";

/// What a create, update or dry run of an AWS connector must not ask for: another ExternalId than
/// the tenant's, or the function's own role where the deployment does not lend it.
pub fn check(
    kind: ConnectorType,
    tenant: &str,
    auth_method: &str,
    auth: Option<&Map<String, Value>>,
    function_role_allowed: bool,
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if !is_aws(kind) {
        return problems;
    }
    if let Some(given) = auth.and_then(|a| a.get("externalId")) {
        let own = external_id(tenant);
        if given.as_str() != Some(own.as_str()) {
            problems.push(FieldProblem::new(
                "authConfig.externalId",
                format!(
                    "must be this tenant's awsExternalId ({own}) or left out: the service sends it"
                ),
            ));
        }
    }
    if auth_method == FUNCTION_ROLE && !function_role_allowed {
        problems.push(FieldProblem::new("authMethod", FUNCTION_ROLE_REFUSED));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_tenant_has_its_own_stable_external_id() {
        assert_eq!(external_id("acme"), external_id("acme"));
        assert_ne!(external_id("acme"), external_id("acme2"));
        let id = external_id("acme");
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("cnx-") && id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        // The same derivation as local/aws_iam_emulator.py's (which writes the trust policy).
        assert_eq!(
            external_id("awsext"),
            "cnx-ecd86d961365c653ebc84d10ae91be5a"
        );
    }

    #[test]
    fn another_external_id_or_the_function_role_is_refused() {
        let s3 = ConnectorType::AwsS3;
        let auth =
            |id: &str| json!({"roleArn": "arn:aws:iam::111111111111:role/r", "externalId": id});
        let fields = |p: Vec<FieldProblem>| p.into_iter().map(|p| p.field).collect::<Vec<_>>();
        let theirs = auth("someone-elses-id");
        assert_eq!(
            fields(check(s3, "acme", "assume_role", theirs.as_object(), false)),
            ["authConfig.externalId"]
        );
        let ours = auth(&external_id("acme"));
        assert!(check(s3, "acme", "assume_role", ours.as_object(), false).is_empty());
        assert!(check(s3, "acme", "assume_role", None, false).is_empty());
        assert_eq!(
            fields(check(s3, "acme", "iam_role", None, false)),
            ["authMethod"]
        );
        assert!(check(s3, "acme", "iam_role", None, true).is_empty());
        assert!(check(
            ConnectorType::Webhook,
            "acme",
            "iam_role",
            theirs.as_object(),
            false
        )
        .is_empty());
    }
}

//! aws_s3 and amazon_kinesis: a bucket or stream in the tenant's AWS account, reached with access
//! keys, or with a role (`roleArn`) assumed with the platform's ExternalId for this tenant. The
//! ExternalId is the platform's, one per tenant, derived here and never chosen by a caller: a
//! tenant who names another customer's role cannot make the service send that customer's
//! ExternalId, so a trust policy that requires it admits only its own tenant (the confused-deputy
//! guard AWS documents). It is not a secret: it is shown as `awsExternalId`.

use super::forms;
use super::{
    no_vendor, ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source,
};
use crate::error::FieldProblem;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};

pub const FAMILY: Family = Family {
    requirements: |kind| match kind {
        ConnectorType::AmazonKinesis => {
            &[Requirement::Field(STREAM_NAME), Requirement::Field(REGION)]
        }
        _ => &[Requirement::Field(BUCKET), Requirement::Field(REGION)],
    },
    destination: |_| &[D(Part::Auth, ROLE_ARN, Form::Exact)],
    vendor: no_vendor,
    config_field: |_, field, value| match field {
        BUCKET | REGION | STREAM_NAME => forms::non_empty(value),
        _ => None,
    },
    auth_config,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const BUCKET: &str = "bucket";
const REGION: &str = "region";
const STREAM_NAME: &str = "streamName";
const ROLE_ARN: &str = "roleArn";
const EXTERNAL_ID: &str = "externalId";

fn auth_config(_: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if auth
        .get(ROLE_ARN)
        .is_some_and(|v| !v.as_str().is_some_and(is_role_arn))
    {
        problems.push(FieldProblem::new(
            format!("authConfig.{ROLE_ARN}"),
            "must be an IAM role ARN (arn:aws:iam::123456789012:role/name)",
        ));
    }
    let external_id_ok = |s: &str| {
        (2..=1224).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b))
    };
    if auth
        .get(EXTERNAL_ID)
        .is_some_and(|v| !v.as_str().is_some_and(external_id_ok))
    {
        problems.push(FieldProblem::new(
            format!("authConfig.{EXTERNAL_ID}"),
            "must be 2 to 1224 characters of letters, digits and +=,.@:/-_",
        ));
    }
    problems
}

/// `arn:{partition}:iam::{12-digit account}:role/{path/name}`.
fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
    if partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|n| {
            !n.is_empty() && n.len() <= 512 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@/-_".contains(&b))
        }))
}

/// What the probe reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    Bucket(&'a str),
    Stream(&'a str),
}

/// Who the probe signs as.
pub enum Identity<'a> {
    /// The function's own role (only where the deployment lends it).
    Function,
    /// Access keys from authConfig.
    Keys {
        id: &'a str,
        secret: &'a str,
        session_token: Option<&'a str>,
    },
    /// A role in the customer's account, assumed with this tenant's ExternalId.
    Role { arn: &'a str, external_id: String },
}

pub struct Aws<'a> {
    pub resource: Resource<'a>,
    pub region: &'a str,
    pub identity: Identity<'a>,
}

/// A role is assumed with the tenant's own ExternalId, whatever authConfig holds; the function's
/// own role only where the deployment lends it.
fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let resource = match s.kind {
        ConnectorType::AmazonKinesis => Resource::Stream(s.required(STREAM_NAME)?),
        _ => Resource::Bucket(s.required(BUCKET)?),
    };
    let region = s.required(REGION)?;
    let region_ok = region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(format!("config.region {region:?} is not an AWS region"));
    }
    let identity = if let Some(arn) = s.token(ROLE_ARN) {
        Identity::Role {
            arn,
            external_id: external_id(s.tenant),
        }
    } else if s.auth_method == FUNCTION_ROLE {
        match function_role_allowed() {
            true => Identity::Function,
            false => return Err(FUNCTION_ROLE_REFUSED.into()),
        }
    } else {
        match (s.token("accessKeyId"), s.secret("secretAccessKey")) {
            (Some(id), Some(secret)) => Identity::Keys {
                id,
                secret,
                session_token: s.secret("sessionToken"),
            },
            _ => return Err("authConfig needs roleArn, or accessKeyId and secretAccessKey".into()),
        }
    };
    Ok(Input::Aws(Aws {
        resource,
        region,
        identity,
    }))
}

/// The tenant's ExternalId: `cnx-` and 32 hex digits of SHA-256 over a fixed label and the tenant.
pub fn external_id(tenant: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"connectors-api/aws-external-id/v1\n")
        .chain_update(tenant.as_bytes())
        .finalize();
    format!("cnx-{}", hex::encode(&digest[..16]))
}

/// True for the types that sign AWS calls (and show the tenant's `awsExternalId`).
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
    if let Some(given) = auth.and_then(|a| a.get(EXTERNAL_ID)) {
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
            |id: &str| json!({ROLE_ARN: "arn:aws:iam::111111111111:role/r", EXTERNAL_ID: id});
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

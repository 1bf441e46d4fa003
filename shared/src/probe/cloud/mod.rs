//! AWS probes through the SDK: who the credentials are (STS), then the bucket or stream.
//! Credentials, in order: `authConfig.roleArn` → STS AssumeRole from the function's own role with
//! the tenant's ExternalId, the way SaaS products are granted access to a customer's AWS; access
//! keys (`accessKeyId`, `secretAccessKey`, optional `sessionToken`) → STS GetCallerIdentity first
//! (a HeadBucket 403 has no body, so it cannot tell bad keys from a missing grant); or
//! `authMethod: iam_role` → the function's role as it is, where the deployment allows it. Bad
//! keys or a refused AssumeRole → `auth_failed`; `AccessDenied` on the bucket / stream → `permission_denied`; missing →
//! `not_found`.

pub mod kinesis;
pub mod s3;

use super::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use crate::kinds;
use aws_config::SdkConfig;
use aws_sdk_s3::config::{Credentials, Region};

/// How the probe signs its AWS calls.
pub enum Identity {
    /// The function's own role.
    Function,
    /// Access keys from authConfig.
    Keys(Credentials),
    /// A role in the customer's account, assumed from the function's role.
    Role { arn: String, external_id: String },
}

impl From<kinds::aws::Identity<'_>> for Identity {
    fn from(identity: kinds::aws::Identity<'_>) -> Self {
        match identity {
            kinds::aws::Identity::Function => Identity::Function,
            kinds::aws::Identity::Keys {
                id,
                secret,
                session_token,
            } => Identity::Keys(Credentials::new(
                id,
                secret,
                session_token.map(str::to_string),
                None,
                "connector",
            )),
            kinds::aws::Identity::Role { arn, external_id } => Identity::Role {
                arn: arn.to_string(),
                external_id,
            },
        }
    }
}

/// Proves the identity, then reads the bucket or stream.
pub async fn probe(
    sdk: &SdkConfig,
    aws: kinds::aws::Aws<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let region = aws.region;
    let creds = authenticate(sdk, region, aws.identity.into(), rec).await?;
    let what = match aws.resource {
        kinds::aws::Resource::Bucket(bucket) => {
            rec.step(
                StepName::Bucket,
                s3::check_bucket(sdk, region, creds, bucket),
            )
            .await?;
            format!("bucket {bucket} is reachable")
        }
        kinds::aws::Resource::Stream(stream) => {
            rec.step(
                StepName::Access,
                kinesis::describe_stream(sdk, region, creds, stream),
            )
            .await?;
            format!("stream {stream} is reachable")
        }
    };
    rec.reached(Depth::Authorized);
    Ok(what)
}

/// Proves the identity (GetCallerIdentity for keys, AssumeRole for a role) and returns the
/// credentials to use, recorded as the `auth` step; None is the function's own role.
async fn authenticate(
    sdk: &SdkConfig,
    region: &str,
    identity: Identity,
    rec: &mut Recorder,
) -> Result<Option<Credentials>, Failure> {
    let sts = |creds: Option<Credentials>| {
        let mut conf = aws_sdk_sts::config::Builder::from(sdk)
            .region(aws_sdk_sts::config::Region::new(region.to_string()));
        if let Some(c) = creds {
            conf = conf.credentials_provider(c);
        }
        aws_sdk_sts::Client::from_conf(conf.build())
    };
    let creds = match prove(&sts, identity, rec).await {
        Ok(Some(creds)) => creds,
        Ok(None) => return Ok(None),
        Err(f) => {
            if f.code == ProbeCode::AuthFailed {
                // STS answered: the service is reachable, the credentials are not good.
                rec.reached(Depth::Reachable);
            }
            return Err(f);
        }
    };
    rec.reached(Depth::Authenticated);
    Ok(Some(creds))
}

/// GetCallerIdentity for keys, AssumeRole for a role; the credentials to use.
async fn prove(
    sts: &impl Fn(Option<Credentials>) -> aws_sdk_sts::Client,
    identity: Identity,
    rec: &mut Recorder,
) -> Result<Option<Credentials>, Failure> {
    let creds = match identity {
        Identity::Function => return Ok(None),
        Identity::Keys(creds) => {
            let call = sts(Some(creds.clone())).get_caller_identity().send();
            rec.step(StepName::Auth, async {
                match call.await {
                    Ok(out) => Ok((
                        (),
                        format!(
                            "the keys belong to account {}",
                            out.account().unwrap_or("?")
                        ),
                    )),
                    Err(e) => Err(refused(&e, "the access keys were refused")),
                }
            })
            .await?;
            creds
        }
        Identity::Role { arn, external_id } => {
            let call = sts(None)
                .assume_role()
                .role_arn(&arn)
                .role_session_name("connectors-api-probe")
                .duration_seconds(900)
                .external_id(&external_id);
            rec.step(StepName::Auth, async {
                match call.send().await {
                    Ok(out) => match out.credentials() {
                        Some(c) => Ok((
                            Credentials::new(
                                c.access_key_id(),
                                c.secret_access_key(),
                                Some(c.session_token().to_string()),
                                None,
                                "assumed-role",
                            ),
                            format!("assumed {arn}"),
                        )),
                        None => Err(Failure::new(
                            ProbeCode::AuthFailed,
                            "AssumeRole returned no credentials",
                        )),
                    },
                    Err(e) => {
                        let mut f = refused(&e, &format!("AssumeRole of {arn} was refused"));
                        if f.code == ProbeCode::AuthFailed {
                            f.message.push_str(&format!(
                                ": the role's trust policy must admit this service's role with the \
                                 condition sts:ExternalId = {external_id} (this tenant's awsExternalId)"
                            ));
                        }
                        Err(f)
                    }
                }
            })
            .await?
        }
    };
    Ok(Some(creds))
}

/// An STS refusal: the service's error code (names the reason, never the credentials) or its
/// HTTP status; unreachable when nothing answered.
fn refused<E>(e: &aws_sdk_sts::error::SdkError<E>, what: &str) -> Failure
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string);
    match (code, e.raw_response().map(|r| r.status().as_u16())) {
        (Some(code), _) => Failure::new(ProbeCode::AuthFailed, format!("{what} ({code})")),
        (None, Some(status)) => {
            Failure::new(ProbeCode::AuthFailed, format!("{what} (HTTP {status})"))
        }
        (None, None) => Failure::new(ProbeCode::ConnectionRefused, "AWS STS could not be reached"),
    }
}

/// The SDK region type the S3 and Kinesis clients share.
fn region_of(region: &str) -> Region {
    Region::new(region.to_string())
}

/// Maps an S3 / Kinesis failure by HTTP status: with a proven identity a 403 is a missing grant.
fn aws_failure<E: std::error::Error + 'static>(status: Option<u16>, e: &E, what: &str) -> Failure {
    // The SDK's text names the request, not the credentials; it is logged at debug only.
    tracing::debug!(error = %aws_sdk_s3::error::DisplayErrorContext(e), "AWS probe failed");
    match status {
        Some(404) => Failure::new(ProbeCode::NotFound, format!("the {what} does not exist")),
        Some(401 | 403) => Failure::new(
            ProbeCode::PermissionDenied,
            format!("access to the {what} was denied (AccessDenied)"),
        ),
        Some(400) => Failure::new(
            ProbeCode::AuthFailed,
            format!("the {what} request was refused (HTTP 400: credentials or region)"),
        ),
        Some(301) => Failure::new(
            ProbeCode::HttpError,
            format!("the {what} is in another region"),
        ),
        Some(s) => Failure::new(ProbeCode::HttpError, format!("AWS answered HTTP {s}")),
        None => Failure::new(ProbeCode::ConnectionRefused, "AWS could not be reached"),
    }
}

//! Cloud Storage with HMAC keys (`accessKeyId` + `secretAccessKey`): the XML API's bucket listing
//! (`GET https://storage.googleapis.com/{bucket}?max-keys=1`) signed with SigV4 (region `auto`,
//! service `s3`, as Google's interoperability docs say) by the maintained `aws-sigv4` signer and
//! sent through the guarded probe client — not through the S3 SDK, whose HTTP client trusts only
//! its own roots and resolves names without the SSRF pins. `InvalidAccessKeyId` /
//! `SignatureDoesNotMatch` → `auth_failed`, `AccessDenied` → `permission_denied`, `NoSuchBucket`
//! → `not_found`.

use super::{Answer, Api};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use reqwest::Method;
use std::time::SystemTime;
use url::Url;

pub async fn login(
    api: &Api<'_>,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let encoded = super::path_segment(bucket);
    let url = Url::parse(&format!(
        "https://storage.googleapis.com/{encoded}?max-keys=1"
    ))
    .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "config.bucket"))?;
    let credentials =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "gcs-hmac");
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("auto")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the HMAC key cannot sign"))?
        .into();
    let host = [("host", "storage.googleapis.com")];
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        host.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the request cannot be signed"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the request cannot be signed"))?
        .into_parts();
    let mut request = api.request(Method::GET, url);
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let answer = api
        .send(StepName::Access, "bucket listing", request, rec)
        .await?;
    rec.reached(Depth::Reachable);
    outcome(&answer, bucket, rec)
}

/// The `<Code>` of an XML error answer.
fn error_code(answer: &Answer) -> String {
    let body = String::from_utf8_lossy(&answer.body);
    body.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string())
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_default()
}

fn outcome(answer: &Answer, bucket: &str, rec: &mut Recorder) -> Result<String, Failure> {
    let code = error_code(answer);
    match (answer.status, code.as_str()) {
        (200, _) => {
            rec.reached(Depth::Authorized);
            Ok(format!("the HMAC key lists bucket {bucket}"))
        }
        (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidSecurity") => {
            Err(Failure::new(
                ProbeCode::AuthFailed,
                format!("Cloud Storage refused the HMAC key ({code})"),
            ))
        }
        (404, _) => {
            rec.reached(Depth::Authenticated);
            Err(Failure::new(
                ProbeCode::NotFound,
                format!("bucket {bucket} does not exist ({code})"),
            ))
        }
        (403, _) => {
            rec.reached(Depth::Authenticated);
            Err(Failure::new(
                ProbeCode::PermissionDenied,
                format!("the HMAC key may not list bucket {bucket} ({code})"),
            ))
        }
        (status, _) => Err(Failure::new(
            ProbeCode::HttpError,
            format!("Cloud Storage answered HTTP {status}"),
        )),
    }
}

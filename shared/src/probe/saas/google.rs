//! Google (bigquery, gcs): a service-account key (`serviceAccountKey`, an object or its JSON
//! text: `client_email`, `private_key`, `private_key_id`, `token_uri`) signs an RS256 JWT
//! assertion (`iss` the client email, `scope` read-only, `aud` the token endpoint, an hour) that
//! Google's token endpoint exchanges for an access token (RFC 7523); then
//! `GET …/bigquery/v2/projects/{project}/datasets/{dataset}` or `GET …/storage/v1/b/{bucket}`.
//! Cloud Storage also takes HMAC keys (`gcs_hmac.rs`).
//! `token_uri` comes from the tenant: only Google's is accepted (a 400 at create and update; the
//! vendor host check blocks a stored legacy value). 400 `invalid_grant` / 401 → `auth_failed`,
//! 403 → `permission_denied`, 404 → `not_found`.

use super::signing_key::unix_now;
use super::{form, path_segment, Answer, Api};
use crate::kinds::google::{Credential, Google, Resource, CREDENTIALS, KEY_FIELD, KEY_PRIVATE_KEY};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use reqwest::Method;
use serde_json::Value;
use url::Url;

#[derive(serde::Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The resource a type reads, and the read-only scope that reads it.
fn resource(resource: &Resource<'_>) -> Result<(Url, &'static str, String), Failure> {
    let (url, scope, what) = match resource {
        Resource::Dataset { project, dataset } => (
            format!(
                "https://bigquery.googleapis.com/bigquery/v2/projects/{}/datasets/{}",
                path_segment(project),
                path_segment(dataset)
            ),
            "https://www.googleapis.com/auth/bigquery.readonly",
            format!("dataset {project}:{dataset}"),
        ),
        Resource::Bucket(bucket) => (
            format!(
                "https://storage.googleapis.com/storage/v1/b/{}",
                path_segment(bucket)
            ),
            "https://www.googleapis.com/auth/devstorage.read_only",
            format!("bucket {bucket}"),
        ),
    };
    let url = Url::parse(&url)
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the Google resource URL"))?;
    Ok((url, scope, what))
}

pub async fn login(
    api: &Api<'_>,
    input: &Google<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let (url, scope, what) = resource(&input.resource)?;
    let key = match (&input.credential, &input.resource) {
        (Credential::Hmac { id, secret }, Resource::Bucket(bucket)) => {
            return super::gcs_hmac::login(api, bucket, id, secret, rec).await;
        }
        (Credential::ServiceAccount(key), _) => key,
        _ => {
            let request = api.request(Method::GET, url);
            return api
                .reachable_only(&what, request, "Google", CREDENTIALS, rec)
                .await;
        }
    };
    let endpoint = Url::parse(&key.token_uri).map_err(|_| {
        Failure::new(
            ProbeCode::InvalidConfig,
            format!("{KEY_FIELD}.token_uri is not a URL"),
        )
    })?;
    let signer = crate::probe::kdf::signing_key(KEY_PRIVATE_KEY, &key.private_key, None).await?;
    let now = unix_now();
    let assertion = signer
        .sign(
            &Assertion {
                iss: &key.client_email,
                scope,
                aud: &key.token_uri,
                iat: now,
                exp: now + 3600,
            },
            key.private_key_id.as_deref(),
        )
        .map_err(|e| Failure::new(ProbeCode::InvalidConfig, e))?;
    let fields = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion.as_str()),
    ];
    let request = form(api.request(Method::POST, endpoint), &fields);
    let (token, _) = api.token(request, "Google's token endpoint", rec).await?;
    rec.reached(Depth::Authenticated);
    let answer = api
        .send(
            StepName::Access,
            &what,
            api.request(Method::GET, url).bearer_auth(&token),
            rec,
        )
        .await?;
    outcome(&answer, &what, rec)
}

fn outcome(answer: &Answer, what: &str, rec: &mut Recorder) -> Result<String, Failure> {
    let status = answer.json();
    let reason = status
        .pointer("/error/status")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 40 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .unwrap_or("");
    match answer.status {
        200 => {
            rec.reached(Depth::Authorized);
            Ok(format!("the service account reads {what}"))
        }
        401 => Err(Failure::new(
            ProbeCode::AuthFailed,
            format!("Google refused the access token (HTTP 401 {reason})"),
        )),
        403 => Err(Failure::new(
            ProbeCode::PermissionDenied,
            format!("the service account may not read {what} (HTTP 403 {reason})"),
        )),
        404 => Err(Failure::new(
            ProbeCode::NotFound,
            format!("{what} does not exist (HTTP 404)"),
        )),
        code => Err(Failure::new(
            ProbeCode::HttpError,
            format!("Google answered HTTP {code} for {what}"),
        )),
    }
}

//! Azure Blob Storage: Get Container Properties (`GET /{container}?restype=container`) signed
//! with SharedKey (`accountKey`: the canonicalized request, HMAC-SHA256, `x-ms-date`,
//! `x-ms-version`), or with a SAS token (`sasToken`), or with a `connectionString` in authConfig
//! (`AccountName`, `AccountKey`, `SharedAccessSignature`, `BlobEndpoint`). Only Azure's blob
//! hosts receive anything. A signature Azure refuses → `auth_failed` (Azure says
//! `AuthenticationFailed`; Azurite says `AuthorizationFailure` with the same "Server failed to
//! authenticate the request" message: classified by that), `ContainerNotFound` → `not_found`,
//! `AuthorizationPermissionMismatch` (and other refusals of a valid signature) →
//! `permission_denied`.

use super::{path_segment, Answer, Api};
use crate::kinds::azure::{Azure, Credential, CREDENTIALS};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use base64::Engine;
use reqwest::Method;

use url::Url;

/// The REST version we sign for (Azure and Azurite both speak it).
const VERSION: &str = "2021-08-06";

/// `x-ms-date`: the RFC 1123 date in GMT.
fn ms_date() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc2822)
        .map(|d| d.replace("+0000", "GMT"))
        .unwrap_or_default()
}

/// The SharedKey string to sign for a GET without body or conditional headers: the verb, eleven
/// empty standard headers, the `x-ms-*` headers, then `/{account}{path}` and the query
/// parameters, sorted, one per line.
fn string_to_sign(account: &str, url: &Url, date: &str) -> String {
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    let mut s = String::from("GET\n");
    s.push_str(&"\n".repeat(11));
    s.push_str(&format!("x-ms-date:{date}\nx-ms-version:{VERSION}\n"));
    s.push_str(&format!("/{account}{}", url.path()));
    for (k, v) in query {
        s.push_str(&format!("\n{k}:{v}"));
    }
    s
}

fn sign(key: &[u8], to_sign: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

pub async fn login(
    api: &Api<'_>,
    account: &Azure<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let container = account.container;
    let encoded = path_segment(container);
    let mut url = Url::parse(&format!("{}/{encoded}?restype=container", account.endpoint))
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the blob endpoint is not a URL"))?;
    let date = ms_date();
    let mut request = api
        .request(Method::GET, url.clone())
        .header("x-ms-date", &date)
        .header("x-ms-version", VERSION);
    let how = match &account.credential {
        Credential::SharedKey(key) => {
            let signature = sign(key, &string_to_sign(&account.account, &url, &date));
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("SharedKey {}:{signature}", account.account),
            );
            "the account key"
        }
        Credential::Sas(sas) => {
            url.set_query(Some(&format!("restype=container&{}", sas.as_str())));
            request = api
                .request(Method::GET, url)
                .header("x-ms-date", &date)
                .header("x-ms-version", VERSION);
            "the SAS token"
        }
        Credential::None => {
            return api
                .reachable_only("container", request, "Azure Storage", CREDENTIALS, rec)
                .await;
        }
    };
    let answer = api
        .send(StepName::Access, "container", request, rec)
        .await?;
    rec.reached(Depth::Reachable);
    if let Some(v) = answer.header("x-ms-version") {
        rec.server("Azure Storage", v);
    }
    outcome(&answer, container, how, rec)
}

fn outcome(
    answer: &Answer,
    container: &str,
    how: &str,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let code = answer.header("x-ms-error-code").unwrap_or("").to_string();
    let body = String::from_utf8_lossy(&answer.body);
    let unauthenticated = code == "AuthenticationFailed"
        || body.contains("Server failed to authenticate the request");
    match answer.status {
        200 => {
            rec.reached(Depth::Authorized);
            Ok(format!("{how} reads container {container}"))
        }
        401 | 403 if unauthenticated => Err(Failure::new(
            ProbeCode::AuthFailed,
            format!(
                "Azure Storage refused the signature of {how} ({})",
                known(&code)
            ),
        )),
        403 => {
            rec.reached(Depth::Authenticated);
            Err(Failure::new(
                ProbeCode::PermissionDenied,
                format!(
                    "Azure Storage accepted {how}; reading container {container} refused ({})",
                    known(&code)
                ),
            ))
        }
        404 => {
            rec.reached(Depth::Authenticated);
            Err(Failure::new(
                ProbeCode::NotFound,
                format!("container {container} does not exist ({})", known(&code)),
            ))
        }
        status => Err(Failure::new(
            ProbeCode::HttpError,
            format!("Azure Storage answered HTTP {status} ({})", known(&code)),
        )),
    }
}

/// Azure's error code when it is one of its names, else a placeholder.
fn known(code: &str) -> &str {
    if !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        code
    } else {
        "no error code"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_shared_key_layout() {
        let url = Url::parse("https://acct.blob.core.windows.net/c1?restype=container").unwrap();
        let s = string_to_sign("acct", &url, "Fri, 27 Nov 2026 11:40:03 GMT");
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 27 Nov 2026 11:40:03 GMT\nx-ms-version:2021-08-06\n/acct/c1\nrestype:container"
        );
        assert!(ms_date().ends_with(" GMT"));
    }
}

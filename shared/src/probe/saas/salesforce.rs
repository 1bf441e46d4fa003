//! Salesforce: an access token (`accessToken`; `apiKey` is its older name), or OAuth client
//! credentials (`clientId` + `clientSecret`) exchanged first at the My Domain token endpoint
//! (`POST {instanceUrl}/services/oauth2/token`). Then `GET {instanceUrl}/services/data/` (the
//! API versions) and `GET …/v{latest}/limits` with the token. Only Salesforce hosts receive
//! anything (the instance URL a token endpoint returns included).
//! `INVALID_SESSION_ID` (401) → `auth_failed`; 403 → `permission_denied`.

use super::{form, Api};
use crate::kinds::saas_api::{credentials, SaasApi};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use reqwest::Method;
use serde_json::Value;
use url::Url;

pub async fn login(
    api: &Api<'_>,
    input: &SaasApi<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let mut instance = match &input.instance {
        Some(u) => u.clone(),
        None => parse("https://login.salesforce.com")?,
    };
    let mut token = input.token.map(str::to_string);
    if let Some((id, client_secret)) = input.client {
        let endpoint = join(&instance, "/services/oauth2/token")?;
        let fields = [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", client_secret),
        ];
        let request = form(api.request(Method::POST, endpoint), &fields);
        let (access, json) = api.token(request, "/services/oauth2/token", rec).await?;
        if let Some(u) = json.get("instance_url").and_then(Value::as_str) {
            instance = parse(u)?;
        }
        token = Some(access);
    }
    let versions = api
        .send(
            StepName::Http,
            "API versions",
            api.request(Method::GET, join(&instance, "/services/data/")?),
            rec,
        )
        .await?;
    rec.reached(Depth::Reachable);
    let latest = latest_version(&versions.json()).ok_or_else(|| {
        Failure::new(
            ProbeCode::ProtocolMismatch,
            format!(
                "{instance} did not list Salesforce API versions (HTTP {})",
                versions.status
            ),
        )
    })?;
    rec.server("Salesforce", &format!("API v{latest}"));
    let Some(token) = token else {
        return Ok(format!(
            "Salesforce answered; credentials were not checked (no {} in authConfig)",
            credentials(input.service)
        ));
    };
    let limits = api
        .send(
            StepName::Access,
            "limits",
            api.request(
                Method::GET,
                join(&instance, &format!("/services/data/v{latest}/limits"))?,
            )
            .bearer_auth(&token),
            rec,
        )
        .await?;
    let error_code = limits
        .json()
        .get(0)
        .and_then(|e| e.get("errorCode"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match limits.status {
        200 => {
            rec.reached(Depth::Authorized);
            Ok(format!("the token reads the org's limits (API v{latest})"))
        }
        401 => Err(Failure::new(
            ProbeCode::AuthFailed,
            format!(
                "Salesforce refused the token ({})",
                known(&error_code, "HTTP 401")
            ),
        )),
        403 => {
            rec.reached(Depth::Authenticated);
            Err(Failure::new(
                ProbeCode::PermissionDenied,
                format!(
                    "Salesforce accepted the token; API access refused ({})",
                    known(&error_code, "HTTP 403")
                ),
            ))
        }
        status => Err(Failure::new(
            ProbeCode::HttpError,
            format!("Salesforce answered HTTP {status} for the limits"),
        )),
    }
}

fn parse(u: &str) -> Result<Url, Failure> {
    Url::parse(u).map_err(|_| {
        Failure::new(
            ProbeCode::InvalidConfig,
            "the Salesforce instance URL is not a URL",
        )
    })
}

fn join(base: &Url, path: &str) -> Result<Url, Failure> {
    base.join(path)
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the Salesforce instance URL"))
}

/// The highest `version` of the versions list (`[{"version": "59.0", …}, …]`).
fn latest_version(list: &Value) -> Option<String> {
    list.as_array()?
        .iter()
        .filter_map(|v| v.get("version")?.as_str())
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !v.is_empty())
        .max_by(|a, b| {
            let n = |s: &str| s.parse::<f64>().unwrap_or(0.0);
            n(a).total_cmp(&n(b))
        })
        .map(str::to_string)
}

/// Salesforce's error code when it is one of its upper-case names, else `fallback`.
fn known<'a>(code: &'a str, fallback: &'a str) -> &'a str {
    if !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
    {
        code
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_latest_version_is_the_highest_number() {
        let list =
            json!([{"version": "9.0"}, {"version": "59.0"}, {"version": "58.0"}, {"version": "x"}]);
        assert_eq!(latest_version(&list).as_deref(), Some("59.0"));
        assert_eq!(latest_version(&json!({"version": "1"})), None);
        assert_eq!(
            known("INVALID_SESSION_ID", "HTTP 401"),
            "INVALID_SESSION_ID"
        );
        assert_eq!(known("<script>", "HTTP 401"), "HTTP 401");
    }
}

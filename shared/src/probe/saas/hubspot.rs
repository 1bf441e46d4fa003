//! HubSpot: the access token (a private app's or an OAuth token; `apiKey` is its older name) is
//! sent to `GET https://api.hubapi.com/account-info/v3/details`, HubSpot's own host only.
//! 401 → `auth_failed`; 403 (category `MISSING_SCOPES`) → `permission_denied`.

use super::Api;
use crate::kinds::saas_api::{credentials, SaasApi};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use reqwest::Method;
use serde_json::Value;
use url::Url;

const DETAILS: &str = "https://api.hubapi.com/account-info/v3/details";

pub async fn login(
    api: &Api<'_>,
    input: &SaasApi<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let url = Url::parse(DETAILS)
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the HubSpot URL"))?;
    let Some(token) = input.token else {
        let request = api.request(Method::GET, url);
        return api
            .reachable_only(
                "account details",
                request,
                "HubSpot",
                credentials(input.service),
                rec,
            )
            .await;
    };
    let answer = api
        .send(
            StepName::Auth,
            "account details",
            api.request(Method::GET, url).bearer_auth(token),
            rec,
        )
        .await?;
    rec.reached(Depth::Reachable);
    let json = answer.json();
    let category = json.get("category").and_then(Value::as_str).unwrap_or("");
    match answer.status {
        200 => {
            rec.reached(Depth::Authorized);
            let portal = json.get("portalId").and_then(Value::as_u64).unwrap_or(0);
            Ok(format!("the token reads HubSpot account {portal}"))
        }
        401 => Err(Failure::new(
            ProbeCode::AuthFailed,
            "HubSpot refused the access token (HTTP 401)",
        )),
        403 => {
            rec.reached(Depth::Authenticated);
            let why = if category == "MISSING_SCOPES" {
                "the token lacks the scopes to read the account (MISSING_SCOPES)"
            } else {
                "access refused (HTTP 403)"
            };
            Err(Failure::new(
                ProbeCode::PermissionDenied,
                format!("HubSpot accepted the token; {why}"),
            ))
        }
        status => Err(Failure::new(
            ProbeCode::HttpError,
            format!("HubSpot answered HTTP {status}"),
        )),
    }
}

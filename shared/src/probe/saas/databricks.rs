//! Databricks: a personal access token (`token`, or `accessToken`) or OAuth machine-to-machine
//! (`clientId` + `clientSecret` → `POST https://{host}/oidc/v1/token`, client_credentials, scope
//! `all-apis`, the client authenticated with HTTP Basic); then the resource `httpPath` names:
//! `/sql/1.0/warehouses/{id}` → `GET /api/2.0/sql/warehouses/{id}`, a cluster path
//! (`/sql/protocolv1/o/{org}/{cluster}`) → `GET /api/2.0/clusters/get?cluster_id={cluster}`.
//! 401 → `auth_failed`, 403 → `permission_denied`, 404 / `RESOURCE_DOES_NOT_EXIST` → `not_found`.

use super::{form, path_segment, Answer, Api};
use crate::kinds::databricks::{Databricks, Resource};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use reqwest::Method;
use serde_json::Value;
use url::Url;

pub async fn login(
    api: &Api<'_>,
    input: &Databricks<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let base = input.base.clone();
    let target = &input.resource;
    let url = match target {
        Resource::Warehouse(id) => join(
            &base,
            &format!("api/2.0/sql/warehouses/{}", path_segment(id)),
        )?,
        Resource::Cluster(id) => {
            let mut u = join(&base, "api/2.0/clusters/get")?;
            u.query_pairs_mut().append_pair("cluster_id", id);
            u
        }
    };
    let mut token = input.token.map(str::to_string);
    if let Some((id, client_secret)) = input.client {
        let fields = [("grant_type", "client_credentials"), ("scope", "all-apis")];
        let request = form(
            api.request(Method::POST, join(&base, "oidc/v1/token")?)
                .basic_auth(id, Some(client_secret)),
            &fields,
        );
        token = Some(api.token(request, "/oidc/v1/token", rec).await?.0);
    }
    let Some(token) = token else {
        let request = api.request(Method::GET, base);
        return api
            .reachable_only(
                "workspace",
                request,
                "Databricks",
                "token or clientId/clientSecret",
                rec,
            )
            .await;
    };
    let answer = api
        .send(
            StepName::Access,
            "resource",
            api.request(Method::GET, url).bearer_auth(&token),
            rec,
        )
        .await?;
    rec.reached(Depth::Reachable);
    outcome(&answer, target, rec)
}

fn outcome(answer: &Answer, target: &Resource, rec: &mut Recorder) -> Result<String, Failure> {
    let json = answer.json();
    let error_code = json.get("error_code").and_then(Value::as_str).unwrap_or("");
    let what = match target {
        Resource::Warehouse(id) => format!("SQL warehouse {id}"),
        Resource::Cluster(id) => format!("cluster {id}"),
    };
    match answer.status {
        200 => {
            rec.reached(Depth::Authorized);
            let state = json
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let state: String = state
                .chars()
                .filter(char::is_ascii_alphabetic)
                .take(32)
                .collect();
            Ok(format!("the token reads {what} (state {state})"))
        }
        401 => Err(Failure::new(
            ProbeCode::AuthFailed,
            "Databricks refused the token (HTTP 401)",
        )),
        403 => {
            rec.reached(Depth::Authenticated);
            Err(Failure::new(
                ProbeCode::PermissionDenied,
                format!("Databricks accepted the token; access to {what} refused (HTTP 403)"),
            ))
        }
        404 => not_found(&what, rec),
        _ if error_code == "RESOURCE_DOES_NOT_EXIST" => not_found(&what, rec),
        // clusters/get names a missing cluster this way.
        400 if error_code == "INVALID_PARAMETER_VALUE"
            && json
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| m.contains("does not exist")) =>
        {
            not_found(&what, rec)
        }
        status => Err(Failure::new(
            ProbeCode::HttpError,
            format!("Databricks answered HTTP {status} for {what}"),
        )),
    }
}

fn not_found(what: &str, rec: &mut Recorder) -> Result<String, Failure> {
    rec.reached(Depth::Authenticated);
    Err(Failure::new(
        ProbeCode::NotFound,
        format!("{what} does not exist"),
    ))
}

fn join(base: &Url, path: &str) -> Result<Url, Failure> {
    base.join(path)
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the Databricks workspace URL"))
}

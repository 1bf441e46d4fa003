//! Snowflake: a login as the drivers do it, `POST https://{account}.snowflakecomputing.com/
//! session/v1/login-request` with the documented `data` fields — a password, or key-pair
//! authentication (authenticator `SNOWFLAKE_JWT`: an RS256 JWT signed with `privateKey`, PKCS#8,
//! optional `passphrase`; `iss = ACCOUNT.USER.SHA256:<public key fingerprint>`,
//! `sub = ACCOUNT.USER`, an hour at most). Warehouse, database and role go as query parameters,
//! and `CLIENT_VALIDATE_DEFAULT_PARAMETERS` makes Snowflake refuse ones that do not exist or are
//! not granted instead of ignoring them. The session is closed afterwards.
//! 390100 (incorrect username or password) and 390144 (invalid JWT) → `auth_failed`;
//! 390201 (database / warehouse does not exist or not authorized) → `not_found`;
//! 390189 / 390186 (role does not exist / is not granted) → `permission_denied`.

use super::signing_key::unix_now;
use super::{json_body, Api};
use crate::kinds::snowflake::Snowflake;
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use reqwest::Method;
use serde_json::{json, Value};
use url::Url;

/// What the JWT claims (Snowflake: key-pair authentication).
#[derive(serde::Serialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: u64,
    exp: u64,
}

/// The account name Snowflake's login and JWTs use: the account identifier without region or
/// cloud (`xy12345.us-east-1` → `XY12345`; `myorg-acct1` → `MYORG-ACCT1`), upper case.
pub fn account_name(account: &str) -> String {
    account
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

pub async fn login(
    api: &Api<'_>,
    input: &Snowflake<'_>,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let account = input.account;
    let base = input.base.clone();
    let (user, password, private_key) = (input.user, input.password, input.private_key);
    let (Some(user), true) = (user, password.is_some() || private_key.is_some()) else {
        let request = api.request(Method::GET, base);
        return api
            .reachable_only(
                "account",
                request,
                "Snowflake",
                "username with password or privateKey",
                rec,
            )
            .await;
    };
    let name = account_name(account);
    let mut data = json!({
        "CLIENT_APP_ID": "connectors-api",
        "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
        "ACCOUNT_NAME": name,
        "LOGIN_NAME": user,
        "CLIENT_ENVIRONMENT": {"APPLICATION": "connectors-api"},
        "SESSION_PARAMETERS": {"CLIENT_VALIDATE_DEFAULT_PARAMETERS": true},
    });
    let method = match (private_key, password) {
        (Some(pem), _) => {
            let key =
                crate::probe::kdf::signing_key("authConfig.privateKey", pem, input.passphrase)
                    .await?;
            let subject = format!("{name}.{}", user.to_ascii_uppercase());
            let now = unix_now();
            let claims = Claims {
                iss: format!("{subject}.{}", key.fingerprint()),
                sub: subject,
                iat: now,
                exp: now + 60 * 59,
            };
            let token = key
                .sign(&claims, None)
                .map_err(|e| Failure::new(ProbeCode::InvalidConfig, e))?;
            data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
            data["TOKEN"] = json!(token);
            "key pair"
        }
        (None, Some(password)) => {
            data["PASSWORD"] = json!(password);
            "password"
        }
        (None, None) => unreachable!("checked above"),
    };
    let mut url = join(&base, "session/v1/login-request")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("request_id", &request_id());
        for (param, value) in &input.session {
            q.append_pair(param, value);
        }
    }
    let answer = api
        .send(
            StepName::Auth,
            "login",
            json_body(
                api.request(Method::POST, url)
                    .header(reqwest::header::ACCEPT, "application/snowflake"),
                &json!({ "data": data }),
            ),
            rec,
        )
        .await?;
    rec.reached(Depth::Reachable);
    let body = answer.json();
    if body.get("success").and_then(Value::as_bool) != Some(true) {
        return Err(refusal(&answer, &body, rec));
    }
    rec.reached(Depth::Authorized);
    if let Some(v) = body.pointer("/data/serverVersion").and_then(Value::as_str) {
        rec.server("Snowflake", v);
    }
    if let Some(token) = body.pointer("/data/token").and_then(Value::as_str) {
        close(api, &base, token, rec).await;
    }
    let session = body
        .pointer("/data/sessionInfo")
        .cloned()
        .unwrap_or(Value::Null);
    let named = |k: &str| {
        session
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string()
    };
    Ok(format!(
        "logged in with the {method} (warehouse {}, database {}, role {})",
        named("warehouseName"),
        named("databaseName"),
        named("roleName")
    ))
}

/// What a `success: false` answer means.
fn refusal(answer: &super::Answer, body: &Value, rec: &mut Recorder) -> Failure {
    let code = body
        .get("code")
        .and_then(|c| {
            c.as_str()
                .map(str::to_string)
                .or_else(|| c.as_u64().map(|n| n.to_string()))
        })
        .unwrap_or_default();
    // Snowflake's messages name the object, never a credential; keep them short.
    let message: String = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("login refused")
        .chars()
        .take(200)
        .collect();
    let (probe_code, depth) = match code.as_str() {
        "390100" | "390144" | "394304" => (ProbeCode::AuthFailed, None),
        "390201" => (ProbeCode::NotFound, Some(Depth::Authenticated)),
        "390189" | "390186" => (ProbeCode::PermissionDenied, Some(Depth::Authenticated)),
        _ if answer.status == 401 || answer.status == 403 => (ProbeCode::AuthFailed, None),
        _ => (ProbeCode::HttpError, None),
    };
    if let Some(d) = depth {
        rec.reached(d);
    }
    Failure::new(probe_code, format!("Snowflake: {message} ({code})"))
}

/// Closes the session the login opened (`POST /session?delete=true`); its outcome does not
/// change the test's.
async fn close(api: &Api<'_>, base: &Url, token: &str, rec: &mut Recorder) {
    let Ok(mut url) = join(base, "session") else {
        return;
    };
    url.query_pairs_mut().append_pair("delete", "true");
    let request = api
        .request(Method::POST, url)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Snowflake Token=\"{token}\""),
        )
        .header(reqwest::header::ACCEPT, "application/snowflake");
    let _ = api
        .send(StepName::Http, "close session", request, rec)
        .await;
}

fn join(base: &Url, path: &str) -> Result<Url, Failure> {
    base.join(path)
        .map_err(|_| Failure::new(ProbeCode::InvalidConfig, "the Snowflake account URL"))
}

/// A random UUID (v4 layout) for `request_id`.
fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_drop_region_and_cloud() {
        assert_eq!(account_name("xy12345.us-east-1"), "XY12345");
        assert_eq!(account_name("xy12345.east-us-2.azure"), "XY12345");
        assert_eq!(account_name("myorg-acct1"), "MYORG-ACCT1");
        let id = request_id();
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
    }
}

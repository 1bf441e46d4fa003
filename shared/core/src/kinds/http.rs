//! rest_api and webhook: an HTTP endpoint the tenant names in `url`. Its credentials go to that
//! URL's origin and path (and an OAuth client's secret to `tokenUrl`), never to where a redirect
//! points.

use super::forms;
use super::{
    no_vendor, ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source,
};
use crate::error::FieldProblem;
use serde_json::{Map, Value};
use url::Url;

pub const FAMILY: Family = Family {
    requirements: |_| &[Requirement::Field(URL)],
    destination: |_| {
        &[
            D(Part::Config, URL, Form::OriginPath),
            D(Part::Auth, TOKEN_URL, Form::FullUrl),
        ]
    },
    vendor: no_vendor,
    config_field: |_, field, value| match field {
        URL => forms::url_value(value),
        _ => None,
    },
    auth_config,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const URL: &str = "url";
const TOKEN_URL: &str = "tokenUrl";
/// Named in the probe's messages.
pub const TOKEN_URL_FIELD: &str = "authConfig.tokenUrl";
const HEADER_NAME: &str = "headerName";

fn auth_config(_: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Some(problem) = auth.get(TOKEN_URL).and_then(forms::url_value) {
        problems.push(FieldProblem::new(TOKEN_URL_FIELD, problem));
    }
    if let Some(v) = auth.get(HEADER_NAME) {
        let ok = v.as_str().is_some_and(|h| {
            (1..=64).contains(&h.len())
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                && !matches!(
                    h.to_ascii_lowercase().as_str(),
                    "host"
                        | "content-length"
                        | "transfer-encoding"
                        | "connection"
                        | "te"
                        | "upgrade"
                )
        });
        if !ok {
            problems.push(FieldProblem::new(
                format!("authConfig.{HEADER_NAME}"),
                "must be an HTTP header name (letters, digits, - and _; not Host, Content-Length, Transfer-Encoding, Connection, TE or Upgrade)",
            ));
        }
    }
    problems
}

/// Credentials an HTTP probe sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
    /// An API key in a header the tenant names (`headerName` + `apiKey`).
    Header {
        name: String,
        value: String,
    },
    /// OAuth 2.0 client credentials: a token from `token_url` first, then sent as a bearer.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
}

/// The URL to probe and what to send it.
pub struct Http {
    pub url: Url,
    pub auth: HttpAuth,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    Ok(Input::Http(Http {
        url: forms::probe_url(s.required(URL)?, "config.url")?,
        auth: http_auth(&s),
    }))
}

/// OAuth client credentials (`tokenUrl`, `clientId`, `clientSecret`, optional `scope`), an
/// `apiKey` in the header `headerName`, `token`/`bearerToken`/`accessToken`/`apiKey` as a bearer
/// token, or `username` + `password` as Basic.
fn http_auth(s: &Source<'_>) -> HttpAuth {
    let owned = |v: &str| v.to_string();
    if let (Some(token_url), Some(id), Some(client_secret)) = (
        s.token(TOKEN_URL),
        s.token("clientId"),
        s.token("clientSecret"),
    ) {
        return HttpAuth::ClientCredentials {
            token_url: owned(token_url),
            client_id: owned(id),
            client_secret: owned(client_secret),
            scope: s.token("scope").map(owned),
        };
    }
    if let (Some(name), Some(key)) = (s.token(HEADER_NAME), s.token("apiKey")) {
        return HttpAuth::Header {
            name: owned(name),
            value: owned(key),
        };
    }
    if let Some(token) = ["token", "bearerToken", "accessToken", "apiKey"]
        .iter()
        .find_map(|k| s.token(k))
    {
        return HttpAuth::Bearer(owned(token));
    }
    match (s.token("username"), s.secret("password")) {
        (Some(u), Some(p)) => HttpAuth::Basic {
            username: owned(u),
            password: owned(p),
        },
        _ => HttpAuth::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn http_credentials() {
        let config = json!({URL: "https://api.example.com"});
        let auth = |secret: Value| {
            let source = Source {
                kind: ConnectorType::RestApi,
                tenant: "t",
                config: config.as_object().unwrap(),
                auth_method: "api_key",
                secret: secret.as_object(),
                tunnel_key: None,
            };
            match input(source).unwrap() {
                Input::Http(h) => h.auth,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(auth(json!({"token": "t"})), HttpAuth::Bearer("t".into()));
        assert_eq!(
            auth(json!({HEADER_NAME: "X-Api-Key", "apiKey": "k"})),
            HttpAuth::Header {
                name: "X-Api-Key".into(),
                value: "k".into()
            }
        );
        assert_eq!(
            auth(
                json!({TOKEN_URL: "https://idp.example.com/token", "clientId": "c", "clientSecret": "s"})
            ),
            HttpAuth::ClientCredentials {
                token_url: "https://idp.example.com/token".into(),
                client_id: "c".into(),
                client_secret: "s".into(),
                scope: None
            }
        );
        assert_eq!(
            auth(json!({"username": "u", "password": " p"})),
            HttpAuth::Basic {
                username: "u".into(),
                password: " p".into()
            }
        );
        assert_eq!(auth(json!({"other": "x"})), HttpAuth::None);
    }
}

//! bigquery and gcs: a dataset or bucket on Google Cloud. A service-account key signs an
//! assertion that goes only to Google's token endpoint (the key's `token_uri` must be Google's);
//! Cloud Storage also takes HMAC keys.

use super::forms;
use super::{
    ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source, Vendor,
};
use crate::error::FieldProblem;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub const FAMILY: Family = Family {
    requirements: |kind| match kind {
        ConnectorType::Gcs => &[Requirement::Field(BUCKET), Requirement::Field(PROJECT)],
        _ => &[Requirement::Field(PROJECT), Requirement::Field(DATASET)],
    },
    destination: |_| {
        &[D(
            Part::Auth,
            SERVICE_ACCOUNT_KEY,
            Form::Custom(token_uri_destination),
        )]
    },
    vendor: |kind| Vendor {
        name: "Google",
        hosts: match kind {
            ConnectorType::Gcs => &["storage.googleapis.com", "oauth2.googleapis.com"],
            _ => &["bigquery.googleapis.com", "oauth2.googleapis.com"],
        },
    },
    config_field: |_, field, value| match field {
        PROJECT | DATASET | BUCKET => forms::non_empty(value),
        _ => None,
    },
    auth_config,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const PROJECT: &str = "project";
const DATASET: &str = "dataset";
const BUCKET: &str = "bucket";
const SERVICE_ACCOUNT_KEY: &str = "serviceAccountKey";
/// Named in the probe's messages.
pub const KEY_FIELD: &str = "authConfig.serviceAccountKey";
pub const KEY_PRIVATE_KEY: &str = "authConfig.serviceAccountKey.private_key";
/// What a reachable-only probe asks for.
pub const CREDENTIALS: &str = SERVICE_ACCOUNT_KEY;

/// Google's OAuth 2.0 token endpoint: the only `token_uri` a service-account key may name (the
/// signed assertion goes there).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A service-account key given as an object or as the JSON text of one.
fn service_account_key(raw: &Value) -> Option<Map<String, Value>> {
    match raw {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

/// The key's `token_uri` (absent is Google's own): where the assertion goes.
fn token_uri_destination(value: Option<&Value>) -> Option<String> {
    let uri = value
        .and_then(service_account_key)
        .and_then(|k| k.get("token_uri").cloned());
    Some(match uri {
        None => GOOGLE_TOKEN_URI.to_string(),
        Some(Value::String(u)) => {
            url::Url::parse(&u).map_or_else(|_| u.clone(), |url| url.to_string())
        }
        Some(other) => other.to_string(),
    })
}

fn auth_config(_: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let Some(raw) = auth.get(SERVICE_ACCOUNT_KEY) else {
        return problems;
    };
    let field = KEY_FIELD;
    let Some(key) = service_account_key(raw) else {
        problems.push(FieldProblem::new(
            field,
            "must be a service-account key: an object, or a JSON string of one",
        ));
        return problems;
    };
    // A key's work factor is the tenant's choice: checked here, from its structure, unread.
    let pem = key.get("private_key").and_then(Value::as_str);
    if let Some(problem) = pem.and_then(|pem| crate::keys::check_pkcs8(pem).err()) {
        problems.push(FieldProblem::new(format!("{field}.private_key"), problem));
    }
    match key.get("token_uri") {
        None => {}
        Some(Value::String(u)) if u == GOOGLE_TOKEN_URI => {}
        Some(_) => problems.push(FieldProblem::new(
            format!("{field}.token_uri"),
            format!("must be {GOOGLE_TOKEN_URI} (the signed assertion goes only to Google)"),
        )),
    }
    problems
}

/// What the probe reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    Dataset { project: &'a str, dataset: &'a str },
    Bucket(&'a str),
}

/// A service-account key's parts.
pub struct ServiceKey {
    pub client_email: String,
    pub private_key: Zeroizing<String>,
    pub private_key_id: Option<String>,
    pub token_uri: String,
}

/// How the probe proves the credentials.
pub enum Credential<'a> {
    /// Cloud Storage's HMAC keys (`accessKeyId` + `secretAccessKey`).
    Hmac {
        id: &'a str,
        secret: &'a str,
    },
    ServiceAccount(ServiceKey),
    None,
}

pub struct Google<'a> {
    pub resource: Resource<'a>,
    pub credential: Credential<'a>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let resource = match s.kind {
        ConnectorType::Gcs => Resource::Bucket(s.required(BUCKET)?),
        _ => Resource::Dataset {
            project: s.required(PROJECT)?,
            dataset: s.required(DATASET)?,
        },
    };
    let hmac = match (s.kind, s.token("accessKeyId"), s.secret("secretAccessKey")) {
        (ConnectorType::Gcs, Some(id), Some(secret)) => Some(Credential::Hmac { id, secret }),
        _ => None,
    };
    let credential = match (hmac, s.secret.and_then(|a| a.get(SERVICE_ACCOUNT_KEY))) {
        (Some(hmac), _) => hmac,
        (None, None) => Credential::None,
        (None, Some(raw)) => Credential::ServiceAccount(service_key(raw)?),
    };
    Ok(Input::Google(Google {
        resource,
        credential,
    }))
}

fn service_key(raw: &Value) -> Result<ServiceKey, String> {
    let field = KEY_FIELD;
    let key = service_account_key(raw).ok_or(format!("{field} is not a service-account key"))?;
    let text = |k: &str| forms::untrimmed(&key, k).map(str::to_string);
    let (Some(client_email), Some(private_key)) = (text("client_email"), text("private_key"))
    else {
        return Err(format!("{field} needs client_email and private_key"));
    };
    Ok(ServiceKey {
        client_email,
        private_key: Zeroizing::new(private_key),
        private_key_id: text("private_key_id"),
        token_uri: text("token_uri").unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_as_objects_or_text_and_hmac_first_for_gcs() {
        let config = json!({BUCKET: "b", PROJECT: "p", DATASET: "d"});
        let key = json!({"client_email": "a@b", "private_key": "pem"});
        let parse = |kind, secret: Value| {
            let source = Source {
                kind,
                tenant: "t",
                config: config.as_object().unwrap(),
                auth_method: "service_account",
                secret: secret.as_object(),
                tunnel_key: None,
            };
            match input(source) {
                Ok(Input::Google(g)) => Ok(match g.credential {
                    Credential::Hmac { .. } => "Hmac".to_string(),
                    Credential::ServiceAccount(k) => format!("ServiceAccount {}", k.token_uri),
                    Credential::None => "None".to_string(),
                }),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e),
            }
        };
        let text = json!({ SERVICE_ACCOUNT_KEY: key.to_string() });
        assert!(parse(ConnectorType::Bigquery, text)
            .unwrap()
            .contains("oauth2.googleapis.com"));
        let both = json!({SERVICE_ACCOUNT_KEY: key, "accessKeyId": "id", "secretAccessKey": "s"});
        assert!(parse(ConnectorType::Gcs, both.clone())
            .unwrap()
            .starts_with("Hmac"));
        assert!(parse(ConnectorType::Bigquery, both)
            .unwrap()
            .starts_with("ServiceAccount"));
        assert!(parse(ConnectorType::Bigquery, json!({SERVICE_ACCOUNT_KEY: 5})).is_err());
        assert_eq!(parse(ConnectorType::Gcs, json!({})).unwrap(), "None");
    }
}

//! azure_blob: a container in a storage account. The account key (SharedKey) or SAS goes only to
//! Azure's blob hosts: `https://{storageAccount}.blob.core.windows.net`, or the endpoint a
//! connection string in authConfig names (which must be Azure's too).

use super::forms;
use super::{
    ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source, Vendor,
};
use crate::error::FieldProblem;
use crate::vendor;
use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub const FAMILY: Family = Family {
    requirements: |_| {
        &[
            Requirement::Field(CONTAINER),
            Requirement::Field(STORAGE_ACCOUNT),
        ]
    },
    destination: |_| {
        &[
            D(Part::Config, STORAGE_ACCOUNT, Form::Word),
            D(
                Part::Config,
                CONNECTION_STRING,
                Form::Custom(connection_string_destination),
            ),
            D(
                Part::Auth,
                CONNECTION_STRING,
                Form::Custom(connection_string_destination),
            ),
        ]
    },
    vendor: |_| Vendor {
        name: "Azure Storage",
        hosts: &["*.blob.core.windows.net"],
    },
    config_field,
    auth_config,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const CONTAINER: &str = "container";
const STORAGE_ACCOUNT: &str = "storageAccount";
const CONNECTION_STRING: &str = "connectionString";
/// What a reachable-only probe asks for.
pub const CREDENTIALS: &str = "accountKey, sasToken or connectionString";

fn config_field(_: ConnectorType, field: &str, value: &Value) -> Option<String> {
    match field {
        CONTAINER | STORAGE_ACCOUNT => forms::non_empty(value),
        CONNECTION_STRING => match value.as_str() {
            // config is returned in clear: a key or SAS there would be shown to every reader.
            Some(s) if {
                let lower = s.to_ascii_lowercase();
                lower.contains("accountkey=") || lower.contains("sharedaccesssignature=")
            } => Some(
                "must not hold AccountKey or SharedAccessSignature (config is returned in clear); put the connection string in authConfig.connectionString".into(),
            ),
            _ => forms::non_empty(value),
        },
        _ => None,
    }
}

/// The `key=value;…` pairs of a storage connection string (values may hold `=`).
fn pairs(s: &str) -> Vec<(&str, &str)> {
    s.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn pair<'a>(pairs: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| *k == key && !v.is_empty())
        .map(|(_, v)| *v)
}

/// Account, endpoint, suffix and protocol: where the key goes.
fn connection_string_destination(value: Option<&Value>) -> Option<String> {
    let cs = value?.as_str()?;
    let mut parts: Vec<String> = pairs(cs)
        .into_iter()
        .filter_map(|(k, v)| match k {
            "AccountName" | "EndpointSuffix" | "DefaultEndpointsProtocol" => {
                Some(format!("{k}={}", v.to_ascii_lowercase()))
            }
            "BlobEndpoint" => Some(format!("{k}={}", crate::destination::origin(v))),
            _ => None,
        })
        .collect();
    parts.sort();
    Some(parts.join(";"))
}

/// A connection string's BlobEndpoint is where the key or SAS is sent: Azure's hosts only.
fn auth_config(kind: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    let endpoint = auth
        .get(CONNECTION_STRING)
        .and_then(Value::as_str)
        .and_then(|cs| pair(&pairs(cs), "BlobEndpoint").map(str::to_string));
    let Some(endpoint) = endpoint else {
        return Vec::new();
    };
    let host = url::Url::parse(&endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or(endpoint);
    match vendor::is_allowed(kind, &host) {
        true => Vec::new(),
        false => vec![FieldProblem::new(
            format!("authConfig.{CONNECTION_STRING}"),
            format!("BlobEndpoint: {}", vendor::refusal(kind, &host)),
        )],
    }
}

/// How a request is authorized.
pub enum Credential {
    SharedKey(Zeroizing<Vec<u8>>),
    Sas(Zeroizing<String>),
    None,
}

/// Where the account's blob service is, whose it is, and the credential.
pub struct Azure<'a> {
    pub account: String,
    /// `https://{account}.blob.{suffix}`, or the connection string's BlobEndpoint (no `/` at
    /// the end).
    pub endpoint: String,
    pub container: &'a str,
    pub credential: Credential,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let config_account = s.required(STORAGE_ACCOUNT)?;
    forms::https_base(
        &format!("{config_account}.blob.core.windows.net"),
        "config.storageAccount",
    )?;
    let container = s.required(CONTAINER)?;
    let cs = s.secret(CONNECTION_STRING).map(pairs).unwrap_or_default();
    let account = pair(&cs, "AccountName")
        .unwrap_or(config_account)
        .to_string();
    let endpoint = match pair(&cs, "BlobEndpoint") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => {
            let suffix = pair(&cs, "EndpointSuffix").unwrap_or("core.windows.net");
            format!("https://{account}.blob.{suffix}")
        }
    };
    let key = pair(&cs, "AccountKey").or_else(|| s.token("accountKey"));
    let sas = pair(&cs, "SharedAccessSignature").or_else(|| s.token("sasToken"));
    let credential = match (key, sas) {
        (Some(key), _) => Credential::SharedKey(Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(key.as_bytes())
                .map_err(|_| "the account key is not base64".to_string())?,
        )),
        (None, Some(sas)) => Credential::Sas(Zeroizing::new(sas.trim_start_matches('?').into())),
        (None, None) => Credential::None,
    };
    Ok(Input::Azure(Azure {
        account,
        endpoint,
        container,
        credential,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connection_string_names_the_account_and_endpoint() {
        let config = json!({CONTAINER: "c", STORAGE_ACCOUNT: "acct"});
        let secret = json!({CONNECTION_STRING:
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"});
        let source = Source {
            kind: ConnectorType::AzureBlob,
            tenant: "t",
            config: config.as_object().unwrap(),
            auth_method: "access_key",
            secret: secret.as_object(),
            tunnel_key: None,
        };
        let Ok(Input::Azure(a)) = input(source) else {
            panic!("not parsed")
        };
        assert_eq!(a.account, "devstoreaccount1");
        assert_eq!(a.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert!(matches!(a.credential, Credential::SharedKey(ref k) if k.as_slice() == b"key"));
        let secret = json!({CONNECTION_STRING:
            "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=sv=2019-12-12&sig=a%3D"});
        let Ok(Input::Azure(a)) = input(Source {
            secret: secret.as_object(),
            ..source
        }) else {
            panic!("not parsed")
        };
        assert_eq!(a.endpoint, "https://x.blob.core.windows.net");
        assert!(
            matches!(a.credential, Credential::Sas(ref s) if s.as_str() == "sv=2019-12-12&sig=a%3D")
        );
    }
}

//! salesforce and hubspot: a SaaS API reached with an access token (`apiKey` is its older name;
//! the spec lets it be given in config, where it is taken out and sealed) or, for Salesforce, an
//! OAuth client. Tokens go only to the vendor's own hosts (`instanceUrl` must be one).

use super::forms;
use super::{
    no_auth_rules, ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement,
    Source, Vendor,
};
use serde_json::{Map, Value};
use url::Url;

pub const FAMILY: Family = Family {
    requirements: |_| {
        &[Requirement::AnyOf {
            config: &[INSTANCE_URL, API_KEY],
            auth: &[API_KEY, ACCESS_TOKEN],
        }]
    },
    destination: |_| &[D(Part::Config, INSTANCE_URL, Form::Origin)],
    vendor: |kind| match kind {
        ConnectorType::Hubspot => Vendor {
            name: "HubSpot",
            hosts: &["api.hubapi.com"],
        },
        _ => Vendor {
            name: "Salesforce",
            hosts: &[
                "*.my.salesforce.com",
                "*.force.com",
                "login.salesforce.com",
                "test.salesforce.com",
            ],
        },
    },
    config_field: |kind, field, value| match field {
        INSTANCE_URL => forms::vendor_url(kind, value)
            .or_else(|| value.as_str().is_none().then(|| "must be a string".into())),
        API_KEY => forms::non_empty(value),
        _ => None,
    },
    auth_config: no_auth_rules,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const INSTANCE_URL: &str = "instanceUrl";
const API_KEY: &str = "apiKey";
const ACCESS_TOKEN: &str = "accessToken";
/// What a reachable-only probe asks for.
pub fn credentials(service: Service) -> &'static str {
    match service {
        Service::Hubspot => ACCESS_TOKEN,
        Service::Salesforce => "accessToken or clientId/clientSecret",
    }
}

/// Salesforce and HubSpot accept `apiKey` in `config`, as the spec says, but it is a secret: it
/// is taken out of `config` to be sealed with `authConfig` (where an `apiKey` already given
/// there wins). Stored items that still hold one are hidden on read (`Connector::view`).
/// Returns the authConfig field to seal it under, and the value.
pub fn take_config_api_key(
    kind: ConnectorType,
    config: &mut Map<String, Value>,
) -> Option<(&'static str, Value)> {
    holds_api_key_in_config(kind)
        .then(|| config.remove(API_KEY))
        .flatten()
        .map(|key| (API_KEY, key))
}

/// True for the types whose `config.apiKey` is a secret to seal (and to hide on read).
pub fn holds_api_key_in_config(kind: ConnectorType) -> bool {
    matches!(kind, ConnectorType::Salesforce | ConnectorType::Hubspot)
}

/// A stored item from before `config.apiKey` was sealed: the config without it, and the
/// authConfig field names with it (named, never valued), as a read shows them.
pub fn hide_legacy_api_key(
    kind: ConnectorType,
    config: &Map<String, Value>,
    fields: &[String],
) -> Option<(Map<String, Value>, Vec<String>)> {
    if !holds_api_key_in_config(kind) || !config.contains_key(API_KEY) {
        return None;
    }
    let mut config = config.clone();
    config.remove(API_KEY);
    let mut fields = fields.to_vec();
    fields.push(API_KEY.into());
    fields.sort();
    fields.dedup();
    Some((config, fields))
}

/// True for an authConfig field that holds an API key (`apiKey`, or `accessToken`, its newer
/// name): an update that keeps the stored secret learns from the stored field names whether
/// one is there.
pub fn is_api_key_field(name: &str) -> bool {
    matches!(name, API_KEY | ACCESS_TOKEN)
}

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Salesforce,
    Hubspot,
}

/// A SaaS API login.
pub struct SaasApi<'a> {
    pub service: Service,
    /// `config.instanceUrl` (Salesforce: the My Domain; the login host when absent).
    pub instance: Option<Url>,
    /// `accessToken`, else `apiKey` (authConfig, then a legacy config value).
    pub token: Option<&'a str>,
    /// OAuth client credentials: (`clientId`, `clientSecret`).
    pub client: Option<(&'a str, &'a str)>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let instance = s
        .config_text(INSTANCE_URL)
        .map(|u| forms::probe_url(u, "config.instanceUrl"))
        .transpose()?;
    Ok(Input::SaasApi(SaasApi {
        service: match s.kind {
            ConnectorType::Hubspot => Service::Hubspot,
            _ => Service::Salesforce,
        },
        instance,
        token: s
            .token(ACCESS_TOKEN)
            .or_else(|| s.token(API_KEY))
            .or_else(|| s.config_text(API_KEY)),
        client: s.token("clientId").zip(s.secret("clientSecret")),
    }))
}

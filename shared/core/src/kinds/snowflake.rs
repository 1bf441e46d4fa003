//! snowflake: a warehouse at `https://{account}.snowflakecomputing.com`. The password, or a JWT
//! signed with the key pair's `privateKey`, goes only to Snowflake's hosts.

use super::forms;
use super::{
    ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source, Vendor,
};
use crate::error::FieldProblem;
use serde_json::{Map, Value};
use url::Url;

pub const FAMILY: Family = Family {
    requirements: |_| {
        &[
            Requirement::Field(ACCOUNT),
            Requirement::Field("warehouse"),
            Requirement::Field("database"),
        ]
    },
    destination: |_| &[D(Part::Config, ACCOUNT, Form::Word)],
    vendor: |_| Vendor {
        name: "Snowflake",
        hosts: &["*.snowflakecomputing.com"],
    },
    config_field: |_, field, value| match field {
        ACCOUNT | "warehouse" | "database" => forms::non_empty(value),
        _ => None,
    },
    auth_config,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const ACCOUNT: &str = "account";

/// A key's work factor is the tenant's choice: checked here, from its structure, unread.
fn auth_config(_: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    forms::private_key(auth, crate::keys::check_pkcs8)
}

/// A Snowflake login.
pub struct Snowflake<'a> {
    /// `config.account`, as given (the login derives the account name from it).
    pub account: &'a str,
    /// `https://{account}.snowflakecomputing.com/`.
    pub base: Url,
    /// Session parameters the login sends and Snowflake validates: (query name, value).
    pub session: Vec<(&'static str, &'a str)>,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub private_key: Option<&'a str>,
    pub passphrase: Option<&'a str>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let account = s.required(ACCOUNT)?;
    let base = forms::https_base(
        &format!("{account}.snowflakecomputing.com"),
        "config.account",
    )?;
    let session = [
        ("warehouse", "warehouse"),
        ("databaseName", "database"),
        ("schemaName", "schema"),
        ("roleName", "role"),
    ]
    .into_iter()
    .filter_map(|(param, key)| s.config_text(key).map(|v| (param, v)))
    .collect();
    Ok(Input::Snowflake(Snowflake {
        account,
        base,
        session,
        user: s.token("username"),
        password: s.secret("password"),
        private_key: s.secret("privateKey"),
        passphrase: s.secret("passphrase"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_account_that_would_leave_the_host_is_refused() {
        for account in ["evil.com/x#", "a@evil.com", "evil.com:443?"] {
            let config = json!({ ACCOUNT: account });
            let source = Source {
                kind: ConnectorType::Snowflake,
                tenant: "t",
                config: config.as_object().unwrap(),
                auth_method: "password",
                secret: None,
                tunnel_key: None,
            };
            assert!(input(source).is_err(), "{account}");
        }
    }
}

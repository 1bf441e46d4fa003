//! sftp: an SSH server the tenant runs. The password or private key goes to `host:port`, and
//! only while the server shows the host key pinned in `hostKeyFingerprint` (trust on first use:
//! the first successful test pins the key it saw).

use super::forms::{self, port_or};
use super::tunnel::{self, Tunnel, TUNNEL};
use super::{
    no_vendor, ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source,
};
use crate::error::FieldProblem;
use serde_json::{Map, Value};

pub const FAMILY: Family = Family {
    requirements: |_| &[Requirement::Field("host"), Requirement::Field("port")],
    destination: |_| {
        use Part::Config;
        &[
            D(Config, "host", Form::Host),
            D(Config, "port", Form::Port(DEFAULT_PORT)),
            D(Config, HOST_KEY_PIN, Form::Exact),
            D(Config, TUNNEL, Form::Custom(tunnel::destination)),
        ]
    },
    vendor: no_vendor,
    config_field,
    auth_config,
    config_rules: super::no_config_rules,
    tunnel: true,
    input,
};

/// The config field that pins the server's host key.
const HOST_KEY_PIN: &str = "hostKeyFingerprint";
const DEFAULT_PORT: u16 = 22;

fn config_field(kind: ConnectorType, field: &str, value: &Value) -> Option<String> {
    match field {
        "host" => forms::host(kind, value),
        "port" => forms::port(value),
        "path" => forms::non_empty(value),
        TUNNEL => tunnel::check(kind, value),
        HOST_KEY_PIN => (!is_fingerprint(value)).then(|| {
            "must be an OpenSSH SHA-256 fingerprint (SHA256: and 43 base64 characters)".into()
        }),
        _ => None,
    }
}

/// `SHA256:` and 43 base64 characters, as `ssh-keygen -lf` prints it.
pub(crate) fn is_fingerprint(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|s| s.trim().strip_prefix("SHA256:"))
        .is_some_and(|b64| {
            b64.len() == 43
                && b64
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        })
}

/// A key's work factor is the tenant's choice: checked here, from its structure, unread.
fn auth_config(_: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    let mut problems = forms::private_key(auth, crate::keys::check_openssh);
    problems.extend(tunnel::check_auth(auth));
    problems
}

/// An SFTP login.
pub struct Sftp<'a> {
    pub host: &'a str,
    pub port: u16,
    /// The path to stat after the login (`config.path`, default `.`).
    pub path: &'a str,
    /// The pinned host key fingerprint.
    pub pinned: Option<&'a str>,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub private_key: Option<&'a str>,
    pub passphrase: Option<&'a str>,
    /// The SSH bastion the server is reached through.
    pub tunnel: Option<Tunnel<'a>>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    Ok(Input::Sftp(Sftp {
        host: s.required("host")?,
        port: port_or(s.config, DEFAULT_PORT)?,
        path: s.config_text("path").unwrap_or("."),
        pinned: s.config_text(HOST_KEY_PIN),
        user: s.token("username"),
        password: s.secret("password"),
        private_key: s.secret("privateKey"),
        passphrase: s.secret("passphrase"),
        tunnel: tunnel::parse(&s)?,
    }))
}

/// Trust on first use: a successful test of an SFTP connector without a pin stores the host key
/// it saw (in the result's own write). True when the pin was added.
pub fn pin_first_host_key(
    kind: ConnectorType,
    config: &mut Map<String, Value>,
    seen: &str,
) -> bool {
    if kind != ConnectorType::Sftp || config.contains_key(HOST_KEY_PIN) {
        return false;
    }
    config.insert(HOST_KEY_PIN.into(), Value::String(seen.into()));
    true
}

/// A config sent without `hostKeyFingerprint` keeps the stored pin; an explicit null removes it
/// (a move of the destination).
pub fn carry_host_key_pin(
    kind: ConnectorType,
    stored: &Map<String, Value>,
    next: &mut Map<String, Value>,
) {
    if kind != ConnectorType::Sftp {
        return;
    }
    match next.get(HOST_KEY_PIN) {
        Some(Value::Null) => {
            next.remove(HOST_KEY_PIN);
        }
        None => {
            if let Some(pin) = stored.get(HOST_KEY_PIN) {
                next.insert(HOST_KEY_PIN.into(), pin.clone());
            }
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pin_is_taken_once_kept_when_unsent_and_dropped_by_null() {
        let pin = format!("SHA256:{}", "A".repeat(43));
        let mut config = Map::new();
        assert!(pin_first_host_key(ConnectorType::Sftp, &mut config, &pin));
        assert!(!pin_first_host_key(
            ConnectorType::Sftp,
            &mut config,
            "other"
        ));
        assert!(!pin_first_host_key(
            ConnectorType::Postgresql,
            &mut Map::new(),
            &pin
        ));
        assert_eq!(
            config_field(ConnectorType::Sftp, HOST_KEY_PIN, &json!(pin)),
            None
        );
        assert!(config_field(ConnectorType::Sftp, HOST_KEY_PIN, &json!("SHA256:x")).is_some());
        let mut next = Map::new();
        carry_host_key_pin(ConnectorType::Sftp, &config, &mut next);
        assert_eq!(next.get(HOST_KEY_PIN), Some(&json!(pin)));
        let mut next = json!({ HOST_KEY_PIN: null }).as_object().unwrap().clone();
        carry_host_key_pin(ConnectorType::Sftp, &config, &mut next);
        assert!(next.is_empty());
    }
}

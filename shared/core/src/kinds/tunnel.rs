//! `config.tunnel`: an SSH bastion in front of a database or SFTP server on a private network
//! (postgresql, redshift, mysql, mongodb by host, sftp). The bastion is a destination like any
//! other (the SSRF guard judges it); the target behind it is opened by the bastion. By default the
//! tunnel logs in with the tenant's own platform key (`GET /api/v1/tunnel-key`); a private key or
//! password in `authConfig.tunnel` may be given instead. The bastion's host key is pinned in
//! `config.tunnel.hostKeyFingerprint` (given, or trusted on first use).

use super::forms;
use super::{ConnectorType, Source};
use crate::error::FieldProblem;
use serde_json::{Map, Value};

/// The config (and authConfig) field.
pub const TUNNEL: &str = "tunnel";
const PIN: &str = "hostKeyFingerprint";
const DEFAULT_PORT: u16 = 22;
const FIELDS: [&str; 4] = ["host", "port", "username", PIN];
const AUTH_FIELDS: [&str; 3] = ["privateKey", "passphrase", "password"];

/// How the tunnel logs in to the bastion.
pub enum TunnelAuth<'a> {
    /// The tenant's platform key (its OpenSSH PEM, opened for this probe), if the tenant has one.
    TenantKey(Option<&'a str>),
    Key {
        pem: &'a str,
        passphrase: Option<&'a str>,
    },
    Password(&'a str),
}

/// A bastion and how to use it.
pub struct Tunnel<'a> {
    pub host: &'a str,
    pub port: u16,
    pub username: &'a str,
    pub pinned: Option<&'a str>,
    pub auth: TunnelAuth<'a>,
}

/// The form of `config.tunnel`.
pub fn check(kind: ConnectorType, value: &Value) -> Option<String> {
    let Some(t) = value.as_object() else {
        return Some("must be an object: {host, port, username, hostKeyFingerprint}".into());
    };
    if let Some(unknown) = t.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Some(format!(
            "{unknown:?} is not a tunnel field (host, port, username, hostKeyFingerprint)"
        ));
    }
    let problem = |field: &str, problem: String| Some(format!("{field}: {problem}"));
    match t.get("host") {
        None => return problem("host", "required".into()),
        Some(h) => {
            if let Some(p) = forms::host(kind, h) {
                return problem("host", p);
            }
        }
    }
    if let Some(p) = t.get("port").and_then(forms::port) {
        return problem("port", p);
    }
    match t.get("username") {
        None => return problem("username", "required".into()),
        Some(u) => {
            if let Some(p) = forms::non_empty(u) {
                return problem("username", p);
            }
        }
    }
    match t.get(PIN) {
        // null: no pin (an update's way of removing one).
        Some(pin) if !pin.is_null() && !super::sftp::is_fingerprint(pin) => problem(
            PIN,
            "must be an OpenSSH SHA-256 fingerprint (SHA256: and 43 base64 characters)".into(),
        ),
        _ => None,
    }
}

/// The form of `authConfig.tunnel`: a private key (its KDF within the caps), a passphrase, or a
/// password.
pub fn check_auth(auth: &Map<String, Value>) -> Vec<FieldProblem> {
    let field = format!("authConfig.{TUNNEL}");
    let Some(value) = auth.get(TUNNEL) else {
        return Vec::new();
    };
    let Some(t) = value.as_object() else {
        return vec![FieldProblem::new(
            field,
            "must be an object: {privateKey, passphrase} or {password}",
        )];
    };
    let mut problems = Vec::new();
    if let Some(unknown) = t.keys().find(|k| !AUTH_FIELDS.contains(&k.as_str())) {
        problems.push(FieldProblem::new(
            format!("{field}.{unknown}"),
            "not a tunnel credential (privateKey, passphrase, password)",
        ));
    }
    if let Some(problem) = t
        .get("privateKey")
        .and_then(Value::as_str)
        .and_then(|pem| crate::keys::check_openssh(pem).err())
    {
        problems.push(FieldProblem::new(format!("{field}.privateKey"), problem));
    }
    problems
}

/// The tunnel of a connector's config, if it has one.
pub fn parse<'a>(s: &Source<'a>) -> Result<Option<Tunnel<'a>>, String> {
    let Some(value) = s.config.get(TUNNEL).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let t = value.as_object().ok_or("config.tunnel must be an object")?;
    let host = forms::text(t, "host").ok_or("config.tunnel.host is required")?;
    if !forms::is_host(host) {
        return Err("config.tunnel.host is not a host name".into());
    }
    let username = forms::text(t, "username").ok_or("config.tunnel.username is required")?;
    let creds = s
        .secret
        .and_then(|a| a.get(TUNNEL))
        .and_then(Value::as_object);
    let auth = match creds {
        Some(c) => match (
            forms::untrimmed(c, "privateKey"),
            forms::untrimmed(c, "password"),
        ) {
            (Some(pem), _) => TunnelAuth::Key {
                pem,
                passphrase: forms::untrimmed(c, "passphrase"),
            },
            (None, Some(password)) => TunnelAuth::Password(password),
            (None, None) => TunnelAuth::TenantKey(s.tunnel_key),
        },
        None => TunnelAuth::TenantKey(s.tunnel_key),
    };
    Ok(Some(Tunnel {
        host,
        port: forms::port_or(t, DEFAULT_PORT)?,
        username,
        pinned: forms::text(t, PIN),
        auth,
    }))
}

/// True when the connector's tunnel logs in with the tenant's platform key (so a test reads the
/// key with the connector). A stored `authConfig.tunnel` credential is only known once opened:
/// this asks for the key whenever a tunnel is set, and the probe uses it only if needed.
pub fn wants_tenant_key(kind: ConnectorType, config: &Map<String, Value>) -> bool {
    kind.family().tunnel && config.get(TUNNEL).is_some_and(Value::is_object)
}

/// The bastion as a destination: host (case, trailing dot), port (22 when absent), user and pin.
pub fn destination(value: Option<&Value>) -> Option<String> {
    let t = value?.as_object()?;
    let host = forms::text(t, "host").unwrap_or_default();
    let port = t.get("port").and_then(Value::as_u64).unwrap_or(22);
    Some(format!(
        "{}:{port} as {} pinned {}",
        host.trim_end_matches('.').to_ascii_lowercase(),
        forms::text(t, "username").unwrap_or_default(),
        forms::text(t, PIN).unwrap_or_default()
    ))
}

/// Trust on first use: a successful tunnelled test of a config whose tunnel has no pin stores
/// the bastion's host key in it (in the result's own write). True when the pin was added.
pub fn pin_first_host_key(config: &mut Map<String, Value>, seen: &str) -> bool {
    let Some(t) = config.get_mut(TUNNEL).and_then(Value::as_object_mut) else {
        return false;
    };
    if t.contains_key(PIN) {
        return false;
    }
    t.insert(PIN.into(), Value::String(seen.into()));
    true
}

/// A config sent with a tunnel to the same bastion (host, port, user) but without its pin keeps
/// the stored pin; `"hostKeyFingerprint": null` removes it (a move of the destination).
pub fn carry_pin(stored: &Map<String, Value>, next: &mut Map<String, Value>) {
    let Some(old) = stored.get(TUNNEL).and_then(Value::as_object) else {
        return;
    };
    let Some(new) = next.get_mut(TUNNEL).and_then(Value::as_object_mut) else {
        return;
    };
    match new.get(PIN) {
        Some(Value::Null) => {
            new.remove(PIN);
        }
        None => {
            // The same bastion as `destination` sees it (case, a trailing dot, port 22 omitted).
            let bastion = |t: &Map<String, Value>| {
                let mut t = t.clone();
                t.remove(PIN);
                destination(Some(&Value::Object(t)))
            };
            if let (true, Some(pin)) = (bastion(old) == bastion(new), old.get(PIN)) {
                new.insert(PIN.into(), pin.clone());
            }
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tunnel(v: Value) -> Option<String> {
        check(ConnectorType::Postgresql, &v)
    }

    #[test]
    fn the_tunnel_form() {
        assert_eq!(
            tunnel(json!({"host": "bastion.example.com", "username": "t"})),
            None
        );
        assert_eq!(
            tunnel(json!({"host": "10.0.0.1", "port": 2222, "username": "t",
                          PIN: format!("SHA256:{}", "a".repeat(43))})),
            None
        );
        assert!(tunnel(json!("bastion")).is_some());
        assert!(tunnel(json!({"username": "t"}))
            .unwrap()
            .starts_with("host"));
        assert!(tunnel(json!({"host": "b", "username": "t", "port": 0}))
            .unwrap()
            .starts_with("port"));
        assert!(tunnel(json!({"host": "b"}))
            .unwrap()
            .starts_with("username"));
        assert!(tunnel(json!({"host": "b", "username": "t", "pasword": "x"})).is_some());
        assert!(tunnel(json!({"host": "b", "username": "t", PIN: "SHA256:x"})).is_some());
        let auth =
            json!({TUNNEL: {"password": "p", "privateKey": "-----BEGIN RSA PRIVATE KEY-----"}});
        assert_eq!(check_auth(auth.as_object().unwrap()).len(), 1);
        let auth = json!({TUNNEL: {"pass": "p"}});
        assert_eq!(check_auth(auth.as_object().unwrap()).len(), 1);
    }

    #[test]
    fn the_pin_is_taken_once_and_follows_the_same_bastion() {
        let mut config = json!({TUNNEL: {"host": "b", "username": "t"}})
            .as_object()
            .unwrap()
            .clone();
        assert!(pin_first_host_key(&mut config, "SHA256:seen"));
        assert!(!pin_first_host_key(&mut config, "SHA256:other"));
        let mut same = json!({TUNNEL: {"host": "b", "username": "t"}})
            .as_object()
            .unwrap()
            .clone();
        carry_pin(&config, &mut same);
        assert_eq!(same[TUNNEL][PIN], "SHA256:seen");
        let mut moved = json!({TUNNEL: {"host": "c", "username": "t"}})
            .as_object()
            .unwrap()
            .clone();
        carry_pin(&config, &mut moved);
        assert!(moved[TUNNEL].get(PIN).is_none());
        assert_ne!(
            destination(Some(&config[TUNNEL])),
            destination(Some(&moved[TUNNEL]))
        );
        assert_eq!(
            destination(Some(&json!({"host": "B.", "port": 22, "username": "t"}))),
            destination(Some(&json!({"host": "b", "username": "t"})))
        );
    }
}

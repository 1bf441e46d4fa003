//! mongodb: a server or cluster the tenant runs, named by `host`/`port` or by a
//! `connectionString` (`mongodb://` or `mongodb+srv://`, without a password: config is shown in
//! clear). The password goes there, over TLS when the URI or `tls` asks for it.

use super::forms::{self, host_port, port_or};
use super::tunnel::{self, Tunnel, TUNNEL};
use super::{
    no_vendor, ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source,
};
use crate::destination::servers;
use crate::error::FieldProblem;
use serde_json::{Map, Value};

pub const FAMILY: Family = Family {
    requirements: |_| {
        &[Requirement::AnyOf {
            config: &["host", CONNECTION_STRING],
            auth: &[],
        }]
    },
    destination: |_| {
        use Part::Config;
        &[
            D(Config, "host", Form::Host),
            D(Config, "port", Form::Port(DEFAULT_PORT)),
            D(Config, CONNECTION_STRING, Form::Custom(uri_destination)),
            D(Config, TLS, Form::Exact),
            D(Config, TUNNEL, Form::Custom(tunnel::destination)),
        ]
    },
    vendor: no_vendor,
    config_field,
    auth_config: |_, auth| tunnel::check_auth(auth),
    config_rules,
    tunnel: true,
    input,
};

const CONNECTION_STRING: &str = "connectionString";
const TLS: &str = "tls";
const DEFAULT_PORT: u16 = 27017;

fn config_field(kind: ConnectorType, field: &str, value: &Value) -> Option<String> {
    match field {
        "host" => forms::host(kind, value),
        "port" => forms::port(value),
        "database" => forms::non_empty(value),
        CONNECTION_STRING => match value.as_str() {
            // config is returned in clear: a password there would be shown to every reader.
            Some(s) if holds_password(s) => Some(
                "must not hold a password (config is returned in clear); put it in authConfig.password".into(),
            ),
            Some(s) if s.starts_with("mongodb://") || s.starts_with("mongodb+srv://") => None,
            _ => Some("must be a mongodb:// or mongodb+srv:// URI".into()),
        },
        TUNNEL => tunnel::check(kind, value),
        // The probe reads a boolean; a string would silently mean "not set".
        TLS => (!value.is_boolean()).then(|| "must be true or false".into()),
        _ => None,
    }
}

/// A cluster found through SRV records cannot be reached through a tunnel (the bastion would
/// have to resolve it): a tunnel needs `host` (or a `mongodb://` URI).
fn config_rules(_: ConnectorType, config: &Map<String, Value>) -> Vec<FieldProblem> {
    let srv = forms::text(config, CONNECTION_STRING)
        .is_some_and(|u| u.starts_with("mongodb+srv://") && !config.contains_key("host"));
    match srv && tunnel::wants_tenant_key(ConnectorType::Mongodb, config) {
        true => vec![FieldProblem::new(
            format!("config.{TUNNEL}"),
            "a mongodb+srv:// cluster cannot be reached through a tunnel; give host (and port)",
        )],
        false => Vec::new(),
    }
}

/// True when a `scheme://user:password@host` URI carries a password in its user info.
fn holds_password(uri: &str) -> bool {
    let Some((_, rest)) = uri.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// A URI's scheme, hosts (default port filled in) and TLS options: where the password goes and
/// how. Other options (the database, the app name) are not part of it.
fn uri_destination(value: Option<&Value>) -> Option<String> {
    let uri = value?.as_str().map(str::trim)?;
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    // In their order, duplicates kept: a client reads the first (or the last) of a repeated
    // option, so a reordering is a move (the safe direction).
    let tls: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == "tls" || k == "ssl" || k.starts_with("tlsallowinvalid") || k == "tlsinsecure"
        })
        .map(|(k, v)| format!("{}={}", k.to_ascii_lowercase(), v.to_ascii_lowercase()))
        .collect();
    Some(format!(
        "{}://{}?{}",
        scheme.to_ascii_lowercase(),
        servers(hosts, DEFAULT_PORT),
        tls.join("&")
    ))
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A `mongodb+srv://` cluster: its first SRV target is probed.
    Srv(String),
    Host(String, u16),
}

/// Where and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub database: String,
    pub auth_source: String,
    pub tls: bool,
}

pub struct Mongo<'a> {
    pub endpoint: Endpoint,
    /// The SSH bastion the server is reached through (not with `Endpoint::Srv`).
    pub tunnel: Option<Tunnel<'a>>,
    pub settings: Settings,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let endpoint = match s.config_text(CONNECTION_STRING) {
        Some(uri) if s.config_text("host").is_none() => match uri.strip_prefix("mongodb+srv://") {
            Some(rest) => Endpoint::Srv(srv_host(rest)?),
            None => {
                let (host, port) = first_host(uri)?;
                Endpoint::Host(host, port)
            }
        },
        _ => Endpoint::Host(
            s.required("host")?.to_string(),
            port_or(s.config, DEFAULT_PORT)?,
        ),
    };
    let tunnel = tunnel::parse(&s)?;
    if let (Endpoint::Srv(_), Some(_)) = (&endpoint, &tunnel) {
        return Err("a mongodb+srv:// cluster cannot be reached through a tunnel".into());
    }
    Ok(Input::Mongo(Mongo {
        endpoint,
        tunnel,
        settings: settings(&s),
        user: s.token("username"),
        password: s.secret("password"),
    }))
}

/// From `config.connectionString` (path database, `authSource`, `tls`/`ssl`; TLS by default for
/// `mongodb+srv://`) with `config.database`, `config.authSource` and `config.tls` taking
/// precedence.
fn settings(s: &Source<'_>) -> Settings {
    let uri = s.config_text(CONNECTION_STRING).unwrap_or("");
    let srv = uri.starts_with("mongodb+srv://");
    let rest = uri.split_once("://").map_or("", |(_, r)| r);
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path_db = before_query.split_once('/').map_or("", |(_, db)| db);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.to_string())
    };
    let database = s
        .config_text("database")
        .map(str::to_string)
        .or_else(|| (!path_db.is_empty()).then(|| path_db.to_string()))
        .unwrap_or_else(|| "admin".to_string());
    let auth_source = s
        .config_text("authSource")
        .map(str::to_string)
        .or_else(|| param("authSource"))
        .unwrap_or_else(|| "admin".to_string());
    let tls = s
        .config
        .get(TLS)
        .and_then(Value::as_bool)
        .or_else(|| {
            param("tls")
                .or_else(|| param("ssl"))
                .map(|v| v.eq_ignore_ascii_case("true"))
        })
        .unwrap_or(srv);
    Settings {
        database,
        auth_source,
        tls,
    }
}

/// The host of a `mongodb+srv://` URI (after the scheme): one name, no port.
fn srv_host(rest: &str) -> Result<String, String> {
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let host = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    if host.contains([',', ':']) || !forms::is_host(host) {
        return Err("a mongodb+srv:// URI names exactly one host, without a port".into());
    }
    Ok(host.to_string())
}

/// The first host of a `mongodb://` URI (default port 27017).
fn first_host(uri: &str) -> Result<(String, u16), String> {
    let rest = uri
        .strip_prefix("mongodb://")
        .ok_or("config.connectionString must start with mongodb://")?;
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    let first = hosts
        .split(',')
        .next()
        .filter(|h| !h.is_empty())
        .ok_or("config.connectionString names no host")?;
    if first.starts_with('[') || first.matches(':').count() == 1 {
        if let Ok(hp) = host_port(first) {
            return Ok(hp);
        }
    }
    Ok((
        first
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        DEFAULT_PORT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: Value) -> Result<(Endpoint, Settings), String> {
        let config = config.as_object().unwrap().clone();
        let source = Source {
            kind: ConnectorType::Mongodb,
            tenant: "t",
            config: &config,
            auth_method: "password",
            secret: None,
            tunnel_key: None,
        };
        match input(source)? {
            Input::Mongo(m) => Ok((m.endpoint, m.settings)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_strings() {
        assert_eq!(
            first_host("mongodb://u:p@h1.example.com:27018,h2:27019/db?x=1").unwrap(),
            ("h1.example.com".into(), 27018)
        );
        assert_eq!(
            first_host("mongodb://h1.example.com/db").unwrap(),
            ("h1.example.com".into(), 27017)
        );
        assert_eq!(
            first_host("mongodb://[::1]:27017").unwrap(),
            ("::1".into(), 27017)
        );
        assert!(first_host("mongodb:///db").is_err());
        let srv = |uri: &str| parse(json!({ CONNECTION_STRING: uri })).map(|(e, _)| e);
        assert_eq!(
            srv("mongodb+srv://u@cluster0.example.net/db?retryWrites=true").unwrap(),
            Endpoint::Srv("cluster0.example.net".into())
        );
        assert!(srv("mongodb+srv://a.example.net:27017/db").is_err());
        assert!(srv("mongodb+srv://a.example.net,b.example.net/db").is_err());
        assert_eq!(
            parse(json!({"host": "m"})).unwrap().0,
            Endpoint::Host("m".into(), 27017)
        );
    }

    #[test]
    fn settings_come_from_the_uri_and_config() {
        let (_, s) =
            parse(json!({CONNECTION_STRING: "mongodb+srv://c.example.net/app?authSource=x"}))
                .unwrap();
        assert_eq!(
            s,
            Settings {
                database: "app".into(),
                auth_source: "x".into(),
                tls: true
            }
        );
        let (_, s) = parse(json!({
            CONNECTION_STRING: "mongodb://h/app?ssl=true",
            "database": "db", TLS: false
        }))
        .unwrap();
        assert_eq!(
            s,
            Settings {
                database: "db".into(),
                auth_source: "admin".into(),
                tls: false
            }
        );
        let (_, s) = parse(json!({"host": "h"})).unwrap();
        assert!(!s.tls && s.database == "admin");
    }
}

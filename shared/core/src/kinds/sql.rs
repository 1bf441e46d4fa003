//! postgresql, redshift and mysql: a database server the tenant runs. Its password goes to
//! `host:port` (and through `tunnel`, when one is set), over TLS as `sslmode` says.

use super::forms::{self, port_or};
use super::tunnel::{self, Tunnel, TUNNEL};
use super::{
    no_vendor, ConnectorType, DestinationField as D, Family, Form, Input, Part, Requirement, Source,
};
use serde_json::{Map, Value};

pub const FAMILY: Family = Family {
    requirements: |_| {
        &[
            Requirement::Field("host"),
            Requirement::Field("port"),
            Requirement::Field("database"),
        ]
    },
    destination,
    vendor: no_vendor,
    config_field,
    auth_config: |_, auth| tunnel::check_auth(auth),
    config_rules: super::no_config_rules,
    tunnel: true,
    input,
};

const SSLMODE: &str = "sslmode";
/// Named in the probe's messages.
pub const SERVER_PUBLIC_KEY: &str = "serverPublicKey";

fn destination(kind: ConnectorType) -> &'static [D] {
    use Part::Config;
    const POSTGRES: &[D] = &[
        D(Config, "host", Form::Host),
        D(Config, "port", Form::Port(0)),
        D(Config, SSLMODE, Form::Custom(tls_mode)),
        D(Config, TUNNEL, Form::Custom(tunnel::destination)),
    ];
    const MYSQL: &[D] = &[
        D(Config, "host", Form::Host),
        D(Config, "port", Form::Port(0)),
        D(Config, SSLMODE, Form::Custom(tls_mode)),
        D(Config, SERVER_PUBLIC_KEY, Form::Exact),
        D(Config, TUNNEL, Form::Custom(tunnel::destination)),
    ];
    match kind {
        ConnectorType::Mysql => MYSQL,
        _ => POSTGRES,
    }
}

/// `sslmode`: its parsed value; absent stays distinct from an explicit `prefer`.
fn tls_mode(value: Option<&Value>) -> Option<String> {
    let text = value.map(|v| {
        v.as_str()
            .map_or_else(|| v.to_string(), |s| s.trim().into())
    })?;
    Some(match SslMode::parse(&text) {
        Some(mode) => format!("{mode:?}"),
        None => text,
    })
}

fn config_field(kind: ConnectorType, field: &str, value: &Value) -> Option<String> {
    match field {
        "host" => forms::host(kind, value),
        "port" => forms::port(value),
        "database" => forms::non_empty(value),
        TUNNEL => tunnel::check(kind, value),
        SSLMODE => match value.as_str().and_then(SslMode::parse) {
            Some(_) => None,
            None => Some("must be one of disable, prefer, require, verify-ca, verify-full".into()),
        },
        SERVER_PUBLIC_KEY if kind == ConnectorType::Mysql => {
            let ok = value.as_str().is_some_and(|s| {
                let s = s.trim();
                s.starts_with("-----BEGIN PUBLIC KEY-----")
                    && s.ends_with("-----END PUBLIC KEY-----")
            });
            (!ok).then(|| "must be the server's RSA public key as a PEM (BEGIN PUBLIC KEY)".into())
        }
        _ => None,
    }
}

/// Which wire protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Postgres,
    Mysql,
}

/// A database login: where, as whom, and how the password may travel.
pub struct Sql<'a> {
    pub wire: Wire,
    pub host: &'a str,
    pub port: u16,
    /// `config.database`; the login's default when absent.
    pub database: Option<&'a str>,
    /// `config.sslmode` as given; absent prefers TLS like `prefer`, but reveals no password over
    /// a certificate that was not verified.
    pub sslmode: Option<SslMode>,
    /// MySQL: the server's RSA key (PEM) to encrypt the password to without TLS.
    pub server_public_key: Option<&'a str>,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// The SSH bastion the server is reached through.
    pub tunnel: Option<Tunnel<'a>>,
}

fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let (wire, default_port) = match s.kind {
        ConnectorType::Mysql => (Wire::Mysql, 3306),
        ConnectorType::Redshift => (Wire::Postgres, 5439),
        _ => (Wire::Postgres, 5432),
    };
    Ok(Input::Sql(Sql {
        wire,
        host: s.required("host")?,
        port: port_or(s.config, default_port)?,
        database: s.config_text("database"),
        sslmode: SslMode::given(s.config),
        server_public_key: s.config_text(SERVER_PUBLIC_KEY),
        user: s.token("username"),
        password: s.secret("password"),
        tunnel: tunnel::parse(&s)?,
    }))
}

/// `config.sslmode`: libpq's five values (MySQL's own spellings accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS; a password may then go in clear (the test says so in a warning).
    Disable,
    /// TLS when the server offers it, without certificate checks (libpq's default, and ours;
    /// absent, a readable password still needs a verified certificate: see `given`).
    Prefer,
    /// TLS or fail, without certificate checks.
    Require,
    /// TLS with the chain verified, any host name.
    VerifyCa,
    /// TLS with the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The default when `config.sslmode` is absent.
    pub const DEFAULT: SslMode = SslMode::Prefer;

    /// Parses libpq's spellings and MySQL's (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`,
    /// `VERIFY_IDENTITY`), ignoring case.
    pub fn parse(s: &str) -> Option<SslMode> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => Some(SslMode::Disable),
            "prefer" | "preferred" => Some(SslMode::Prefer),
            "require" | "required" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" | "verify-identity" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// The mode the config sets, if it sets one (create and update refuse an unparsable one, so
    /// only a stored legacy value can be unparsable: it reads as unset). Absent differs from an
    /// explicit `prefer`: a password the server could read then goes only over TLS verified for
    /// the host name.
    pub fn given(config: &Map<String, Value>) -> Option<SslMode> {
        config
            .get(SSLMODE)
            .and_then(Value::as_str)
            .and_then(SslMode::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(kind: ConnectorType, config: Value) -> Result<(Wire, u16), String> {
        let config = config.as_object().unwrap().clone();
        let source = Source {
            kind,
            tenant: "t",
            config: &config,
            auth_method: "password",
            secret: None,
            tunnel_key: None,
        };
        match input(source)? {
            Input::Sql(s) => Ok((s.wire, s.port)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_type_has_its_wire_and_default_port() {
        let host = json!({"host": "db"});
        assert_eq!(
            parsed(ConnectorType::Redshift, host.clone()),
            Ok((Wire::Postgres, 5439))
        );
        assert_eq!(
            parsed(ConnectorType::Mysql, host.clone()),
            Ok((Wire::Mysql, 3306))
        );
        assert_eq!(
            parsed(
                ConnectorType::Postgresql,
                json!({"host": "db", "port": 6432})
            ),
            Ok((Wire::Postgres, 6432))
        );
        assert!(parsed(ConnectorType::Mysql, json!({"host": "h", "port": 0})).is_err());
        assert!(parsed(ConnectorType::Mysql, json!({"port": 1})).is_err());
    }

    #[test]
    fn sslmode_spellings() {
        assert_eq!(SslMode::parse("VERIFY_IDENTITY"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("Preferred"), Some(SslMode::Prefer));
        assert_eq!(SslMode::parse("sometimes"), None);
    }
}

//! kafka and confluent_kafka: a cluster named by its `bootstrapServers`. The SASL password goes
//! to those servers, over TLS when `securityProtocol` says SSL or SASL_SSL.

use super::forms::{self, host_port};
use super::{
    no_auth_rules, no_vendor, ConnectorType, DestinationField as D, Family, Form, Input, Part,
    Requirement, Source,
};
use serde_json::Value;

pub const FAMILY: Family = Family {
    requirements: |_| &[Requirement::Field(BOOTSTRAP_SERVERS)],
    destination: |_| {
        use Part::Config;
        &[
            D(Config, BOOTSTRAP_SERVERS, Form::Servers(9092)),
            D(Config, SECURITY_PROTOCOL, Form::Word),
            D(Config, SASL_MECHANISM, Form::Word),
        ]
    },
    vendor: no_vendor,
    config_field,
    auth_config: no_auth_rules,
    config_rules: super::no_config_rules,
    tunnel: false,
    input,
};

const BOOTSTRAP_SERVERS: &str = "bootstrapServers";
/// Named in the probe's messages.
pub const SECURITY_PROTOCOL: &str = "securityProtocol";
pub const SASL_MECHANISM: &str = "saslMechanism";

fn config_field(_: ConnectorType, field: &str, value: &Value) -> Option<String> {
    match field {
        BOOTSTRAP_SERVERS => value
            .as_str()
            .map_or(Some("must be a string".into()), check_servers),
        SECURITY_PROTOCOL => value
            .as_str()
            .and_then(Security::parse)
            .is_none()
            .then(|| "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL".into()),
        SASL_MECHANISM => value
            .as_str()
            .and_then(Mechanism::parse)
            .is_none()
            .then(|| "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512".into()),
        "topic" => forms::non_empty(value),
        _ => None,
    }
}

fn check_servers(s: &str) -> Option<String> {
    let bad = s.split(',').map(str::trim).find(|server| {
        let Some((host, port)) = server.rsplit_once(':') else {
            return true;
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        !forms::is_host(host) || !matches!(port.parse::<u16>(), Ok(1..))
    });
    bad.map(|server| {
        if server.is_empty() {
            "must be a comma-separated list of host:port".to_string()
        } else {
            format!("entry {server:?} is not host:port")
        }
    })
}

/// `config.securityProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Security {
    pub fn parse(s: &str) -> Option<Security> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Security::Plaintext),
            "SSL" => Some(Security::Ssl),
            "SASL_PLAINTEXT" => Some(Security::SaslPlaintext),
            "SASL_SSL" => Some(Security::SaslSsl),
            _ => None,
        }
    }
    pub fn tls(self) -> bool {
        matches!(self, Security::Ssl | Security::SaslSsl)
    }
    pub fn sasl(self) -> bool {
        matches!(self, Security::SaslPlaintext | Security::SaslSsl)
    }
}

/// `config.saslMechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn parse(s: &str) -> Option<Mechanism> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A Kafka login: the bootstrap servers (the first answers for the cluster, as clients
/// bootstrap), the security protocol and mechanism, and the topic to read metadata for.
pub struct Kafka<'a> {
    pub servers: Vec<(String, u16)>,
    pub security: Security,
    pub mechanism: Mechanism,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub topic: Option<&'a str>,
}

/// `securityProtocol` defaults to SASL_SSL for confluent_kafka, and for kafka when authConfig
/// names a user (else PLAINTEXT); `saslMechanism` to PLAIN.
fn input(s: Source<'_>) -> Result<Input<'_>, String> {
    let servers = s
        .required(BOOTSTRAP_SERVERS)?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(host_port)
        .collect::<Result<Vec<_>, _>>()?;
    let user = s.token("username");
    let default = match (s.kind, user) {
        (ConnectorType::ConfluentKafka, _) | (_, Some(_)) => Security::SaslSsl,
        _ => Security::Plaintext,
    };
    Ok(Input::Kafka(Kafka {
        servers,
        security: s
            .config_text(SECURITY_PROTOCOL)
            .and_then(Security::parse)
            .unwrap_or(default),
        mechanism: s
            .config_text(SASL_MECHANISM)
            .and_then(Mechanism::parse)
            .unwrap_or(Mechanism::Plain),
        user,
        password: s.secret("password"),
        topic: s.config_text("topic"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bootstrap_server_parsed_and_the_defaults_follow_the_type() {
        let config = json!({BOOTSTRAP_SERVERS: "a:9092, b:9093,[::1]:9094"});
        let config = config.as_object().unwrap();
        let secret = json!({"username": "u"});
        let parse = |kind, secret| {
            let source = Source {
                kind,
                tenant: "t",
                config,
                auth_method: "password",
                secret,
                tunnel_key: None,
            };
            match input(source).unwrap() {
                Input::Kafka(k) => (k.servers, k.security),
                other => panic!("{other:?}"),
            }
        };
        let (servers, security) = parse(ConnectorType::Kafka, None);
        assert_eq!(
            servers,
            vec![("a".into(), 9092), ("b".into(), 9093), ("::1".into(), 9094)]
        );
        assert_eq!(security, Security::Plaintext);
        assert_eq!(
            parse(ConnectorType::Kafka, secret.as_object()).1,
            Security::SaslSsl
        );
        assert_eq!(
            parse(ConnectorType::ConfluentKafka, None).1,
            Security::SaslSsl
        );
        assert_eq!(Security::parse("sasl_ssl"), Some(Security::SaslSsl));
        assert_eq!(Mechanism::parse("GSSAPI"), None);
    }

    #[test]
    fn bootstrap_servers() {
        assert_eq!(check_servers("a.example.com:9092"), None);
        assert_eq!(
            check_servers("a.example.com:9092, b.example.com:9093"),
            None
        );
        assert_eq!(check_servers("[::1]:9092"), None);
        for bad in [
            "",
            "a.example.com",
            "a.example.com:0",
            "a.example.com:x",
            "a:9092,",
            "http://a:9092",
        ] {
            assert!(check_servers(bad).is_some(), "{bad:?}");
        }
    }
}

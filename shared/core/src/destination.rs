//! A connector's destination: who receives its credentials and how they travel, normalized so two
//! spellings of the same party compare equal. The stored `authConfig` backs a probe only toward
//! the stored destination (an editor must not send a stored secret to a host of their choosing).
//! Which fields make up a type's destination, and how a family-specific one compares, is defined
//! in the type's family module (`kinds`).

use crate::kinds::{ConnectorType, DestinationField, Form, Part};
use serde_json::{Map, Value};

/// The normalized destination of a type and its fields; compare two with `==`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    kind: ConnectorType,
    fields: Vec<Option<String>>,
}

impl Destination {
    /// Reads the type's destination fields from `config` and the (unmasked) `authConfig`.
    pub fn of(
        kind: ConnectorType,
        config: &Map<String, Value>,
        auth: Option<&Map<String, Value>>,
    ) -> Self {
        let fields = kind
            .destination_fields()
            .iter()
            .map(|DestinationField(part, name, form)| {
                let value = match part {
                    Part::Config => config.get(*name),
                    Part::Auth => auth.and_then(|a| a.get(*name)),
                };
                normalize(*form, value.filter(|v| !v.is_null()))
            })
            .collect();
        Self { kind, fields }
    }
}

/// True when the type's destination reads a field of `authConfig` (comparing it then needs the
/// stored secret opened).
pub fn reads_auth_config(kind: ConnectorType) -> bool {
    kind.destination_fields()
        .iter()
        .any(|DestinationField(part, ..)| *part == Part::Auth)
}

fn normalize(form: Form, value: Option<&Value>) -> Option<String> {
    let text = value.map(|v| match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    });
    match form {
        Form::Port(default) => match value.and_then(Value::as_u64) {
            Some(p) => Some(p.to_string()),
            None if value.is_none() && default != 0 => Some(default.to_string()),
            None => text,
        },
        Form::Custom(normalize) => normalize(value),
        // Typed: `true` and `"true"` are different settings (a probe may read only one of them).
        Form::Exact => value.map(Value::to_string),
        Form::Host => text.map(|t| host(&t)),
        Form::Origin => text.map(|t| origin(&t)),
        Form::OriginPath => text.map(|t| origin_path(&t)),
        Form::FullUrl => text.map(|t| url_text(&t)),
        Form::Servers(port) => text.map(|t| servers(&t, port)),
        Form::Word => text.map(|t| t.to_ascii_lowercase()),
    }
}

fn host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Scheme, host, port and path (no query, fragment or user info): on a shared host (webhook
/// relays, API gateways) the path names the party that receives the credentials.
fn origin_path(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(url) => format!("{}{}", url.origin().ascii_serialization(), url.path()),
        Err(_) => u.to_ascii_lowercase(),
    }
}

/// A URL's origin (scheme, host, port), lower case.
pub fn origin(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => u.to_ascii_lowercase(),
    }
}

fn url_text(u: &str) -> String {
    url::Url::parse(u).map_or_else(|_| u.to_string(), |url| url.to_string())
}

/// `host[:port]` with the default port filled in; IPv6 in brackets.
fn host_port(server: &str, default: u16) -> String {
    let s = server.trim();
    let (h, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse::<u16>().unwrap_or(0))
        }
        _ => (s, default),
    };
    format!("{}:{port}", host(h))
}

/// `host:port,…` as a sorted set, the default port filled in.
pub fn servers(list: &str, default: u16) -> String {
    let mut all: Vec<String> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| host_port(s, default))
        .collect();
    all.sort();
    all.dedup();
    all.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dest(kind: &str, config: Value, auth: Value) -> Destination {
        Destination::of(
            ConnectorType::parse(kind).unwrap(),
            config.as_object().unwrap(),
            auth.as_object(),
        )
    }

    #[test]
    fn spellings_of_one_party_are_the_same_destination() {
        let pg = |c: Value| dest("postgresql", c, json!({}));
        assert_eq!(
            pg(json!({"host": "DB.example.com.", "port": 5432, "database": "a"})),
            pg(json!({"host": "db.example.com", "port": 5432, "database": "b"})),
            "case, a trailing dot and the database do not move it"
        );
        let http = |c: Value, a: Value| dest("rest_api", c, a);
        assert_eq!(
            http(json!({"url": "HTTPS://Api.Example.com:443/v1"}), json!({})),
            http(json!({"url": "https://api.example.com/v1?x=1"}), json!({}))
        );
        let kafka = |s: &str| {
            dest(
                "kafka",
                json!({"bootstrapServers": s, "topic": s}),
                json!({}),
            )
        };
        assert_eq!(
            kafka("B.example.com, a.example.com:9092"),
            kafka("a.example.com,b.example.com:9092")
        );
        let mongo = |c: Value| dest("mongodb", c, json!({}));
        assert_eq!(
            mongo(json!({"connectionString": "mongodb://u@A.example.com/app?tls=true"})),
            mongo(
                json!({"connectionString": "mongodb://a.example.com:27017/other?tls=TRUE&authSource=x"})
            )
        );
        assert_eq!(
            dest(
                "gcs",
                json!({"bucket": "a"}),
                json!({"serviceAccountKey": {"client_email": "x"}})
            ),
            dest(
                "gcs",
                json!({"bucket": "b"}),
                json!({"serviceAccountKey": "{\"token_uri\": \"https://oauth2.googleapis.com/token\"}"})
            ),
            "an absent token_uri is Google's"
        );
    }

    #[test]
    fn every_listed_change_is_a_move() {
        let base = json!({"host": "db.example.com", "port": 5432, "database": "a", "sslmode": "verify-full"});
        let pg = |c: &Value| dest("postgresql", c.clone(), json!({}));
        for (field, value) in [
            ("host", json!("evil.example.com")),
            ("port", json!(5433)),
            ("sslmode", json!("disable")),
            ("tunnel", json!({"host": "bastion.example.com"})),
        ] {
            let mut moved = base.clone();
            moved[field] = value;
            assert_ne!(pg(&base), pg(&moved), "{field}");
        }
        let mut absent = base.clone();
        absent.as_object_mut().unwrap().remove("sslmode");
        assert_ne!(
            pg(&base),
            pg(&absent),
            "dropping verify-full is a downgrade"
        );
        assert_ne!(
            dest("postgresql", base.clone(), json!({})),
            dest("redshift", base.clone(), json!({})),
            "another type is another destination"
        );
        let http = |a: Value| dest("rest_api", json!({"url": "https://api.example.com"}), a);
        assert_ne!(
            http(json!({"tokenUrl": "https://idp.example.com/token"})),
            http(json!({"tokenUrl": "https://evil.example.com/token"}))
        );
        assert_ne!(
            dest(
                "aws_s3",
                json!({"bucket": "b"}),
                json!({"roleArn": "arn:aws:iam::111111111111:role/a"})
            ),
            dest(
                "aws_s3",
                json!({"bucket": "b"}),
                json!({"roleArn": "arn:aws:iam::222222222222:role/a"})
            )
        );
        let azure = |cs: &str| {
            dest(
                "azure_blob",
                json!({"storageAccount": "acct"}),
                json!({"connectionString": cs}),
            )
        };
        assert_ne!(
            azure("AccountName=acct;AccountKey=k"),
            azure("AccountName=acct;AccountKey=k;BlobEndpoint=https://evil.example.com")
        );
        let sftp = |c: Value| dest("sftp", c, json!({}));
        assert_ne!(
            sftp(json!({"host": "h.example.com", "port": 22, "hostKeyFingerprint": "SHA256:a"})),
            sftp(json!({"host": "h.example.com", "port": 22})),
            "removing a pin is a move"
        );
        let kafka = |c: Value| dest("kafka", c, json!({}));
        assert_ne!(
            kafka(json!({"bootstrapServers": "a.example.com", "securityProtocol": "SASL_SSL"})),
            kafka(
                json!({"bootstrapServers": "a.example.com", "securityProtocol": "SASL_PLAINTEXT"})
            )
        );
        assert_ne!(
            dest("snowflake", json!({"account": "xy1"}), json!({})),
            dest("snowflake", json!({"account": "evil"}), json!({}))
        );
        let mongo = |c: Value| dest("mongodb", c, json!({}));
        assert_ne!(
            mongo(json!({"host": "m.example.com", "tls": true})),
            mongo(json!({"host": "m.example.com", "tls": "true"})),
            "a string is not the boolean the probe reads"
        );
        let http = |url: &str| dest("webhook", json!({"url": url}), json!({}));
        assert_ne!(
            http("https://hooks.example.com/services/T1/B1/ours"),
            http("https://hooks.example.com/services/T9/B9/theirs"),
            "a shared host's path names the receiving party"
        );
        assert_eq!(
            http("https://hooks.example.com/services/a?x=1"),
            http("https://HOOKS.example.com:443/services/a?y=2"),
            "the query is not the party"
        );
    }

    #[test]
    fn only_some_types_read_auth_config_for_their_destination() {
        let reading: Vec<&str> = ConnectorType::ALL
            .into_iter()
            .filter(|k| reads_auth_config(*k))
            .map(ConnectorType::as_str)
            .collect();
        assert_eq!(
            reading,
            [
                "bigquery",
                "aws_s3",
                "gcs",
                "azure_blob",
                "rest_api",
                "webhook",
                "amazon_kinesis"
            ]
        );
    }
}

//! What to probe for each connector type: pure, from config (and the secret where a probe sends
//! credentials).

use crate::model::ConnectorType;
use serde_json::{Map, Value};
use url::Url;

/// A TCP service and how to prove it speaks the expected protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SSLRequest; a reply of `S` or `N`.
    Postgres,
    /// The server greeting, protocol version 10.
    Mysql,
    /// The `SSH-2.0-` banner.
    Ssh,
    /// An OP_MSG `hello`.
    Mongo,
    /// An ApiVersions request.
    Kafka,
}

/// Credentials an HTTP probe sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
    /// An API key in a header the tenant names (`headerName` + `apiKey`).
    Header {
        name: String,
        value: String,
    },
    /// OAuth 2.0 client credentials: a token from `token_url` first, then sent as a bearer.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp {
        endpoints: Vec<(String, u16)>,
        protocol: Protocol,
    },
    /// A `mongodb+srv://` cluster: its first SRV target is probed as MongoDB.
    MongoSrv {
        host: String,
    },
    Http {
        url: Url,
        auth: HttpAuth,
    },
    /// A warehouse or SaaS vendor, logged in to over its own HTTPS API (`probe::saas`).
    Saas,
    S3 {
        bucket: String,
        region: String,
    },
    Kinesis {
        stream: String,
        region: String,
    },
}

fn text<'a>(config: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn port(config: &Map<String, Value>, default: Option<u16>) -> Result<u16, String> {
    match config.get("port") {
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| "config.port must be an integer from 1 to 65535".into()),
        None => default.ok_or_else(|| "config.port is required".into()),
    }
}

fn required<'a>(config: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    text(config, key).ok_or_else(|| format!("config.{key} is required"))
}

fn parse_url(s: &str, field: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|_| format!("{field} is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{field} must be an http or https URL"));
    }
    Ok(url)
}

/// `https://{host}{path}`, refusing a host that would not stay the URL's host (`evil.com/x#`).
fn https(host: &str, path: &str) -> Result<Url, String> {
    if !crate::validate::is_host(host) {
        return Err(format!("{host:?} does not make a valid host name"));
    }
    parse_url(&format!("https://{host}{path}"), "the service URL")
}

/// True when the probe of this type logs in with the credentials (so the scheduled sweep decrypts
/// them: one KMS Decrypt per credentialed connector); the others only prove the service answers.
pub fn probe_uses_secret(kind: ConnectorType) -> bool {
    use ConnectorType::*;
    matches!(
        kind,
        Postgresql
            | Redshift
            | Mysql
            | Sftp
            | Mongodb
            | Kafka
            | ConfluentKafka
            | RestApi
            | Webhook
            | Salesforce
            | Hubspot
            | Databricks
            | Snowflake
            | Bigquery
            | Gcs
            | AzureBlob
            | AwsS3
            | AmazonKinesis
    )
}

/// Credentials for a generic HTTP endpoint: OAuth client credentials (`tokenUrl`, `clientId`,
/// `clientSecret`, optional `scope`), an `apiKey` in the header `headerName`,
/// `token`/`bearerToken`/`accessToken`/`apiKey` as a bearer token, or `username` + `password` as
/// Basic.
fn http_auth(secret: Option<&Map<String, Value>>) -> HttpAuth {
    let Some(s) = secret else {
        return HttpAuth::None;
    };
    if let (Some(token_url), Some(id), Some(client_secret)) = (
        text(s, "tokenUrl"),
        text(s, "clientId"),
        text(s, "clientSecret"),
    ) {
        return HttpAuth::ClientCredentials {
            token_url: token_url.to_string(),
            client_id: id.to_string(),
            client_secret: client_secret.to_string(),
            scope: text(s, "scope").map(str::to_string),
        };
    }
    if let (Some(name), Some(key)) = (text(s, "headerName"), text(s, "apiKey")) {
        return HttpAuth::Header {
            name: name.to_string(),
            value: key.to_string(),
        };
    }
    if let Some(token) = ["token", "bearerToken", "accessToken", "apiKey"]
        .iter()
        .find_map(|k| text(s, k))
    {
        return HttpAuth::Bearer(token.to_string());
    }
    match (text(s, "username"), text(s, "password")) {
        (Some(u), Some(p)) => HttpAuth::Basic {
            username: u.to_string(),
            password: p.to_string(),
        },
        _ => HttpAuth::None,
    }
}

/// The target of a connector, or why its config cannot be probed.
pub fn target_for(
    kind: ConnectorType,
    config: &Map<String, Value>,
    secret: Option<&Map<String, Value>>,
) -> Result<Target, String> {
    use ConnectorType::*;
    let tcp = |protocol, default_port| -> Result<Target, String> {
        Ok(Target::Tcp {
            endpoints: vec![(
                required(config, "host")?.to_string(),
                port(config, default_port)?,
            )],
            protocol,
        })
    };
    match kind {
        Postgresql => tcp(Protocol::Postgres, Some(5432)),
        Redshift => tcp(Protocol::Postgres, Some(5439)),
        Mysql => tcp(Protocol::Mysql, Some(3306)),
        Sftp => tcp(Protocol::Ssh, Some(22)),
        Mongodb => match text(config, "connectionString") {
            Some(uri) if text(config, "host").is_none() => match uri.strip_prefix("mongodb+srv://")
            {
                Some(rest) => Ok(Target::MongoSrv {
                    host: srv_host(rest)?,
                }),
                None => Ok(Target::Tcp {
                    endpoints: vec![mongo_first_host(uri)?],
                    protocol: Protocol::Mongo,
                }),
            },
            _ => tcp(Protocol::Mongo, Some(27017)),
        },
        Kafka | ConfluentKafka => {
            let servers = required(config, "bootstrapServers")?;
            let endpoints = servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(host_port)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Target::Tcp {
                endpoints,
                protocol: Protocol::Kafka,
            })
        }
        RestApi | Webhook => Ok(Target::Http {
            url: parse_url(required(config, "url")?, "config.url")?,
            auth: http_auth(secret),
        }),
        Snowflake => {
            https(
                &format!("{}.snowflakecomputing.com", required(config, "account")?),
                "/",
            )?;
            Ok(Target::Saas)
        }
        Databricks => {
            if !crate::validate::is_host(required(config, "host")?) {
                return Err("config.host must be a host name".into());
            }
            required(config, "httpPath")?;
            Ok(Target::Saas)
        }
        Bigquery => {
            required(config, "project")?;
            required(config, "dataset")?;
            Ok(Target::Saas)
        }
        Gcs => {
            required(config, "bucket")?;
            Ok(Target::Saas)
        }
        AzureBlob => {
            https(
                &format!(
                    "{}.blob.core.windows.net",
                    required(config, "storageAccount")?
                ),
                "/",
            )?;
            required(config, "container")?;
            Ok(Target::Saas)
        }
        Salesforce | Hubspot => {
            if let Some(u) = text(config, "instanceUrl") {
                parse_url(u, "config.instanceUrl")?;
            }
            Ok(Target::Saas)
        }
        AwsS3 => Ok(Target::S3 {
            bucket: required(config, "bucket")?.to_string(),
            region: region(config)?,
        }),
        AmazonKinesis => Ok(Target::Kinesis {
            stream: required(config, "streamName")?.to_string(),
            region: region(config)?,
        }),
    }
}

fn region(config: &Map<String, Value>) -> Result<String, String> {
    let r = required(config, "region")?;
    let ok = r.split('-').count() >= 3
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| r.to_string())
        .ok_or_else(|| format!("config.region {r:?} is not an AWS region"))
}

fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not host:port"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?} has no valid port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_string(), port))
}

/// The host of a `mongodb+srv://` URI (after the scheme): one name, no port.
fn srv_host(rest: &str) -> Result<String, String> {
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let host = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    if host.contains([',', ':']) || !crate::validate::is_host(host) {
        return Err("a mongodb+srv:// URI names exactly one host, without a port".into());
    }
    Ok(host.to_string())
}

/// The first host of a `mongodb://` URI (default port 27017).
fn mongo_first_host(uri: &str) -> Result<(String, u16), String> {
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
        27017,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(kind: &str, config: Value, secret: Option<Value>) -> Result<Target, String> {
        let s = secret.map(|v| v.as_object().unwrap().clone());
        target_for(
            ConnectorType::parse(kind).unwrap(),
            config.as_object().unwrap(),
            s.as_ref(),
        )
    }

    #[test]
    fn tcp_targets_and_default_ports() {
        assert_eq!(
            target("postgresql", json!({"host": "db", "port": 6432}), None).unwrap(),
            Target::Tcp {
                endpoints: vec![("db".into(), 6432)],
                protocol: Protocol::Postgres
            }
        );
        assert_eq!(
            target("sftp", json!({"host": "h", "port": 2222}), None).unwrap(),
            Target::Tcp {
                endpoints: vec![("h".into(), 2222)],
                protocol: Protocol::Ssh
            }
        );
        assert_eq!(
            target("mongodb", json!({"host": "m"}), None).unwrap(),
            Target::Tcp {
                endpoints: vec![("m".into(), 27017)],
                protocol: Protocol::Mongo
            }
        );
        assert!(target("mysql", json!({"host": "h", "port": 0}), None).is_err());
    }

    #[test]
    fn kafka_probes_every_bootstrap_server() {
        let t = target(
            "kafka",
            json!({"bootstrapServers": "a:9092, b:9093,[::1]:9094"}),
            None,
        )
        .unwrap();
        assert_eq!(
            t,
            Target::Tcp {
                endpoints: vec![("a".into(), 9092), ("b".into(), 9093), ("::1".into(), 9094)],
                protocol: Protocol::Kafka
            }
        );
    }

    #[test]
    fn mongodb_connection_strings() {
        let first = |uri: &str| mongo_first_host(uri);
        assert_eq!(
            first("mongodb://u:p@h1.example.com:27018,h2:27019/db?x=1").unwrap(),
            ("h1.example.com".into(), 27018)
        );
        assert_eq!(
            first("mongodb://h1.example.com/db").unwrap(),
            ("h1.example.com".into(), 27017)
        );
        assert_eq!(
            first("mongodb://[::1]:27017").unwrap(),
            ("::1".into(), 27017)
        );
        assert!(first("mongodb:///db").is_err());
        let srv = |uri: &str| target("mongodb", json!({"connectionString": uri}), None);
        assert_eq!(
            srv("mongodb+srv://u:p@cluster0.example.net/db?retryWrites=true").unwrap(),
            Target::MongoSrv {
                host: "cluster0.example.net".into()
            }
        );
        assert!(srv("mongodb+srv://a.example.net:27017/db").is_err());
        assert!(srv("mongodb+srv://a.example.net,b.example.net/db").is_err());
    }

    #[test]
    fn saas_urls() {
        assert_eq!(
            target("snowflake", json!({"account": "xy12345.us-east-1"}), None),
            Ok(Target::Saas)
        );
        assert_eq!(
            target(
                "databricks",
                json!({"host": "adb-1.azuredatabricks.net", "httpPath": "/sql/1.0/warehouses/a"}),
                None
            ),
            Ok(Target::Saas)
        );
        assert_eq!(
            target("gcs", json!({"bucket": "b/../x", "project": "p"}), None),
            Ok(Target::Saas)
        );
        assert_eq!(
            target(
                "azure_blob",
                json!({"container": "c", "storageAccount": "acct"}),
                None
            ),
            Ok(Target::Saas)
        );
        assert_eq!(
            target("hubspot", json!({}), Some(json!({"apiKey": "k"}))),
            Ok(Target::Saas)
        );
        for account in ["evil.com/x#", "a@evil.com", "evil.com:443?"] {
            assert!(
                target("snowflake", json!({"account": account}), None).is_err(),
                "{account}"
            );
        }
        assert!(target(
            "azure_blob",
            json!({"container": "c", "storageAccount": "x.evil.com#"}),
            None
        )
        .is_err());
    }

    #[test]
    fn http_credentials() {
        let auth = |secret: Value| match target(
            "rest_api",
            json!({"url": "https://api.example.com"}),
            Some(secret),
        )
        .unwrap()
        {
            Target::Http { auth, .. } => auth,
            other => panic!("{other:?}"),
        };
        assert_eq!(auth(json!({"token": "t"})), HttpAuth::Bearer("t".into()));
        assert_eq!(
            auth(json!({"headerName": "X-Api-Key", "apiKey": "k"})),
            HttpAuth::Header {
                name: "X-Api-Key".into(),
                value: "k".into()
            }
        );
        assert_eq!(
            auth(
                json!({"tokenUrl": "https://idp.example.com/token", "clientId": "c", "clientSecret": "s"})
            ),
            HttpAuth::ClientCredentials {
                token_url: "https://idp.example.com/token".into(),
                client_id: "c".into(),
                client_secret: "s".into(),
                scope: None
            }
        );
        assert_eq!(
            auth(json!({"username": "u", "password": "p"})),
            HttpAuth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(auth(json!({"other": "x"})), HttpAuth::None);
    }

    #[test]
    fn aws_targets_need_a_region() {
        assert_eq!(
            target(
                "aws_s3",
                json!({"bucket": "b", "region": "eu-west-1"}),
                None
            )
            .unwrap(),
            Target::S3 {
                bucket: "b".into(),
                region: "eu-west-1".into()
            }
        );
        assert!(target("aws_s3", json!({"bucket": "b", "region": "EU"}), None).is_err());
        assert!(target(
            "amazon_kinesis",
            json!({"streamName": "s", "region": "us-east-1.evil.com"}),
            None
        )
        .is_err());
    }
}

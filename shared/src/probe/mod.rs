//! Connection probes and the SSRF guard they all go through.
//!
//! A probe runs inside a total budget (`PROBE_TIMEOUT_MS`, default 8 s) with a per-connect and
//! per-read limit (`PROBE_CONNECT_TIMEOUT_MS`, default 3 s). Every destination is resolved and
//! checked by the guard before anything is sent, and the connection goes to a checked address.

pub mod cloud;
pub mod http;
pub mod kdf;
pub mod net;
pub mod oauth;
pub mod report;
pub mod saas;
pub mod srv;
pub mod ssh;
pub use connectors_core::ssrf;
pub mod target;
pub mod tcp;
pub mod tls;
pub mod wire;

use crate::model::ConnectorType;
use aws_config::SdkConfig;
use report::{Diagnostics, Failure, ProbeCode, Recorder, StepName};
use serde_json::{Map, Value};
use ssrf::Guard;
use std::sync::OnceLock;
use std::time::Duration;
use target::Target;

/// Probe limits and the guard, read once at init.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub guard: Guard,
    /// One name server for SRV lookups instead of the system's (`PROBE_DNS_SERVER`, ip:port).
    pub dns_server: Option<std::net::SocketAddr>,
    /// `PROBE_RESOLVE`: fixed addresses for names (tests and local look-alikes only).
    pub resolve: net::Overrides,
}

impl ProbeSettings {
    /// From `PROBE_CONNECT_TIMEOUT_MS`, `PROBE_TIMEOUT_MS`, `PROBE_ALLOW_CIDRS`, `PROBE_DNS_SERVER`,
    /// `PROBE_RESOLVE` and `PROBE_CERT_WARN_DAYS` (read here, so a bad value stops the function at
    /// init).
    pub fn from_env() -> Result<Self, String> {
        let ms = |name: &str, default: u64| -> Result<Duration, String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{name} must be a number of milliseconds")),
                _ => Ok(Duration::from_millis(default)),
            }
        };
        let guard = Guard::from_allow_list(&std::env::var("PROBE_ALLOW_CIDRS").unwrap_or_default())
            .map_err(|e| format!("PROBE_ALLOW_CIDRS: {e}"))?;
        let dns_server = match std::env::var("PROBE_DNS_SERVER") {
            Ok(v) if !v.trim().is_empty() => Some(
                v.trim()
                    .parse()
                    .map_err(|_| "PROBE_DNS_SERVER must be ip:port".to_string())?,
            ),
            _ => None,
        };
        let resolve = net::Overrides::parse(&std::env::var("PROBE_RESOLVE").unwrap_or_default())
            .map_err(|e| format!("PROBE_RESOLVE: {e}"))?;
        let warn_days = match std::env::var("PROBE_CERT_WARN_DAYS") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<u16>()
                .map_err(|_| "PROBE_CERT_WARN_DAYS must be a whole number of days".to_string())?
                .into(),
            _ => tls::DEFAULT_WARN_DAYS,
        };
        tls::set_warn_days(warn_days);
        Ok(Self {
            connect_timeout: ms("PROBE_CONNECT_TIMEOUT_MS", 3000)?,
            total_timeout: ms("PROBE_TIMEOUT_MS", 8000)?,
            guard,
            dns_server,
            resolve,
        })
    }
}

/// A non-empty string field of a JSON object.
fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn no_endpoint() -> Failure {
    Failure::new(ProbeCode::InvalidConfig, "no server to connect to")
}

/// What a Kafka login uses: `securityProtocol` (confluent_kafka: SASL_SSL; kafka: SASL_SSL when
/// authConfig names a user, else PLAINTEXT) and `saslMechanism` (PLAIN).
fn kafka_login<'a>(
    kind: ConnectorType,
    host: &'a str,
    config: &'a Map<String, Value>,
    secret: Option<&'a Map<String, Value>>,
) -> wire::kafka::Login<'a> {
    use wire::kafka::{Mechanism, Security};
    let user = secret.and_then(|s| text(s, "username"));
    let default = if kind == ConnectorType::ConfluentKafka || user.is_some() {
        Security::SaslSsl
    } else {
        Security::Plaintext
    };
    wire::kafka::Login {
        host,
        security: text(config, "securityProtocol")
            .and_then(Security::parse)
            .unwrap_or(default),
        mechanism: text(config, "saslMechanism")
            .and_then(Mechanism::parse)
            .unwrap_or(Mechanism::Plain),
        user,
        password: secret.and_then(|s| text(s, "password")),
        topic: text(config, "topic"),
    }
}

/// What the test endpoint, the dry run and the sweep need of a prober: `Prober` for real, a fake
/// in the handlers' unit tests.
pub trait Probe: Send + Sync {
    /// Probes one connector of `tenant`; every outcome is a `Diagnostics`.
    fn probe(
        &self,
        tenant: &str,
        kind: ConnectorType,
        config: &Map<String, Value>,
        auth_method: &str,
        secret: Option<&Map<String, Value>>,
    ) -> impl std::future::Future<Output = Diagnostics> + Send;
    /// The whole-probe budget (the sweep plans its deadline with it).
    fn budget(&self) -> Duration;
}

impl Probe for Prober {
    async fn probe(
        &self,
        tenant: &str,
        kind: ConnectorType,
        config: &Map<String, Value>,
        auth_method: &str,
        secret: Option<&Map<String, Value>>,
    ) -> Diagnostics {
        Prober::probe(self, tenant, kind, config, auth_method, secret).await
    }

    fn budget(&self) -> Duration {
        self.settings.total_timeout
    }
}

/// Runs probes; one per instance. The HTTP client (its TLS roots) and the SRV resolver are built
/// on the first probe that needs them, then reused: most cold starts serve a list or a CRUD call,
/// and building them at init cost the `test` binary about a millisecond of its cold start.
pub struct Prober {
    settings: ProbeSettings,
    http: OnceLock<Result<reqwest::Client, String>>,
    pins: net::Pins,
    srv: OnceLock<srv::SrvResolver>,
    aws: SdkConfig,
}

impl Prober {
    pub fn new(settings: ProbeSettings, aws: &SdkConfig) -> Self {
        Self {
            settings,
            http: OnceLock::new(),
            pins: net::Pins::default(),
            srv: OnceLock::new(),
            aws: aws.clone(),
        }
    }

    /// The one HTTP client of every HTTP probe, built on first use (the extra CA file may be
    /// unreadable: every HTTP probe then fails with a message naming the setting).
    fn http_client(&self) -> Result<&reqwest::Client, Failure> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .tls_backend_preconfigured(tls::http_config()?)
                    .tls_info(true)
                    .dns_resolver(self.pins.clone())
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(self.settings.connect_timeout)
                    .timeout(self.settings.total_timeout)
                    .no_proxy()
                    .user_agent("connectors-api-probe/1")
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| Failure::new(ProbeCode::TlsFailed, e.clone()))
    }

    fn srv(&self) -> &srv::SrvResolver {
        self.srv
            .get_or_init(|| srv::SrvResolver::new(self.settings.dns_server))
    }

    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// Probes one connector of `tenant`. Never fails: every outcome is a `Diagnostics`.
    pub async fn probe(
        &self,
        tenant: &str,
        kind: ConnectorType,
        config: &Map<String, Value>,
        auth_method: &str,
        secret: Option<&Map<String, Value>>,
    ) -> Diagnostics {
        let mut rec = Recorder::default();
        let target = match target::target_for(kind, config, secret) {
            Ok(t) => t,
            Err(message) => {
                let failure = Failure::new(ProbeCode::InvalidConfig, message);
                return rec.finish_masked(Err(failure), secret);
            }
        };
        let budget = self.settings.total_timeout;
        // Boxed: the logins' state machines are large (the SDK's futures among them), and a
        // probe must not need a deep stack from whoever awaits it.
        let result = match tokio::time::timeout(
            budget,
            Box::pin(self.run(tenant, kind, &target, config, auth_method, secret, &mut rec)),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                ProbeCode::Timeout,
                format!("the probe did not finish within {} ms", budget.as_millis()),
            )),
        };
        rec.finish_masked(result, secret)
    }

    /// Resolves through the guard and connects to a checked address: the only way a probe gets a
    /// socket, so credentials go only where the guard looked.
    async fn guarded_connect(
        &self,
        host: &str,
        port: u16,
        rec: &mut Recorder,
    ) -> Result<tokio::net::TcpStream, Failure> {
        let limit = self.settings.connect_timeout;
        let addrs = rec
            .step(
                StepName::Dns,
                net::resolve_checked(
                    &self.settings.guard,
                    &self.settings.resolve,
                    host,
                    port,
                    limit,
                ),
            )
            .await?;
        rec.step(StepName::Tcp, tcp::connect(&addrs, limit)).await
    }

    /// The HTTP client behind the guard, its pins and overrides.
    fn http_probe(&self) -> Result<http::HttpProbe<'_>, Failure> {
        Ok(http::HttpProbe {
            client: self.http_client()?,
            pins: &self.pins,
            guard: &self.settings.guard,
            overrides: &self.settings.resolve,
            connect_timeout: self.settings.connect_timeout,
        })
    }

    /// MongoDB: `hello`, and with credentials the SCRAM login and `listCollections`.
    async fn mongo(
        &self,
        host: &str,
        port: u16,
        config: &Map<String, Value>,
        secret: Option<&Map<String, Value>>,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let stream = self.guarded_connect(host, port, rec).await?;
        wire::mongo::login(
            stream,
            host,
            &wire::mongo::settings(config),
            secret.and_then(|s| text(s, "username")),
            secret.and_then(|s| text(s, "password")),
            self.settings.connect_timeout,
            rec,
        )
        .await
    }

    /// Connects through the guard and proves the protocol (no login).
    async fn tcp_service(
        &self,
        host: &str,
        port: u16,
        protocol: target::Protocol,
        rec: &mut Recorder,
    ) -> Result<(), Failure> {
        let limit = self.settings.connect_timeout;
        let mut stream = self.guarded_connect(host, port, rec).await?;
        rec.step(
            StepName::Protocol,
            tcp::handshake(&mut stream, protocol, limit),
        )
        .await?;
        rec.reached(report::Depth::Reachable);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        tenant: &str,
        kind: ConnectorType,
        target: &Target,
        config: &Map<String, Value>,
        auth_method: &str,
        secret: Option<&Map<String, Value>>,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let limit = self.settings.connect_timeout;
        let user = secret.and_then(|s| text(s, "username"));
        match target {
            Target::Tcp {
                endpoints,
                protocol: target::Protocol::Postgres,
            } if user.is_some() && endpoints.len() == 1 => {
                let (host, port) = &endpoints[0];
                let stream = self.guarded_connect(host, *port, rec).await?;
                let login = wire::postgres::Login {
                    host,
                    user: user.unwrap_or_default(),
                    password: secret.and_then(|s| text(s, "password")),
                    database: text(config, "database").unwrap_or("postgres"),
                    sslmode: crate::model::SslMode::given(config),
                };
                wire::postgres::login(stream, &login, limit, rec).await
            }
            Target::Tcp {
                endpoints,
                protocol: target::Protocol::Mysql,
            } if user.is_some() && endpoints.len() == 1 => {
                let (host, port) = &endpoints[0];
                let stream = self.guarded_connect(host, *port, rec).await?;
                let login = wire::mysql::Login {
                    host,
                    user: user.unwrap_or_default(),
                    password: secret.and_then(|s| text(s, "password")),
                    database: text(config, "database").unwrap_or_default(),
                    sslmode: crate::model::SslMode::given(config),
                    server_public_key: text(config, "serverPublicKey"),
                };
                wire::mysql::login(stream, &login, limit, rec).await
            }
            Target::Tcp {
                endpoints,
                protocol: target::Protocol::Ssh,
            } if user.is_some() && endpoints.len() == 1 => {
                let (host, port) = &endpoints[0];
                let stream = self.guarded_connect(host, *port, rec).await?;
                let login = ssh::Login {
                    user: user.unwrap_or_default(),
                    password: secret.and_then(|s| text(s, "password")),
                    private_key: secret.and_then(|s| text(s, "privateKey")),
                    passphrase: secret.and_then(|s| text(s, "passphrase")),
                    path: text(config, "path").unwrap_or("."),
                    pinned: text(config, "hostKeyFingerprint"),
                };
                ssh::login(stream, &login, limit, rec).await
            }
            Target::Tcp {
                endpoints,
                protocol: target::Protocol::Kafka,
            } => {
                // The first bootstrap server answers for the cluster (as clients bootstrap).
                let (host, port) = endpoints.first().ok_or_else(no_endpoint)?;
                let stream = self.guarded_connect(host, *port, rec).await?;
                wire::kafka::login(stream, &kafka_login(kind, host, config, secret), limit, rec)
                    .await
            }
            Target::Tcp {
                endpoints,
                protocol: target::Protocol::Mongo,
            } => {
                let (host, port) = endpoints.first().ok_or_else(no_endpoint)?;
                self.mongo(host, *port, config, secret, rec).await
            }
            Target::Tcp {
                endpoints,
                protocol,
            } => {
                for (host, port) in endpoints {
                    self.tcp_service(host, *port, *protocol, rec).await?;
                }
                let names: Vec<String> =
                    endpoints.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                let checked = match user {
                    None => "credentials were not checked (no username in authConfig)",
                    Some(_) => "credentials were not checked (logging in to this service is not supported yet)",
                };
                Ok(format!("{} answered; {checked}", names.join(", ")))
            }
            Target::MongoSrv { host } => {
                let (host, port) = rec
                    .step(StepName::Dns, self.srv().mongodb_target(host, limit))
                    .await?;
                self.mongo(&host, port, config, secret, rec).await
            }
            Target::Http { url, auth } => {
                // With credentials a 2xx/3xx is authorized; without, any answer is reachable only.
                self.http_probe()?.run(url.clone(), auth, rec).await
            }
            Target::Saas => {
                let api = saas::Api {
                    http: self.http_probe()?,
                    kind,
                };
                match kind {
                    ConnectorType::Hubspot => saas::hubspot::login(&api, config, secret, rec).await,
                    ConnectorType::Salesforce => {
                        saas::salesforce::login(&api, config, secret, rec).await
                    }
                    ConnectorType::Databricks => {
                        saas::databricks::login(&api, config, secret, rec).await
                    }
                    ConnectorType::Snowflake => {
                        saas::snowflake::login(&api, config, secret, rec).await
                    }
                    ConnectorType::AzureBlob => saas::azure::login(&api, config, secret, rec).await,
                    ConnectorType::Bigquery | ConnectorType::Gcs => {
                        saas::google::login(&api, kind, config, secret, rec).await
                    }
                    _ => Err(Failure::new(
                        ProbeCode::InvalidConfig,
                        "no login for this type",
                    )),
                }
            }
            Target::S3 { bucket, region } => {
                let identity = cloud::identity(tenant, auth_method, secret)?;
                let creds = cloud::authenticate(&self.aws, region, identity, rec).await?;
                rec.step(
                    StepName::Bucket,
                    cloud::s3::check_bucket(&self.aws, region, creds, bucket),
                )
                .await?;
                rec.reached(report::Depth::Authorized);
                Ok(format!("bucket {bucket} is reachable"))
            }
            Target::Kinesis { stream, region } => {
                let identity = cloud::identity(tenant, auth_method, secret)?;
                let creds = cloud::authenticate(&self.aws, region, identity, rec).await?;
                rec.step(
                    StepName::Access,
                    cloud::kinesis::describe_stream(&self.aws, region, creds, stream),
                )
                .await?;
                rec.reached(report::Depth::Authorized);
                Ok(format!("stream {stream} is reachable"))
            }
        }
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    #[test]
    fn a_bad_certificate_warning_window_stops_the_function_at_init_naming_the_variable() {
        // The only unit test that touches PROBE_CERT_WARN_DAYS; nothing else reads it.
        std::env::set_var("PROBE_CERT_WARN_DAYS", "two weeks");
        let e = ProbeSettings::from_env().unwrap_err();
        std::env::remove_var("PROBE_CERT_WARN_DAYS");
        assert!(e.contains("PROBE_CERT_WARN_DAYS"), "{e}");
    }
}

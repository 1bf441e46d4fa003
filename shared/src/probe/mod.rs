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
pub mod tcp;
pub mod tls;
pub mod tunnel;
pub mod wire;

use crate::kinds::{self, sql::Wire, tunnel::Tunnel, Input, Source};
use crate::model::ConnectorType;
use aws_config::SdkConfig;
use report::{Diagnostics, Failure, ProbeCode, Recorder, StepName};
use ssrf::Guard;
use std::sync::OnceLock;
use std::time::Duration;

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

fn no_endpoint() -> Failure {
    Failure::new(ProbeCode::InvalidConfig, "no server to connect to")
}

/// What the test endpoint, the dry run and the sweep need of a prober: `Prober` for real, a fake
/// in the handlers' unit tests.
pub trait Probe: Send + Sync {
    /// Probes one connector (its type, config, opened secret and the tenant's tunnel key);
    /// every outcome is a `Diagnostics`.
    fn probe(&self, source: Source<'_>) -> impl std::future::Future<Output = Diagnostics> + Send;
    /// The whole-probe budget (the sweep plans its deadline with it).
    fn budget(&self) -> Duration;
}

impl Probe for Prober {
    async fn probe(&self, source: Source<'_>) -> Diagnostics {
        Prober::probe(self, source).await
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

    /// Probes one connector. Never fails: every outcome is a `Diagnostics`.
    pub async fn probe(&self, source: Source<'_>) -> Diagnostics {
        let mut rec = Recorder::default();
        let (kind, secret) = (source.kind, source.secret);
        let input = match kinds::input(source) {
            Ok(input) => input,
            Err(message) => {
                let failure = Failure::new(ProbeCode::InvalidConfig, message);
                return rec.finish_masked(Err(failure), secret);
            }
        };
        let budget = self.settings.total_timeout;
        // Boxed: the logins' state machines are large (the SDK's futures among them), and a
        // probe must not need a deep stack from whoever awaits it.
        let result =
            match tokio::time::timeout(budget, Box::pin(self.run(kind, input, &mut rec))).await {
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

    /// The stream to a target: through the guard, or forwarded by the tunnel's bastion (which
    /// the guard judges instead: the target is in the customer's network).
    async fn reach(
        &self,
        host: &str,
        port: u16,
        tunnel: Option<&Tunnel<'_>>,
        rec: &mut Recorder,
    ) -> Result<Box<dyn wire::Io>, Failure> {
        let Some(tunnel) = tunnel else {
            return Ok(Box::new(self.guarded_connect(host, port, rec).await?));
        };
        let limit = self.settings.connect_timeout;
        let (guard, overrides) = (&self.settings.guard, &self.settings.resolve);
        let bastion = rec
            .step(StepName::TunnelTcp, async {
                let (addrs, _) =
                    net::resolve_checked(guard, overrides, tunnel.host, tunnel.port, limit).await?;
                let (stream, detail) = tcp::connect(&addrs, limit).await?;
                Ok((stream, format!("bastion {}: {detail}", tunnel.host)))
            })
            .await?;
        let forwarded = tunnel::open(bastion, tunnel, (host, port), limit, rec).await?;
        Ok(Box::new(forwarded))
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
        mongo: &kinds::mongo::Mongo<'_>,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let stream = self.reach(host, port, mongo.tunnel.as_ref(), rec).await?;
        wire::mongo::login(
            stream,
            host,
            &mongo.settings,
            mongo.user,
            mongo.password,
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
        protocol: tcp::Protocol,
        tunnel: Option<&Tunnel<'_>>,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let limit = self.settings.connect_timeout;
        let mut stream = self.reach(host, port, tunnel, rec).await?;
        rec.step(
            StepName::Protocol,
            tcp::handshake(&mut stream, protocol, limit),
        )
        .await?;
        rec.reached(report::Depth::Reachable);
        Ok(format!(
            "{host}:{port} answered; credentials were not checked (no username in authConfig)"
        ))
    }

    /// Runs the family's probe: a plain match on the typed input.
    async fn run(
        &self,
        kind: ConnectorType,
        input: Input<'_>,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let limit = self.settings.connect_timeout;
        match input {
            Input::Sql(db) => {
                let Some(user) = db.user else {
                    let protocol = match db.wire {
                        Wire::Postgres => tcp::Protocol::Postgres,
                        Wire::Mysql => tcp::Protocol::Mysql,
                    };
                    return self
                        .tcp_service(db.host, db.port, protocol, db.tunnel.as_ref(), rec)
                        .await;
                };
                let stream = self
                    .reach(db.host, db.port, db.tunnel.as_ref(), rec)
                    .await?;
                match db.wire {
                    Wire::Postgres => {
                        let login = wire::postgres::Login {
                            host: db.host,
                            user,
                            password: db.password,
                            database: db.database.unwrap_or("postgres"),
                            sslmode: db.sslmode,
                        };
                        wire::postgres::login(stream, &login, limit, rec).await
                    }
                    Wire::Mysql => {
                        let login = wire::mysql::Login {
                            host: db.host,
                            user,
                            password: db.password,
                            database: db.database.unwrap_or_default(),
                            sslmode: db.sslmode,
                            server_public_key: db.server_public_key,
                        };
                        wire::mysql::login(stream, &login, limit, rec).await
                    }
                }
            }
            Input::Sftp(sftp) => {
                let Some(user) = sftp.user else {
                    return self
                        .tcp_service(
                            sftp.host,
                            sftp.port,
                            tcp::Protocol::Ssh,
                            sftp.tunnel.as_ref(),
                            rec,
                        )
                        .await;
                };
                let stream = self
                    .reach(sftp.host, sftp.port, sftp.tunnel.as_ref(), rec)
                    .await?;
                let login = ssh::Login {
                    user,
                    password: sftp.password,
                    private_key: sftp.private_key,
                    passphrase: sftp.passphrase,
                    path: sftp.path,
                    pinned: sftp.pinned,
                };
                ssh::login(stream, &login, limit, rec).await
            }
            Input::Kafka(kafka) => {
                // The first bootstrap server answers for the cluster (as clients bootstrap).
                let (host, port) = kafka.servers.first().ok_or_else(no_endpoint)?;
                let stream = self.guarded_connect(host, *port, rec).await?;
                let login = wire::kafka::Login {
                    host,
                    security: kafka.security,
                    mechanism: kafka.mechanism,
                    user: kafka.user,
                    password: kafka.password,
                    topic: kafka.topic,
                };
                wire::kafka::login(stream, &login, limit, rec).await
            }
            Input::Mongo(mongo) => {
                let (host, port) = match &mongo.endpoint {
                    kinds::mongo::Endpoint::Host(host, port) => (host.clone(), *port),
                    kinds::mongo::Endpoint::Srv(name) => {
                        rec.step(StepName::Dns, self.srv().mongodb_target(name, limit))
                            .await?
                    }
                };
                self.mongo(&host, port, &mongo, rec).await
            }
            Input::Http(http) => {
                // With credentials a 2xx/3xx is authorized; without, any answer is reachable only.
                self.http_probe()?.run(http.url, &http.auth, rec).await
            }
            Input::Snowflake(input) => saas::snowflake::login(&self.saas(kind)?, &input, rec).await,
            Input::Databricks(input) => {
                saas::databricks::login(&self.saas(kind)?, &input, rec).await
            }
            Input::Google(input) => saas::google::login(&self.saas(kind)?, &input, rec).await,
            Input::Azure(input) => saas::azure::login(&self.saas(kind)?, &input, rec).await,
            Input::SaasApi(input) => match input.service {
                kinds::saas_api::Service::Hubspot => {
                    saas::hubspot::login(&self.saas(kind)?, &input, rec).await
                }
                kinds::saas_api::Service::Salesforce => {
                    saas::salesforce::login(&self.saas(kind)?, &input, rec).await
                }
            },
            Input::Aws(aws) => cloud::probe(&self.aws, aws, rec).await,
        }
    }

    /// A vendor's API behind the guard: only the type's vendor hosts receive anything.
    fn saas(&self, kind: ConnectorType) -> Result<saas::Api<'_>, Failure> {
        Ok(saas::Api {
            http: self.http_probe()?,
            kind,
        })
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

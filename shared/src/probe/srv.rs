//! DNS SRV lookups for `mongodb+srv://` connection strings (`_mongodb._tcp.<host>`).

use super::report::{Failure, ProbeCode};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use std::net::SocketAddr;
use std::time::Duration;

/// Resolves SRV records; built once at init from the system's resolver configuration, or from one
/// name server (`PROBE_DNS_SERVER`, for local runs and tests).
pub struct SrvResolver(Option<TokioResolver>);

impl SrvResolver {
    pub fn new(server: Option<SocketAddr>) -> Self {
        let builder = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp(addr.ip());
                ns.connections.iter_mut().for_each(|c| c.port = addr.port());
                Ok(Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                ))
            }
            None => Resolver::builder_tokio(),
        };
        let resolver = builder.and_then(|b| b.build());
        if let Err(e) = &resolver {
            tracing::warn!(error = %e, "no DNS resolver for SRV lookups; mongodb+srv probes will fail");
        }
        Self(resolver.ok())
    }

    /// The first target of `_mongodb._tcp.<host>` by priority (lowest) then weight (highest).
    pub async fn mongodb_target(
        &self,
        host: &str,
        limit: Duration,
    ) -> Result<((String, u16), String), Failure> {
        let resolver = self
            .0
            .as_ref()
            .ok_or_else(|| Failure::new(ProbeCode::DnsFailed, "no DNS resolver is configured"))?;
        let query = format!("_mongodb._tcp.{}.", host.trim_end_matches('.'));
        let lookup = match tokio::time::timeout(limit, resolver.srv_lookup(query.as_str())).await {
            Err(_) => {
                return Err(Failure::new(
                    ProbeCode::Timeout,
                    format!("the SRV lookup of {query} timed out"),
                ))
            }
            Ok(Err(_)) => {
                return Err(Failure::new(
                    ProbeCode::DnsFailed,
                    format!("{query} has no SRV record"),
                ))
            }
            Ok(Ok(lookup)) => lookup,
        };
        let mut targets: Vec<(u16, u16, String, u16)> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => {
                    Some((srv.priority, srv.weight, srv.target.to_string(), srv.port))
                }
                _ => None,
            })
            .collect();
        targets.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let (_, _, target, port) = targets.into_iter().next().ok_or_else(|| {
            Failure::new(ProbeCode::DnsFailed, format!("{query} has no SRV record"))
        })?;
        let target = target.trim_end_matches('.').to_string();
        let detail = format!("SRV {query} → {target}:{port}");
        Ok(((target, port), detail))
    }
}

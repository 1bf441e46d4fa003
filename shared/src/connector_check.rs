//! The one way through a test: admit (the breaker) → open the secret → check the config → probe →
//! record. The test endpoint, the dry run and the scheduled sweep (`handlers/`) each call it,
//! asking only for the store traits they use; it imports no handler.

use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::ids::format_rfc3339;
use crate::kinds::{check_config, present_fields, sftp::pin_first_host_key, tunnel, Source};
use crate::limits::breaker::{Admission, Breaker, BreakerPolicy, CircuitState, Outcome};
use crate::limits::rate::RatePolicy;
use crate::masking::mask;
use crate::model::{Connector, ConnectorType, Outbox, PlainSecret, Status, TestResult, Trigger};
use crate::probe::report::{Diagnostics, Failure, ProbeCode, Recorder};
use crate::probe::{Probe, Prober};
use crate::shard_queue::ShardQueue;
use crate::store::{
    ConnectorReader, ConnectorWriter, StoreError, TunnelKeyRecord, TunnelKeys, WRITE_ATTEMPTS,
};
use crate::telemetry::scope::{self, ProbeSample, Step};
use crate::token::TokenVerifier;
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::config::SweepSettings;

/// Everything the test endpoint (and the scheduled sweep) needs, built once at init.
pub struct Tester<S, E, P = Prober> {
    pub store: S,
    pub sealer: E,
    pub prober: P,
    pub rate: RatePolicy,
    pub breaker: BreakerPolicy,
    pub verifier: Option<TokenVerifier>,
    pub sweep: SweepSettings,
    /// The sweep's shard queue (`SWEEP_QUEUE_URL`); without one a scheduled event sweeps every
    /// shard in its own invocation.
    pub fanout: Option<ShardQueue>,
}

/// The result of one probe of one connector, after it was recorded.
pub struct Tested {
    pub connector: Connector,
    pub diagnostics: Diagnostics,
    pub secret: Option<PlainSecret>,
    /// False when the connector changed during the probe, so the result was not stored.
    pub recorded: bool,
}

/// authConfig as an answer shows it: masked leaf by leaf straight from the secret, so no unmasked
/// copy is made.
pub fn masked(secret: Option<&PlainSecret>) -> Value {
    Value::Object(
        secret
            .map(|s| s.0.iter().map(|(k, v)| (k.clone(), mask(v))).collect())
            .unwrap_or_default(),
    )
}

/// Milliseconds since the epoch (the breaker's and the shard lease's clock).
pub fn now_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// One probe's outcome for the invocation's metrics (ProbeResult, ProbeLatency).
fn count_probe(kind: ConnectorType, d: &Diagnostics) {
    let sample = ProbeSample {
        kind: kind.as_str(),
        code: d.code.as_str(),
        depth: d.depth.map_or("none", |depth| depth.as_str()),
        latency_ms: d.latency_ms,
    };
    scope::note(|g| g.probes.push(sample));
}

fn circuit_open(retry_at_ms: u64, now: SystemTime) -> ApiError {
    let mut e = ApiError::new(
        503,
        "circuit_open",
        "the circuit breaker of this connector is open after repeated failures; retry later",
    );
    e.retry_after = Some(
        retry_at_ms
            .saturating_sub(now_ms(now))
            .div_ceil(1000)
            .max(1) as u32,
    );
    e
}

impl<S, E, P: Probe> Tester<S, E, P> {
    /// Runs one probe, timed as the request's `probe` step and counted for its metrics.
    pub async fn probe_counted(&self, source: Source<'_>) -> Diagnostics {
        let d = scope::timed(Step::Probe, self.prober.probe(source)).await;
        count_probe(source.kind, &d);
        d
    }
}

impl<S: TunnelKeys, E: SecretSealer, P> Tester<S, E, P> {
    /// The tenant's tunnel key, opened, when `config` has a tunnel (`known`: what the caller
    /// already read with the connector). Opened beside the connector's own secret, so a tunnelled
    /// test costs no extra KMS round trip.
    pub async fn open_with_tunnel_key(
        &self,
        tenant: &str,
        kind: ConnectorType,
        config: &Map<String, Value>,
        known: TenantKey,
        secret: impl std::future::Future<Output = Result<Option<PlainSecret>, ApiError>>,
    ) -> Result<(Option<PlainSecret>, Option<PlainSecret>), ApiError> {
        if !tunnel::wants_tenant_key(kind, config) {
            return Ok((secret.await?, None));
        }
        let record = match known {
            TenantKey::Read(record) => record,
            TenantKey::Unread => self.store.tunnel_key(tenant).await?,
        };
        let key = async {
            match &record {
                Some(r) => Ok::<_, ApiError>(Some(
                    self.sealer
                        .open(SecretContext::tunnel_key(tenant), &r.sealed)
                        .await?,
                )),
                None => Ok(None),
            }
        };
        let (secret, key) = tokio::join!(secret, key);
        Ok((secret?, key?))
    }
}

/// Puts a test result on the write: its id (also the event id), the result's fields, when it
/// last succeeded and when the status changed.
fn carry_result(next: &mut Connector, before: Status, d: &Diagnostics, at: &str, trigger: Trigger) {
    let result_id = crate::ids::new_result_id();
    let request_id = scope::request_id();
    next.last_result = Some(TestResult {
        at: at.to_string(),
        status: next.status,
        code: d.code.as_str().to_string(),
        depth: d.depth.map(|depth| depth.as_str().to_string()),
        latency_ms: d.latency_ms,
        message: d.message.clone(),
        trigger,
        request_id: request_id.clone(),
    });
    if d.code == ProbeCode::Ok {
        next.last_success_at = Some(at.to_string());
    }
    if next.status != before {
        next.status_changed_at = Some(at.to_string());
    }
    next.outbox = Some(Outbox {
        event_id: result_id.clone(),
        trigger,
        request_id,
    });
    next.result_id = Some(result_id);
}

/// The tenant's tunnel key as the caller has it: read with the connector, or not read yet.
pub enum TenantKey {
    Read(Option<TunnelKeyRecord>),
    Unread,
}

/// The PEM of an opened tunnel key.
pub fn tunnel_pem(key: Option<&PlainSecret>) -> Option<&str> {
    key.and_then(|k| k.0.get("privateKey"))
        .and_then(Value::as_str)
}

impl<S, E, P> Tester<S, E, P>
where
    S: ConnectorReader + ConnectorWriter + TunnelKeys,
    E: SecretSealer,
    P: Probe,
{
    /// Lets the probe through the breaker; an open circuit answers 503, and of concurrent callers
    /// at the end of an open period exactly one wins the trial (a conditional write).
    pub async fn admit(&self, current: Connector, now: SystemTime) -> Result<Connector, ApiError> {
        let breaker = current.breaker.unwrap_or_default();
        match self.breaker.admit(&breaker, now_ms(now)) {
            Admission::Allow => Ok(current),
            Admission::Reject { retry_at_ms } => Err(circuit_open(retry_at_ms, now)),
            Admission::Trial => {
                let trial = self.breaker.start_trial(&breaker, now_ms(now));
                let mut next = current.next_write();
                next.breaker = Some(trial);
                next.version += 1;
                match self.store.replace(&current, &next).await {
                    Ok(()) => Ok(next),
                    Err(StoreError::Conflict) => Err(circuit_open(trial.retry_at_ms, now)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Validates, probes and records one connector that the breaker admitted. Every type's
    /// probe logs in, so a stored secret is opened (one KMS Decrypt per credentialed connector),
    /// and with a tunnel the tenant's tunnel key beside it.
    pub async fn test(
        &self,
        current: Connector,
        key: TenantKey,
        trigger: Trigger,
    ) -> Result<Tested, ApiError> {
        let secret = async {
            match &current.auth_config {
                Some(sealed) => {
                    let ctx = SecretContext {
                        tenant_id: &current.tenant_id,
                        connector_id: &current.id,
                    };
                    Ok(Some(self.sealer.open(ctx, sealed).await?))
                }
                None => Ok(None),
            }
        };
        let (secret, tunnel_key) = self
            .open_with_tunnel_key(
                &current.tenant_id,
                current.kind,
                &current.config,
                key,
                secret,
            )
            .await?;
        let auth_fields = match &secret {
            Some(s) => present_fields(&s.0),
            None => current.auth_config_fields.clone(),
        };
        let problems = check_config(current.kind, &current.config, &auth_fields);
        let diagnostics = if problems.is_empty() {
            self.probe_counted(Source {
                kind: current.kind,
                tenant: &current.tenant_id,
                config: &current.config,
                auth_method: &current.auth_method,
                secret: secret.as_ref().map(|s| &s.0),
                tunnel_key: tunnel_pem(tunnel_key.as_ref()),
            })
            .await
        } else {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.problem))
                .collect();
            let d = Recorder::default().finish(Err(Failure::new(
                ProbeCode::InvalidConfig,
                format!("invalid config: {}", list.join("; ")),
            )));
            count_probe(current.kind, &d);
            d
        };
        let (connector, recorded) = self.record(current, &diagnostics, trigger).await?;
        Ok(Tested {
            connector,
            diagnostics,
            secret,
            recorded,
        })
    }

    /// Writes status, times and breaker, conditioned on the version read. When another write landed
    /// meanwhile, the result is applied to the fresh item, unless what was probed has changed.
    async fn record(
        &self,
        mut current: Connector,
        d: &Diagnostics,
        trigger: Trigger,
    ) -> Result<(Connector, bool), ApiError> {
        let outcome = match d.code {
            ProbeCode::Ok => Outcome::Success,
            code if !code.reached_network() => Outcome::NotCounted,
            _ => Outcome::Failure,
        };
        let probed = current.clone();
        for _ in 0..WRITE_ATTEMPTS {
            let now = SystemTime::now();
            let mut next = current.next_write();
            next.status = if d.code == ProbeCode::Ok {
                Status::Active
            } else {
                Status::Error
            };
            let at = format_rfc3339(now);
            next.last_tested_at = Some(at.clone());
            next.last_error = (d.code != ProbeCode::Ok).then(|| d.message.clone());
            // The write is the outbox: a new result id, the result, and (through the stream) its
            // history item and, when the status changed, its event.
            carry_result(&mut next, current.status, d, &at, trigger);
            // Trust on first use, as known_hosts: the first successful test pins the host key it
            // saw, in this same write; a stored pin is never replaced here.
            if let (ProbeCode::Ok, Some(seen)) = (d.code, &d.host_key) {
                pin_first_host_key(next.kind, &mut next.config, seen);
            }
            // The bastion's key once it accepted the login, whatever the target behind it did.
            if let Some(seen) = &d.tunnel_host_key {
                tunnel::pin_first_host_key(&mut next.config, seen);
            }
            next.breaker = Some(self.breaker.record(
                &current.breaker.unwrap_or_default(),
                outcome,
                now_ms(now),
            ))
            .filter(|b| *b != Breaker::default());
            next.updated_at = format_rfc3339(now);
            next.version = current.version + 1;
            next.schedule(Some(format_rfc3339(now + self.sweep.interval)));
            match self.store.replace(&current, &next).await {
                Ok(()) => {
                    // Newly opened only: a failed half-open trial re-opens a circuit already counted.
                    let was_closed = current
                        .breaker
                        .is_none_or(|b| b.state == CircuitState::Closed);
                    if was_closed && next.breaker.is_some_and(|b| b.state == CircuitState::Open) {
                        scope::note(|g| g.circuits_opened += 1);
                        tracing::warn!(
                            tenant = %next.tenant_id,
                            connector = %next.id,
                            r#type = next.kind.as_str(),
                            code = d.code.as_str(),
                            "circuit opened"
                        );
                    }
                    return Ok((next, true));
                }
                Err(StoreError::Conflict) => {
                    let Some(fresh) = self.store.get(&current.tenant_id, &current.id).await? else {
                        return Ok((probed, false));
                    };
                    // Our own write, whose answer was lost and whose retry met itself: done.
                    if fresh.result_id.is_some() && fresh.result_id == next.result_id {
                        return Ok((fresh, true));
                    }
                    // Switched off while it was probed: the user's choice stands.
                    if fresh.status == Status::Inactive && probed.status != Status::Inactive {
                        return Ok((fresh, false));
                    }
                    if fresh.kind != probed.kind
                        || fresh.config != probed.config
                        || fresh.auth_config != probed.auth_config
                    {
                        return Ok((fresh, false));
                    }
                    current = fresh;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((current, false))
    }
}

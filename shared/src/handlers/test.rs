//! POST /api/v1/connectors/test: rate limit → load → circuit breaker → validate → probe → record.

use super::{audited, respond};
use crate::audit::AuditEvent;
use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::http::{json, json_object};
use crate::identity::{caller, permit, WRITE_ROLES};
use crate::ids::format_rfc3339;
use crate::limits::breaker::{Admission, Breaker, BreakerPolicy, CircuitState, Outcome};
use crate::limits::rate::{RateDecision, RatePolicy};
use crate::masking::mask;
use crate::model::{Connector, ConnectorType, ConnectorView, PlainSecret, Status};
use crate::probe::report::{Diagnostics, Failure, ProbeCode, Recorder};
use crate::probe::target::probe_uses_secret;
use crate::probe::{Probe, Prober};
use crate::shard_queue::ShardQueue;
use crate::store::{
    ConnectorReader, ConnectorWriter, DueConnectors, RateBucket, ShardLeases, StoreError,
};
use crate::telemetry::scope::{self, ProbeSample, Step};
use crate::token::TokenVerifier;
use crate::validate::{check_config, has_api_key, is_api_key_field, requested_id};
use lambda_http::http::header::{HeaderName, HeaderValue};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The SFTP config field that pins the server's host key.
const HOST_KEY_PIN: &str = "hostKeyFingerprint";

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

/// The scheduled sweep's pace (read at init, with the rest of the settings).
pub use crate::config::SweepSettings;

/// `circuit` in the response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitView {
    pub state: CircuitState,
    pub consecutive_failures: u32,
    pub retry_at: Option<String>,
}

impl From<&Breaker> for CircuitView {
    fn from(b: &Breaker) -> Self {
        let retry_at = (b.state != CircuitState::Closed)
            .then(|| format_rfc3339(UNIX_EPOCH + Duration::from_millis(b.retry_at_ms)));
        Self {
            state: b.state,
            consecutive_failures: b.failures,
            retry_at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestBody<'a> {
    #[serde(flatten)]
    connector: ConnectorView<'a>,
    auth_config: Value,
    diagnostics: &'a Diagnostics,
    circuit: CircuitView,
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
pub(super) fn masked(secret: Option<&PlainSecret>) -> Value {
    Value::Object(
        secret
            .map(|s| s.0.iter().map(|(k, v)| (k.clone(), mask(v))).collect())
            .unwrap_or_default(),
    )
}

/// Milliseconds since the epoch (the breaker's and the shard lease's clock).
pub(super) fn now_ms(now: SystemTime) -> u64 {
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

impl<S, E, P> Tester<S, E, P>
where
    S: ConnectorReader + ConnectorWriter + RateBucket + DueConnectors + ShardLeases,
    E: SecretSealer,
    P: Probe,
{
    pub async fn handle(&self, req: Request) -> Response<Body> {
        audited(
            "test",
            crate::deadline::answer_by,
            req,
            async |req, audit| Ok(self.admit_and_run(req, audit).await),
        )
        .await
    }

    async fn admit_and_run(&self, req: &Request, audit: &mut AuditEvent) -> Response<Body> {
        let who = match caller(req, self.verifier.as_ref()).await {
            Ok(who) => who,
            Err(e) => return e.into_response(),
        };
        audit.identity(&who);
        if let Err(e) = permit(&who, WRITE_ROLES) {
            return e.into_response();
        }
        let now = SystemTime::now();
        let decision = match self.rate.admit(&self.store, &who.tenant_id, now).await {
            Ok(d) => d,
            Err(e) => return ApiError::from(e).into_response(),
        };
        let mut resp = if decision.allowed {
            respond(self.run(&who.tenant_id, req, now, audit).await)
        } else {
            let mut e = ApiError::new(
                429,
                "rate_limited",
                format!(
                    "at most {} tests per {} s per tenant (a burst of {}, then one every {} ms)",
                    self.rate.limit,
                    self.rate.window.as_secs(),
                    self.rate.limit,
                    self.rate.interval_us() / 1000
                ),
            );
            e.retry_after = Some(decision.retry_after().min(u64::from(u32::MAX)) as u32);
            scope::note(|g| g.rate_limited += 1);
            tracing::warn!(tenant = %who.tenant_id, "test rate limited");
            e.into_response()
        };
        self.rate_headers(&mut resp, &decision);
        resp
    }

    fn rate_headers(&self, resp: &mut Response<Body>, decision: &RateDecision) {
        let headers = resp.headers_mut();
        for (name, value) in [
            ("ratelimit-policy", self.rate.policy_header()),
            ("ratelimit", decision.header()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
    }

    async fn run(
        &self,
        tenant: &str,
        req: &Request,
        now: SystemTime,
        audit: &mut AuditEvent,
    ) -> Result<Response<Body>, ApiError> {
        let mut body = json_object(req)?;
        if super::dry_run::is_dry_run(&body) {
            audit.action("test_dry_run");
            return self.dry_run(tenant, body, audit).await;
        }
        let id = requested_id(body.remove("id"))?;
        audit.connector(&id);
        let current = self
            .store
            .get(tenant, &id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let current = self.admit(current, now).await?;
        // The answer shows authConfig masked, so it is decrypted even when the probe needs none.
        let tested = self.test(current, true).await?;
        let masked = masked(tested.secret.as_ref());
        let breaker = tested.connector.breaker.unwrap_or_default();
        let body = TestBody {
            connector: tested.connector.view(),
            auth_config: masked,
            diagnostics: &tested.diagnostics,
            circuit: CircuitView::from(&breaker),
        };
        tracing::info!(tenant = %tenant, connector = %id, code = ?tested.diagnostics.code, recorded = tested.recorded, "connector tested");
        Ok(json(200, &body))
    }

    /// Lets the probe through the breaker; an open circuit answers 503, and of concurrent callers
    /// at the end of an open period exactly one wins the trial (a conditional write).
    pub(super) async fn admit(
        &self,
        current: Connector,
        now: SystemTime,
    ) -> Result<Connector, ApiError> {
        let breaker = current.breaker.unwrap_or_default();
        match self.breaker.admit(&breaker, now_ms(now)) {
            Admission::Allow => Ok(current),
            Admission::Reject { retry_at_ms } => Err(circuit_open(retry_at_ms, now)),
            Admission::Trial => {
                let trial = self.breaker.start_trial(&breaker, now_ms(now));
                let mut next = current.clone();
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

    /// Validates, probes and records one connector that the breaker admitted. The secret is
    /// decrypted when the probe uses it, or when `show_secret` (the answer shows it masked).
    pub async fn test(&self, current: Connector, show_secret: bool) -> Result<Tested, ApiError> {
        let wanted = show_secret || probe_uses_secret(current.kind);
        let secret = match &current.auth_config {
            Some(sealed) if wanted => Some(
                self.sealer
                    .open(
                        SecretContext {
                            tenant_id: &current.tenant_id,
                            connector_id: &current.id,
                        },
                        sealed,
                    )
                    .await?,
            ),
            _ => None,
        };
        let api_key = match &secret {
            Some(s) => has_api_key(Some(&s.0)),
            None => current
                .auth_config_fields
                .iter()
                .any(|f| is_api_key_field(f)),
        };
        let problems = check_config(current.kind, &current.config, api_key);
        let diagnostics = if problems.is_empty() {
            self.probe_counted(
                &current.tenant_id,
                current.kind,
                &current.config,
                &current.auth_method,
                secret.as_ref().map(|s| &s.0),
            )
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
        let (connector, recorded) = self.record(current, &diagnostics).await?;
        Ok(Tested {
            connector,
            diagnostics,
            secret,
            recorded,
        })
    }

    /// Runs one probe, timed as the request's `probe` step and counted for its metrics.
    pub(super) async fn probe_counted(
        &self,
        tenant: &str,
        kind: ConnectorType,
        config: &Map<String, Value>,
        auth_method: &str,
        secret: Option<&Map<String, Value>>,
    ) -> Diagnostics {
        let d = scope::timed(
            Step::Probe,
            self.prober.probe(tenant, kind, config, auth_method, secret),
        )
        .await;
        count_probe(kind, &d);
        d
    }

    /// Writes status, times and breaker, conditioned on the version read. When another write landed
    /// meanwhile, the result is applied to the fresh item, unless what was probed has changed.
    async fn record(
        &self,
        mut current: Connector,
        d: &Diagnostics,
    ) -> Result<(Connector, bool), ApiError> {
        let outcome = match d.code {
            ProbeCode::Ok => Outcome::Success,
            code if !code.reached_network() => Outcome::NotCounted,
            _ => Outcome::Failure,
        };
        let probed = current.clone();
        for _ in 0..super::WRITE_ATTEMPTS {
            let now = SystemTime::now();
            let mut next = current.clone();
            next.status = if d.code == ProbeCode::Ok {
                Status::Active
            } else {
                Status::Error
            };
            next.last_tested_at = Some(format_rfc3339(now));
            next.last_error = (d.code != ProbeCode::Ok).then(|| d.message.clone());
            // Trust on first use, as known_hosts: the first successful test pins the host key it
            // saw, in this same write; a stored pin is never replaced here.
            if let (ProbeCode::Ok, ConnectorType::Sftp, Some(seen)) =
                (d.code, next.kind, &d.host_key)
            {
                next.config
                    .entry(HOST_KEY_PIN)
                    .or_insert_with(|| Value::String(seen.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{reply, request, tester, FakeProbe};
    use serde_json::json;
    use std::time::Duration;

    /// Stores a postgres connector of tenant acme through the create handler; its id.
    async fn stored<P: Probe>(
        t: &Tester<crate::store::MemoryStore, crate::testing::FakeSealer, P>,
    ) -> String {
        let b = json!({"name": "db", "type": "postgresql",
                       "config": {"host": "db.example.com", "port": 5432, "database": "app"},
                       "authConfig": {"username": "svc_user", "password": "unit-secret-1"}});
        let req = request("POST", "/api/v1/connectors", "acme", "admin", Some(b));
        let (_, view) = reply(super::super::create::handle(&t.store, &t.sealer, None, req).await);
        view["id"].as_str().unwrap().to_string()
    }

    fn test_call(body: Value) -> Request {
        request(
            "POST",
            "/api/v1/connectors/test",
            "acme",
            "editor",
            Some(body),
        )
    }

    #[tokio::test]
    async fn the_breaker_opens_then_admits_exactly_one_half_open_trial() {
        let breaker = BreakerPolicy {
            threshold: 2,
            base_open: Duration::from_millis(50),
            max_open: Duration::from_millis(50),
            trial_lease: Duration::from_secs(30),
        };
        let t = tester(FakeProbe::answering(ProbeCode::ConnectionRefused), breaker);
        let id = stored(&t).await;
        for _ in 0..2 {
            let (status, body) = reply(t.handle(test_call(json!({"id": id}))).await);
            assert_eq!(
                (status, body["status"].as_str()),
                (200, Some("error")),
                "{body}"
            );
        }
        let (status, body) = reply(t.handle(test_call(json!({"id": id}))).await);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("circuit_open"))
        );
        assert_eq!(t.prober.calls(), 2, "an open circuit probes nothing");
        tokio::time::sleep(Duration::from_millis(80)).await;
        // Two callers at the end of the open period: one trial, one refusal.
        *t.prober.code.lock().unwrap() = ProbeCode::Ok;
        let (a, b) = tokio::join!(
            t.handle(test_call(json!({"id": id}))),
            t.handle(test_call(json!({"id": id})))
        );
        let mut statuses = [reply(a).0, reply(b).0];
        statuses.sort();
        assert_eq!(statuses, [200, 503]);
        assert_eq!(t.prober.calls(), 3);
        let closed = t.store.get("acme", &id).await.unwrap().unwrap();
        assert_eq!(
            (closed.status, closed.breaker),
            (Status::Active, None),
            "the trial closed it"
        );
    }

    #[tokio::test]
    async fn a_result_is_recorded_on_the_fresh_item_after_a_concurrent_write() {
        let t = tester(
            FakeProbe::answering(ProbeCode::Ok),
            BreakerPolicy::default(),
        );
        let id = stored(&t).await;
        t.store.conflict_next(1);
        let (status, body) = reply(t.handle(test_call(json!({"id": id}))).await);
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("active")),
            "{body}"
        );
        let recorded = t.store.get("acme", &id).await.unwrap().unwrap();
        assert!(recorded.last_tested_at.is_some());
        assert_eq!(body["authConfig"]["password"], "un***-1", "shown masked");
    }

    #[tokio::test]
    async fn a_dry_run_keeps_the_stored_secret_only_for_the_stored_destination() {
        let t = tester(
            FakeProbe::answering(ProbeCode::Ok),
            BreakerPolicy::default(),
        );
        let id = stored(&t).await;
        let same = json!({"id": id, "config": {"host": "db.example.com", "port": 5432, "database": "other"}});
        let (status, body) = reply(t.handle(test_call(same)).await);
        assert_eq!(
            (status, body["dryRun"].as_bool()),
            (200, Some(true)),
            "{body}"
        );
        let moved = json!({"id": id, "config": {"host": "evil.example.com", "port": 5432, "database": "app"},
                           "authConfig": {"username": "sv***er", "password": "un***-1"}});
        let (_, body) = reply(t.handle(test_call(moved)).await);
        assert!(body["diagnostics"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("stored credentials were not used"));
        let given = t.prober.secrets.lock().unwrap().clone();
        assert_eq!(
            given[0].as_ref().unwrap()["password"],
            "unit-secret-1",
            "same destination"
        );
        assert!(
            given[1].as_ref().is_none_or(|s| s.is_empty()),
            "moved: nothing restored: {:?}",
            given[1]
        );
        // Nothing stored: not the status, not a breaker.
        let after = t.store.get("acme", &id).await.unwrap().unwrap();
        assert_eq!((after.version, after.status), (1, Status::Pending));
    }
}

//! POST /api/v1/connectors/test: rate limit → load → circuit breaker → validate → probe → record.

use super::{audited, respond};
use crate::audit::AuditEvent;
use crate::connector_check::{masked, TenantKey};
pub use crate::connector_check::{SweepSettings, Tested, Tester};
use crate::envelope::SecretSealer;
use crate::error::ApiError;
use crate::http::{json, json_object};
use crate::identity::{caller, permit, WRITE_ROLES};
use crate::ids::format_rfc3339;
use crate::limits::breaker::{Breaker, CircuitState};
use crate::limits::rate::RateDecision;
use crate::model::ConnectorView;
use crate::model::Trigger;
use crate::probe::report::Diagnostics;
use crate::probe::Probe;
use crate::store::{ConnectorReader, ConnectorWriter, RateBucket, TunnelKeys};
use crate::telemetry::scope::{self};
use crate::validate::requested_id;
use lambda_http::http::header::{HeaderName, HeaderValue};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

impl<S, E, P> Tester<S, E, P>
where
    S: ConnectorReader + ConnectorWriter + RateBucket + TunnelKeys,
    E: SecretSealer,
    P: Probe,
{
    pub async fn handle(&self, req: Request) -> Response<Body> {
        audited(
            "test",
            crate::deadline::answer_by,
            req,
            // Boxed: a test's future (the secret and tunnel key opened at once, the probe) is
            // large, and the caller's stack need not hold it.
            async |req, audit| Ok(Box::pin(self.admit_and_run(req, audit)).await),
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
        // The connector and the tenant's tunnel key in one read (the key is used only when the
        // connector has a tunnel).
        let (current, key) = self.store.connector_and_tunnel_key(tenant, &id).await?;
        let current = current.ok_or_else(ApiError::not_found)?;
        let current = self.admit(current, now).await?;
        let tested = self
            .test(current, TenantKey::Read(key), Trigger::Manual)
            .await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::breaker::BreakerPolicy;
    use crate::model::Status;
    use crate::probe::report::ProbeCode;
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
    async fn a_tunnelled_connector_is_probed_with_the_tenants_tunnel_key_and_others_without() {
        let t = tester(
            FakeProbe::answering(ProbeCode::Ok),
            BreakerPolicy::default(),
        );
        let plain = stored(&t).await;
        let b = json!({"name": "behind", "type": "postgresql",
                       "config": {"host": "10.0.0.5", "port": 5432, "database": "app",
                                  "tunnel": {"host": "bastion.example.com", "username": "tunnel"}},
                       "authConfig": {"username": "svc_user", "password": "unit-secret-1"}});
        let req = request("POST", "/api/v1/connectors", "acme", "admin", Some(b));
        let (status, view) =
            reply(super::super::create::handle(&t.store, &t.sealer, None, req).await);
        assert_eq!(status, 201, "{view}");
        let tunnelled = view["id"].as_str().unwrap().to_string();
        // No key yet: the probe is given none (and says how to get one).
        reply(t.handle(test_call(json!({"id": tunnelled}))).await);
        let get = request(
            "GET",
            super::super::tunnel_key::PATH,
            "acme",
            "viewer",
            None,
        );
        let (_, key) =
            reply(super::super::tunnel_key::handle(&t.store, &t.sealer, None, get).await);
        reply(t.handle(test_call(json!({"id": tunnelled}))).await);
        reply(t.handle(test_call(json!({"id": plain}))).await);
        let given = t.prober.tunnel_keys.lock().unwrap().clone();
        assert_eq!(given.len(), 3);
        assert_eq!(given[0], None);
        let pem = given[1].as_deref().expect("the opened key");
        let opened = russh::keys::decode_secret_key(pem, None).unwrap();
        assert_eq!(
            opened
                .public_key()
                .fingerprint(russh::keys::HashAlg::Sha256)
                .to_string(),
            key["fingerprint"]
        );
        assert_eq!(given[2], None, "no tunnel, no key opened");
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

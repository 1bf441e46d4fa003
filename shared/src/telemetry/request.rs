//! One invocation, observed: its request id on every log line (a span), on the response
//! (`X-Request-Id`, and `error.requestId` in an error body) and in the audit event; then one line
//! per request with its status, time per step (`timings`) and metrics (EMF).

use super::metrics::{Line, Measure, Unit, SERVICE};
use super::scope::{self, Gathered, ProbeSample, Step, SweepSample};
use lambda_http::http::header::{HeaderName, HeaderValue};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;
use tracing::Instrument;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The ids of one invocation: API Gateway's request id (what a user quotes; its
/// `apigw-requestid` header) and Lambda's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    /// API Gateway's `requestContext.requestId`, else Lambda's request id (a direct invocation).
    pub api: String,
    pub lambda: String,
}

impl RequestIds {
    pub fn of(req: &Request) -> Self {
        let lambda = req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let api = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
            _ => None,
        }
        .or_else(|| Some(lambda.clone()))
        .filter(|id| !id.is_empty())
        // Neither (a local runtime may give none): still an id to quote and search for.
        .unwrap_or_else(|| crate::ids::new_connector_id().replacen("conn_", "req_", 1));
        Self { api, lambda }
    }
}

/// Runs an API request's handler, observed (see the module doc).
pub async fn observed<F, Fut>(function: &'static str, req: Request, handler: F) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let ids = RequestIds::of(&req);
    let method = req.method().as_str().to_string();
    // Error level so a quieter RUST_LOG never drops the ids from the lines it keeps.
    let span =
        tracing::error_span!("request", apiRequestId = %ids.api, lambdaRequestId = %ids.lambda);
    let started = Instant::now();
    // On the heap: the handlers' futures are large, and nesting them here would double their
    // stack use (a debug build overflowed a test thread's 2 MiB).
    let handled = Box::pin(handler(req).instrument(span));
    let (mut resp, gathered) = scope::gather(ids.api.clone(), handled).await;
    tag_response(&mut resp, &ids.api);
    let status = resp.status().as_u16();
    let mut line = request_line(function, &ids, &gathered, started);
    line.set("method", method).set("status", status);
    count_request(&mut line, status_class(status));
    match gathered.probes.as_slice() {
        [one] => probe_metrics(
            &mut line,
            (one.kind, one.code, one.depth),
            &[one.latency_ms],
        ),
        more => emit_probe_groups(&ids, more),
    }
    line.emit();
    resp
}

/// Runs a non-HTTP invocation (scheduled sweep, shard messages), observed: its log lines carry
/// Lambda's request id; its metrics are the sweep's and its probes', grouped.
pub async fn observed_event<Fut>(function: &'static str, ids: RequestIds, work: Fut) -> Fut::Output
where
    Fut: Future,
{
    let span = tracing::error_span!("invocation", lambdaRequestId = %ids.lambda);
    let started = Instant::now();
    let (out, gathered) = scope::gather(ids.api.clone(), Box::pin(work.instrument(span))).await;
    emit_probe_groups(&ids, &gathered.probes);
    for sweep in &gathered.sweeps {
        sweep_line(&ids, sweep).emit();
    }
    let mut line = request_line(function, &ids, &gathered, started);
    line.set("event", true);
    line.emit();
    out
}

/// `X-Request-Id` on every response, `requestId` inside every error body.
pub fn tag_response(resp: &mut Response<Body>, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    if resp.status().as_u16() < 400 {
        return;
    }
    let Body::Text(text) = resp.body() else {
        return;
    };
    let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Some(Value::Object(error)) = body.get_mut("error") {
        error.insert("requestId".into(), json!(request_id));
        *resp.body_mut() = Body::Text(Value::Object(body).to_string());
    }
}

/// `Requests` (1) under {function, statusClass}; the line must already name its `function`.
pub fn count_request(line: &mut Line, status_class: &'static str) {
    line.set("statusClass", status_class).metrics(
        &[&["function", "statusClass"]],
        &[("Requests", Unit::Count, Measure::One(1.0))],
    );
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64 / 10.0).round() / 100.0
}

/// `timings` on a request's line: ms per step.
#[derive(Serialize)]
struct Timings {
    identity: f64,
    store: f64,
    kms: f64,
    probe: f64,
}

/// A line that names its invocation, so a search for either id finds it.
fn with_ids(ids: &RequestIds) -> Line {
    let mut line = Line::new();
    line.set("requestId", ids.api.as_str())
        .set("lambdaRequestId", ids.lambda.as_str());
    line
}

/// The line every invocation ends with: ids, caller, time per step, and what it counted.
fn request_line(function: &'static str, ids: &RequestIds, g: &Gathered, started: Instant) -> Line {
    let step = |s: Step| ms(g.timings[s as usize]);
    let timings = Timings {
        identity: step(Step::Identity),
        store: step(Step::Store),
        kms: step(Step::Kms),
        probe: step(Step::Probe),
    };
    let mut line = with_ids(ids);
    line.set("level", "INFO")
        .set("message", "request")
        .set("function", function)
        .set("durationMs", ms(started.elapsed()))
        .set("timings", timings);
    if let Some(tenant) = &g.tenant {
        line.set("tenant", tenant.as_str());
    }
    if g.rate_limited > 0 {
        line.metrics(
            &[&["function"]],
            &[(
                "RateLimited",
                Unit::Count,
                Measure::One(f64::from(g.rate_limited)),
            )],
        );
    }
    if g.circuits_opened > 0 {
        line.set("service", SERVICE).metrics(
            &[&["service"]],
            &[(
                "CircuitOpened",
                Unit::Count,
                Measure::One(f64::from(g.circuits_opened)),
            )],
        );
    }
    line
}

/// ProbeResult (count) and ProbeLatency (ms) of probes that share type, code and depth: by all
/// three, by code alone (alarms across types) and in total (`service`).
fn probe_metrics(line: &mut Line, (kind, code, depth): ProbeGroup, latencies: &[u64]) {
    line.set("type", kind)
        .set("code", code)
        .set("depth", depth)
        .set("service", SERVICE)
        .metrics(
            &[&["type", "code", "depth"], &["code"], &["service"]],
            &[
                (
                    "ProbeResult",
                    Unit::Count,
                    Measure::One(latencies.len() as f64),
                ),
                ("ProbeLatency", Unit::Milliseconds, Measure::Many(latencies)),
            ],
        );
}

/// What probes are grouped by: type, code, depth.
type ProbeGroup = (&'static str, &'static str, &'static str);

/// At most this many values per metric in one line (the EMF limit).
const VALUES_PER_LINE: usize = 100;

/// Lines for many probes (a sweep): one per type/code/depth group and 100 latencies.
fn emit_probe_groups(ids: &RequestIds, probes: &[ProbeSample]) {
    let mut groups: BTreeMap<ProbeGroup, Vec<u64>> = BTreeMap::new();
    for p in probes {
        groups
            .entry((p.kind, p.code, p.depth))
            .or_default()
            .push(p.latency_ms);
    }
    for (group, latencies) in groups {
        for chunk in latencies.chunks(VALUES_PER_LINE) {
            let mut line = with_ids(ids);
            probe_metrics(&mut line, group, chunk);
            line.emit();
        }
    }
}

fn sweep_line(ids: &RequestIds, s: &SweepSample) -> Line {
    let mut line = with_ids(ids);
    line.set("service", SERVICE).metrics(
        &[&["service"]],
        &[
            ("SweepProbed", Unit::Count, Measure::One(s.probed as f64)),
            ("SweepFailed", Unit::Count, Measure::One(s.failed as f64)),
            ("SweepSkipped", Unit::Count, Measure::One(s.skipped as f64)),
            (
                "SweepLagSeconds",
                Unit::Seconds,
                Measure::One(s.lag_seconds as f64),
            ),
        ],
    );
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emf::{self, total, Datum};
    use crate::telemetry::scope::{note, timed};
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Every metric line this test process writes.
    fn captured() -> &'static Mutex<Vec<String>> {
        crate::testing::metric_lines()
    }

    fn api_request(id: &str) -> Request {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.request_id = Some(id.to_string());
        Request::default().with_request_context(RequestContext::ApiGatewayV2(ctx))
    }

    fn probe(kind: &'static str, code: &'static str, depth: &'static str, ms: u64) -> ProbeSample {
        ProbeSample {
            kind,
            code,
            depth,
            latency_ms: ms,
        }
    }

    /// The checked metrics of the lines that name `request_id`, and those lines.
    fn lines_of(request_id: &str) -> (Vec<Datum>, Vec<Value>) {
        let lines: Vec<String> = captured().lock().unwrap().clone();
        let mut data = Vec::new();
        let mut mine = Vec::new();
        for l in lines {
            let v: Value = serde_json::from_str(&l).unwrap();
            if v["requestId"] == request_id {
                if emf::is_emf(&l) {
                    data.extend(emf::check(&l).unwrap_or_else(|e| panic!("{e}: {l}")));
                }
                mine.push(v);
            }
        }
        (data, mine)
    }

    #[tokio::test]
    async fn every_line_passes_the_emf_check_with_the_right_counts() {
        captured();
        let resp = observed("test", api_request("req-api-1"), |_| async {
            note(|g| {
                g.tenant = Some("acme".into());
                g.probes
                    .push(probe("postgresql", "auth_failed", "reachable", 40));
                g.circuits_opened += 1;
                g.rate_limited += 1;
            });
            timed(Step::Store, tokio::time::sleep(Duration::from_millis(3))).await;
            crate::error::ApiError::not_found().into_response()
        })
        .await;
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "req-api-1");
        let (data, lines) = lines_of("req-api-1");
        assert_eq!(lines.len(), 1, "one line per request");
        let dims = [("function", "test"), ("statusClass", "4xx")];
        assert_eq!(total(&data, "Requests", &dims), 1.0);
        assert_eq!(total(&data, "ProbeResult", &[("code", "auth_failed")]), 1.0);
        let full = [
            ("type", "postgresql"),
            ("code", "auth_failed"),
            ("depth", "reachable"),
        ];
        assert_eq!(total(&data, "ProbeLatency", &full), 40.0);
        assert_eq!(total(&data, "CircuitOpened", &[("service", SERVICE)]), 1.0);
        assert_eq!(total(&data, "RateLimited", &[("function", "test")]), 1.0);
        assert!(lines[0]["timings"]["store"].as_f64().unwrap() >= 3.0);
        assert_eq!(lines[0]["tenant"], "acme");
        assert!(data.iter().all(|d| !d.dimensions.contains_key("tenant")));

        let ids = RequestIds {
            api: "req-sweep-1".into(),
            lambda: "req-sweep-1".into(),
        };
        observed_event("test", ids, async {
            note(|g| {
                for ms in 0..150 {
                    g.probes.push(probe("postgresql", "ok", "authorized", ms));
                }
                g.probes.push(probe("kafka", "timeout", "none", 8000));
                g.sweeps.push(SweepSample {
                    probed: 151,
                    failed: 1,
                    skipped: 2,
                    lag_seconds: 30,
                });
            });
        })
        .await;
        let (data, lines) = lines_of("req-sweep-1");
        // 150 ok probes in lines of at most 100 latencies, one timeout line, the sweep's, the
        // invocation's own.
        assert_eq!(lines.len(), 5);
        assert_eq!(total(&data, "ProbeResult", &[("service", SERVICE)]), 151.0);
        let ok = [
            ("type", "postgresql"),
            ("code", "ok"),
            ("depth", "authorized"),
        ];
        assert_eq!(total(&data, "ProbeResult", &ok), 150.0);
        let latencies: usize = data
            .iter()
            .filter(|d| d.name == "ProbeLatency" && d.dimensions.contains_key("service"))
            .map(|d| d.values.len())
            .sum();
        assert_eq!(latencies, 151);
        assert_eq!(total(&data, "SweepProbed", &[("service", SERVICE)]), 151.0);
        assert_eq!(total(&data, "SweepFailed", &[("service", SERVICE)]), 1.0);
        assert_eq!(total(&data, "SweepSkipped", &[("service", SERVICE)]), 2.0);
        assert_eq!(
            total(&data, "SweepLagSeconds", &[("service", SERVICE)]),
            30.0
        );
        assert_eq!(
            total(&data, "Requests", &dims),
            0.0,
            "a sweep is no API request"
        );
    }

    #[test]
    fn an_error_body_carries_the_request_id_and_every_response_the_header() {
        let mut resp = crate::error::ApiError::not_found().into_response();
        tag_response(&mut resp, "abc-123");
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "abc-123");
        let Body::Text(t) = resp.body() else { panic!() };
        let v: Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["error"]["requestId"], "abc-123");
        assert_eq!(v["error"]["code"], "not_found");

        let mut ok = crate::http::json(200, &json!({"error": "not an error body"}));
        tag_response(&mut ok, "abc-123");
        let Body::Text(t) = ok.body() else { panic!() };
        assert!(!t.contains("abc-123"));
        assert_eq!(ok.headers()[REQUEST_ID_HEADER], "abc-123");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(201), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}

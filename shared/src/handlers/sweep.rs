//! The scheduled sweep: probes every due connector across tenants, through the same breaker and
//! recording as the test endpoint, with bounded concurrency, and stops starting probes when the
//! Lambda deadline is near.

use super::test::Tester;
use crate::deadline::{answer_by, within};
use crate::envelope::SecretSealer;
use crate::error::ApiError;
use crate::http::json;
use crate::ids::format_rfc3339;
use crate::model::{Connector, Status, DUE_SHARDS};
use crate::probe::report::ProbeCode;
use crate::store::{ConnectorReader, ConnectorWriter, DueConnectors, RateBucket};
use futures_util::stream::{self, StreamExt};
use futures_util::TryFutureExt;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub probed: usize,
    pub ok: usize,
    pub failed: usize,
    /// Due but not probed: open circuit, deleted or inactive meanwhile, or no time left.
    pub skipped: usize,
}

enum Swept {
    Ok,
    Failed,
    Skipped,
}

/// True for the events that start a sweep: an EventBridge scheduled event (the schedule in
/// template.yaml sends this shape as its input).
pub fn is_scheduled_event(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// Time kept in hand after the last probe starts (to record it and answer).
const MARGIN: Duration = Duration::from_secs(2);

impl<S, E> Tester<S, E>
where
    S: ConnectorReader + ConnectorWriter + RateBucket + DueConnectors,
    E: SecretSealer,
{
    /// The test function's entry point: HTTP requests go to the endpoint, scheduled events to the
    /// sweep, and any other direct invocation gets a 400.
    pub async fn handle_event(&self, req: Request) -> Response<Body> {
        if !matches!(req.request_context_ref(), Some(RequestContext::PassThrough)) {
            return self.handle(req).await;
        }
        let event: Value = match req.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        if !is_scheduled_event(&event) {
            return ApiError::new(
                400,
                "unsupported_event",
                "the test function takes API Gateway requests and scheduled events only",
            )
            .into_response();
        }
        // Lambda's deadline, or the configured timeout where a local runtime gives none.
        json(200, &self.sweep(answer_by(&req)).await)
    }

    /// Runs one sweep, answering by `by` (the invocation's deadline less a margin): no probe starts
    /// unless it can finish and be recorded by then, and calls that stall past it are abandoned.
    pub async fn sweep(&self, by: Instant) -> SweepSummary {
        let now = format_rfc3339(SystemTime::now());
        let now = now.as_str();
        let shards = (0..DUE_SHARDS).map(|n| format!("DUE#{n}"));
        let lists: Vec<_> = stream::iter(shards)
            .map(|shard| async move {
                within(by, self.store.due(&shard, now).map_err(ApiError::from)).await
            })
            .buffer_unordered(DUE_SHARDS as usize)
            .collect()
            .await;
        let mut due = Vec::new();
        for list in lists {
            match list {
                Ok(items) => due.extend(items),
                Err(e) => tracing::error!(error = e.code, "a due shard could not be read"),
            }
        }
        let budget = self.prober.settings().total_timeout + MARGIN;
        // Read in batches of 100; one write per probed connector follows.
        let connectors = match within(by, self.store.get_many(&due).map_err(ApiError::from)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = e.code, "due connectors could not be read");
                Vec::new()
            }
        };
        // Deleted since the index was read (or unreadable): nothing to probe.
        let gone = due.len().saturating_sub(connectors.len());
        let results: Vec<Swept> = stream::iter(connectors)
            .map(|connector| async move {
                if by.saturating_duration_since(Instant::now()) <= budget {
                    return Swept::Skipped;
                }
                // A stalled table or KMS leaves this connector due for the next run.
                within(by, async { Ok(self.sweep_one(connector).await) })
                    .await
                    .unwrap_or(Swept::Skipped)
            })
            .buffer_unordered(self.sweep.concurrency.max(1))
            .collect()
            .await;
        let mut summary = SweepSummary {
            skipped: gone,
            ..SweepSummary::default()
        };
        for r in results {
            match r {
                Swept::Ok => (summary.probed, summary.ok) = (summary.probed + 1, summary.ok + 1),
                Swept::Failed => {
                    (summary.probed, summary.failed) = (summary.probed + 1, summary.failed + 1)
                }
                Swept::Skipped => summary.skipped += 1,
            }
        }
        tracing::info!(
            probed = summary.probed,
            ok = summary.ok,
            failed = summary.failed,
            skipped = summary.skipped,
            "sweep finished"
        );
        summary
    }

    async fn sweep_one(&self, current: Connector) -> Swept {
        if current.status == Status::Inactive {
            return Swept::Skipped;
        }
        let (tenant, id) = (current.tenant_id.clone(), current.id.clone());
        let Ok(admitted) = self.admit(current, SystemTime::now()).await else {
            return Swept::Skipped;
        };
        match self.test(admitted, false).await {
            Ok(t) if t.diagnostics.code == ProbeCode::Ok => Swept::Ok,
            Ok(_) => Swept::Failed,
            Err(e) => {
                tracing::warn!(
                    tenant = %tenant,
                    connector = %id,
                    code = e.code,
                    "sweep could not test a connector"
                );
                Swept::Failed
            }
        }
    }
}

//! The scheduled sweep: probes every due connector across tenants, through the same breaker and
//! recording as the test endpoint, with bounded concurrency, and stops starting probes when the
//! Lambda deadline is near.
//!
//! With a shard queue (`SWEEP_QUEUE_URL`, as deployed) the scheduled event only fans out: one SQS
//! message per `due` shard, each consumed by its own invocation under its own deadline, so the
//! connectors probed per interval grow with Lambda concurrency. A shard invocation takes the
//! shard's lease first (a message delivered twice, or a run overlapping the last, probes nothing
//! twice); when its time runs out with connectors still due it queues the shard again. Without a
//! queue (`make local`, the tests) the scheduled event sweeps every shard in one invocation.

use crate::connector_check::{now_ms, TenantKey, Tester};
use crate::deadline::{answer_by, within};
use crate::envelope::SecretSealer;
use crate::error::ApiError;
use crate::http::json;
use crate::ids::{format_rfc3339, parse_rfc3339};
use crate::model::Trigger;
use crate::model::{shard_key, Connector, Status, DUE_SHARDS};
use crate::probe::report::ProbeCode;
use crate::probe::Probe;
use crate::shard_queue::ShardMessage;
use crate::store::{
    ConnectorReader, ConnectorWriter, DueConnectors, RateBucket, ShardLeases, TunnelKeys,
};
use crate::telemetry::request::{observed_event, RequestIds};
use crate::telemetry::scope::{self, SweepSample};
use futures_util::stream::{self, StreamExt};
use futures_util::TryFutureExt;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

/// What one sweep (or one shard of it) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    pub probed: usize,
    pub ok: usize,
    pub failed: usize,
    /// Due but not probed: open circuit, deleted or inactive meanwhile, or no time left.
    pub skipped: usize,
    /// Of `skipped`, those left for lack of time (a shard run queues its shard again for them).
    pub out_of_time: usize,
}

/// What a shard invocation did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRun {
    pub shard: u32,
    /// False when another invocation held the shard: nothing was read or probed.
    pub leased: bool,
    #[serde(flatten)]
    pub summary: SweepSummary,
    /// The shard was queued again for the connectors left for lack of time.
    pub continued: bool,
}

enum Swept {
    Ok,
    Failed,
    Skipped,
    OutOfTime,
}

/// True for the events that start a sweep: an EventBridge scheduled event (the schedule in
/// template.yaml sends this shape as its input).
pub fn is_scheduled_event(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// The records of an SQS event (`Records[].eventSource == "aws:sqs"`), or None for other events.
fn sqs_records(event: &Value) -> Option<&Vec<Value>> {
    crate::http::event_records(event, "aws:sqs")
}

/// Time kept in hand after the last probe starts (to record it and answer).
const MARGIN: Duration = Duration::from_secs(2);

impl<S, E, P> Tester<S, E, P>
where
    // RateBucket: an API request that reaches the test function goes to the endpoint.
    S: ConnectorReader + ConnectorWriter + RateBucket + DueConnectors + ShardLeases + TunnelKeys,
    E: SecretSealer,
    P: Probe,
{
    /// The test function's entry point: HTTP requests go to the endpoint, scheduled events to the
    /// sweep (or its fan-out), shard messages from SQS to a shard run, and any other direct
    /// invocation gets a 400.
    pub async fn handle_event(&self, req: Request) -> Response<Body> {
        if !matches!(req.request_context_ref(), Some(RequestContext::PassThrough)) {
            return self.handle(req).await;
        }
        observed_event("test", RequestIds::of(&req), self.handle_direct(req)).await
    }

    /// A direct invocation: scheduled event, shard messages, or anything else (400).
    async fn handle_direct(&self, req: Request) -> Response<Body> {
        let event: Value = match req.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        // Lambda's deadline, or the configured timeout where a local runtime gives none.
        let by = answer_by(&req);
        if is_scheduled_event(&event) {
            return match &self.fanout {
                Some(_) => json(
                    200,
                    &json!({"queued": self.fan_out(SystemTime::now()).await}),
                ),
                None => json(200, &self.sweep(by).await),
            };
        }
        if let Some(records) = sqs_records(&event) {
            let holder = req
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
                .filter(|id| !id.is_empty())
                .unwrap_or_else(crate::ids::new_connector_id);
            return json(200, &self.shard_messages(records, by, &holder).await);
        }
        ApiError::new(
            400,
            "unsupported_event",
            "the test function takes API Gateway requests, scheduled events and shard messages only",
        )
        .into_response()
    }

    /// Queues one message per `due` shard; the number queued (0 when the queue refused them: the
    /// connectors stay due for the next scheduled run).
    pub async fn fan_out(&self, now: SystemTime) -> usize {
        let Some(queue) = &self.fanout else {
            return 0;
        };
        let scheduled_at = format_rfc3339(now);
        let messages: Vec<ShardMessage> = (0..DUE_SHARDS)
            .map(|shard| ShardMessage {
                shard,
                scheduled_at: scheduled_at.clone(),
            })
            .collect();
        match queue.send(&messages).await {
            Ok(n) => {
                tracing::info!(queued = n, "sweep fanned out");
                n
            }
            Err(e) => {
                tracing::error!(error = %e, "sweep fan-out failed");
                0
            }
        }
    }

    /// Runs the shard of each SQS record; answers Lambda's partial-batch response, naming the
    /// records to deliver again (a body that is no shard message, or a shard whose table reads
    /// failed: SQS retries them, then moves them to the dead-letter queue).
    pub async fn shard_messages(&self, records: &[Value], by: Instant, holder: &str) -> Value {
        let mut failures = Vec::new();
        for record in records {
            let id = record
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or("");
            let message = record
                .get("body")
                .and_then(Value::as_str)
                .and_then(|b| serde_json::from_str::<ShardMessage>(b).ok())
                .filter(|m| m.shard < DUE_SHARDS);
            let run = match message {
                Some(m) => self.sweep_shard(m.shard, by, holder).await,
                None => {
                    tracing::error!(message_id = id, "an SQS record is not a shard message");
                    Err(())
                }
            };
            if run.is_err() {
                failures.push(json!({"itemIdentifier": id}));
            }
        }
        json!({"batchItemFailures": failures})
    }

    /// One shard: its lease, its due connectors, their probes, and a continuation message when time
    /// ran out first. Err when the lease or the shard could not be read (deliver the message again).
    pub async fn sweep_shard(&self, shard: u32, by: Instant, holder: &str) -> Result<ShardRun, ()> {
        let name = shard_key(shard);
        let now = SystemTime::now();
        let until = now_ms(now) + by.saturating_duration_since(Instant::now()).as_millis() as u64;
        let mut run = ShardRun {
            shard,
            leased: false,
            summary: SweepSummary::default(),
            continued: false,
        };
        match within(
            by,
            self.store
                .lease(&name, holder, now_ms(now), until)
                .map_err(ApiError::from),
        )
        .await
        {
            Ok(true) => run.leased = true,
            Ok(false) => {
                tracing::info!(shard, "shard is held by another invocation; nothing to do");
                return Ok(run);
            }
            Err(e) => {
                tracing::error!(shard, error = e.code, "the shard lease could not be taken");
                return Err(());
            }
        }
        let due = within(
            by,
            self.store
                .due(&name, &format_rfc3339(now))
                .map_err(ApiError::from),
        )
        .await
        .map_err(|e| tracing::error!(shard, error = e.code, "a due shard could not be read"))?;
        run.summary = self.probe_due(due, by).await;
        if run.summary.out_of_time > 0 {
            if let Some(queue) = &self.fanout {
                // Give the lease back first, so the continuation can take it at once.
                if let Err(e) = self.store.release(&name, holder).await {
                    // The continuation then waits until this run's lease expires (its deadline).
                    tracing::warn!(shard, error = ?e, "the shard lease could not be given back");
                }
                let message = ShardMessage {
                    shard,
                    scheduled_at: format_rfc3339(now),
                };
                run.continued = queue.send(&[message]).await.is_ok_and(|n| n == 1);
            }
        }
        tracing::info!(
            shard,
            probed = run.summary.probed,
            ok = run.summary.ok,
            failed = run.summary.failed,
            skipped = run.summary.skipped,
            out_of_time = run.summary.out_of_time,
            continued = run.continued,
            "shard swept"
        );
        Ok(run)
    }

    /// Runs one sweep of every shard in this invocation (no queue), answering by `by` (the
    /// invocation's deadline less a margin): no probe starts unless it can finish and be recorded
    /// by then, and calls that stall past it are abandoned.
    pub async fn sweep(&self, by: Instant) -> SweepSummary {
        let now = format_rfc3339(SystemTime::now());
        let now = now.as_str();
        let shards = (0..DUE_SHARDS).map(shard_key);
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
        let summary = self.probe_due(due, by).await;
        tracing::info!(
            probed = summary.probed,
            ok = summary.ok,
            failed = summary.failed,
            skipped = summary.skipped,
            "sweep finished"
        );
        summary
    }

    /// Reads the due connectors (100 per BatchGetItem) and probes them, `concurrency` at a time;
    /// one write per probed connector follows.
    async fn probe_due(&self, due: Vec<(String, String)>, by: Instant) -> SweepSummary {
        let budget = self.prober.budget() + MARGIN;
        let connectors = match within(by, self.store.get_many(&due).map_err(ApiError::from)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = e.code, "due connectors could not be read");
                Vec::new()
            }
        };
        // Deleted since the index was read (or unreadable): nothing to probe.
        let gone = due.len().saturating_sub(connectors.len());
        let lag_seconds = lag(&connectors, SystemTime::now());
        let results: Vec<Swept> = stream::iter(connectors)
            .map(|connector| async move {
                if by.saturating_duration_since(Instant::now()) <= budget {
                    return Swept::OutOfTime;
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
                Swept::OutOfTime => {
                    (summary.skipped, summary.out_of_time) =
                        (summary.skipped + 1, summary.out_of_time + 1)
                }
            }
        }
        let sample = SweepSample {
            probed: summary.probed,
            failed: summary.failed,
            skipped: summary.skipped,
            lag_seconds,
        };
        scope::note(|g| g.sweeps.push(sample));
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
        match Box::pin(self.test(admitted, TenantKey::Unread, Trigger::Scheduled)).await {
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

/// How far the sweep is behind: seconds from the oldest `nextProbeAt` among the due connectors
/// read to `now` (0 when none was due).
fn lag(due: &[Connector], now: SystemTime) -> u64 {
    due.iter()
        .filter_map(|c| c.next_probe_at.as_deref().and_then(parse_rfc3339))
        .min()
        .and_then(|oldest| now.duration_since(oldest).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_queue::ShardMessage;

    #[test]
    fn the_lag_is_the_oldest_due_connector_s_wait() {
        let now = SystemTime::now();
        let mut c: Connector = serde_json::from_value(json!({
            "id": "c1", "tenantId": "t", "name": "n", "type": "postgresql", "config": {},
            "authMethod": "none", "status": "active", "createdAt": "x", "updatedAt": "x",
            "version": 1
        }))
        .unwrap();
        assert_eq!(lag(&[], now), 0);
        c.next_probe_at = Some(format_rfc3339(now - Duration::from_secs(90)));
        let mut newer = c.clone();
        newer.next_probe_at = Some(format_rfc3339(now - Duration::from_secs(10)));
        assert_eq!(lag(&[newer.clone(), c], now), 90);
        newer.next_probe_at = Some(format_rfc3339(now + Duration::from_secs(10)));
        assert_eq!(lag(&[newer], now), 0);
    }

    #[test]
    fn only_sqs_records_are_shard_deliveries() {
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]});
        assert_eq!(sqs_records(&sqs).map(Vec::len), Some(1));
        let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
        assert!(sqs_records(&s3).is_none());
        let mixed = json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:sns"}]});
        assert!(sqs_records(&mixed).is_none());
        assert!(sqs_records(&json!({"Records": []})).is_none());
        assert!(!is_scheduled_event(&sqs));
    }

    #[test]
    fn a_shard_message_is_exactly_its_two_fields() {
        let m: ShardMessage =
            serde_json::from_str(r#"{"shard": 7, "scheduledAt": "2026-11-27T10:00:00Z"}"#).unwrap();
        assert_eq!(m.shard, 7);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"shard": 7, "scheduledAt": "2026-11-27T10:00:00Z"})
        );
        assert!(serde_json::from_str::<ShardMessage>(r#"{"shard": 7}"#).is_err());
        assert!(serde_json::from_str::<ShardMessage>(
            r#"{"shard": 7, "scheduledAt": "x", "extra": 1}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<ShardMessage>(r#"{"shard": -1, "scheduledAt": "x"}"#).is_err()
        );
    }
}

#[cfg(test)]
mod lease_tests {
    use crate::limits::breaker::BreakerPolicy;
    use crate::model::{due_shard, shard_key, Status};
    use crate::probe::report::ProbeCode;
    use crate::store::{ConnectorReader, ShardLeases};
    use crate::testing::{reply, request, tester, FakeProbe};
    use serde_json::json;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_shard_held_by_another_invocation_is_left_to_it_then_swept_once_free() {
        let t = tester(
            FakeProbe::answering(ProbeCode::Ok),
            BreakerPolicy::default(),
        );
        let b = json!({"name": "due", "type": "webhook", "config": {"url": "https://hooks.example.com/a"}});
        let req = request("POST", "/api/v1/connectors", "acme", "admin", Some(b));
        let (_, view) =
            reply(crate::handlers::create::handle(&t.store, &t.sealer, None, req).await);
        let id = view["id"].as_str().unwrap().to_string();
        let shard: u32 = due_shard(&id).trim_start_matches("DUE#").parse().unwrap();
        let now_ms = crate::ids::unix_now() * 1000;
        assert!(t
            .store
            .lease(&shard_key(shard), "other", now_ms, now_ms + 60_000)
            .await
            .unwrap());
        let by = Instant::now() + Duration::from_secs(5);
        let run = t.sweep_shard(shard, by, "me").await.unwrap();
        assert!(!run.leased);
        assert_eq!(
            (run.summary.probed, t.prober.calls()),
            (0, 0),
            "nothing read or probed"
        );
        t.store.release(&shard_key(shard), "other").await.unwrap();
        let run = t.sweep_shard(shard, by, "me").await.unwrap();
        assert!(run.leased);
        assert_eq!((run.summary.probed, t.prober.calls()), (1, 1));
        let swept = t.store.get("acme", &id).await.unwrap().unwrap();
        assert_eq!(swept.status, Status::Active);
        // Its next probe is an interval away: a second run finds nothing due.
        let run = t.sweep_shard(shard, by, "me").await.unwrap();
        assert_eq!(run.summary.probed, 0);
    }
}

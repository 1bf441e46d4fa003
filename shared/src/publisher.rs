//! The publisher: the connector's own write is the outbox. A test result is still one
//! conditional PutItem of the connector, carrying a new `resultId`, the result and an `outbox`
//! (the event id, the trigger, the request); the table's stream (NEW_AND_OLD_IMAGES, filtered to
//! writes with an `outbox`) brings those writes here. For each, in stream order:
//! - a new `resultId` → its history item (keyed by the result id: a retried batch rewrites it);
//! - a changed `status` → one "Connector Status Changed" event on `EVENT_BUS_NAME`, PutEvents
//!   retried a few times; if EventBridge still refuses it, the full event goes to the
//!   dead-letter queue (`EVENTS_DLQ_URL`).
//!
//! A record that fails both ends the batch there (`ReportBatchItemFailures`): Lambda retries from
//! it, so the records before it are not sent twice, and a retried event carries the same
//! `eventId` (consumers drop repeats). History and events lag the answer by the stream's delay.
//! Deployed as its own function (the test binary, its own role): no extra compile.

use crate::http::json as json_response;
use crate::model::{Connector, Status, Trigger};
use crate::store::{History, HistoryItem};
use crate::telemetry::metrics::{Line, Measure, Unit};
use crate::telemetry::request::{observed_event, RequestIds};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, UNIX_EPOCH};

/// EventBridge's `source` and `detail-type` of a status change.
pub const SOURCE: &str = "connectors-api";
pub const DETAIL_TYPE: &str = "Connector Status Changed";

/// PutEvents attempts per event before it is dead-lettered.
const ATTEMPTS: u32 = 3;

/// The most one record may take (a history write, the PutEvents attempts, the dead-letter send,
/// each bounded by the SDK's operation timeout).
const RECORD_BUDGET: Duration = Duration::from_secs(12);

/// A status change, as its event's `detail` carries it. Never a secret: ids, names, the status
/// and the (masked) message of the result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub event_id: String,
    pub tenant_id: String,
    pub connector_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub previous_status: Status,
    pub status: Status,
    pub code: Option<String>,
    pub message: String,
    pub at: String,
    pub trigger: Trigger,
    pub request_id: Option<String>,
}

/// Where events go: EventBridge for real; tests wrap it to fail on purpose.
pub trait EventBus: Send + Sync {
    /// Sends one event; false when it was not accepted (a failed entry or a failed call).
    fn put(&self, event: &StatusEvent) -> impl Future<Output = bool> + Send;
}

/// Where an event goes when EventBridge will not take it.
pub trait DeadLetters: Send + Sync {
    fn keep(&self, event: &StatusEvent) -> impl Future<Output = bool> + Send;
}

/// PutEvents on one bus.
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(sdk),
            bus: bus.into(),
        }
    }
}

impl EventBus for EventBridgeBus {
    async fn put(&self, event: &StatusEvent) -> bool {
        let Ok(detail) = serde_json::to_string(event) else {
            return false;
        };
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail)
            .event_bus_name(&self.bus)
            .build();
        match self.client.put_events().entries(entry).send().await {
            Ok(out) if out.failed_entry_count() == 0 => true,
            Ok(out) => {
                let code = out.entries().first().and_then(|e| e.error_code());
                tracing::warn!(event_id = %event.event_id, code, "EventBridge refused the event");
                false
            }
            Err(e) => {
                tracing::warn!(event_id = %event.event_id, error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e), "PutEvents failed");
                false
            }
        }
    }
}

/// The dead-letter queue: the whole event, as the bus would have received it.
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsDeadLetters {
    pub fn from_sdk(sdk: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            url: url.into(),
        }
    }
}

impl DeadLetters for SqsDeadLetters {
    async fn keep(&self, event: &StatusEvent) -> bool {
        let body = json!({"source": SOURCE, "detail-type": DETAIL_TYPE, "detail": event});
        let sent = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body.to_string())
            .send()
            .await;
        if let Err(e) = &sent {
            tracing::error!(event_id = %event.event_id, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "the event could not be dead-lettered");
        }
        sent.is_ok()
    }
}

/// Turns stream records into history items and events.
pub struct Publisher<S, B, D> {
    pub store: S,
    pub bus: B,
    pub dead_letters: Option<D>,
    /// How long history items live (`HISTORY_DAYS`): their TTL.
    pub history: Duration,
}

/// The records of a DynamoDB stream batch, if the invocation is one: a direct invocation only (an
/// API Gateway request whose body looks like a batch is a request, never a batch).
pub fn stream_batch(req: &Request) -> Option<Vec<Value>> {
    if !matches!(req.request_context_ref(), Some(RequestContext::PassThrough)) {
        return None;
    }
    let Body::Text(body) = req.body() else {
        return None;
    };
    let event: Value = serde_json::from_str(body).ok()?;
    stream_records(&event).cloned()
}

/// The records of a DynamoDB stream batch, if `event` is one.
pub fn stream_records(event: &Value) -> Option<&Vec<Value>> {
    crate::http::event_records(event, "aws:dynamodb")
}

impl<S: History, B: EventBus, D: DeadLetters> Publisher<S, B, D> {
    /// A stream batch invocation, observed (request id, closing log line) like the others.
    pub async fn respond(&self, req: &Request, records: &[Value]) -> Response<Body> {
        let ids = RequestIds::of(req);
        observed_event("publish", ids, async {
            json_response(200, &self.handle(records).await)
        })
        .await
    }

    /// One stream batch; `{"batchItemFailures": [...]}` names the first record that failed.
    pub async fn handle(&self, records: &[Value]) -> Value {
        self.handle_by(
            records,
            std::time::Instant::now() + Duration::from_secs(3600),
        )
        .await
    }

    /// As `handle`, starting no record that might not finish before `by` (the invocation's
    /// deadline): that one and the rest are left for Lambda to retry, so a stalled dependency
    /// ends in a partial batch rather than a timeout that loses the answer.
    pub async fn handle_by(&self, records: &[Value], by: std::time::Instant) -> Value {
        for record in records {
            let late = by.saturating_duration_since(std::time::Instant::now()) < RECORD_BUDGET;
            if late || self.record(record).await.is_err() {
                let seq = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("");
                return json!({"batchItemFailures": [{"itemIdentifier": seq}]});
            }
        }
        json!({"batchItemFailures": []})
    }

    async fn record(&self, record: &Value) -> Result<(), ()> {
        let images = &record["dynamodb"];
        let (Some(new), old) = (
            connector(&images["NewImage"]),
            connector(&images["OldImage"]),
        ) else {
            return Ok(()); // not a connector write (or a delete): nothing to publish
        };
        let Some(outbox) = &new.outbox else {
            return Ok(());
        };
        // Only what the table could hold: the item's own partition, ids we issue.
        let pk = images["NewImage"]["pk"]["S"].as_str().unwrap_or("");
        let sound = crate::ids::is_tenant_id(&new.tenant_id)
            && pk == format!("TENANT#{}", new.tenant_id)
            && crate::ids::is_connector_id(&new.id)
            && new
                .result_id
                .as_deref()
                .is_none_or(crate::ids::is_result_id);
        if !sound {
            tracing::error!(event_id = %outbox.event_id, "a stream record that the table could not hold: skipped");
            return Ok(());
        }
        if let (Some(result_id), Some(result)) = (&new.result_id, &new.last_result) {
            let fresh = old.as_ref().is_none_or(|o| o.result_id != new.result_id);
            if fresh {
                let item = HistoryItem {
                    result_id: result_id.clone(),
                    connector_id: new.id.clone(),
                    result: result.clone(),
                    expires_at: expiry(result_id, self.history),
                };
                if let Err(e) = self.store.put_result(&new.tenant_id, &item).await {
                    tracing::error!(error = ?e, connector = %new.id, "history item not written");
                    return Err(());
                }
            }
        }
        let Some(old) = old.filter(|o| o.status != new.status) else {
            return Ok(());
        };
        let (code, message, at) = match (&new.last_result, outbox.trigger) {
            (Some(r), Trigger::Manual | Trigger::Scheduled) => {
                (Some(r.code.clone()), r.message.clone(), r.at.clone())
            }
            _ => (None, change_message(new.status), new.updated_at.clone()),
        };
        let event = StatusEvent {
            event_id: outbox.event_id.clone(),
            tenant_id: new.tenant_id.clone(),
            connector_id: new.id.clone(),
            name: new.name.clone(),
            kind: new.kind.as_str().to_string(),
            previous_status: old.status,
            status: new.status,
            code,
            message,
            at,
            trigger: outbox.trigger,
            request_id: outbox.request_id.clone(),
        };
        self.publish(&event).await
    }

    /// PutEvents, retried; then the dead-letter queue.
    async fn publish(&self, event: &StatusEvent) -> Result<(), ()> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            if self.bus.put(event).await {
                changed_metric(event);
                tracing::info!(event_id = %event.event_id, connector = %event.connector_id, from = ?event.previous_status, to = ?event.status, "status change published");
                return Ok(());
            }
        }
        match &self.dead_letters {
            Some(dlq) if dlq.keep(event).await => {
                tracing::error!(event_id = %event.event_id, "status change dead-lettered");
                Ok(())
            }
            _ => Err(()),
        }
    }
}

/// What an update's change says (no test result goes with it).
fn change_message(status: Status) -> String {
    match status {
        Status::Pending => "the configuration changed; pending until the next test".into(),
        Status::Inactive => "switched off by a user".into(),
        Status::Active => "switched on by a user".into(),
        Status::Error => "set to error".into(),
    }
}

/// `StatusChanged` by `from` and `to`: once per event published.
fn changed_metric(event: &StatusEvent) {
    let name = |s: Status| match s {
        Status::Pending => "pending",
        Status::Active => "active",
        Status::Error => "error",
        Status::Inactive => "inactive",
    };
    let mut line = Line::new();
    line.set("service", "connectors-api")
        .set("from", name(event.previous_status))
        .set("to", name(event.status))
        .set("eventId", &event.event_id)
        .metrics(
            &[&["service", "from", "to"]],
            &[("StatusChanged", Unit::Count, Measure::One(1.0))],
        );
    line.emit();
}

/// Epoch seconds `history` after the result was made (its id's time, never later than now).
fn expiry(result_id: &str, history: Duration) -> u64 {
    let now = std::time::SystemTime::now();
    let made = ulid::Ulid::from_string(result_id)
        .map(|u| u.datetime())
        .unwrap_or(now)
        .min(now);
    made.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + history.as_secs()
}

/// A stream image (DynamoDB's JSON) as a connector, if it is one.
fn connector(image: &Value) -> Option<Connector> {
    let item = image.as_object()?;
    let sk = item.get("sk")?.get("S")?.as_str()?;
    if !sk.starts_with("CONNECTOR#") {
        return None;
    }
    let attrs: HashMap<String, AttributeValue> = item
        .iter()
        .map(|(k, v)| Some((k.clone(), attribute(v)?)))
        .collect::<Option<_>>()?;
    serde_dynamo::from_item(attrs)
        .map_err(|e| tracing::error!(error = %e, "a stream image is not a connector"))
        .ok()
}

/// One attribute of DynamoDB's JSON (`{"S": "…"}`, `{"M": {…}}`, …).
fn attribute(v: &Value) -> Option<AttributeValue> {
    let (tag, inner) = v.as_object()?.iter().next()?;
    let b64 = |s: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str()?)
            .ok()
            .map(Blob::new)
    };
    let strings = |s: &Value| -> Option<Vec<String>> {
        s.as_array()?
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    Some(match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_string()),
        "N" => AttributeValue::N(inner.as_str()?.to_string()),
        "B" => AttributeValue::B(b64(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(b64).collect::<Option<_>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), attribute(v)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::Mutex;

    /// A bus that accepts (or refuses) and remembers what it was given.
    #[derive(Default)]
    struct Recording {
        refuse: bool,
        got: Mutex<Vec<StatusEvent>>,
    }

    impl EventBus for Recording {
        async fn put(&self, event: &StatusEvent) -> bool {
            self.got.lock().unwrap().push(event.clone());
            !self.refuse
        }
    }

    impl DeadLetters for Recording {
        async fn keep(&self, event: &StatusEvent) -> bool {
            self.got.lock().unwrap().push(event.clone());
            !self.refuse
        }
    }

    fn sample() -> Vec<Value> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/stream-batch.json"
        ))
        .unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        stream_records(&event).unwrap().clone()
    }

    fn publisher(
        bus: Recording,
        dlq: Option<Recording>,
    ) -> Publisher<MemoryStore, Recording, Recording> {
        Publisher {
            store: MemoryStore::default(),
            bus,
            dead_letters: dlq,
            history: Duration::from_secs(86_400),
        }
    }

    #[tokio::test]
    async fn a_result_write_gives_its_history_item_and_a_status_change_one_event() {
        let p = publisher(Recording::default(), None);
        let records = sample();
        assert_eq!(p.handle(&records).await, json!({"batchItemFailures": []}));
        assert_eq!(
            p.handle(&records).await,
            json!({"batchItemFailures": []}),
            "a redelivery"
        );
        let items = p
            .store
            .results("acme", "conn_01JDX6B3N0Q4Z8M7K2V5T9R1SA", None, "0", 10)
            .await
            .unwrap();
        assert_eq!(items.len(), 1, "the redelivery rewrote the same item");
        assert_eq!(items[0].result.code, "ok");
        let got = p.bus.got.lock().unwrap().clone();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], got[1], "the same event, the same id");
        let e = &got[0];
        assert_eq!(
            (e.previous_status, e.status, e.trigger),
            (Status::Pending, Status::Active, Trigger::Manual)
        );
        assert_eq!(e.event_id, "01JDX6F2M8K3N5P7Q9R1S3T5V7");
        assert_eq!(e.code.as_deref(), Some("ok"));
        let detail = serde_json::to_value(e).unwrap();
        assert_eq!(detail["type"], "postgresql");
        assert!(detail.get("config").is_none() && detail.get("authConfig").is_none());
    }

    #[tokio::test]
    async fn only_a_direct_invocation_is_a_batch_and_only_what_the_table_could_hold_is_taken() {
        let body = json!({"Records": sample()});
        let api = crate::testing::request(
            "POST",
            "/api/v1/connectors/test",
            "acme",
            "editor",
            Some(body.clone()),
        );
        assert!(
            stream_batch(&api).is_none(),
            "an API request is never a batch"
        );
        let direct = lambda_http::request::from_str(&body.to_string()).unwrap();
        assert_eq!(stream_batch(&direct).map(|r| r.len()), Some(1));
        // Another tenant's name in an image of this partition, or an id we never issue: skipped.
        for (field, value) in [
            ("tenantId", "other"),
            ("id", "conn_x#RESULT"),
            ("resultId", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ#"),
        ] {
            let mut forged = sample();
            forged[0]["dynamodb"]["NewImage"][field] = json!({"S": value});
            let p = publisher(Recording::default(), None);
            assert_eq!(p.handle(&forged).await, json!({"batchItemFailures": []}));
            assert!(p.bus.got.lock().unwrap().is_empty(), "{field}");
            for tenant in ["acme", "other"] {
                assert!(p
                    .store
                    .results(tenant, "conn_01JDX6B3N0Q4Z8M7K2V5T9R1SA", None, "0", 10)
                    .await
                    .unwrap()
                    .is_empty());
            }
        }
        // Expiry follows the result id's time, never a time the record claims.
        let mut future = sample();
        future[0]["dynamodb"]["NewImage"]["lastResult"]["M"]["at"] =
            json!({"S": "9999-01-01T00:00:00.000Z"});
        let p = publisher(Recording::default(), None);
        p.handle(&future).await;
        let item = &p
            .store
            .results("acme", "conn_01JDX6B3N0Q4Z8M7K2V5T9R1SA", None, "0", 1)
            .await
            .unwrap()[0];
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(item.expires_at <= now + 86_400, "{}", item.expires_at);
    }

    #[tokio::test]
    async fn no_outbox_no_change_and_a_refused_event_is_dead_lettered_or_retried() {
        // The same write without a status change: a history item, no event.
        let mut same = sample();
        same[0]["dynamodb"]["OldImage"]["status"] = json!({"S": "active"});
        let p = publisher(Recording::default(), None);
        p.handle(&same).await;
        assert!(p.bus.got.lock().unwrap().is_empty());
        // A write without an outbox (a rename): nothing at all.
        let mut plain = sample();
        plain[0]["dynamodb"]["NewImage"]
            .as_object_mut()
            .unwrap()
            .remove("outbox");
        let p = publisher(Recording::default(), None);
        p.handle(&plain).await;
        assert!(p.bus.got.lock().unwrap().is_empty());
        assert!(p
            .store
            .results("acme", "conn_01JDX6B3N0Q4Z8M7K2V5T9R1SA", None, "0", 10)
            .await
            .unwrap()
            .is_empty());
        // EventBridge refusing: three tries, then the dead-letter queue keeps the whole event.
        let refusing = Recording {
            refuse: true,
            ..Recording::default()
        };
        let p = publisher(refusing, Some(Recording::default()));
        assert_eq!(p.handle(&sample()).await, json!({"batchItemFailures": []}));
        assert_eq!(p.bus.got.lock().unwrap().len(), ATTEMPTS as usize);
        assert_eq!(
            p.dead_letters.as_ref().unwrap().got.lock().unwrap().len(),
            1
        );
        // And with no dead-letter queue, the record is reported for Lambda to retry.
        let refusing = Recording {
            refuse: true,
            ..Recording::default()
        };
        let p = publisher(refusing, None);
        assert_eq!(
            p.handle(&sample()).await,
            json!({"batchItemFailures": [{"itemIdentifier": "111100000000001234567890"}]})
        );
    }
}

//! History and status-change events against the emulator: the table's own stream (read by
//! local/stream_reader.py, as `make local` reads it), the real publisher, EventBridge delivering
//! to an SQS queue through a rule, and the dead-letter queue.

use crate::support::listeners::{listen, Peer};
use crate::support::{
    endpoint, probe_settings, stack, test_through, tester_probing_with, Call, Reply, Tenant,
    HISTORY, STREAM_TABLE,
};
use serde_json::{json, Value};
use shared::envelope::KmsEnvelope;
use shared::handlers::test::Tester;
use shared::publisher::{EventBridgeBus, EventBus, Publisher, SqsDeadLetters, StatusEvent};
use shared::store::{DynamoStore, History, HistoryItem};
use std::sync::Mutex;
use std::time::Duration;

/// The table's stream records of these connectors so far, as one Lambda event's records.
fn stream_records(ids: &[&str]) -> Vec<Value> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new(format!("{root}/.venv/bin/python"))
        .args([
            &format!("{root}/local/stream_reader.py"),
            &endpoint(),
            STREAM_TABLE,
            "--once",
        ])
        .output()
        .expect("the stream reader runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: Value = serde_json::from_slice(&out.stdout).unwrap();
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| ids.contains(&r["dynamodb"]["NewImage"]["id"]["S"].as_str().unwrap_or("")))
        .cloned()
        .collect()
}

/// A queue that receives this tenant's status-change events from the default bus, and a
/// dead-letter queue of the test's own.
async fn queues(tenant: &str) -> (String, String) {
    let st = stack().await;
    let sqs = aws_sdk_sqs::Client::new(&st.sdk);
    let events = aws_sdk_eventbridge::Client::new(&st.sdk);
    let url = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let queue = url(format!("events-{tenant}")).await;
    let dlq = url(format!("dead-{tenant}")).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let pattern = json!({"source": ["connectors-api"], "detail-type": ["Connector Status Changed"],
                         "detail": {"tenantId": [tenant]}});
    events
        .put_rule()
        .name(format!("changes-{tenant}"))
        .event_pattern(pattern.to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(format!("changes-{tenant}"))
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (queue, dlq)
}

/// Every message body on `queue` now.
async fn drain(queue: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&stack().await.sdk);
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// A bus that refuses the first `refuse` events it is given, then sends to EventBridge.
struct Flaky {
    real: EventBridgeBus,
    refuse: Mutex<usize>,
    seen: Mutex<Vec<String>>,
}

impl EventBus for Flaky {
    async fn put(&self, event: &StatusEvent) -> bool {
        self.seen.lock().unwrap().push(event.event_id.clone());
        {
            let mut left = self.refuse.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return false;
            }
        }
        self.real.put(event).await
    }
}

/// The handlers and a tester on the stream table.
struct OnStream {
    store: DynamoStore,
    tester: Tester<DynamoStore, KmsEnvelope>,
}

async fn on_stream() -> OnStream {
    let store = DynamoStore::from_sdk(&stack().await.sdk, STREAM_TABLE);
    let mut tester = tester_probing_with(probe_settings()).await;
    tester.store = store.clone();
    OnStream { store, tester }
}

impl OnStream {
    async fn send(&self, call: Call) -> Reply {
        call.send_to(&self.store, &self.tester).await
    }

    async fn create_id(&self, t: &Tenant, body: Value) -> String {
        let r = self
            .send(
                Call::new("POST", "/api/v1/connectors")
                    .bearer(&t.token)
                    .json(body),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.raw);
        r.body["id"].as_str().unwrap().to_string()
    }

    async fn update(&self, t: &Tenant, body: Value) -> Reply {
        self.send(
            Call::new("PUT", "/api/v1/connectors")
                .bearer(&t.token)
                .json(body),
        )
        .await
    }

    async fn test(&self, t: &Tenant, id: &str) -> Reply {
        test_through(&self.tester, t, id).await
    }

    async fn history(&self, t: &Tenant, id: &str, query: &str) -> Reply {
        let mut call = Call::new("GET", &format!("/api/v1/connectors/{id}/tests"))
            .path_id(id)
            .bearer(&t.with_role("viewer"));
        for pair in query
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap();
            call = call.query(k, v);
        }
        self.send(call).await
    }
}

async fn publisher<B: EventBus>(bus: B, dlq: &str) -> Publisher<DynamoStore, B, SqsDeadLetters> {
    let st = stack().await;
    Publisher {
        store: DynamoStore::from_sdk(&st.sdk, STREAM_TABLE),
        bus,
        dead_letters: Some(SqsDeadLetters::from_sdk(&st.sdk, dlq)),
        history: HISTORY,
    }
}

async fn flaky(refuse: usize) -> Flaky {
    Flaky {
        real: EventBridgeBus::from_sdk(&stack().await.sdk, "default"),
        refuse: Mutex::new(refuse),
        seen: Mutex::new(Vec::new()),
    }
}

fn transitions(events: &[Value]) -> Vec<(String, String, String)> {
    let mut t: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let d = &e["detail"];
            (
                d["previousStatus"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["trigger"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn history_newest_first_paged_isolated_without_dry_runs_and_expiry_honoured() {
    let on = on_stream().await;
    let t = Tenant::new("hist");
    let (_, dlq) = queues(&t.id).await;
    let body = json!({"name": "closed", "type": "postgresql",
                      "config": {"host": "127.0.0.1", "port": 1, "database": "d"},
                      "authConfig": {"username": "u", "password": "history-secret-1"}});
    let id = on.create_id(&t, body.clone()).await;
    for _ in 0..3 {
        assert_eq!(on.test(&t, &id).await.status, 200);
    }
    // A dry run of the stored connector's change writes nothing.
    let dry = Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(json!({"id": id, "config": {"host": "127.0.0.1", "port": 2, "database": "d"}}))
        .event();
    let dry = Reply::from(
        on.tester
            .handle(lambda_http::request::from_str(&dry.to_string()).unwrap())
            .await,
    );
    assert_eq!(dry.body["dryRun"], true, "{}", dry.raw);
    let records = stream_records(&[&id]);
    assert_eq!(records.len(), 3, "three result writes passed the filter");
    let p = publisher(flaky(0).await, &dlq).await;
    assert_eq!(p.handle(&records).await, json!({"batchItemFailures": []}));
    // Redelivered (a retried batch): the same items, nothing more.
    assert_eq!(p.handle(&records).await, json!({"batchItemFailures": []}));
    let all = on.history(&t, &id, "").await;
    assert_eq!(all.status, 200, "{}", all.raw);
    let data = all.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{}", all.raw);
    let ids: Vec<&str> = data
        .iter()
        .map(|r| r["resultId"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
    for r in data {
        assert_eq!(
            (
                r["code"].as_str(),
                r["trigger"].as_str(),
                r["status"].as_str()
            ),
            (Some("connection_refused"), Some("manual"), Some("error"))
        );
        assert!(
            r["at"].is_string() && r["latencyMs"].is_u64() && r["requestId"].is_string(),
            "{r}"
        );
    }
    assert!(!all.raw.contains("history-secret-1"));
    // The connector row points at the newest result.
    let row = on
        .send(
            Call::new("GET", &format!("/api/v1/connectors/{id}"))
                .path_id(&id)
                .bearer(&t.token),
        )
        .await;
    assert_eq!(
        row.body["statusChangedAt"].as_str(),
        data[2]["at"].as_str(),
        "{}",
        row.raw
    );
    let page = on.history(&t, &id, "?limit=2").await;
    assert_eq!(
        (
            page.body["data"].as_array().unwrap().len(),
            page.body["hasMore"].as_bool()
        ),
        (2, Some(true))
    );
    let cursor = page.body["nextCursor"].as_str().unwrap();
    let rest = on
        .history(&t, &id, &format!("?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest.body["data"][0]["resultId"].as_str(), Some(ids[2]));
    assert_eq!(
        (
            rest.body["hasMore"].as_bool(),
            rest.body["nextCursor"].is_null()
        ),
        (Some(false), true)
    );
    // Expiry: a result older than HISTORY_DAYS that TTL has not deleted is not read.
    let old =
        ulid::Ulid::from_datetime(std::time::SystemTime::now() - Duration::from_secs(40 * 86_400))
            .to_string();
    let mut stale: HistoryItem = serde_json::from_value(json!({
        "resultId": old, "connectorId": id, "at": "2026-10-01T00:00:00.000Z", "status": "active",
        "code": "ok", "latencyMs": 1, "message": "old", "trigger": "scheduled", "expiresAt": 0}))
    .unwrap();
    stale.connector_id = id.clone();
    on.store.put_result(&t.id, &stale).await.unwrap();
    assert_eq!(
        on.history(&t, &id, "").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Another tenant, an unknown connector, and a deleted one: 404.
    let other = Tenant::new("hist2");
    assert_eq!(on.history(&other, &id, "").await.status, 404);
    assert_eq!(
        on.history(&t, "conn_01M94VZV2ZYNNDCRKECQCW4BA7", "")
            .await
            .status,
        404
    );
    let deleted = on
        .send(
            Call::new("DELETE", "/api/v1/connectors")
                .query("id", &id)
                .bearer(&t.token),
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(on.history(&t, &id, "").await.status, 404);
}

#[tokio::test]
async fn exactly_one_event_per_status_change_and_none_without() {
    let on = on_stream().await;
    let t = Tenant::new("events");
    let (queue, dlq) = queues(&t.id).await;
    let pg = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let id = on
        .create_id(
            &t,
            json!({"name": "flips", "type": "postgresql",
                   "config": {"host": "127.0.0.1", "port": pg.port(), "database": "d"}}),
        )
        .await;
    let test = || on.test(&t, &id);
    assert_eq!(test().await.body["status"], "active");
    assert_eq!(test().await.body["status"], "active");
    // A rename changes no status: no event.
    assert_eq!(
        on.update(&t, json!({"id": id, "name": "renamed"}))
            .await
            .status,
        200
    );
    let r = on
        .update(
            &t,
            json!({"id": id, "config": {"host": "127.0.0.1", "port": 1, "database": "d"}}),
        )
        .await;
    assert_eq!(r.body["status"], "pending", "{}", r.raw);
    assert_eq!(test().await.body["status"], "error");
    assert_eq!(test().await.body["status"], "error");
    let records = stream_records(&[&id]);
    // 4 results + the update back to pending; the create, the rename and admissions carry no outbox.
    assert_eq!(records.len(), 5, "{records:?}");
    let bus = flaky(1).await;
    let p = publisher(bus, &dlq).await;
    assert_eq!(p.handle(&records).await, json!({"batchItemFailures": []}));
    let seen = p.bus.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0], seen[1],
        "the refused event was retried with the same id"
    );
    let events = drain(&queue).await;
    assert_eq!(
        transitions(&events),
        [
            ("active".into(), "pending".into(), "update".into()),
            ("pending".into(), "active".into(), "manual".into()),
            ("pending".into(), "error".into(), "manual".into()),
        ],
        "{events:?}"
    );
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["detail"]["eventId"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each change once");
    for e in &events {
        assert_eq!(e["source"], "connectors-api");
        assert_eq!(e["detail-type"], "Connector Status Changed");
        let d = &e["detail"];
        assert_eq!(
            (
                d["tenantId"].as_str(),
                d["connectorId"].as_str(),
                d["type"].as_str()
            ),
            (Some(t.id.as_str()), Some(id.as_str()), Some("postgresql"))
        );
        assert!(d["at"].is_string() && d["message"].is_string() && d["name"].is_string());
    }
    assert!(drain(&dlq).await.is_empty());
}

#[tokio::test]
async fn a_bus_that_keeps_refusing_leaves_the_whole_event_in_the_dead_letter_queue() {
    let on = on_stream().await;
    let t = Tenant::new("deadletter");
    let (queue, dlq) = queues(&t.id).await;
    let id = on
        .create_id(
            &t,
            json!({"name": "down", "type": "postgresql",
                              "config": {"host": "127.0.0.1", "port": 1, "database": "d"}}),
        )
        .await;
    assert_eq!(on.test(&t, &id).await.body["status"], "error");
    let records = stream_records(&[&id]);
    let p = publisher(flaky(usize::MAX).await, &dlq).await;
    assert_eq!(p.handle(&records).await, json!({"batchItemFailures": []}));
    assert!(drain(&queue).await.is_empty());
    let dead = drain(&dlq).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0]["detail"];
    assert_eq!(
        (
            d["previousStatus"].as_str(),
            d["status"].as_str(),
            d["connectorId"].as_str()
        ),
        (Some("pending"), Some("error"), Some(id.as_str()))
    );
    assert_eq!(dead[0]["detail-type"], "Connector Status Changed");
    // With no dead-letter queue either, the record is reported: Lambda retries from it.
    let none: Publisher<DynamoStore, Flaky, SqsDeadLetters> = Publisher {
        store: on.store.clone(),
        bus: flaky(usize::MAX).await,
        dead_letters: None,
        history: HISTORY,
    };
    let seq = records[0]["dynamodb"]["SequenceNumber"].as_str().unwrap();
    assert_eq!(
        none.handle(&records).await,
        json!({"batchItemFailures": [{"itemIdentifier": seq}]})
    );
}

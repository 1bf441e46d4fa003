//! The scheduled sweep, on a table of its own (it probes every tenant's due connectors).

use crate::support::listeners::{closed_port, listen, Peer};
use crate::support::{create_table, probe_settings, stack};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::json;
use shared::envelope::KmsEnvelope;
use shared::handlers::test::{SweepSettings, Tester};
use shared::ids::{new_connector_id, now_rfc3339};
use shared::limits::breaker::{Breaker, BreakerPolicy, CircuitState};
use shared::limits::rate::RatePolicy;
use shared::model::{Connector, ConnectorType, Status};
use shared::probe::Prober;
use shared::shard_queue::ShardQueue;
use shared::store::{ConnectorReader, DynamoStore, ShardLeases};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TABLE_500: &str = "connectors-sweep-500";
const TABLE_SMALL: &str = "connectors-sweep-small";

pub async fn sweep_tester(table: &str) -> Tester<DynamoStore, KmsEnvelope> {
    let st = stack().await;
    create_table(&st.dynamo, table, false).await;
    Tester {
        store: DynamoStore::from_sdk(&st.sdk, table),
        sealer: KmsEnvelope::from_sdk(&st.sdk, &st.key_id),
        prober: Prober::new(probe_settings(), &st.sdk),
        rate: RatePolicy {
            limit: 100,
            window: Duration::from_secs(60),
        },
        breaker: BreakerPolicy::default(),
        verifier: None,
        sweep: SweepSettings {
            interval: Duration::from_secs(3600),
            concurrency: 16,
        },
        fanout: None,
    }
}

pub fn connector(tenant: &str, port: u16, status: Status) -> Connector {
    let id = new_connector_id();
    let now = now_rfc3339();
    let mut c = Connector {
        name: format!("sweep-{id}"),
        id,
        tenant_id: tenant.to_string(),
        kind: ConnectorType::Postgresql,
        description: None,
        config: json!({"host": "127.0.0.1", "port": port, "database": "d"})
            .as_object()
            .unwrap()
            .clone(),
        auth_method: "access_key".into(),
        auth_config: None,
        auth_config_fields: vec![],
        status,
        last_tested_at: None,
        last_error: None,
        created_at: now.clone(),
        updated_at: now,
        version: 1,
        breaker: None,
        due_shard: None,
        next_probe_at: None,
        result_id: None,
        last_result: None,
        last_success_at: None,
        status_changed_at: None,
        outbox: None,
    };
    c.schedule(None);
    c
}

/// Seeds connector items with BatchWriteItem. Fixture data only: the sweep reads connector items
/// and the index, not name claims or counters, and the emulator copies a whole table per
/// transaction, which would make 500 transactional creates take minutes.
pub async fn insert_all(table: &str, connectors: &[Connector]) {
    let st = stack().await;
    for chunk in connectors.chunks(25) {
        let writes = chunk.iter().map(|c| {
            let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(c).unwrap();
            item.insert(
                "pk".into(),
                AttributeValue::S(format!("TENANT#{}", c.tenant_id)),
            );
            item.insert(
                "sk".into(),
                AttributeValue::S(format!("CONNECTOR#{}", c.id)),
            );
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        });
        let out = st
            .dynamo
            .batch_write_item()
            .request_items(table, writes.collect())
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items.unwrap_or_default().is_empty());
    }
}

#[tokio::test]
async fn five_hundred_connectors_across_tenants() {
    let tester = sweep_tester(TABLE_500).await;
    let live = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let dead = closed_port().await;
    let mut all = Vec::new();
    for i in 0..500 {
        let port = if i % 10 == 0 {
            dead.port()
        } else {
            live.port()
        };
        all.push(connector(
            &format!("sweep-tenant-{}", i % 7),
            port,
            Status::Pending,
        ));
    }
    let inactive: Vec<Connector> = (0..5)
        .map(|_| connector("sweep-tenant-0", live.port(), Status::Inactive))
        .collect();
    insert_all(TABLE_500, &all).await;
    insert_all(TABLE_500, &inactive).await;

    let summary = tester.sweep(unhurried()).await;
    assert_eq!(
        (summary.probed, summary.ok, summary.failed, summary.skipped),
        (500, 450, 50, 0),
        "{summary:?}"
    );

    let sample = tester
        .store
        .get(&all[1].tenant_id, &all[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sample.status, Status::Active);
    assert!(
        sample.next_probe_at.as_deref().unwrap() > now_rfc3339().as_str(),
        "next due time written back"
    );
    let failed = tester
        .store
        .get(&all[0].tenant_id, &all[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failed.status, failed.breaker.unwrap().failures),
        (Status::Error, 1)
    );
    let off = tester
        .store
        .get(&inactive[0].tenant_id, &inactive[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (off.status, off.last_tested_at),
        (Status::Inactive, None),
        "inactive connectors are not probed"
    );

    let again = tester.sweep(unhurried()).await;
    assert_eq!(
        again.probed + again.skipped,
        0,
        "nothing is due right after a sweep: {again:?}"
    );
}

#[tokio::test]
async fn open_circuits_are_skipped_and_a_near_deadline_starts_nothing() {
    let tester = sweep_tester(TABLE_SMALL).await;
    let live = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let mut open = connector("sweep-open", live.port(), Status::Error);
    open.breaker = Some(Breaker {
        state: CircuitState::Open,
        failures: 5,
        opens: 1,
        retry_at_ms: u64::MAX / 2,
    });
    let fine = connector("sweep-open", live.port(), Status::Pending);
    insert_all(TABLE_SMALL, &[open.clone(), fine.clone()]).await;

    // Time to read what is due, not to probe it: a probe needs its budget (2 s here) plus the
    // sweep's 2 s margin before the deadline.
    let soon = Instant::now() + Duration::from_millis(3900);
    let summary = tester.sweep(soon).await;
    assert_eq!(
        (summary.probed, summary.skipped),
        (0, 2),
        "no time left for a probe: {summary:?}"
    );

    let summary = tester.sweep(unhurried()).await;
    assert_eq!(
        (summary.probed, summary.ok, summary.skipped),
        (1, 1, 1),
        "{summary:?}"
    );
    assert_eq!(
        tester
            .store
            .get(&open.tenant_id, &open.id)
            .await
            .unwrap()
            .unwrap()
            .last_tested_at,
        None
    );
}

#[tokio::test]
async fn scheduled_events_reach_the_sweep_and_other_events_do_not() {
    let tester = sweep_tester("connectors-sweep-events").await;
    let event = std::fs::read_to_string(format!(
        "{}/../events/scheduled.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let req = lambda_http::request::from_str(&event).unwrap();
    let resp = tester.handle_event(req).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    };
    assert_eq!(
        body,
        json!({"probed": 0, "ok": 0, "failed": 0, "skipped": 0, "outOfTime": 0})
    );
    let other = lambda_http::request::from_str(r#"{"hello": "world"}"#).unwrap();
    assert_eq!(tester.handle_event(other).await.status(), 400);
}

/// The scheduled event with a shard queue: 16 messages on the (emulated) SQS queue; each delivered
/// twice at once, as SQS may, to invocations of its own. Every one of 1 000 connectors is probed
/// exactly once (one recorded test: version 1 → 2), and a late redelivery probes nothing.
#[tokio::test]
async fn a_fanned_out_sweep_probes_each_connector_once_over_sixteen_shards() {
    const TABLE: &str = "connectors-sweep-fanout";
    let st = stack().await;
    let mut tester = sweep_tester(TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&st.sdk);
    let url = sqs
        .create_queue()
        .queue_name("connectors-sweep-shards")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    tester.fanout = Some(ShardQueue::from_sdk(&st.sdk, &url));
    let live = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let all: Vec<Connector> = (0..1000)
        .map(|i| {
            connector(
                &format!("fan-tenant-{}", i % 11),
                live.port(),
                Status::Pending,
            )
        })
        .collect();
    let shards: std::collections::HashSet<_> = all.iter().map(|c| c.due_shard.clone()).collect();
    assert_eq!(shards.len(), 16, "the connectors fill every shard");
    insert_all(TABLE, &all).await;

    let scheduled = std::fs::read_to_string(format!(
        "{}/../events/scheduled.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let resp = tester
        .handle_event(lambda_http::request::from_str(&scheduled).unwrap())
        .await;
    assert_eq!(body_of(&resp), json!({"queued": 16}));

    // What the event source mapping does: hand the queue's messages to the function as SQS
    // records, delete those it processed, until the queue is empty (shards whose run ran out of
    // time queue themselves again). Every message goes to two invocations at once.
    let deliver = |record: serde_json::Value| {
        let event = json!({"Records": [record]}).to_string();
        let tester = &tester;
        async move {
            let resp = tester
                .handle_event(lambda_http::request::from_str(&event).unwrap())
                .await;
            body_of(&resp)
        }
    };
    let mut rounds = 0;
    loop {
        let messages = receive_all(&sqs, &url).await;
        if messages.is_empty() {
            break;
        }
        let shards: Vec<u64> = messages
            .iter()
            .map(|m| {
                let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
                body["shard"].as_u64().unwrap()
            })
            .collect();
        if rounds == 0 {
            let mut sorted = shards.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                (0..16).collect::<Vec<u64>>(),
                "one message per shard"
            );
        }
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id().unwrap(),
                    "receiptHandle": m.receipt_handle().unwrap(),
                    "body": m.body().unwrap(),
                    "attributes": {}, "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:connectors-sweep-shards",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let answers = futures_util::future::join_all(
            records.iter().chain(records.iter()).cloned().map(deliver),
        )
        .await;
        for answer in &answers {
            assert_eq!(answer, &json!({"batchItemFailures": []}));
        }
        for m in &messages {
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        rounds += 1;
        assert!(rounds < 30, "the shards keep queueing themselves");
    }

    let keys: Vec<(String, String)> = all
        .iter()
        .map(|c| (c.tenant_id.clone(), c.id.clone()))
        .collect();
    let after = tester.store.get_many(&keys).await.unwrap();
    assert_eq!(after.len(), 1000);
    let versions: std::collections::BTreeMap<u64, usize> =
        after.iter().fold(Default::default(), |mut m, c| {
            *m.entry(c.version).or_default() += 1;
            m
        });
    assert_eq!(
        versions,
        [(2, 1000)].into(),
        "each connector tested exactly once (version 1 → 2)"
    );
    let failed: Vec<_> = after
        .iter()
        .filter(|c| c.status != Status::Active || c.last_tested_at.is_none())
        .map(|c| (c.status, c.last_error.clone()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} connectors not active after their probe, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // A late redelivery probes nothing (its connectors are no longer due, or its lease is held).
    let late = tester.sweep_shard(0, unhurried(), "late-redelivery").await;
    assert!(
        matches!(late, Ok(run) if run.summary.probed == 0),
        "{late:?}"
    );
    let again = tester.sweep(unhurried()).await;
    assert_eq!(again.probed + again.skipped, 0, "{again:?}");
}

/// Every message the queue hands out now (ten per ReceiveMessage).
async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return all;
        }
        all.extend(out.messages().iter().cloned());
    }
}

/// While another invocation holds a shard's lease, a run of that shard reads and probes nothing;
/// once it is given back, the next run takes it and probes what is due.
#[tokio::test]
async fn a_shard_held_by_another_invocation_is_left_to_it() {
    const TABLE: &str = "connectors-sweep-lease";
    let tester = sweep_tester(TABLE).await;
    let live = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let due = std::iter::repeat_with(|| connector("lease-tenant", live.port(), Status::Pending))
        .find(|c| c.due_shard.as_deref() == Some("DUE#3"))
        .unwrap();
    insert_all(TABLE, std::slice::from_ref(&due)).await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(tester
        .store
        .lease("DUE#3", "first-delivery", now_ms, now_ms + 60_000)
        .await
        .unwrap());

    let second = tester.sweep_shard(3, unhurried(), "second-delivery").await;
    assert!(
        matches!(second, Ok(run) if !run.leased && run.summary.probed == 0),
        "{second:?}"
    );
    let untouched = tester
        .store
        .get(&due.tenant_id, &due.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.version, 1);

    tester
        .store
        .release("DUE#3", "first-delivery")
        .await
        .unwrap();
    let third = tester.sweep_shard(3, unhurried(), "third-delivery").await;
    assert!(
        matches!(third, Ok(run) if run.leased && run.summary.probed == 1),
        "{third:?}"
    );
}

fn body_of(resp: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => panic!("no body"),
    }
}

/// A sweep deadline far enough away for any of these tests.
fn unhurried() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

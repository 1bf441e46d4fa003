//! POST /api/v1/connectors/test, the scheduled sweep (EventBridge scheduled events), and the
//! publisher (the table's stream: history items and status-change events), which is deployed as
//! a function of its own with this binary.

use lambda_http::{run, service_fn, Error};
use shared::config::{load_aws, Settings};
use shared::envelope::KmsEnvelope;
use shared::handlers::test::Tester;
use shared::probe::{ProbeSettings, Prober};
use shared::publisher::{stream_batch, EventBridgeBus, Publisher, SqsDeadLetters};
use shared::shard_queue::ShardQueue;
use shared::store::DynamoStore;
use std::convert::Infallible;

// One request at a time per Lambda instance: a single-threaded runtime starts no worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env();
    let aws = load_aws().await;
    let probe_settings = ProbeSettings::from_env().unwrap_or_else(|e| panic!("{e}"));
    let tester = Tester {
        store: DynamoStore::from_sdk(&aws, &settings.table_name),
        sealer: KmsEnvelope::from_sdk(&aws, settings.require_kms_key()),
        prober: Prober::new(probe_settings, &aws),
        rate: settings.rate_policy(),
        breaker: settings.breaker_policy(),
        verifier: settings.token_verifier().await,
        sweep: settings.sweep,
        fanout: settings
            .sweep_queue_url
            .as_ref()
            .map(|url| ShardQueue::from_sdk(&aws, url)),
    };
    let publisher = Publisher {
        store: DynamoStore::from_sdk(&aws, &settings.table_name),
        bus: EventBridgeBus::from_sdk(&aws, &settings.event_bus_name),
        dead_letters: settings
            .events_dlq_url
            .as_ref()
            .map(|url| SqsDeadLetters::from_sdk(&aws, url)),
        history: settings.history,
    };
    // Stream batches go to the publisher; everything else to the test endpoint and the sweep.
    run(service_fn(|req| async {
        Ok::<_, Infallible>(match stream_batch(&req) {
            Some(records) => publisher.respond(&req, &records).await,
            None => tester.handle_event(req).await,
        })
    }))
    .await
}

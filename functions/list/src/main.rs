//! GET /api/v1/connectors, GET /api/v1/connectors/{id} and GET /api/v1/connectors/{id}/tests.

use lambda_http::{run, service_fn, Error};
use shared::config::{load_aws, Settings};
use shared::handlers::list;
use shared::store::DynamoStore;
use std::convert::Infallible;

// One request at a time per Lambda instance: a single-threaded runtime starts no worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env();
    let aws = load_aws().await;
    let store = DynamoStore::from_sdk(&aws, &settings.table_name);
    let verifier = settings.token_verifier().await;
    run(service_fn(|req| async {
        Ok::<_, Infallible>(list::handle(&store, verifier.as_ref(), req, settings.history).await)
    }))
    .await
}

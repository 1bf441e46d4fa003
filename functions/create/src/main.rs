//! POST /api/v1/connectors, and GET /api/v1/tunnel-key (the tenant's tunnel key: this function
//! already holds what making it takes).

use lambda_http::{run, service_fn, Error};
use shared::config::{load_aws, Settings};
use shared::envelope::KmsEnvelope;
use shared::handlers::{create, tunnel_key};
use shared::store::DynamoStore;
use std::convert::Infallible;

// One request at a time per Lambda instance: a single-threaded runtime starts no worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env();
    let aws = load_aws().await;
    let store = DynamoStore::from_sdk(&aws, &settings.table_name);
    let sealer = KmsEnvelope::from_sdk(&aws, settings.require_kms_key());
    let verifier = settings.token_verifier().await;
    run(service_fn(|req: lambda_http::Request| async {
        let verifier = verifier.as_ref();
        Ok::<_, Infallible>(match req.method() {
            &lambda_http::http::Method::GET => {
                tunnel_key::handle(&store, &sealer, verifier, req).await
            }
            _ => create::handle(&store, &sealer, verifier, req).await,
        })
    }))
    .await
}

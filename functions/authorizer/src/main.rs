//! The API Gateway Lambda authorizer.

use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::config::Settings;
use shared::handlers::authorizer::authorize;
use std::convert::Infallible;

// One request at a time per Lambda instance: a single-threaded runtime starts no worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = Settings::from_env_for_authorizer();
    let verifier = settings
        .token_verifier()
        .await
        .unwrap_or_else(|| panic!("JWKS_URL (or JWT_SECRET locally) must be set"));
    run(service_fn(|event: LambdaEvent<_>| async {
        Ok::<_, Infallible>(authorize(&verifier, event.payload).await)
    }))
    .await
}

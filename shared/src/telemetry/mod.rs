//! Telemetry: JSON logs through `tracing` (filtered by `RUST_LOG`, default `info`), metrics as
//! CloudWatch Embedded Metric Format lines (`metrics`), and what one invocation gathers for them
//! (`scope`, `request`).

pub mod metrics;
pub mod request;
pub mod scope;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the process-wide JSON subscriber on stdout; call once at init.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if tracing::subscriber::set_global_default(subscriber(std::io::stdout, filter)).is_err() {
        eprintln!("a tracing subscriber was already installed");
    }
}

/// The functions' log format (one JSON object per line) on any writer; tests capture it.
pub fn subscriber<W>(writer: W, filter: EnvFilter) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

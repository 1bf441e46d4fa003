//! The sweep's fan-out: one SQS message per `due` index shard, each consumed by its own invocation
//! of the test function (template.yaml: `SweepShardQueue` and its event source mapping).

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The body of one shard message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardMessage {
    /// The shard number, 0 to `DUE_SHARDS - 1`.
    pub shard: u32,
    /// When the schedule fired (RFC 3339): what "due" means for this run.
    pub scheduled_at: String,
}

/// SQS takes at most ten messages per SendMessageBatch.
const BATCH: usize = 10;

/// Sends shard messages to the queue named by `SWEEP_QUEUE_URL`. The SQS client is built on the
/// first send: most invocations of the test function are API requests that never send one.
pub struct ShardQueue {
    sdk: aws_config::SdkConfig,
    client: OnceLock<Client>,
    url: String,
}

impl ShardQueue {
    pub fn from_sdk(sdk: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        Self {
            sdk: sdk.clone(),
            client: OnceLock::new(),
            url: url.into(),
        }
    }

    /// Sends every message (ten per call); the number SQS accepted, or what went wrong.
    pub async fn send(&self, messages: &[ShardMessage]) -> Result<usize, String> {
        let mut sent = 0;
        for chunk in messages.chunks(BATCH) {
            let entries = chunk
                .iter()
                .map(|m| {
                    let body = serde_json::to_string(m).map_err(|e| e.to_string())?;
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("shard-{}", m.shard))
                        .message_body(body)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, String>>()?;
            let out = self
                .client
                .get_or_init(|| Client::new(&self.sdk))
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "SendMessageBatch: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    )
                })?;
            for failed in out.failed() {
                tracing::error!(
                    entry = failed.id(),
                    code = failed.code(),
                    "a shard message was not queued"
                );
            }
            sent += out.successful().len();
        }
        Ok(sent)
    }
}

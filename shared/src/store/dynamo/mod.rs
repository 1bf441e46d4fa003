//! The DynamoDB implementation of the store's traits: one table, every key shape here.

mod connectors;
mod history;
mod idempotency;
mod rate;
mod sweep;
mod tunnel_key;

use super::StoreError;
use crate::model::Connector;
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB implementation.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn tenant_pk(tenant: &str) -> AttributeValue {
    s(format!("TENANT#{tenant}"))
}

fn key(tenant: &str, sk: String) -> Item {
    HashMap::from([
        ("pk".to_string(), tenant_pk(tenant)),
        ("sk".to_string(), s(sk)),
    ])
}

fn connector_key(tenant: &str, id: &str) -> Item {
    key(tenant, format!("CONNECTOR#{id}"))
}

/// Names are unique per tenant ignoring case.
fn name_key(tenant: &str, name: &str) -> Item {
    key(tenant, format!("NAME#{}", name.to_lowercase()))
}

fn idempotency_key(tenant: &str, idem_key: &str) -> Item {
    key(tenant, format!("IDEMPOTENCY#{idem_key}"))
}

fn count_key(tenant: &str) -> Item {
    key(tenant, "COUNT".to_string())
}

fn rate_key(tenant: &str) -> Item {
    key(tenant, "RATE".to_string())
}

fn tunnel_key_key(tenant: &str) -> Item {
    key(tenant, "TUNNEL_KEY".to_string())
}

fn lease_key(shard: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s("SWEEP")),
        ("sk".to_string(), s(format!("LEASE#{shard}"))),
    ])
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Builds the client from the process's one `SdkConfig`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table)
    }

    fn connector_item(c: &Connector) -> Result<Item, StoreError> {
        let mut item: Item = serde_dynamo::to_item(c).map_err(|e| {
            tracing::error!(error = %e, "connector does not serialize");
            StoreError::Internal
        })?;
        item.extend(connector_key(&c.tenant_id, &c.id));
        Ok(item)
    }

    /// Runs one transaction; `on_condition_failed(i)` maps a failed condition on item `i`.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        on_condition_failed: impl Fn(usize) -> StoreError,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .timed(Step::Store)
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
            err.as_service_error()
        {
            return Err(cancellation(c.cancellation_reasons(), on_condition_failed));
        }
        Err(sdk_error("TransactWriteItems", err))
    }

    /// One item by key, strongly consistent.
    async fn read(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .timed(Step::Store)
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item)
    }

    /// One BatchGetItem (≤ 100 keys), strongly consistent, retrying the keys DynamoDB left
    /// unprocessed (it does so under throttling) a few times with a short backoff; the items
    /// found, and how many keys were still unprocessed (neither found nor known missing).
    async fn read_batch(&self, keys: Vec<Item>) -> Result<(Vec<Item>, usize), StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut pending = keys;
        for attempt in 0..4u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .timed(Step::Store)
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            if let Some(items) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                found.extend(items);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            tracing::warn!(left = pending.len(), "BatchGetItem left keys unprocessed");
        }
        Ok((found, pending.len()))
    }
}

fn from_item(item: Item) -> Result<Connector, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| {
        tracing::error!(error = %e, "stored connector does not deserialize");
        StoreError::Internal
    })
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn cancellation(
    reasons: &[CancellationReason],
    on_condition_failed: impl Fn(usize) -> StoreError,
) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    if let Some(i) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
        return on_condition_failed(i);
    }
    if codes.contains(&"TransactionConflict") {
        return StoreError::Conflict;
    }
    if codes
        .iter()
        .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded"))
    {
        return StoreError::Unavailable;
    }
    tracing::error!(reasons = ?codes, "transaction cancelled");
    StoreError::Internal
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    tracing::error!(error = %e, "request does not build");
    StoreError::Internal
}

/// Maps an SDK failure (after the SDK's own retries) and logs its text, which never reaches a client.
fn sdk_error<E>(
    op: &'static str,
    e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        // A 5xx is DynamoDB's own trouble: worth a retry, whatever its code.
        SdkError::ServiceError(se) if se.raw().status().as_u16() >= 500 => true,
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
            )
        ),
        _ => false,
    };
    tracing::error!(operation = op, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "DynamoDB call failed");
    if transient {
        StoreError::Unavailable
    } else {
        StoreError::Internal
    }
}

//! The DynamoDB single-table store. Every key shape lives here:
//!
//! | item        | pk               | sk                        |
//! |-------------|------------------|---------------------------|
//! | connector   | `TENANT#<tenant>` | `CONNECTOR#<id>`          |
//! | name claim  | `TENANT#<tenant>` | `NAME#<lowercased name>`  |
//! | counter     | `TENANT#<tenant>` | `COUNT`                   |
//! | rate bucket | `TENANT#<tenant>` | `RATE`                    |
//! | idempotency | `TENANT#<tenant>` | `IDEMPOTENCY#<key>`       |
//! | shard lease | `SWEEP`           | `LEASE#<shard>`           |
//!
//! The sparse global index `due` (`dueShard` / `nextProbeAt`, keys only) holds the connectors the
//! scheduled sweep probes; inactive connectors carry neither attribute.

use crate::idempotency::{MacKey, Remembered};
use crate::model::Connector;
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Delete, KeysAndAttributes, Put, ReturnValue,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::future::Future;

type Item = HashMap<String, AttributeValue>;

/// What can go wrong in the store, in terms a handler can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    NameTaken,
    /// The Idempotency-Key already holds an answer (written by a concurrent request).
    KeyUsed,
    /// The new connector's own id exists: an earlier attempt of the same transaction went through.
    AlreadyApplied,
    /// The item changed between read and write (or a transaction collided): re-read and retry.
    Conflict,
    /// DynamoDB throttled or could not be reached after the SDK's retries.
    Unavailable,
    Internal,
}

/// One page of a tenant's connectors, in id (creation) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Connector>,
    pub has_more: bool,
    pub total: u64,
}

/// Reading connectors.
pub trait ConnectorReader: Send + Sync {
    fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Connector>, StoreError>> + Send;
    /// The connectors among `keys` (tenant, id) that exist, read in batches of 100.
    fn get_many(
        &self,
        keys: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<Connector>, StoreError>> + Send;
    /// Up to `limit` connectors after the id `after`, and the tenant's total.
    fn page(
        &self,
        tenant: &str,
        limit: usize,
        after: Option<&str>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// Writing connectors; every multi-item write is one transaction.
pub trait ConnectorWriter: Send + Sync {
    /// Creates the connector, claims its name and counts it; with `once`, also keeps the answer
    /// under its Idempotency-Key, in the same transaction.
    fn insert(
        &self,
        c: &Connector,
        once: Option<&Remembered>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces `old` (which must still be at `old.version`) by `new`, moving the name claim if needed.
    fn replace(
        &self,
        old: &Connector,
        new: &Connector,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes the connector (still at `c.version`), frees its name and uncounts it.
    fn remove(&self, c: &Connector) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Reading kept idempotent answers.
pub trait IdempotentAnswers: Send + Sync {
    /// The answer kept under `key`, unless it expired before `now` (Unix seconds).
    fn recall(
        &self,
        tenant: &str,
        key: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<Remembered>, StoreError>> + Send;
}

/// The index the scheduled sweep reads.
pub const DUE_INDEX: &str = "due";

/// Finding connectors whose scheduled probe is due, without a table scan.
pub trait DueConnectors: Send + Sync {
    /// (tenant, connector id) of the connectors in `shard` due at or before `now` (RFC 3339).
    fn due(
        &self,
        shard: &str,
        now: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
}

/// Which sweep invocation works on a `due` shard, so that a shard message delivered twice (SQS
/// delivers at least once) or a run overlapping the last probes nothing twice.
pub trait ShardLeases: Send + Sync {
    /// Takes the lease on `shard` for `holder` until `until_ms` when it is free (absent, expired at
    /// `now_ms`, or already this holder's): false when another invocation holds it.
    fn lease(
        &self,
        shard: &str,
        holder: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives the lease back early (only when `holder` still holds it).
    fn release(
        &self,
        shard: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The rate limit's bucket per tenant: its theoretical arrival time (TAT, µs since the epoch),
/// moved by two conditional writes (see `limits::rate`). A failed condition returns the stored TAT.
pub trait RateBucket: Send + Sync {
    /// Sets TAT to `tat` when it is absent or ≤ `now` (the bucket is full); else `Err(stored TAT)`.
    fn start_burst(
        &self,
        tenant: &str,
        now: u64,
        tat: u64,
        expires_at: u64,
    ) -> impl Future<Output = Result<Result<(), u64>, StoreError>> + Send;
    /// Adds `step` to TAT when `now` < TAT ≤ `highest`: `Ok(new TAT)`, else `Err(stored TAT)`.
    fn continue_burst(
        &self,
        tenant: &str,
        now: u64,
        step: u64,
        highest: u64,
        expires_at: u64,
    ) -> impl Future<Output = Result<Result<u64, u64>, StoreError>> + Send;
}

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

    fn put_connector(
        &self,
        c: &Connector,
        condition: &str,
        version: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::connector_item(c)?))
            .condition_expression(condition);
        if let Some(v) = version {
            put = put.expression_attribute_values(":v", AttributeValue::N(v.to_string()));
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_error)?)
            .build())
    }

    fn claim_name(&self, c: &Connector) -> Result<TransactWriteItem, StoreError> {
        let mut item = name_key(&c.tenant_id, &c.name);
        item.insert("connectorId".into(), s(&c.id));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn release_name(&self, c: &Connector) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(name_key(&c.tenant_id, &c.name)))
            .condition_expression("connectorId = :id")
            .expression_attribute_values(":id", s(&c.id))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Keeps the answer unless a live one is there (an expired one, not yet removed by TTL, is replaced).
    fn remember(
        &self,
        tenant: &str,
        r: &Remembered,
        now: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = idempotency_key(tenant, &r.key);
        item.extend([
            ("fingerprint".to_string(), s(&r.fingerprint)),
            (
                "status".to_string(),
                AttributeValue::N(r.status.to_string()),
            ),
            ("body".to_string(), s(&r.body)),
            ("location".to_string(), s(&r.location)),
            (
                "version".to_string(),
                AttributeValue::N(r.version.to_string()),
            ),
            (
                "expiresAt".to_string(),
                AttributeValue::N(r.expires_at.to_string()),
            ),
        ]);
        if let Some(k) = &r.mac_key {
            item.extend([
                ("macConnectorId".to_string(), s(&k.connector_id)),
                (
                    "macWrappedKey".to_string(),
                    AttributeValue::B(k.wrapped_key.clone().into()),
                ),
                ("macKeyId".to_string(), s(&k.key_id)),
            ]);
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expiresAt <= :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn count_by(&self, tenant: &str, delta: i64) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(count_key(tenant)))
            .update_expression("ADD #count :delta")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
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

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;

impl DynamoStore {
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

    /// One BatchGetItem (≤ 100 keys), retrying the keys DynamoDB left unprocessed (it does so
    /// under throttling) a few times with a short backoff; keys still unprocessed are left out.
    async fn get_batch(&self, chunk: &[(String, String)]) -> Result<Vec<Connector>, StoreError> {
        let mut found = Vec::with_capacity(chunk.len());
        let mut pending: Vec<Item> = chunk.iter().map(|(t, id)| connector_key(t, id)).collect();
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
                for item in items {
                    found.push(from_item(item)?);
                }
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
        Ok(found)
    }
}

/// What a listed connector shows (`ConnectorView`), and nothing else: the sealed authConfig, the
/// breaker and the sweep's keys are not read. Decoding DynamoDB's answer was 40% of list's
/// instructions, the sealed secret (KMS blob, ciphertext, key ARN) the largest part of each item.
const LIST_PROJECTION: &str = "id, tenantId, #name, #type, description, config, authMethod, \
     authConfigFields, #status, lastTestedAt, lastError, createdAt, updatedAt, #version";

/// `LIST_PROJECTION`'s reserved words.
fn list_projection_names() -> HashMap<String, String> {
    ["name", "type", "status", "version"]
        .into_iter()
        .map(|n| (format!("#{n}"), n.to_string()))
        .collect()
}

fn from_item(item: Item) -> Result<Connector, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| {
        tracing::error!(error = %e, "stored connector does not deserialize");
        StoreError::Internal
    })
}

impl ConnectorReader for DynamoStore {
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<Connector>, StoreError> {
        // Only ids we issued can exist: another requested id is not found without a read.
        if !crate::ids::is_connector_id(id) {
            return Ok(None);
        }
        self.read(connector_key(tenant, id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Connector>, StoreError> {
        let chunks: Vec<Vec<(String, String)>> =
            keys.chunks(BATCH_GET_MAX).map(<[_]>::to_vec).collect();
        let batches: Vec<Vec<Connector>> = stream::iter(chunks)
            .map(|chunk| async move { self.get_batch(&chunk).await })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }

    async fn page(
        &self,
        tenant: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError> {
        let total = async {
            let counter = self.read(count_key(tenant)).await?;
            let n: Option<i64> = counter.as_ref().and_then(|i| number(i, "count"));
            Ok::<u64, StoreError>(n.unwrap_or(0).max(0) as u64)
        };
        // One item more than asked tells whether another page exists, whatever LastEvaluatedKey says.
        let want = limit + 1;
        let items = async {
            let mut items = Vec::with_capacity(want);
            let mut start = after.map(|id| connector_key(tenant, id));
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", tenant_pk(tenant))
                    .expression_attribute_values(":prefix", s("CONNECTOR#"))
                    .set_exclusive_start_key(start.take())
                    .limit(i32::try_from(want - items.len()).unwrap_or(i32::MAX))
                    .projection_expression(LIST_PROJECTION)
                    .set_expression_attribute_names(Some(list_projection_names()))
                    .consistent_read(true)
                    .send()
                    .timed(Step::Store)
                    .await
                    .map_err(|e| sdk_error("Query", e))?;
                for item in out.items.unwrap_or_default() {
                    items.push(from_item(item)?);
                }
                // A 1 MB response page can end early: keep reading until the page is full.
                match out.last_evaluated_key {
                    Some(lek) if items.len() < want => start = Some(lek),
                    _ => break,
                }
            }
            Ok::<_, StoreError>(items)
        };
        let (total, items) = tokio::join!(total, items);
        let mut items = items?;
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(Page {
            items,
            has_more,
            total: total?,
        })
    }
}

impl ConnectorWriter for DynamoStore {
    async fn insert(&self, c: &Connector, once: Option<&Remembered>) -> Result<(), StoreError> {
        let mut items = vec![
            self.put_connector(c, "attribute_not_exists(pk)", None)?,
            self.claim_name(c)?,
            self.count_by(&c.tenant_id, 1)?,
        ];
        if let Some(r) = once {
            items.push(self.remember(&c.tenant_id, r, crate::ids::unix_now())?);
        }
        let result = self
            .transact(items, |i| match i {
                0 => StoreError::AlreadyApplied,
                1 => StoreError::NameTaken,
                3 => StoreError::KeyUsed,
                _ => StoreError::Conflict,
            })
            .await;
        match result {
            // The id is new (a ULID), so only this very transaction can have written it: an attempt
            // whose answer was lost (connection cut) and that the SDK retried. Being a transaction,
            // all of it is there. (DynamoDB itself answers such a retry with success, thanks to the
            // SDK's ClientRequestToken; the emulator does not.)
            Err(StoreError::AlreadyApplied) => Ok(()),
            other => other,
        }
    }

    async fn replace(&self, old: &Connector, new: &Connector) -> Result<(), StoreError> {
        if old.name.to_lowercase() == new.name.to_lowercase() {
            // One item: a conditional PutItem does it (half the cost of a transaction).
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::connector_item(new)?))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(old.version.to_string()))
                .send()
                .timed(Step::Store)
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict)
                }
                Err(e) => Err(sdk_error("PutItem", e)),
            };
        }
        let put = self.put_connector(new, "version = :v", Some(old.version))?;
        let items = vec![put, self.release_name(old)?, self.claim_name(new)?];
        self.transact(items, |i| {
            if i == 2 {
                StoreError::NameTaken
            } else {
                StoreError::Conflict
            }
        })
        .await
    }

    async fn remove(&self, c: &Connector) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(connector_key(&c.tenant_id, &c.id)))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", AttributeValue::N(c.version.to_string()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.release_name(c)?,
            self.count_by(&c.tenant_id, -1)?,
        ];
        self.transact(items, |_| StoreError::Conflict).await
    }
}

fn rate_key(tenant: &str) -> Item {
    key(tenant, "RATE".to_string())
}

impl DynamoStore {
    /// One conditional UpdateItem on the tenant's bucket: the TAT it leaves (`UPDATED_NEW`), or,
    /// when the condition fails, the TAT it found (`ALL_OLD` on failure; 0 when there is none).
    async fn move_bucket(
        &self,
        tenant: &str,
        update: &str,
        condition: &str,
        values: &[(&str, u64)],
    ) -> Result<Result<u64, u64>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(rate_key(tenant)))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        for (name, value) in values {
            req = req.expression_attribute_values(*name, AttributeValue::N(value.to_string()));
        }
        match req.send().timed(Step::Store).await {
            Ok(out) => Ok(Ok(out
                .attributes
                .as_ref()
                .and_then(|a| number(a, "tat"))
                .unwrap_or(0))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                let stored = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item.as_ref(),
                        _ => None,
                    })
                    .and_then(|item| number(item, "tat"))
                    .unwrap_or(0);
                Ok(Err(stored))
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }
}

impl RateBucket for DynamoStore {
    async fn start_burst(
        &self,
        tenant: &str,
        now: u64,
        tat: u64,
        expires_at: u64,
    ) -> Result<Result<(), u64>, StoreError> {
        self.move_bucket(
            tenant,
            "SET tat = :tat, expiresAt = :expires",
            "attribute_not_exists(tat) OR tat <= :now",
            &[(":tat", tat), (":now", now), (":expires", expires_at)],
        )
        .await
        .map(|r| r.map(|_| ()))
    }

    async fn continue_burst(
        &self,
        tenant: &str,
        now: u64,
        step: u64,
        highest: u64,
        expires_at: u64,
    ) -> Result<Result<u64, u64>, StoreError> {
        // Atomic: concurrent requests each add their own step, none past `highest`.
        self.move_bucket(
            tenant,
            "SET tat = tat + :step, expiresAt = :expires",
            "tat > :now AND tat <= :highest",
            &[
                (":step", step),
                (":now", now),
                (":highest", highest),
                (":expires", expires_at),
            ],
        )
        .await
    }
}

impl DueConnectors for DynamoStore {
    async fn due(&self, shard: &str, now: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("dueShard = :shard AND nextProbeAt <= :now")
                .expression_attribute_values(":shard", s(shard))
                .expression_attribute_values(":now", s(now))
                .set_exclusive_start_key(start.take())
                .send()
                .timed(Step::Store)
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for item in out.items.unwrap_or_default() {
                let pk = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|p| p.strip_prefix("TENANT#"));
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|k| k.strip_prefix("CONNECTOR#"));
                if let (Some(tenant), Some(id)) = (pk, sk) {
                    found.push((tenant.to_string(), id.to_string()));
                }
            }
            match out.last_evaluated_key {
                Some(lek) if !lek.is_empty() => start = Some(lek),
                _ => return Ok(found),
            }
        }
    }
}

fn lease_key(shard: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s("SWEEP")),
        ("sk".to_string(), s(format!("LEASE#{shard}"))),
    ])
}

impl DynamoStore {
    /// One conditional UpdateItem on a shard's lease: false when the condition did not hold.
    async fn update_lease(
        &self,
        shard: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lease_key(shard)))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            req = req.expression_attribute_values(name, value);
        }
        match req.send().timed(Step::Store).await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }
}

impl ShardLeases for DynamoStore {
    async fn lease(
        &self,
        shard: &str,
        holder: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, StoreError> {
        self.update_lease(
            shard,
            "SET holder = :holder, leaseUntil = :until",
            "attribute_not_exists(leaseUntil) OR leaseUntil <= :now OR holder = :holder",
            vec![
                (":holder", s(holder)),
                (":until", AttributeValue::N(until_ms.to_string())),
                (":now", AttributeValue::N(now_ms.to_string())),
            ],
        )
        .await
    }

    async fn release(&self, shard: &str, holder: &str) -> Result<(), StoreError> {
        // A false condition: expired and taken by another invocation meanwhile, theirs now.
        self.update_lease(
            shard,
            "SET leaseUntil = :zero",
            "holder = :holder",
            vec![
                (":holder", s(holder)),
                (":zero", AttributeValue::N("0".to_string())),
            ],
        )
        .await
        .map(|_| ())
    }
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

impl IdempotentAnswers for DynamoStore {
    async fn recall(
        &self,
        tenant: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<Remembered>, StoreError> {
        let Some(item) = self.read(idempotency_key(tenant, key)).await? else {
            return Ok(None);
        };
        let expires_at: u64 = number(&item, "expiresAt").unwrap_or(0);
        // TTL deletes "within days": an expired answer still in the table counts as gone.
        if expires_at <= now {
            return Ok(None);
        }
        let mac_key = item
            .get("macWrappedKey")
            .and_then(|v| v.as_b().ok())
            .map(|wrapped| MacKey {
                connector_id: text(&item, "macConnectorId").unwrap_or_default(),
                wrapped_key: wrapped.clone().into_inner(),
                key_id: text(&item, "macKeyId").unwrap_or_default(),
            });
        let kept = (|| {
            Some(Remembered {
                key: key.to_string(),
                fingerprint: text(&item, "fingerprint")?,
                mac_key,
                status: number(&item, "status")?,
                body: text(&item, "body")?,
                location: text(&item, "location")?,
                version: number(&item, "version")?,
                expires_at,
            })
        })();
        kept.map(Some).ok_or_else(|| {
            tracing::error!("kept idempotent answer is malformed");
            StoreError::Internal
        })
    }
}

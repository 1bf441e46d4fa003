//! Connectors, their name claims and the tenant's count: read, page, and written in transactions.

use super::{
    build_error, connector_key, count_key, from_item, name_key, number, s, sdk_error, tenant_pk,
    DynamoStore,
};
use crate::model::Connector;
use crate::store::{ConnectorReader, ConnectorWriter, Page, Remembered, StoreError};
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;

impl DynamoStore {
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
    /// One BatchGetItem (≤ 100 keys) of connectors.
    async fn get_batch(&self, chunk: &[(String, String)]) -> Result<Vec<Connector>, StoreError> {
        let keys = chunk.iter().map(|(t, id)| connector_key(t, id)).collect();
        // The sweep reads due connectors in batches: one left unprocessed stays due for the next run.
        self.read_batch(keys)
            .await?
            .0
            .into_iter()
            .map(from_item)
            .collect()
    }
}

/// What a listed connector shows (`ConnectorView`), and nothing else: the sealed authConfig, the
/// breaker and the sweep's keys are not read. Decoding DynamoDB's answer was 40% of list's
/// instructions, the sealed secret (KMS blob, ciphertext, key ARN) the largest part of each item.
const LIST_PROJECTION: &str = "id, tenantId, #name, #type, description, config, authMethod, \
     authConfigFields, #status, lastTestedAt, lastError, lastSuccessAt, statusChangedAt, createdAt, \
     updatedAt, #version";

/// `LIST_PROJECTION`'s reserved words.
fn list_projection_names() -> HashMap<String, String> {
    ["name", "type", "status", "version"]
        .into_iter()
        .map(|n| (format!("#{n}"), n.to_string()))
        .collect()
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

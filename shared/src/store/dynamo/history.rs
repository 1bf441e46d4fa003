//! Test histories: one item per result in the tenant's partition, `RESULT#<connector>#<result id>`,
//! so a connector's results sort by time and read newest first. Expired items are outside the
//! key range a reader asks for (TTL deletes late, and never in the emulator).

use super::{key, s, sdk_error, tenant_pk, DynamoStore, Item};
use crate::store::{History, HistoryItem, StoreError, HISTORY_MAX};
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::types::Select;
use std::collections::HashMap;

/// Above every result id (Crockford base32 is digits and upper-case letters).
const HIGHEST: &str = "~";

fn prefix(connector: &str) -> String {
    format!("RESULT#{connector}#")
}

fn result_key(tenant: &str, connector: &str, result: &str) -> Item {
    key(tenant, format!("{}{result}", prefix(connector)))
}

impl DynamoStore {
    /// A Query over `connector`'s results made at or after the result id `from`.
    fn results_from(
        &self,
        tenant: &str,
        connector: &str,
        from: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let p = prefix(connector);
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", tenant_pk(tenant))
            .expression_attribute_values(":lo", s(format!("{p}{from}")))
            .expression_attribute_values(":hi", s(format!("{p}{HIGHEST}")))
            .consistent_read(true)
    }
}

impl History for DynamoStore {
    async fn put_result(&self, tenant: &str, item: &HistoryItem) -> Result<(), StoreError> {
        let mut record: Item = serde_dynamo::to_item(item).map_err(|e| {
            tracing::error!(error = %e, "history item does not serialize");
            StoreError::Internal
        })?;
        record.extend(result_key(tenant, &item.connector_id, &item.result_id));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .send()
            .timed(Step::Store)
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    async fn results(
        &self,
        tenant: &str,
        connector: &str,
        before: Option<&str>,
        oldest: &str,
        limit: usize,
    ) -> Result<Vec<HistoryItem>, StoreError> {
        let start = before.map(|b| result_key(tenant, connector, b));
        let out = self
            .results_from(tenant, connector, oldest)
            .set_exclusive_start_key(start)
            .scan_index_forward(false)
            .limit(limit as i32)
            .send()
            .timed(Step::Store)
            .await
            .map_err(|e| sdk_error("Query", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| {
                    tracing::error!(error = %e, "history item does not deserialize");
                    StoreError::Internal
                })
            })
            .collect()
    }

    async fn newer_count(
        &self,
        tenant: &str,
        connector: &str,
        result: &str,
        oldest: &str,
    ) -> Result<usize, StoreError> {
        let from = if result > oldest { result } else { oldest };
        let mut count = 0usize;
        let mut start: Option<HashMap<_, _>> = None;
        loop {
            let out = self
                .results_from(tenant, connector, from)
                .select(Select::Count)
                .limit(HISTORY_MAX as i32)
                .set_exclusive_start_key(start)
                .send()
                .timed(Step::Store)
                .await
                .map_err(|e| sdk_error("Query", e))?;
            count += out.count.max(0) as usize;
            // Only whether the cap is reached matters: counting further is reading for nothing.
            if count >= HISTORY_MAX {
                return Ok(count);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
    }
}

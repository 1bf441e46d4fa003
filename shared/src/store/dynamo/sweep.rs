//! The sweep's `due` index and its shard leases.

use super::{lease_key, s, sdk_error, DynamoStore};
use crate::store::{DueConnectors, ShardLeases, StoreError, DUE_INDEX};
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::types::AttributeValue;

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

//! The rate limit's bucket per tenant (see `limits::rate`).

use super::{number, rate_key, sdk_error, DynamoStore};
use crate::store::{RateBucket, StoreError};
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

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

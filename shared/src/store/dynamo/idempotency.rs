//! Kept answers of creates, under their Idempotency-Key.

use super::{build_error, idempotency_key, number, s, text, DynamoStore};
use crate::store::{IdempotentAnswers, MacKey, Remembered, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

impl DynamoStore {
    /// Keeps the answer unless a live one is there (an expired one, not yet removed by TTL, is replaced).
    pub(super) fn remember(
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

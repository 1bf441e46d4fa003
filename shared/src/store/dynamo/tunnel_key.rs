//! The tenant's tunnel key item: written once (a conditional put), read alone or beside a
//! connector in one BatchGetItem.

use super::{connector_key, from_item, sdk_error, tunnel_key_key, DynamoStore, Item};
use crate::model::Connector;
use crate::store::{StoreError, TunnelKeyRecord, TunnelKeys};
use crate::telemetry::scope::{Step, Timed};
use aws_sdk_dynamodb::operation::put_item::PutItemError;

fn record(item: Item) -> Result<TunnelKeyRecord, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| {
        tracing::error!(error = %e, "stored tunnel key does not deserialize");
        StoreError::Internal
    })
}

fn is_tunnel_key(item: &Item) -> bool {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some("TUNNEL_KEY")
}

impl TunnelKeys for DynamoStore {
    async fn tunnel_key(&self, tenant: &str) -> Result<Option<TunnelKeyRecord>, StoreError> {
        self.read(tunnel_key_key(tenant))
            .await?
            .map(record)
            .transpose()
    }

    async fn put_tunnel_key(&self, tenant: &str, key: &TunnelKeyRecord) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(key).map_err(|e| {
            tracing::error!(error = %e, "tunnel key does not serialize");
            StoreError::Internal
        })?;
        item.extend(tunnel_key_key(tenant));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .timed(Step::Store)
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    async fn connector_and_tunnel_key(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(Option<Connector>, Option<TunnelKeyRecord>), StoreError> {
        // Only ids we issued can exist: another requested id is not found without a read.
        if !crate::ids::is_connector_id(id) {
            return Ok((None, None));
        }
        let (items, unprocessed) = self
            .read_batch(vec![connector_key(tenant, id), tunnel_key_key(tenant)])
            .await?;
        // A key DynamoDB did not get to is not a missing item: a 503, not a 404.
        if unprocessed > 0 {
            return Err(StoreError::Unavailable);
        }
        let (mut connector, mut key) = (None, None);
        for item in items {
            match is_tunnel_key(&item) {
                true => key = Some(record(item)?),
                false => connector = Some(from_item(item)?),
            }
        }
        Ok((connector, key))
    }
}

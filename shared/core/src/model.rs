//! The connector as stored and as shown, and the 18 supported types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

pub use crate::kinds::sql::SslMode;
pub use crate::kinds::{ConnectorType, DestinationField, Form, Part, Requirement};

/// Lifecycle state of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, never tested.
    Pending,
    Active,
    Error,
    /// Switched off by a user; skipped by scheduled probes.
    Inactive,
}

/// authConfig after envelope encryption: what the table holds instead of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// Format version of this record.
    pub v: u8,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The data key, encrypted by KMS under the tenant/connector encryption context.
    #[serde(with = "serde_bytes")]
    pub wrapped_key: Vec<u8>,
    pub key_id: String,
}

/// A connector as the table holds it (without the key attributes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub config: Map<String, Value>,
    pub auth_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_config: Option<SealedSecret>,
    /// Sorted top-level names of the authConfig keys that are set; names only, never values.
    #[serde(default)]
    pub auth_config_fields: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tested_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Incremented by every write; lets writers detect a concurrent change.
    pub version: u64,
    /// Circuit breaker state of the test endpoint; absent means closed with no failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<crate::limits::breaker::Breaker>,
    /// Key of the sparse `due` index: `DUE#<shard>`; absent for inactive connectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_shard: Option<String>,
    /// When the scheduled sweep should probe next (RFC 3339, so it sorts); absent when inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_probe_at: Option<String>,
    /// The id (a ULID) of the last recorded test result; every result write makes a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_id: Option<String>,
    /// The last recorded test result, as its history item and event carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<TestResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// When `status` last changed; absent until the first change (the view shows `createdAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_changed_at: Option<String>,
    /// Set on the writes the publisher must see (a result, or a status change) and on no other:
    /// the stream's filter lets only these through. Cleared by `next_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<Outbox>,
}

/// What caused a write the publisher sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The test endpoint.
    Manual,
    /// The scheduled sweep.
    Scheduled,
    /// An update (back to `pending`, or a user's `inactive` / `active`).
    Update,
}

/// The event-bearing part of a write: the event id (the result id, or one derived from the
/// write), what caused it and the request that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outbox {
    pub event_id: String,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One recorded test result (the history item's fields; `message` masked and at most 1024
/// characters, as the diagnostics were).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub at: String,
    pub status: Status,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<String>,
    pub latency_ms: u64,
    pub message: String,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Shards of the `due` index: spreads the sweep's reads over partitions.
pub const DUE_SHARDS: u32 = 16;

/// The `due` index shard of a connector id (FNV-1a, stable across processes).
pub fn due_shard(id: &str) -> String {
    let hash = id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    shard_key(hash % DUE_SHARDS)
}

/// The `dueShard` value (the index's partition key) of shard `n`.
pub fn shard_key(n: u32) -> String {
    format!("DUE#{n}")
}

impl Connector {
    /// The starting point of the next write: a copy without the last write's outbox (a write
    /// that carries no result and no status change must not pass the stream's filter).
    pub fn next_write(&self) -> Connector {
        Connector {
            outbox: None,
            ..self.clone()
        }
    }

    /// Keeps the sweep schedule in step with the status: inactive connectors leave the index.
    pub fn schedule(&mut self, next_probe_at: Option<String>) {
        if self.status == Status::Inactive {
            self.due_shard = None;
            self.next_probe_at = None;
        } else {
            self.due_shard = Some(due_shard(&self.id));
            self.next_probe_at = next_probe_at
                .or_else(|| self.next_probe_at.take())
                .or_else(|| Some(self.updated_at.clone()));
        }
    }
}

/// What clients see of a connector: everything but the sealed authConfig.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    pub description: Option<&'a str>,
    pub config: Cow<'a, Map<String, Value>>,
    pub auth_method: &'a str,
    pub auth_config_fields: Cow<'a, [String]>,
    pub status: Status,
    pub last_tested_at: Option<&'a str>,
    pub last_error: Option<&'a str>,
    pub last_success_at: Option<&'a str>,
    /// When `status` last changed (`createdAt` until the first change).
    pub status_changed_at: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub version: u64,
    /// aws_s3 / amazon_kinesis: the ExternalId the service sends for this tenant, to put in the
    /// role's trust policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_external_id: Option<String>,
}

impl Connector {
    pub fn view(&self) -> ConnectorView<'_> {
        // A salesforce / hubspot item stored before config.apiKey was sealed: the key is shown
        // as sealed fields are (named, never valued) until its next update moves it.
        let (config, auth_config_fields) = match crate::kinds::saas_api::hide_legacy_api_key(
            self.kind,
            &self.config,
            &self.auth_config_fields,
        ) {
            None => (
                Cow::Borrowed(&self.config),
                Cow::Borrowed(&self.auth_config_fields[..]),
            ),
            Some((config, fields)) => (Cow::Owned(config), Cow::Owned(fields)),
        };
        ConnectorView {
            id: &self.id,
            name: &self.name,
            kind: self.kind,
            description: self.description.as_deref(),
            config,
            auth_method: &self.auth_method,
            auth_config_fields,
            status: self.status,
            last_tested_at: self.last_tested_at.as_deref(),
            last_error: self.last_error.as_deref(),
            last_success_at: self.last_success_at.as_deref(),
            status_changed_at: self
                .status_changed_at
                .as_deref()
                .unwrap_or(&self.created_at),
            created_at: &self.created_at,
            updated_at: &self.updated_at,
            version: self.version,
            aws_external_id: crate::kinds::aws::is_aws(self.kind)
                .then(|| crate::kinds::aws::external_id(&self.tenant_id)),
        }
    }
}

/// A decrypted authConfig; its strings are zeroized when it is dropped.
#[derive(Default)]
pub struct PlainSecret(pub Map<String, Value>);

impl std::fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print values: only which fields are set.
        f.debug_struct("PlainSecret")
            .field("fields", &field_names(&self.0))
            .finish()
    }
}

impl Drop for PlainSecret {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => zeroize::Zeroize::zeroize(s),
                Value::Object(m) => m.values_mut().for_each(wipe),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.values_mut().for_each(wipe);
    }
}

/// Sorted top-level key names of an authConfig object.
pub fn field_names(auth_config: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = auth_config.keys().cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for t in ConnectorType::ALL {
            assert_eq!(ConnectorType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                Value::String(t.as_str().into())
            );
        }
        assert_eq!(ConnectorType::parse("Postgresql"), None);
        assert_eq!(ConnectorType::parse("s3"), None);
    }

    #[test]
    fn view_never_serializes_the_sealed_secret() {
        let c = Connector {
            id: "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            tenant_id: "t".into(),
            name: "n".into(),
            kind: ConnectorType::Webhook,
            description: None,
            config: Map::new(),
            auth_method: "access_key".into(),
            auth_config: Some(SealedSecret {
                v: 1,
                ciphertext: vec![1, 2, 3],
                nonce: vec![0; 12],
                wrapped_key: vec![9],
                key_id: "k".into(),
            }),
            auth_config_fields: vec!["password".into()],
            status: Status::Pending,
            last_tested_at: None,
            last_error: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            version: 1,
            breaker: None,
            due_shard: None,
            next_probe_at: None,
            result_id: None,
            last_result: None,
            last_success_at: None,
            status_changed_at: None,
            outbox: None,
        };
        let v = serde_json::to_value(c.view()).unwrap();
        assert!(v.get("authConfig").is_none());
        assert_eq!(v["authConfigFields"], serde_json::json!(["password"]));
        assert_eq!(v["description"], Value::Null);
        assert_eq!(v["type"], "webhook");
        assert!(v.get("nextProbeAt").is_none() && v.get("breaker").is_none());
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let ids: Vec<String> = (0..400).map(|_| crate::ids::new_connector_id()).collect();
        let mut counts = std::collections::HashMap::new();
        for id in &ids {
            assert_eq!(due_shard(id), due_shard(id));
            *counts.entry(due_shard(id)).or_insert(0) += 1;
        }
        assert_eq!(
            counts.len(),
            DUE_SHARDS as usize,
            "every shard used: {counts:?}"
        );
    }
}

//! The store: what handlers and policies read and write, as small traits (a handler asks only for
//! the ones it uses), and the records they exchange. `dynamo/` implements them on one DynamoDB
//! table, one file per concern; every key shape is in `dynamo/mod.rs`:
//!
//! | item        | pk               | sk                        |
//! |-------------|------------------|---------------------------|
//! | connector   | `TENANT#<tenant>` | `CONNECTOR#<id>`          |
//! | name claim  | `TENANT#<tenant>` | `NAME#<lowercased name>`  |
//! | counter     | `TENANT#<tenant>` | `COUNT`                   |
//! | rate bucket | `TENANT#<tenant>` | `RATE`                    |
//! | idempotency | `TENANT#<tenant>` | `IDEMPOTENCY#<key>`       |
//! | tunnel key  | `TENANT#<tenant>` | `TUNNEL_KEY`              |
//! | result      | `TENANT#<tenant>` | `RESULT#<connector>#<result id>` |
//! | shard lease | `SWEEP`           | `LEASE#<shard>`           |
//!
//! The sparse global index `due` (`dueShard` / `nextProbeAt`, keys only) holds the connectors the
//! scheduled sweep probes; inactive connectors carry neither attribute.

mod dynamo;
pub mod memory;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;

use crate::model::{Connector, SealedSecret, TestResult};
use std::future::Future;

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

/// How many times a write is retried after a concurrent change before answering 409.
pub const WRITE_ATTEMPTS: usize = 3;

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

/// The tenant's SSH tunnel key pair: the public half in clear (a read answers with one GetItem),
/// the private half sealed with KMS (context: the tenant and the key's purpose).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelKeyRecord {
    /// `ssh-ed25519 AAAA… connectors-api:<tenant>`.
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    pub created_at: String,
    /// `{"privateKey": "<OpenSSH PEM>"}`, sealed.
    pub sealed: SealedSecret,
}

/// The tenant's tunnel key.
pub trait TunnelKeys: Send + Sync {
    fn tunnel_key(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Option<TunnelKeyRecord>, StoreError>> + Send;
    /// Stores the tenant's first key; `Conflict` when the tenant has one (a concurrent first call
    /// stored it: read that one).
    fn put_tunnel_key(
        &self,
        tenant: &str,
        key: &TunnelKeyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The connector and the tenant's key in one read (the test endpoint's one round trip).
    fn connector_and_tunnel_key(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<(Option<Connector>, Option<TunnelKeyRecord>), StoreError>> + Send;
}

/// One item of a connector's test history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    pub result_id: String,
    pub connector_id: String,
    #[serde(flatten)]
    pub result: TestResult,
    /// Epoch seconds after which the table's TTL may delete it (readers do not wait for that).
    pub expires_at: u64,
}

/// The most results a connector's history shows.
pub const HISTORY_MAX: usize = 100;

/// Test histories.
pub trait History: Send + Sync {
    /// Writes a result's history item; rewriting the same result id writes the same item.
    fn put_result(
        &self,
        tenant: &str,
        item: &HistoryItem,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Up to `limit` results of a connector, newest first, made at or after the result id
    /// `oldest` and older than `before` (a cursor), if given.
    fn results(
        &self,
        tenant: &str,
        connector: &str,
        before: Option<&str>,
        oldest: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<HistoryItem>, StoreError>> + Send;
    /// How many results of a connector, made at or after `oldest`, are at least as new as
    /// `result` (itself included): where a cursor stands in the history.
    fn newer_count(
        &self,
        tenant: &str,
        connector: &str,
        result: &str,
        oldest: &str,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
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

/// A create's answer kept under its Idempotency-Key (a record: `idempotency` builds the HTTP
/// answer from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub key: String,
    /// `v2:<body hash>[:<authConfig MAC>]`, or (first format) the hex SHA-256 of the whole body.
    pub fingerprint: String,
    /// The wrapped data key the MAC is keyed from, when there is one.
    pub mac_key: Option<MacKey>,
    pub status: u16,
    pub body: String,
    pub location: String,
    pub version: u64,
    /// Unix seconds; DynamoDB's TTL removes the item some time after, reads ignore it at once.
    pub expires_at: u64,
}

/// The data key a v2 MAC is keyed from: wrapped by KMS under its connector's encryption context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacKey {
    pub connector_id: String,
    pub wrapped_key: Vec<u8>,
    pub key_id: String,
}

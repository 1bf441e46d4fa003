//! The connector as stored and as shown, and the 18 supported types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The supported connector types, as named in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorType {
    Postgresql,
    Mysql,
    Redshift,
    Snowflake,
    Databricks,
    Bigquery,
    Mongodb,
    Kafka,
    ConfluentKafka,
    AwsS3,
    Gcs,
    AzureBlob,
    Sftp,
    RestApi,
    Webhook,
    AmazonKinesis,
    Salesforce,
    Hubspot,
}

/// A required config entry: one field, or at least one of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Field(&'static str),
    AnyOf(&'static [&'static str]),
}

impl ConnectorType {
    pub const ALL: [ConnectorType; 18] = [
        Self::Postgresql,
        Self::Mysql,
        Self::Redshift,
        Self::Snowflake,
        Self::Databricks,
        Self::Bigquery,
        Self::Mongodb,
        Self::Kafka,
        Self::ConfluentKafka,
        Self::AwsS3,
        Self::Gcs,
        Self::AzureBlob,
        Self::Sftp,
        Self::RestApi,
        Self::Webhook,
        Self::AmazonKinesis,
        Self::Salesforce,
        Self::Hubspot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Redshift => "redshift",
            Self::Snowflake => "snowflake",
            Self::Databricks => "databricks",
            Self::Bigquery => "bigquery",
            Self::Mongodb => "mongodb",
            Self::Kafka => "kafka",
            Self::ConfluentKafka => "confluent_kafka",
            Self::AwsS3 => "aws_s3",
            Self::Gcs => "gcs",
            Self::AzureBlob => "azure_blob",
            Self::Sftp => "sftp",
            Self::RestApi => "rest_api",
            Self::Webhook => "webhook",
            Self::AmazonKinesis => "amazon_kinesis",
            Self::Salesforce => "salesforce",
            Self::Hubspot => "hubspot",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The config fields the spec requires for this type.
    pub fn requirements(self) -> &'static [Requirement] {
        use Requirement::{AnyOf, Field};
        match self {
            Self::Postgresql | Self::Mysql | Self::Redshift => {
                &[Field("host"), Field("port"), Field("database")]
            }
            Self::Snowflake => &[Field("account"), Field("warehouse"), Field("database")],
            Self::Databricks => &[Field("host"), Field("httpPath")],
            Self::Bigquery => &[Field("project"), Field("dataset")],
            Self::Mongodb => &[AnyOf(&["host", "connectionString"])],
            Self::Kafka | Self::ConfluentKafka => &[Field("bootstrapServers")],
            Self::AwsS3 => &[Field("bucket"), Field("region")],
            Self::Gcs => &[Field("bucket"), Field("project")],
            Self::AzureBlob => &[Field("container"), Field("storageAccount")],
            Self::Sftp => &[Field("host"), Field("port")],
            Self::RestApi | Self::Webhook => &[Field("url")],
            Self::AmazonKinesis => &[Field("streamName"), Field("region")],
            Self::Salesforce | Self::Hubspot => &[AnyOf(&["instanceUrl", "apiKey"])],
        }
    }

    /// The fields that decide which party receives this type's credentials and how they travel
    /// (its destination). The stored `authConfig` backs a probe only while the type and these
    /// fields are the stored ones (see `destination`). Names inside one service (database,
    /// bucket, container, topic) are not part of it.
    pub fn destination_fields(self) -> &'static [DestinationField] {
        use DestinationField as D;
        use Form::*;
        use Part::{Auth, Config};
        const SQL: &[DestinationField] = &[
            D(Config, "host", Host),
            D(Config, "port", Port(0)),
            D(Config, "sslmode", TlsMode),
            D(Config, "tunnel", Exact),
        ];
        const MYSQL: &[DestinationField] = &[
            D(Config, "host", Host),
            D(Config, "port", Port(0)),
            D(Config, "sslmode", TlsMode),
            D(Config, "serverPublicKey", Exact),
            D(Config, "tunnel", Exact),
        ];
        const KAFKA: &[DestinationField] = &[
            D(Config, "bootstrapServers", Servers(9092)),
            D(Config, "securityProtocol", Word),
            D(Config, "saslMechanism", Word),
        ];
        const AWS: &[DestinationField] = &[D(Auth, "roleArn", Exact)];
        const GOOGLE: &[DestinationField] = &[D(Auth, "serviceAccountKey", GoogleKey)];
        const HTTP: &[DestinationField] =
            &[D(Config, "url", OriginPath), D(Auth, "tokenUrl", FullUrl)];
        const SAAS: &[DestinationField] = &[D(Config, "instanceUrl", Origin)];
        match self {
            Self::Postgresql | Self::Redshift => SQL,
            Self::Mysql => MYSQL,
            Self::Snowflake => &[D(Config, "account", Word)],
            Self::Databricks => &[D(Config, "host", Host)],
            Self::Bigquery | Self::Gcs => GOOGLE,
            Self::Mongodb => &[
                D(Config, "host", Host),
                D(Config, "port", Port(27017)),
                D(Config, "connectionString", MongoUri),
                D(Config, "tls", Exact),
                D(Config, "tunnel", Exact),
            ],
            Self::Kafka | Self::ConfluentKafka => KAFKA,
            Self::AwsS3 | Self::AmazonKinesis => AWS,
            Self::AzureBlob => &[
                D(Config, "storageAccount", Word),
                D(Config, "connectionString", AzureConnectionString),
                D(Auth, "connectionString", AzureConnectionString),
            ],
            Self::Sftp => &[
                D(Config, "host", Host),
                D(Config, "port", Port(22)),
                D(Config, "hostKeyFingerprint", Exact),
                D(Config, "tunnel", Exact),
            ],
            Self::RestApi | Self::Webhook => HTTP,
            Self::Salesforce | Self::Hubspot => SAAS,
        }
    }

    /// Types whose `apiKey` requirement may be met by `authConfig.apiKey` instead of `config`.
    pub fn accepts_api_key_in_auth_config(self) -> bool {
        matches!(self, Self::Salesforce | Self::Hubspot)
    }
}

/// Where a destination field lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Config,
    Auth,
}

/// How a destination field is normalized before two destinations are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A host name or address: case and a trailing dot do not matter.
    Host,
    /// A port; absent is the given default (0: no default).
    Port(u16),
    /// A URL's origin: scheme, host and port (default ports and case normalized).
    Origin,
    /// A URL's origin and path (no query): on shared hosts the path names the party.
    OriginPath,
    /// A whole URL, normalized.
    FullUrl,
    /// `host:port,…` servers, as a set (the default port filled in).
    Servers(u16),
    /// A word whose case does not matter.
    Word,
    /// `sslmode`: its parsed value; absent stays distinct from an explicit `prefer`.
    TlsMode,
    /// The value exactly as given.
    Exact,
    /// A MongoDB URI: scheme, hosts (default port filled in) and its TLS options.
    MongoUri,
    /// An Azure storage connection string: account, endpoint, suffix and protocol.
    AzureConnectionString,
    /// A Google service-account key: its `token_uri` (absent is Google's own).
    GoogleKey,
}

/// One field of a type's destination: where it lives, its name and how it compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationField(pub Part, pub &'static str, pub Form);

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
        let legacy_key =
            self.kind.accepts_api_key_in_auth_config() && self.config.contains_key("apiKey");
        let (config, auth_config_fields) = match legacy_key {
            false => (
                Cow::Borrowed(&self.config),
                Cow::Borrowed(&self.auth_config_fields[..]),
            ),
            true => {
                let mut config = self.config.clone();
                config.remove("apiKey");
                let mut fields = self.auth_config_fields.clone();
                fields.push("apiKey".into());
                fields.sort();
                fields.dedup();
                (Cow::Owned(config), Cow::Owned(fields))
            }
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
            created_at: &self.created_at,
            updated_at: &self.updated_at,
            version: self.version,
            aws_external_id: crate::aws_identity::is_aws(self.kind)
                .then(|| crate::aws_identity::external_id(&self.tenant_id)),
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

/// `config.sslmode` of the database types: libpq's five values (MySQL's own spellings accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS; a password may then go in clear (the test says so in a warning).
    Disable,
    /// TLS when the server offers it, without certificate checks (libpq's default, and ours;
    /// absent, a readable password still needs a verified certificate: see `given`).
    Prefer,
    /// TLS or fail, without certificate checks.
    Require,
    /// TLS with the chain verified, any host name.
    VerifyCa,
    /// TLS with the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The default when `config.sslmode` is absent.
    pub const DEFAULT: SslMode = SslMode::Prefer;

    /// Parses libpq's spellings and MySQL's (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`,
    /// `VERIFY_IDENTITY`), ignoring case.
    pub fn parse(s: &str) -> Option<SslMode> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => Some(SslMode::Disable),
            "prefer" | "preferred" => Some(SslMode::Prefer),
            "require" | "required" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" | "verify-identity" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// From a connector's config: absent is the default, anything unparsable too (create and
    /// update refuse it, so only a stored legacy value can be unparsable).
    pub fn of(config: &Map<String, Value>) -> SslMode {
        Self::given(config).unwrap_or(SslMode::DEFAULT)
    }

    /// The mode the config sets, if it sets one. Absent differs from an explicit `prefer`: a
    /// password the server could read then goes only over TLS verified for the host name.
    pub fn given(config: &Map<String, Value>) -> Option<SslMode> {
        config
            .get("sslmode")
            .and_then(Value::as_str)
            .and_then(SslMode::parse)
    }
}

//! The registry of connector types. Everything about one family of types — its config fields and
//! their rules, its destination (who may receive its credentials), its vendor hosts, and the
//! typed input its probe takes — lives in that family's module; this file only names the 18
//! types and says which family each belongs to. A 19th type is one new module (or a new arm in
//! one) plus one line in `ConnectorType::family`.

pub mod aws;
pub mod azure;
pub mod databricks;
pub mod forms;
pub mod google;
pub mod http;
pub mod kafka;
pub mod mongo;
pub mod saas_api;
pub mod sftp;
pub mod snowflake;
pub mod sql;
pub mod tunnel;

use crate::error::FieldProblem;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The supported connector types, as named in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// The family module that owns this type: the registry's one decision per type.
    pub fn family(self) -> &'static Family {
        match self {
            Self::Postgresql | Self::Mysql | Self::Redshift => &sql::FAMILY,
            Self::Snowflake => &snowflake::FAMILY,
            Self::Databricks => &databricks::FAMILY,
            Self::Bigquery | Self::Gcs => &google::FAMILY,
            Self::Mongodb => &mongo::FAMILY,
            Self::Kafka | Self::ConfluentKafka => &kafka::FAMILY,
            Self::AwsS3 | Self::AmazonKinesis => &aws::FAMILY,
            Self::AzureBlob => &azure::FAMILY,
            Self::Sftp => &sftp::FAMILY,
            Self::RestApi | Self::Webhook => &http::FAMILY,
            Self::Salesforce | Self::Hubspot => &saas_api::FAMILY,
        }
    }

    /// The config fields the spec requires for this type.
    pub fn requirements(self) -> &'static [Requirement] {
        (self.family().requirements)(self)
    }

    /// The fields that decide which party receives this type's credentials and how they travel
    /// (its destination). The stored `authConfig` backs a probe only while the type and these
    /// fields are the stored ones (see `destination`).
    pub fn destination_fields(self) -> &'static [DestinationField] {
        (self.family().destination)(self)
    }

    /// The hosts that may receive this type's credentials (empty: the tenant's own hosts).
    pub fn vendor(self) -> Vendor {
        (self.family().vendor)(self)
    }
}

/// What a family module provides; each module defines one `FAMILY`.
pub struct Family {
    /// The spec's required config fields of a type.
    pub requirements: fn(ConnectorType) -> &'static [Requirement],
    /// The type's destination fields.
    pub destination: fn(ConnectorType) -> &'static [DestinationField],
    /// The vendor whose hosts alone may receive the type's credentials.
    pub vendor: fn(ConnectorType) -> Vendor,
    /// The form of one config field the family knows: `Some(problem)` when it is wrong. Fields
    /// the family does not know are kept as given.
    pub config_field: fn(ConnectorType, &str, &Value) -> Option<String>,
    /// Rules across several config fields.
    pub config_rules: fn(ConnectorType, &Map<String, Value>) -> Vec<FieldProblem>,
    /// The authConfig rules (checked on the final, unmasked authConfig).
    pub auth_config: fn(ConnectorType, &Map<String, Value>) -> Vec<FieldProblem>,
    /// True when the family's servers may sit behind an SSH bastion (`config.tunnel`).
    pub tunnel: bool,
    /// The typed probe input, parsed once from config and the opened authConfig.
    pub input: for<'a> fn(Source<'a>) -> Result<Input<'a>, String>,
}

/// A vendor's name and the hosts that may receive its credentials: `*.suffix` (any name under
/// it, not the suffix itself) or an exact name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vendor {
    pub name: &'static str,
    pub hosts: &'static [&'static str],
}

impl Vendor {
    /// The tenant's own destination: no vendor host list applies.
    pub const NONE: Vendor = Vendor {
        name: "the vendor",
        hosts: &[],
    };
}

/// What the probe input is parsed from.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub kind: ConnectorType,
    pub tenant: &'a str,
    pub config: &'a Map<String, Value>,
    pub auth_method: &'a str,
    pub secret: Option<&'a Map<String, Value>>,
    /// The tenant's tunnel key (OpenSSH PEM), opened when the config has a tunnel.
    pub tunnel_key: Option<&'a str>,
}

impl<'a> Source<'a> {
    /// A config field as trimmed, non-empty text.
    pub fn config_text(&self, key: &str) -> Option<&'a str> {
        forms::text(self.config, key)
    }

    /// A required config field, or the message naming it.
    pub fn required(&self, key: &str) -> Result<&'a str, String> {
        self.config_text(key)
            .ok_or_else(|| format!("config.{key} is required"))
    }

    /// An authConfig value as given (a password may begin or end with a space), if not blank.
    pub fn secret(&self, key: &str) -> Option<&'a str> {
        forms::untrimmed(self.secret?, key)
    }

    /// An authConfig token or identifier, trimmed (no space is part of one).
    pub fn token(&self, key: &str) -> Option<&'a str> {
        forms::text(self.secret?, key)
    }
}

/// A connector's typed probe input: one variant per family. It holds the opened secret's
/// values, so it prints only its family.
pub enum Input<'a> {
    Sql(sql::Sql<'a>),
    Mongo(mongo::Mongo<'a>),
    Sftp(sftp::Sftp<'a>),
    Kafka(kafka::Kafka<'a>),
    Http(http::Http),
    Snowflake(snowflake::Snowflake<'a>),
    Databricks(databricks::Databricks<'a>),
    Google(google::Google<'a>),
    Azure(azure::Azure<'a>),
    SaasApi(saas_api::SaasApi<'a>),
    Aws(aws::Aws<'a>),
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let family = match self {
            Input::Sql(_) => "sql",
            Input::Mongo(_) => "mongo",
            Input::Sftp(_) => "sftp",
            Input::Kafka(_) => "kafka",
            Input::Http(_) => "http",
            Input::Snowflake(_) => "snowflake",
            Input::Databricks(_) => "databricks",
            Input::Google(_) => "google",
            Input::Azure(_) => "azure",
            Input::SaasApi(_) => "saas_api",
            Input::Aws(_) => "aws",
        };
        write!(f, "Input::{family}(…)")
    }
}

/// Parses a stored or proposed connector into its probe input; `Err` is an `invalid_config`
/// message (a stored item that no longer parses still lists, and tests as `invalid_config`).
pub fn input(source: Source<'_>) -> Result<Input<'_>, String> {
    (source.kind.family().input)(source)
}

/// A required config entry: one field, or at least one of several (in config, or in authConfig
/// for the fields that may stand in there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Field(&'static str),
    AnyOf {
        config: &'static [&'static str],
        auth: &'static [&'static str],
    },
}

/// Where a destination field lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Config,
    Auth,
}

/// How a destination field is normalized before two destinations are compared.
#[derive(Debug, Clone, Copy)]
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
    /// The value exactly as given (typed: `true` and `"true"` differ).
    Exact,
    /// The family's own normalization of the (possibly absent) value.
    Custom(fn(Option<&Value>) -> Option<String>),
}

/// One field of a type's destination: where it lives, its name and how it compares.
#[derive(Debug, Clone, Copy)]
pub struct DestinationField(pub Part, pub &'static str, pub Form);

/// The names of the authConfig fields that hold a non-blank value (what a requirement may be met
/// by when the secret itself is not at hand).
pub fn present_fields(auth: &Map<String, Value>) -> Vec<String> {
    auth.iter()
        .filter(|(_, v)| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Checks a type's required config fields and the form of every field its family knows.
/// `auth_fields` names the authConfig fields that are set (see `present_fields`).
pub fn check_config(
    kind: ConnectorType,
    config: &Map<String, Value>,
    auth_fields: &[String],
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    for req in kind.requirements() {
        match req {
            Requirement::Field(f) if !config.contains_key(*f) => {
                problems.push(FieldProblem::new(
                    format!("config.{f}"),
                    format!("required for type {}", kind.as_str()),
                ));
            }
            Requirement::AnyOf { config: any, auth } => {
                let in_config = any.iter().any(|f| config.contains_key(*f));
                let in_auth = auth.iter().any(|f| auth_fields.iter().any(|a| a == f));
                if !in_config && !in_auth {
                    let names: Vec<String> = any.iter().map(|f| format!("config.{f}")).collect();
                    let mut problem = format!(
                        "one of {} is required for type {}",
                        names.join(", "),
                        kind.as_str()
                    );
                    if !auth.is_empty() {
                        problem.push_str(&format!(
                            " ({} may be given in authConfig instead)",
                            auth.join(" or ")
                        ));
                    }
                    problems.push(FieldProblem::new(names.join("|"), problem));
                }
            }
            Requirement::Field(_) => {}
        }
    }
    let family = kind.family();
    for (field, value) in config {
        if let Some(problem) = (family.config_field)(kind, field, value) {
            problems.push(FieldProblem::new(format!("config.{field}"), problem));
        }
    }
    problems.extend((family.config_rules)(kind, config));
    problems
}

/// The authConfig rules of the type's family.
pub fn check_auth_config(kind: ConnectorType, auth: &Map<String, Value>) -> Vec<FieldProblem> {
    (kind.family().auth_config)(kind, auth)
}

/// For families without rules across config fields.
fn no_config_rules(_: ConnectorType, _: &Map<String, Value>) -> Vec<FieldProblem> {
    Vec::new()
}

/// For families without authConfig rules.
fn no_auth_rules(_: ConnectorType, _: &Map<String, Value>) -> Vec<FieldProblem> {
    Vec::new()
}

/// For families whose credentials go to the tenant's own hosts.
fn no_vendor(_: ConnectorType) -> Vendor {
    Vendor::NONE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The string literals of a file's code: its test module and comments left out.
    fn literals(text: &str) -> Vec<String> {
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
        let mut out = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut parts = line.split('"');
            parts.next();
            while let (Some(inside), _) = (parts.next(), parts.next()) {
                out.push(inside.to_string());
            }
        }
        out
    }

    #[test]
    fn each_family_field_is_named_in_one_source_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        sources(&root.join("../src"), &mut files);
        assert!(files.len() > 50, "the sources were found");
        let owned = [
            "bootstrapServers",
            "securityProtocol",
            "saslMechanism",
            "httpPath",
            "storageAccount",
            "instanceUrl",
            "serviceAccountKey",
            "serverPublicKey",
            "streamName",
            "roleArn",
            "externalId",
            "tokenUrl",
            "headerName",
        ];
        // Shared by two families (the tunnel counts as one): named once in each.
        let shared = [
            ("connectionString", 2),
            ("apiKey", 2),
            ("hostKeyFingerprint", 2),
        ];
        let texts: Vec<(PathBuf, Vec<String>)> = files
            .iter()
            .map(|f| (f.clone(), literals(&std::fs::read_to_string(f).unwrap())))
            .collect();
        let is_word = |lit: &str, name: &str| {
            lit.match_indices(name).any(|(i, _)| {
                let before = lit[..i].chars().next_back();
                let after = lit[i + name.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
        };
        for (name, times) in owned.iter().map(|n| (*n, 1)).chain(shared) {
            let naming: Vec<String> = texts
                .iter()
                .filter(|(_, lits)| lits.iter().any(|l| is_word(l, name)))
                .map(|(f, _)| f.display().to_string())
                .collect();
            assert_eq!(naming.len(), times, "{name} is named in {naming:?}");
        }
    }

    #[test]
    fn every_type_has_a_family_and_round_trips_through_its_name() {
        for t in ConnectorType::ALL {
            assert_eq!(ConnectorType::parse(t.as_str()), Some(t));
            assert!(!t.requirements().is_empty(), "{t:?}");
            assert!(!t.destination_fields().is_empty(), "{t:?}");
        }
    }
}

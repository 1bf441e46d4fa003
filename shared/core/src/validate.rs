//! Create and update bodies: every problem is collected and named by field, and `config` is
//! checked to be storable. What a type's config must hold is its family's rule (`kinds`).

use crate::error::{ApiError, FieldProblem};
use crate::ids::is_requested_id;
use crate::kinds::saas_api::take_config_api_key;
use crate::kinds::{check_auth_config, check_config, present_fields};
use crate::model::{ConnectorType, PlainSecret, Status};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const DEFAULT_AUTH_METHOD: &str = "access_key";

/// A validated create request.
#[derive(Debug)]
pub struct NewConnector {
    pub name: String,
    pub kind: ConnectorType,
    pub description: Option<String>,
    pub config: Map<String, Value>,
    pub auth_method: String,
    pub auth_config: Option<PlainSecret>,
}

/// What an update does to an optional field.
#[derive(Debug, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

/// A validated update request; `kind` changes are checked against the merged config later.
#[derive(Debug, Default)]
pub struct ConnectorPatch {
    pub id: String,
    pub name: Option<String>,
    pub kind: Option<ConnectorType>,
    pub description: Change<String>,
    pub config: Change<Map<String, Value>>,
    pub auth_method: Option<String>,
    pub auth_config: Change<PlainSecret>,
    pub status: Option<Status>,
    /// `version` in the body: the version the client last read (optimistic locking).
    pub expected_version: Option<u64>,
}

impl ConnectorPatch {
    /// True when the patch touches something the probe depends on (used to re-check config).
    pub fn touches_config(&self) -> bool {
        self.kind.is_some()
            || !matches!(self.config, Change::Keep)
            || !matches!(self.auth_config, Change::Keep)
    }
}

const CREATE_FIELDS: &[&str] = &[
    "name",
    "type",
    "description",
    "config",
    "authMethod",
    "authConfig",
];
const UPDATE_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "description",
    "config",
    "authMethod",
    "authConfig",
    "status",
    "version",
];

/// Validates a create body.
pub fn parse_create(mut body: Map<String, Value>) -> Result<NewConnector, ApiError> {
    let mut problems = unknown_fields(&body, CREATE_FIELDS);
    let name = match body.remove("name") {
        None | Some(Value::Null) => required(&mut problems, "name"),
        Some(v) => name(&mut problems, "name", v),
    };
    let kind = match body.remove("type") {
        None | Some(Value::Null) => required(&mut problems, "type"),
        Some(v) => kind(&mut problems, "type", v),
    };
    let description = optional(
        &mut problems,
        body.remove("description"),
        "description",
        description,
    )
    .unwrap_or_default();
    let config = optional(&mut problems, body.remove("config"), "config", config)
        .flatten()
        .unwrap_or_default();
    let auth_method = match body.remove("authMethod") {
        None | Some(Value::Null) => Some(DEFAULT_AUTH_METHOD.to_string()),
        Some(v) => auth_method(&mut problems, "authMethod", v),
    };
    let auth_config = optional(
        &mut problems,
        body.remove("authConfig"),
        "authConfig",
        secret,
    )
    .flatten();
    if let Some(kind) = kind {
        let auth_fields = auth_config
            .as_ref()
            .map(|s| present_fields(&s.0))
            .unwrap_or_default();
        problems.extend(check_config(kind, &config, &auth_fields));
        if let Some(auth) = &auth_config {
            problems.extend(check_auth_config(kind, &auth.0));
        }
    }
    match (name, kind, auth_method) {
        (Some(name), Some(kind), Some(auth_method)) if problems.is_empty() => {
            let mut config = config;
            let mut auth_config = auth_config;
            if let Some((field, key)) = take_config_api_key(kind, &mut config) {
                auth_config
                    .get_or_insert_with(PlainSecret::default)
                    .0
                    .entry(field)
                    .or_insert(key);
            }
            Ok(NewConnector {
                name,
                kind,
                description,
                config,
                auth_method,
                auth_config,
            })
        }
        _ => Err(ApiError::validation(problems)),
    }
}

/// The `id` of an update or test body: 400 `missing_id` when absent or null, 400 `invalid_id`
/// when not a non-empty string of at most 128 characters.
pub fn requested_id(raw: Option<Value>) -> Result<String, ApiError> {
    match raw {
        None | Some(Value::Null) => Err(ApiError::new(400, "missing_id", "id is required")
            .with_details(vec![FieldProblem::new("id", "required")])),
        Some(Value::String(id)) if is_requested_id(&id) => Ok(id),
        Some(_) => Err(ApiError::invalid_id("id")),
    }
}

/// Validates an update body; the merged config is checked by `check_config` once the stored
/// connector is known.
pub fn parse_update(mut body: Map<String, Value>) -> Result<ConnectorPatch, ApiError> {
    let id = requested_id(body.remove("id"))?;
    let mut problems = Vec::new();
    let expected_version = non_null(&mut problems, body.remove("version"), "version", version);
    if body.is_empty() && problems.is_empty() {
        return Err(ApiError::new(
            400,
            "nothing_to_update",
            "the body names no field to update besides id",
        ));
    }
    problems.extend(unknown_fields(&body, UPDATE_FIELDS));
    let mut patch = ConnectorPatch {
        id,
        expected_version,
        ..Default::default()
    };
    patch.name = non_null(&mut problems, body.remove("name"), "name", name);
    patch.kind = non_null(&mut problems, body.remove("type"), "type", kind);
    patch.auth_method = non_null(
        &mut problems,
        body.remove("authMethod"),
        "authMethod",
        auth_method,
    );
    patch.status = non_null(&mut problems, body.remove("status"), "status", status);
    patch.description = change(
        &mut problems,
        body.remove("description"),
        "description",
        description,
    );
    patch.config = change(&mut problems, body.remove("config"), "config", config);
    patch.auth_config = change(
        &mut problems,
        body.remove("authConfig"),
        "authConfig",
        secret,
    );
    if problems.is_empty() {
        Ok(patch)
    } else {
        Err(ApiError::validation(problems))
    }
}

fn unknown_fields(body: &Map<String, Value>, allowed: &[&str]) -> Vec<FieldProblem> {
    body.keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldProblem::new(truncate(k, 64), "unknown field"))
        .collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn required<T>(problems: &mut Vec<FieldProblem>, field: &str) -> Option<T> {
    problems.push(FieldProblem::new(field, "required"));
    None
}

type Parser<T> = fn(&mut Vec<FieldProblem>, &str, Value) -> Option<T>;

/// An optional field: absent or null → `Some(None)`; invalid → `None` (problem recorded).
fn optional<T>(
    problems: &mut Vec<FieldProblem>,
    v: Option<Value>,
    field: &str,
    parse: Parser<T>,
) -> Option<Option<T>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(v) => parse(problems, field, v).map(Some),
    }
}

/// An update field that cannot be cleared: null is a problem.
fn non_null<T>(
    problems: &mut Vec<FieldProblem>,
    v: Option<Value>,
    field: &str,
    parse: Parser<T>,
) -> Option<T> {
    match v {
        None => None,
        Some(Value::Null) => {
            problems.push(FieldProblem::new(field, "cannot be null"));
            None
        }
        Some(v) => parse(problems, field, v),
    }
}

/// An update field that null clears.
fn change<T>(
    problems: &mut Vec<FieldProblem>,
    v: Option<Value>,
    field: &str,
    parse: Parser<T>,
) -> Change<T> {
    match v {
        None => Change::Keep,
        Some(Value::Null) => Change::Clear,
        Some(v) => parse(problems, field, v).map_or(Change::Keep, Change::Set),
    }
}

fn name(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<String> {
    let problem = match &v {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                "must not be empty"
            } else if t.chars().count() > MAX_NAME_CHARS {
                "must be at most 128 characters"
            } else if t.chars().any(char::is_control) {
                "must not contain control characters"
            } else if t.chars().any(is_invisible) {
                "must not contain invisible or direction-changing characters"
            } else {
                // One spelling per name: "Café" typed precomposed or with a combining accent is
                // the same name (and the same claim).
                return Some(t.nfc().collect());
            }
        }
        _ => "must be a string",
    };
    problems.push(FieldProblem::new(field, problem));
    None
}

fn kind(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<ConnectorType> {
    let parsed = v.as_str().and_then(ConnectorType::parse);
    if parsed.is_none() {
        let all: Vec<&str> = ConnectorType::ALL.iter().map(|t| t.as_str()).collect();
        problems.push(FieldProblem::new(
            field,
            format!("must be one of: {}", all.join(", ")),
        ));
    }
    parsed
}

fn description(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<String> {
    match v {
        Value::String(s) if s.chars().count() <= MAX_DESCRIPTION_CHARS => Some(s),
        Value::String(_) => {
            problems.push(FieldProblem::new(field, "must be at most 1024 characters"));
            None
        }
        _ => {
            problems.push(FieldProblem::new(field, "must be a string"));
            None
        }
    }
}

fn object(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => {
            problems.push(FieldProblem::new(field, "must be an object"));
            None
        }
    }
}

/// Deepest nesting of objects and arrays inside `config` (DynamoDB stores at most 32 levels).
pub const MAX_CONFIG_DEPTH: usize = 16;
/// Decimals in `config` stay within what DynamoDB numbers hold (and print without exponent).
const MAX_DECIMAL: f64 = 1e15;
const MIN_DECIMAL: f64 = 1e-15;

/// `config`: an object DynamoDB can store as a map — bounded nesting, no empty keys, numbers in range.
fn config(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<Map<String, Value>> {
    let map = object(problems, field, v)?;
    let before = problems.len();
    for (k, v) in &map {
        storable(problems, &format!("{field}.{k}"), k, v, 1);
    }
    (problems.len() == before).then_some(map)
}

fn storable(problems: &mut Vec<FieldProblem>, path: &str, key: &str, v: &Value, depth: usize) {
    if key.is_empty() {
        problems.push(FieldProblem::new(path, "keys must not be empty"));
        return;
    }
    let children: Vec<(String, &str, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (format!("{path}.{k}"), k.as_str(), v))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}[{i}]"), "-", v))
            .collect(),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN).abs();
            if !(x == 0.0 || (MIN_DECIMAL..=MAX_DECIMAL).contains(&x)) {
                problems.push(FieldProblem::new(
                    path,
                    "decimals must be between 1e-15 and 1e15 in magnitude",
                ));
            }
            return;
        }
        _ => return,
    };
    if !children.is_empty() && depth >= MAX_CONFIG_DEPTH {
        problems.push(FieldProblem::new(path, "nested deeper than 16 levels"));
        return;
    }
    for (p, k, v) in children {
        storable(problems, &p, k, v, depth + 1);
    }
}

/// Characters that render as nothing or reorder text (Unicode format characters, line and
/// paragraph separators, noncharacters): in a name they make look-alikes of other names.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0xFDD0..=0xFDEF | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
        || (c as u32 & 0xFFFE) == 0xFFFE
}

fn secret(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<PlainSecret> {
    object(problems, field, v).map(PlainSecret)
}

fn auth_method(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<String> {
    match v {
        Value::String(s)
            if (1..=32).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Some(s)
        }
        _ => {
            problems.push(FieldProblem::new(field, "must match [a-z0-9_]{1,32}"));
            None
        }
    }
}

fn version(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<u64> {
    match v.as_u64() {
        Some(n) if n >= 1 => Some(n),
        _ => {
            problems.push(FieldProblem::new(field, "must be a whole number from 1"));
            None
        }
    }
}

fn status(problems: &mut Vec<FieldProblem>, field: &str, v: Value) -> Option<Status> {
    match v.as_str() {
        Some("active") => Some(Status::Active),
        Some("inactive") => Some(Status::Inactive),
        _ => {
            problems.push(FieldProblem::new(
                field,
                "must be \"active\" or \"inactive\"",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn problem_fields(e: &ApiError) -> Vec<&str> {
        e.details.iter().map(|d| d.field.as_str()).collect()
    }

    /// A minimal valid config for every row of the spec's table.
    fn valid_config(kind: ConnectorType) -> Value {
        use ConnectorType::*;
        match kind {
            Postgresql | Mysql | Redshift => {
                json!({"host": "db.example.com", "port": 5432, "database": "app"})
            }
            Snowflake => {
                json!({"account": "xy12345.us-east-1", "warehouse": "COMPUTE_WH", "database": "ANALYTICS"})
            }
            Databricks => {
                json!({"host": "adb-1.azuredatabricks.net", "httpPath": "/sql/1.0/warehouses/abc"})
            }
            Bigquery => json!({"project": "p", "dataset": "d"}),
            Mongodb => json!({"host": "mongo.example.com"}),
            Kafka | ConfluentKafka => {
                json!({"bootstrapServers": "b1.example.com:9092,b2.example.com:9092"})
            }
            AwsS3 => json!({"bucket": "my-bucket", "region": "us-east-1"}),
            Gcs => json!({"bucket": "my-bucket", "project": "p"}),
            AzureBlob => json!({"container": "c", "storageAccount": "acct"}),
            Sftp => json!({"host": "sftp.example.com", "port": 22}),
            RestApi | Webhook => json!({"url": "https://api.example.com/v1"}),
            AmazonKinesis => json!({"streamName": "events", "region": "eu-west-1"}),
            Salesforce => json!({"instanceUrl": "https://acme.my.salesforce.com"}),
            Hubspot => json!({"instanceUrl": "https://api.hubapi.com"}),
        }
    }

    #[test]
    fn every_type_accepts_its_required_fields() {
        for kind in ConnectorType::ALL {
            let parsed = parse_create(body(
                json!({"name": "n", "type": kind.as_str(), "config": valid_config(kind)}),
            ));
            let parsed = parsed.unwrap_or_else(|e| panic!("{}: {:?}", kind.as_str(), e.details));
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.auth_method, "access_key");
        }
    }

    #[test]
    fn every_type_names_each_missing_field() {
        for kind in ConnectorType::ALL {
            let config = valid_config(kind);
            for field in config.as_object().unwrap().keys() {
                let mut partial = config.clone();
                partial.as_object_mut().unwrap().remove(field);
                let e = parse_create(body(
                    json!({"name": "n", "type": kind.as_str(), "config": partial}),
                ))
                .unwrap_err();
                assert_eq!(e.status, 400);
                let fields = problem_fields(&e);
                assert!(
                    fields
                        .iter()
                        .any(|f| f.contains(&format!("config.{field}"))),
                    "{}: {field} → {fields:?}",
                    kind.as_str()
                );
            }
        }
    }

    #[test]
    fn connection_strings_hold_no_password_and_sslmode_is_one_of_five() {
        let fields = |v: Value| match parse_create(body(v)) {
            Ok(_) => vec![],
            Err(e) => e.details.into_iter().map(|d| d.field).collect::<Vec<_>>(),
        };
        for uri in [
            "mongodb://app:s3cret@db.example.com:27017/app",
            "mongodb+srv://app:s3cret@cluster0.example.net/?authSource=admin",
            "mongodb://app:@db.example.com",
        ] {
            assert_eq!(
                fields(
                    json!({"name": "n", "type": "mongodb", "config": {"connectionString": uri}})
                ),
                ["config.connectionString"],
                "{uri}"
            );
        }
        for uri in [
            "mongodb://app@db.example.com:27017/app",
            "mongodb://db.example.com/?appName=a:b@c",
        ] {
            assert!(
                fields(
                    json!({"name": "n", "type": "mongodb", "config": {"connectionString": uri}})
                )
                .is_empty(),
                "{uri}"
            );
        }
        let pg = |mode: Value| {
            fields(json!({"name": "n", "type": "postgresql",
                "config": {"host": "db.example.com", "port": 5432, "database": "d", "sslmode": mode}}))
        };
        for ok in [
            "disable",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
            "VERIFY_IDENTITY",
            "Required",
        ] {
            assert!(pg(json!(ok)).is_empty(), "{ok}");
        }
        for bad in [json!("allow"), json!("on"), json!(true), json!("")] {
            assert_eq!(pg(bad.clone()), ["config.sslmode"], "{bad}");
        }
        assert_eq!(crate::model::SslMode::given(&Map::new()), None);
    }

    #[test]
    fn mongo_tls_is_a_boolean() {
        let create = |tls: Value| {
            parse_create(body(
                json!({"name": "n", "type": "mongodb", "config": {"host": "m.example.com", "tls": tls}}),
            ))
        };
        assert!(create(json!(true)).is_ok());
        let e = create(json!("true")).unwrap_err();
        assert_eq!(problem_fields(&e), ["config.tls"]);
    }

    #[test]
    fn either_or_rows() {
        let ok = |v: Value| parse_create(body(v)).is_ok();
        assert!(ok(
            json!({"name": "n", "type": "mongodb", "config": {"connectionString": "mongodb://a.example.com:27017"}})
        ));
        assert!(!ok(
            json!({"name": "n", "type": "mongodb", "config": {"connectionString": "postgres://a"}})
        ));
        assert!(ok(
            json!({"name": "n", "type": "hubspot", "config": {"apiKey": "k"}})
        ));
        assert!(ok(
            json!({"name": "n", "type": "hubspot", "authConfig": {"apiKey": "k"}})
        ));
        assert!(!ok(
            json!({"name": "n", "type": "hubspot", "authConfig": {"apiKey": ""}})
        ));
        assert!(!ok(json!({"name": "n", "type": "salesforce"})));
        assert!(
            !ok(json!({"name": "n", "type": "webhook", "authConfig": {"apiKey": "k"}})),
            "only salesforce/hubspot"
        );
    }

    #[test]
    fn ports() {
        for (port, good) in [
            (json!(1), true),
            (json!(65535), true),
            (json!(0), false),
            (json!(65536), false),
            (json!(-1), false),
            (json!("5432"), false),
            (json!(54.5), false),
            (json!(null), false),
        ] {
            let r = parse_create(body(
                json!({"name": "n", "type": "sftp", "config": {"host": "h.example.com", "port": port}}),
            ));
            assert_eq!(r.is_ok(), good, "port {port}");
        }
    }

    #[test]
    fn names() {
        let name_of = |v: Value| {
            parse_create(body(
                json!({"name": v, "type": "webhook", "config": {"url": "https://x.example.com"}}),
            ))
            .map(|c| c.name)
        };
        assert_eq!(name_of(json!("  padded  ")).unwrap(), "padded");
        assert_eq!(
            name_of(json!("ü".repeat(128))).unwrap().chars().count(),
            128,
            "limit counts characters"
        );
        for bad in [
            json!(""),
            json!("   "),
            json!("x".repeat(129)),
            json!("tab\there"),
            json!("nul\u{0}"),
            json!(5),
            json!(["a"]),
        ] {
            let e = name_of(bad.clone()).unwrap_err();
            assert_eq!(problem_fields(&e), ["name"], "{bad}");
        }
    }

    #[test]
    fn auth_methods_and_descriptions() {
        let base =
            || json!({"name": "n", "type": "webhook", "config": {"url": "https://x.example.com"}});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            parse_create(body(b))
        };
        assert_eq!(
            with("authMethod", json!("iam_role")).unwrap().auth_method,
            "iam_role"
        );
        for bad in [
            json!(""),
            json!("OAuth"),
            json!("a-b"),
            json!("a".repeat(33)),
            json!(1),
        ] {
            assert!(with("authMethod", bad.clone()).is_err(), "{bad}");
        }
        assert!(with("description", json!("d".repeat(1024))).is_ok());
        assert!(with("description", json!("d".repeat(1025))).is_err());
        assert!(with("description", json!(null))
            .unwrap()
            .description
            .is_none());
        assert!(with("authConfig", json!([1])).is_err());
        assert!(with("config", json!("x")).is_err());
    }

    #[test]
    fn updates() {
        let id = "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let p = parse_update(body(json!({"id": id, "description": null, "config": {"url": "https://x.example.com"}, "status": "inactive"}))).unwrap();
        assert!(matches!(p.description, Change::Clear));
        assert!(matches!(p.config, Change::Set(_)));
        assert!(matches!(p.auth_config, Change::Keep));
        assert_eq!(p.status, Some(Status::Inactive));
        assert!(p.touches_config());
        assert!(!parse_update(body(json!({"id": id, "name": "x"})))
            .unwrap()
            .touches_config());
        assert_eq!(
            parse_update(body(json!({"id": id}))).unwrap_err().code,
            "nothing_to_update"
        );
        assert_eq!(
            parse_update(body(json!({"id": 5, "name": "x"})))
                .unwrap_err()
                .code,
            "invalid_id"
        );
        assert_eq!(
            parse_update(body(json!({"name": "x"}))).unwrap_err().code,
            "missing_id"
        );
        let e = parse_update(body(
            json!({"id": id, "type": null, "status": "error", "bogus": 1}),
        ))
        .unwrap_err();
        let mut fields = problem_fields(&e);
        fields.sort();
        assert_eq!(fields, ["bogus", "status", "type"]);
    }

    #[test]
    fn an_azure_connection_string_sends_its_secret_only_to_azure() {
        let auth = |cs: &str| body(json!({"connectionString": cs}));
        let bad = check_auth_config(
            ConnectorType::AzureBlob,
            &auth("BlobEndpoint=https://collector.example.com/;SharedAccessSignature=sv=1&sig=x"),
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].field, "authConfig.connectionString");
        assert!(!bad[0].problem.contains("sig=x"), "the SAS is not echoed");
        assert!(check_auth_config(
            ConnectorType::AzureBlob,
            &auth(
                "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=1&sig=x"
            ),
        )
        .is_empty());
        assert!(check_auth_config(
            ConnectorType::AzureBlob,
            &auth("AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"),
        )
        .is_empty());
    }

    #[test]
    fn credentials_go_only_to_the_vendors_hosts() {
        let create = |kind: &str, config: Value| {
            parse_create(body(json!({"name": "n", "type": kind, "config": config})))
        };
        for (kind, config, field) in [
            (
                "salesforce",
                json!({"instanceUrl": "https://evil.example.com"}),
                "config.instanceUrl",
            ),
            (
                "salesforce",
                json!({"instanceUrl": "http://acme.my.salesforce.com"}),
                "config.instanceUrl",
            ),
            (
                "hubspot",
                json!({"instanceUrl": "https://acme.my.salesforce.com"}),
                "config.instanceUrl",
            ),
            (
                "databricks",
                json!({"host": "127.0.0.1", "httpPath": "/sql/1.0/warehouses/a"}),
                "config.host",
            ),
            (
                "databricks",
                json!({"host": "dbc.example.com", "httpPath": "/sql/1.0/warehouses/a"}),
                "config.host",
            ),
        ] {
            let e = create(kind, config).unwrap_err();
            assert_eq!(problem_fields(&e), [field], "{kind}");
            assert!(
                e.details[0]
                    .problem
                    .contains("credentials go only to the vendor")
                    || e.details[0].problem.contains("https"),
                "{:?}",
                e.details
            );
        }
        assert!(create(
            "salesforce",
            json!({"instanceUrl": "https://acme.lightning.force.com"})
        )
        .is_ok());
        assert!(create(
            "databricks",
            json!({"host": "dbc-1.cloud.databricks.com", "httpPath": "/sql/1.0/warehouses/a"})
        )
        .is_ok());
        // Types whose destination is the tenant's own keep any host.
        assert!(create("rest_api", json!({"url": "https://api.example.com"})).is_ok());
    }
}

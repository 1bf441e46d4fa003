//! SaaS logins (HubSpot, Salesforce, Databricks) against the HTTPS look-alikes of
//! local/saas_peer.py, reached through PROBE_RESOLVE overrides of the vendors' own names (the
//! certificate names them, signed by the tests' CA). One row per outcome, and the vendor-only rule:
//! another host is refused at create, and a stored legacy value is blocked before anything is sent.

use crate::support::{probe_settings, stack, test_through, tester_probing_with, Tenant};
use serde_json::{json, Map, Value};
use shared::probe::net::Overrides;
use shared::probe::{ProbeSettings, Prober};

// The look-alike's test credentials (local/saas_peer.py).
const HUBSPOT_TOKEN: &str = "pat-na1-11111111-2222-3333-4444-555555555555";
const HUBSPOT_NO_SCOPE: &str = "pat-na1-noscope-0000-0000-0000-000000000000";
const SF_TOKEN: &str = "00Dxx0000000001!AQ8AQOQKsUVvalid";
const SF_NO_API: &str = "00Dxx0000000001!AQ8AQOQKsUVnoapi";
const SF_CLIENT: (&str, &str) = ("3MVG9sfclientid", "sf-client-secret-1");
const SF_CC_TOKEN: &str = "00Dxx0000000001!AQ8AQfromclientcreds";
const DBX_TOKEN: &str = "dapi0123456789abcdef0123456789abcdef";
const DBX_CLIENT: (&str, &str) = ("dbx-sp-client-id", "dose-dbx-client-secret-1");
const DBX_CC_TOKEN: &str = "eyJraWQiOiJkYnhtMm0ifQ.m2m.token";
const SNOWFLAKE_PASSWORD: &str = "snow-pass-1";
const KEY_PASSPHRASE: &str = "key-passphrase-1";
const GCS_HMAC: (&str, &str) = (
    "GOOG1EPROBEHMACKEY000000000000000000000000000000000000000",
    "gcs-hmac-secret-0123456789abcdefghijklmn",
);
const WRONG: &str = "wrong-saas-secret-000";

/// Every secret a row may hold or a token endpoint may return: none may show anywhere.
pub const SECRETS: [&str; 13] = [
    GCS_HMAC.1,
    SNOWFLAKE_PASSWORD,
    KEY_PASSPHRASE,
    HUBSPOT_TOKEN,
    HUBSPOT_NO_SCOPE,
    SF_TOKEN,
    SF_NO_API,
    SF_CLIENT.1,
    SF_CC_TOKEN,
    DBX_TOKEN,
    DBX_CLIENT.1,
    DBX_CC_TOKEN,
    WRONG,
];

pub const SALESFORCE: &str = "https://acme.my.salesforce.com";
const DATABRICKS: &str = "dbc-1.cloud.databricks.com";
const SNOWFLAKE_LOCATOR: &str = "xy12345.us-east-1";
const SNOWFLAKE_ORG: &str = "myorg-acct1";

/// The key-pair login key of the tests' PKI (test_pki.py), plain or passphrase-encrypted.
pub fn login_key(encrypted: bool) -> String {
    let dir = std::env::var("TEST_PKI_DIR").expect("make integration sets TEST_PKI_DIR");
    let file = if encrypted {
        "login_key_enc.p8"
    } else {
        "login_key.p8"
    };
    std::fs::read_to_string(format!("{dir}/{file}")).unwrap()
}

/// Dry-run bodies that send every kind of SaaS credential once (for the leak scan of logs.rs).
pub fn one_login_per_credential() -> Vec<Value> {
    let wh = json!({"host": DATABRICKS, "httpPath": "/sql/1.0/warehouses/wh-ok"});
    vec![
        json!({"type": "hubspot", "authConfig": {"accessToken": HUBSPOT_TOKEN}}),
        json!({"type": "hubspot", "authConfig": {"accessToken": HUBSPOT_NO_SCOPE}}),
        json!({"type": "salesforce", "config": {"instanceUrl": SALESFORCE}, "authConfig": {"accessToken": SF_TOKEN}}),
        json!({"type": "salesforce", "config": {"instanceUrl": SALESFORCE}, "authConfig": {"accessToken": SF_NO_API}}),
        json!({"type": "salesforce", "config": {"instanceUrl": SALESFORCE},
               "authConfig": {"clientId": SF_CLIENT.0, "clientSecret": SF_CLIENT.1}}),
        json!({"type": "databricks", "config": wh, "authConfig": {"token": DBX_TOKEN}}),
        json!({"type": "databricks", "config": wh,
               "authConfig": {"clientId": DBX_CLIENT.0, "clientSecret": DBX_CLIENT.1}}),
        json!({"type": "databricks", "config": wh, "authConfig": {"token": WRONG}}),
        json!({"type": "snowflake", "config": {"account": SNOWFLAKE_LOCATOR, "warehouse": "COMPUTE_WH", "database": "ANALYTICS"},
               "authConfig": {"username": "probe_user", "password": SNOWFLAKE_PASSWORD}}),
        json!({"type": "azure_blob", "config": {"storageAccount": "probeacct", "container": "probe-container"},
               "authConfig": {"accountKey": env("AZURE_TEST_KEY")}}),
        json!({"type": "azure_blob", "config": {"storageAccount": "probeacct", "container": "probe-container"},
               "authConfig": {"sasToken": env("AZURE_TEST_SAS")}}),
        json!({"type": "bigquery", "config": {"project": "probe-project", "dataset": "analytics"},
               "authConfig": {"serviceAccountKey": service_account("https://oauth2.googleapis.com/token", true)}}),
        json!({"type": "snowflake", "config": {"account": SNOWFLAKE_LOCATOR, "warehouse": "COMPUTE_WH", "database": "ANALYTICS"},
               "authConfig": {"username": "key_user", "privateKey": login_key(true), "passphrase": KEY_PASSPHRASE}}),
    ]
}

/// Probe settings whose overrides send the vendors' names to the look-alike.
pub fn vendor_settings() -> ProbeSettings {
    let port: u16 = std::env::var("SAAS_TEST_PORT")
        .expect("SAAS_TEST_PORT is not set: run the integration tests with `make integration`")
        .parse()
        .unwrap();
    let azure = env("AZURE_TEST_PORT");
    let mut settings = probe_settings();
    settings.resolve = Overrides::parse(&format!(
        "api.hubapi.com:443:127.0.0.1:{port},acme.my.salesforce.com:443:127.0.0.1:{port},{DATABRICKS}:443:127.0.0.1:{port},\
         {SNOWFLAKE_LOCATOR}.snowflakecomputing.com:443:127.0.0.1:{port},{SNOWFLAKE_ORG}.snowflakecomputing.com:443:127.0.0.1:{port},\
         oauth2.googleapis.com:443:127.0.0.1:{port},bigquery.googleapis.com:443:127.0.0.1:{port},storage.googleapis.com:443:127.0.0.1:{port},\
         probeacct.blob.core.windows.net:443:127.0.0.1:{azure}"
    ))
    .unwrap();
    settings
}

/// (row name, type, config, authConfig, code, depth; "-" for none).
type Row = (
    &'static str,
    &'static str,
    Value,
    Value,
    &'static str,
    &'static str,
);

async fn check(prefix: &str, rows: Vec<Row>, more: impl Fn(&str, &Value, &str)) {
    let tester = tester_probing_with(vendor_settings()).await;
    let t = Tenant::new(prefix);
    for (name, kind, config, auth, code, depth) in rows {
        let mut body = json!({"name": name, "type": kind, "config": config});
        if auth != json!({}) {
            body["authConfig"] = auth;
        }
        let id = t.create_id(body).await;
        let r = test_through(&tester, &t, &id).await;
        assert_eq!(r.status, 200, "{name}: {}", r.raw);
        let d = &r.body["diagnostics"];
        let depth = (depth != "-").then_some(depth);
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(code), depth),
            "{name}: {}",
            r.raw
        );
        let status = if code == "ok" { "active" } else { "error" };
        assert_eq!(r.body["status"], status, "{name}");
        for secret in SECRETS {
            assert!(
                !r.raw.contains(secret),
                "{name}: a secret leaked: {}",
                r.raw
            );
        }
        more(name, d, &r.raw);
    }
}

#[tokio::test]
async fn hubspot_tokens_reach_the_depth_they_allow() {
    let cfg = || json!({"instanceUrl": "https://api.hubapi.com"});
    let rows: Vec<Row> = vec![
        (
            "right",
            "hubspot",
            cfg(),
            json!({"accessToken": HUBSPOT_TOKEN}),
            "ok",
            "authorized",
        ),
        (
            "api-key-alias",
            "hubspot",
            json!({}),
            json!({"apiKey": HUBSPOT_TOKEN}),
            "ok",
            "authorized",
        ),
        (
            "wrong",
            "hubspot",
            cfg(),
            json!({"accessToken": WRONG}),
            "auth_failed",
            "reachable",
        ),
        (
            "no-scope",
            "hubspot",
            cfg(),
            json!({"accessToken": HUBSPOT_NO_SCOPE}),
            "permission_denied",
            "authenticated",
        ),
        (
            "no-credentials",
            "hubspot",
            cfg(),
            json!({}),
            "ok",
            "reachable",
        ),
    ];
    check("hubspot", rows, |name, d, raw| match name {
        "right" => {
            assert!(d["message"].as_str().unwrap().contains("62515"), "{raw}");
            assert!(
                d["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
                "{raw}"
            );
        }
        "no-scope" => assert!(
            d["message"].as_str().unwrap().contains("MISSING_SCOPES"),
            "{raw}"
        ),
        "no-credentials" => assert!(
            d["message"].as_str().unwrap().contains("not checked"),
            "{raw}"
        ),
        _ => {}
    })
    .await;
}

#[tokio::test]
async fn salesforce_tokens_and_client_credentials_reach_the_depth_they_allow() {
    let cfg = || json!({"instanceUrl": SALESFORCE});
    let cc = |secret: &str| json!({"clientId": SF_CLIENT.0, "clientSecret": secret});
    let rows: Vec<Row> = vec![
        (
            "token",
            "salesforce",
            cfg(),
            json!({"accessToken": SF_TOKEN}),
            "ok",
            "authorized",
        ),
        (
            "api-key-alias",
            "salesforce",
            cfg(),
            json!({"apiKey": SF_TOKEN}),
            "ok",
            "authorized",
        ),
        (
            "wrong-token",
            "salesforce",
            cfg(),
            json!({"accessToken": WRONG}),
            "auth_failed",
            "reachable",
        ),
        (
            "api-disabled",
            "salesforce",
            cfg(),
            json!({"accessToken": SF_NO_API}),
            "permission_denied",
            "authenticated",
        ),
        (
            "client-credentials",
            "salesforce",
            cfg(),
            cc(SF_CLIENT.1),
            "ok",
            "authorized",
        ),
        (
            "wrong-client-secret",
            "salesforce",
            cfg(),
            cc(WRONG),
            "auth_failed",
            "reachable",
        ),
        (
            "no-credentials",
            "salesforce",
            cfg(),
            json!({}),
            "ok",
            "reachable",
        ),
    ];
    check("salesforce", rows, |name, d, raw| match name {
        "token" => {
            assert_eq!(
                d["server"],
                json!({"product": "Salesforce", "version": "API v60.0"}),
                "{raw}"
            );
        }
        "wrong-token" => assert!(
            d["message"]
                .as_str()
                .unwrap()
                .contains("INVALID_SESSION_ID"),
            "{raw}"
        ),
        "api-disabled" => assert!(
            d["message"]
                .as_str()
                .unwrap()
                .contains("API_DISABLED_FOR_ORG"),
            "{raw}"
        ),
        "wrong-client-secret" => assert!(
            d["message"].as_str().unwrap().contains("invalid_client"),
            "{raw}"
        ),
        _ => {}
    })
    .await;
}

#[tokio::test]
async fn databricks_tokens_and_service_principals_reach_the_depth_they_allow() {
    let wh =
        |id: &str| json!({"host": DATABRICKS, "httpPath": format!("/sql/1.0/warehouses/{id}")});
    let cluster = |id: &str| json!({"host": DATABRICKS, "httpPath": format!("sql/protocolv1/o/1234567890/{id}")});
    let pat = |t: &str| json!({"token": t});
    let m2m = |secret: &str| json!({"clientId": DBX_CLIENT.0, "clientSecret": secret});
    let rows: Vec<Row> = vec![
        (
            "pat",
            "databricks",
            wh("wh-ok"),
            pat(DBX_TOKEN),
            "ok",
            "authorized",
        ),
        (
            "wrong-pat",
            "databricks",
            wh("wh-ok"),
            pat(WRONG),
            "auth_failed",
            "reachable",
        ),
        (
            "no-grant",
            "databricks",
            wh("wh-locked"),
            pat(DBX_TOKEN),
            "permission_denied",
            "authenticated",
        ),
        (
            "missing-warehouse",
            "databricks",
            wh("wh-gone"),
            pat(DBX_TOKEN),
            "not_found",
            "authenticated",
        ),
        (
            "cluster",
            "databricks",
            cluster("0123-456789-abcdefgh"),
            pat(DBX_TOKEN),
            "ok",
            "authorized",
        ),
        (
            "missing-cluster",
            "databricks",
            cluster("0000-000000-gone"),
            pat(DBX_TOKEN),
            "not_found",
            "authenticated",
        ),
        (
            "m2m",
            "databricks",
            wh("wh-ok"),
            m2m(DBX_CLIENT.1),
            "ok",
            "authorized",
        ),
        (
            "wrong-m2m",
            "databricks",
            wh("wh-ok"),
            m2m(WRONG),
            "auth_failed",
            "reachable",
        ),
        (
            "no-credentials",
            "databricks",
            wh("wh-ok"),
            json!({}),
            "ok",
            "reachable",
        ),
    ];
    check("databricks", rows, |name, d, raw| {
        if name == "pat" {
            assert!(d["message"].as_str().unwrap().contains("RUNNING"), "{raw}");
        }
    })
    .await;
}

#[tokio::test]
async fn snowflake_passwords_and_key_pairs_reach_the_depth_they_allow() {
    let cfg = |account: &str, warehouse: &str, database: &str, role: &str| json!({"account": account, "warehouse": warehouse, "database": database, "role": role});
    let good = || cfg(SNOWFLAKE_LOCATOR, "COMPUTE_WH", "ANALYTICS", "ANALYST");
    let password = |user: &str, p: &str| json!({"username": user, "password": p});
    let key = |user: &str, encrypted: bool, passphrase: Option<&str>| {
        let mut auth = json!({"username": user, "privateKey": login_key(encrypted)});
        if let Some(p) = passphrase {
            auth["passphrase"] = json!(p);
        }
        auth
    };
    let sf = "snowflake";
    let rows: Vec<Row> = vec![
        (
            "password",
            sf,
            good(),
            password("probe_user", SNOWFLAKE_PASSWORD),
            "ok",
            "authorized",
        ),
        (
            "org-account",
            sf,
            cfg(SNOWFLAKE_ORG, "COMPUTE_WH", "ANALYTICS", "ANALYST"),
            password("probe_user", SNOWFLAKE_PASSWORD),
            "ok",
            "authorized",
        ),
        (
            "wrong-password",
            sf,
            good(),
            password("probe_user", WRONG),
            "auth_failed",
            "reachable",
        ),
        (
            "key-pair",
            sf,
            good(),
            key("key_user", false, None),
            "ok",
            "authorized",
        ),
        (
            "key-pair-encrypted",
            sf,
            good(),
            key("key_user", true, Some(KEY_PASSPHRASE)),
            "ok",
            "authorized",
        ),
        (
            "key-not-registered",
            sf,
            good(),
            key("probe_user", false, None),
            "auth_failed",
            "reachable",
        ),
        (
            "wrong-passphrase",
            sf,
            good(),
            key("key_user", true, Some(WRONG)),
            "invalid_config",
            "-",
        ),
        (
            "missing-database",
            sf,
            cfg(SNOWFLAKE_LOCATOR, "COMPUTE_WH", "NOPE", "ANALYST"),
            password("probe_user", SNOWFLAKE_PASSWORD),
            "not_found",
            "authenticated",
        ),
        (
            "missing-warehouse",
            sf,
            cfg(SNOWFLAKE_LOCATOR, "NOPE_WH", "ANALYTICS", "ANALYST"),
            password("probe_user", SNOWFLAKE_PASSWORD),
            "not_found",
            "authenticated",
        ),
        (
            "role-not-granted",
            sf,
            cfg(SNOWFLAKE_LOCATOR, "COMPUTE_WH", "ANALYTICS", "ACCOUNTADMIN"),
            password("probe_user", SNOWFLAKE_PASSWORD),
            "permission_denied",
            "authenticated",
        ),
        ("no-credentials", sf, good(), json!({}), "ok", "reachable"),
    ];
    check("snowflake", rows, |name, d, raw| match name {
        "password" | "key-pair" => {
            assert_eq!(
                d["server"],
                json!({"product": "Snowflake", "version": "8.44.1"}),
                "{raw}"
            );
            // The session the login opened was closed (the look-alike answers 200 only for a
            // session it issued and has not closed).
            assert!(raw.contains("close session: HTTP 200"), "{raw}");
        }
        "wrong-password" => assert!(d["message"].as_str().unwrap().contains("390100"), "{raw}"),
        "key-not-registered" => assert!(d["message"].as_str().unwrap().contains("390144"), "{raw}"),
        "wrong-passphrase" => assert!(
            d["message"].as_str().unwrap().contains("passphrase"),
            "{raw}"
        ),
        "role-not-granted" => assert!(d["message"].as_str().unwrap().contains("390186"), "{raw}"),
        _ => {}
    })
    .await;
}

/// The look-alike's service account (its key is the PKI's login key), as Google issues it.
pub fn service_account(token_uri: &str, as_text: bool) -> Value {
    let key = json!({
        "type": "service_account",
        "project_id": "probe-project",
        "private_key_id": "0123abcd",
        "private_key": login_key(false),
        "client_email": "probe@probe-project.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    });
    if as_text {
        json!(key.to_string())
    } else {
        key
    }
}

#[tokio::test]
async fn google_service_accounts_reach_the_depth_they_allow() {
    const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
    let sa = |as_text| json!({"serviceAccountKey": service_account(TOKEN_URI, as_text)});
    let bq = |dataset: &str| json!({"project": "probe-project", "dataset": dataset});
    let gcs = |bucket: &str| json!({"project": "probe-project", "bucket": bucket});
    let hmac = |secret: &str| json!({"accessKeyId": GCS_HMAC.0, "secretAccessKey": secret});
    let mut stranger = service_account(TOKEN_URI, false);
    stranger["client_email"] = json!("someone@other.iam.gserviceaccount.com");
    let rows: Vec<Row> = vec![
        (
            "bq",
            "bigquery",
            bq("analytics"),
            sa(false),
            "ok",
            "authorized",
        ),
        (
            "bq-key-as-text",
            "bigquery",
            bq("analytics"),
            sa(true),
            "ok",
            "authorized",
        ),
        (
            "bq-unknown-account",
            "bigquery",
            bq("analytics"),
            json!({"serviceAccountKey": stranger}),
            "auth_failed",
            "reachable",
        ),
        (
            "bq-missing",
            "bigquery",
            bq("nope"),
            sa(false),
            "not_found",
            "authenticated",
        ),
        (
            "bq-no-grant",
            "bigquery",
            bq("secret"),
            sa(false),
            "permission_denied",
            "authenticated",
        ),
        (
            "bq-no-credentials",
            "bigquery",
            bq("analytics"),
            json!({}),
            "ok",
            "reachable",
        ),
        (
            "gcs",
            "gcs",
            gcs("probe-bucket"),
            sa(false),
            "ok",
            "authorized",
        ),
        (
            "gcs-missing",
            "gcs",
            gcs("gone-bucket"),
            sa(false),
            "not_found",
            "authenticated",
        ),
        (
            "gcs-no-grant",
            "gcs",
            gcs("locked-bucket"),
            sa(false),
            "permission_denied",
            "authenticated",
        ),
        (
            "gcs-no-credentials",
            "gcs",
            gcs("probe-bucket"),
            json!({}),
            "ok",
            "reachable",
        ),
        (
            "gcs-hmac",
            "gcs",
            gcs("probe-bucket"),
            hmac(GCS_HMAC.1),
            "ok",
            "authorized",
        ),
        (
            "gcs-hmac-wrong-secret",
            "gcs",
            gcs("probe-bucket"),
            hmac(WRONG),
            "auth_failed",
            "reachable",
        ),
        (
            "gcs-hmac-missing",
            "gcs",
            gcs("gone-bucket"),
            hmac(GCS_HMAC.1),
            "not_found",
            "authenticated",
        ),
        (
            "gcs-hmac-no-grant",
            "gcs",
            gcs("locked-bucket"),
            hmac(GCS_HMAC.1),
            "permission_denied",
            "authenticated",
        ),
    ];
    check("google", rows, |name, d, raw| {
        if name == "bq-unknown-account" {
            assert!(
                d["message"].as_str().unwrap().contains("invalid_grant"),
                "{raw}"
            );
        }
    })
    .await;
    // A token_uri that is not Google's is refused at create, named down to the field.
    let t = Tenant::new("googleuri");
    for as_text in [false, true] {
        let r = t
            .create(json!({"name": format!("bq-{as_text}"), "type": "bigquery", "config": bq("analytics"),
                           "authConfig": {"serviceAccountKey": service_account("https://collector.example.com/token", as_text)}}))
            .await;
        assert_eq!(r.status, 400, "{}", r.raw);
        assert_eq!(
            r.fields(),
            ["authConfig.serviceAccountKey.token_uri"],
            "{}",
            r.raw
        );
        assert!(
            !r.raw.contains("BEGIN PRIVATE KEY"),
            "the key is not echoed"
        );
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `make integration`"))
}

#[tokio::test]
async fn azure_blob_keys_sas_and_connection_strings_reach_the_depth_they_allow() {
    let key = env("AZURE_TEST_KEY");
    let sas = env("AZURE_TEST_SAS");
    let write_only = env("AZURE_TEST_SAS_WRITE_ONLY");
    // A valid key for another account: its signature does not verify for probeacct.
    let wrong_key = "d3Jvbmcta2V5LWQzSnZibWN0YTJWNQ==";
    let cfg = |container: &str| json!({"storageAccount": "probeacct", "container": container});
    let cs = |cred: &str| json!({"connectionString": format!("DefaultEndpointsProtocol=https;AccountName=probeacct;{cred};EndpointSuffix=core.windows.net")});
    let ab = "azure_blob";
    let rows: Vec<Row> = vec![
        (
            "shared-key",
            ab,
            cfg("probe-container"),
            json!({"accountKey": key}),
            "ok",
            "authorized",
        ),
        (
            "wrong-key",
            ab,
            cfg("probe-container"),
            json!({"accountKey": wrong_key}),
            "auth_failed",
            "reachable",
        ),
        (
            "missing-container",
            ab,
            cfg("no-such-container"),
            json!({"accountKey": key}),
            "not_found",
            "authenticated",
        ),
        (
            "sas",
            ab,
            cfg("probe-container"),
            json!({"sasToken": format!("?{sas}")}),
            "ok",
            "authorized",
        ),
        (
            "sas-write-only",
            ab,
            cfg("probe-container"),
            json!({"sasToken": write_only}),
            "permission_denied",
            "authenticated",
        ),
        (
            "sas-tampered",
            ab,
            cfg("probe-container"),
            json!({"sasToken": sas.replace("sig=", "sig=A")}),
            "auth_failed",
            "reachable",
        ),
        (
            "connection-string-key",
            ab,
            cfg("probe-container"),
            cs(&format!("AccountKey={key}")),
            "ok",
            "authorized",
        ),
        (
            "connection-string-sas",
            ab,
            cfg("probe-container"),
            json!({"connectionString": format!("BlobEndpoint=https://probeacct.blob.core.windows.net/;SharedAccessSignature={sas}")}),
            "ok",
            "authorized",
        ),
        (
            "no-credentials",
            ab,
            cfg("probe-container"),
            json!({}),
            "ok",
            "reachable",
        ),
    ];
    let tester = tester_probing_with(vendor_settings()).await;
    let t = Tenant::new("azure");
    for (name, kind, config, auth, code, depth) in rows {
        let mut body = json!({"name": name, "type": kind, "config": config});
        if auth != json!({}) {
            body["authConfig"] = auth;
        }
        let id = t.create_id(body).await;
        let r = test_through(&tester, &t, &id).await;
        let d = &r.body["diagnostics"];
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(code), Some(depth)),
            "{name}: {}",
            r.raw
        );
        for secret in [key.as_str(), sas.as_str(), write_only.as_str(), wrong_key] {
            assert!(!r.raw.contains(secret), "{name}: a secret leaked");
        }
        if name == "shared-key" {
            assert_eq!(d["server"]["product"], "Azure Storage", "{}", r.raw);
        }
    }
    // A key or SAS in config (returned in clear) is refused at create.
    let r = t
        .create(json!({"name": "cs-in-config", "type": ab,
                       "config": {"storageAccount": "probeacct", "container": "c", "connectionString": format!("AccountName=probeacct;AccountKey={key}")}}))
        .await;
    assert_eq!(r.fields(), ["config.connectionString"], "{}", r.raw);
    assert!(!r.raw.contains(&key), "the key is not echoed");
}

#[tokio::test]
async fn credentials_go_only_to_the_vendors_hosts() {
    let t = Tenant::new("vendoronly");
    for (kind, config, field) in [
        (
            "salesforce",
            json!({"instanceUrl": "https://collector.example.com"}),
            "config.instanceUrl",
        ),
        (
            "salesforce",
            json!({"instanceUrl": "http://acme.my.salesforce.com"}),
            "config.instanceUrl",
        ),
        (
            "hubspot",
            json!({"instanceUrl": "https://127.0.0.1"}),
            "config.instanceUrl",
        ),
        (
            "databricks",
            json!({"host": "dbc.example.com", "httpPath": "/sql/1.0/warehouses/a"}),
            "config.host",
        ),
    ] {
        let r = t
            .create(
                json!({"name": format!("{kind}-elsewhere"), "type": kind, "config": config,
                           "authConfig": {"accessToken": SF_TOKEN}}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{kind}: {}",
            r.raw
        );
        assert_eq!(r.fields(), [field], "{kind}: {}", r.raw);
    }
    // A legacy connector stored before the rule: blocked before anything is sent.
    let prober = Prober::new(vendor_settings(), &stack().await.sdk);
    let config: Map<String, Value> = json!({"instanceUrl": "https://127.0.0.1/"})
        .as_object()
        .unwrap()
        .clone();
    let secret: Map<String, Value> = json!({"accessToken": SF_TOKEN})
        .as_object()
        .unwrap()
        .clone();
    let d = prober
        .probe(shared::kinds::Source {
            kind: shared::model::ConnectorType::Salesforce,
            tenant: "legacy-tenant",
            config: &config,
            auth_method: "api_key",
            secret: Some(&secret),
            tunnel_key: None,
        })
        .await;
    let d = serde_json::to_value(&d).unwrap();
    assert_eq!(d["code"], "destination_blocked", "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("credentials go only to the vendor"),
        "{d}"
    );
    assert!(
        d["steps"].as_array().unwrap().is_empty(),
        "nothing was sent: {d}"
    );
}

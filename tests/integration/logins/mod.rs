//! Login probes against real servers started by `make integration` (local/with-databases.sh):
//! Debian's PostgreSQL (TLS on PG_TEST_PORT, none on PG_TEST_PLAIN_PORT) and MariaDB (TLS on
//! MYSQL_TEST_PORT), and a caching_sha2_password look-alike (MYSQL_SHA2_TEST_PORT); TLS from the
//! tests' PKI, whose CA is PROBE_EXTRA_CA_FILE. One row per outcome: code, depth, status. One file
//! per protocol, as `shared/src/probe/wire/`; the helpers here.

use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::{json, Value};

pub(crate) fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with `make integration` (it starts PostgreSQL)")
    })
}

pub(super) fn port(plain: bool) -> u16 {
    env(if plain {
        "PG_TEST_PLAIN_PORT"
    } else {
        "PG_TEST_PORT"
    })
    .parse()
    .unwrap()
}

/// One login to try and what must come of it.
pub(super) struct Row {
    pub(super) name: &'static str,
    pub(super) kind: &'static str,
    pub(super) host: &'static str,
    pub(super) port: u16,
    pub(super) sslmode: Option<&'static str>,
    pub(super) user: &'static str,
    /// `Some("right")` is the servers' password.
    pub(super) password: Option<&'static str>,
    pub(super) database: &'static str,
    pub(super) code: &'static str,
    pub(super) depth: &'static str,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn row(
    name: &'static str,
    kind: &'static str,
    host: &'static str,
    port: u16,
    sslmode: Option<&'static str>,
    user: &'static str,
    password: Option<&'static str>,
    database: &'static str,
    code: &'static str,
    depth: &'static str,
) -> Row {
    Row {
        name,
        kind,
        host,
        port,
        sslmode,
        user,
        password,
        database,
        code,
        depth,
    }
}

pub(super) fn body(row: &Row) -> Value {
    let mut config = json!({"host": row.host, "port": row.port, "database": row.database});
    if let Some(mode) = row.sslmode {
        config["sslmode"] = json!(mode);
    }
    let mut auth = json!({"username": row.user});
    if let Some(p) = row.password {
        auth["password"] = json!(if p == "right" {
            env("PG_TEST_PASSWORD")
        } else {
            p.to_string()
        });
    }
    json!({"name": row.name, "type": row.kind, "config": config, "authConfig": auth})
}

/// Creates and tests each row's connector; checks code, depth, status and that no password shows;
/// `more` checks what is particular to a row.
pub(super) async fn check(prefix: &str, rows: &[Row], more: impl Fn(&Row, &Value, &str)) {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new(prefix);
    for row in rows {
        let id = t.create_id(body(row)).await;
        let r = test_through(&tester, &t, &id).await;
        assert_eq!(r.status, 200, "{}: {}", row.name, r.raw);
        let d = &r.body["diagnostics"];
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(row.code), Some(row.depth)),
            "{}: {}",
            row.name,
            r.raw
        );
        let status = if row.code == "ok" { "active" } else { "error" };
        assert_eq!(r.body["status"], status, "{}", row.name);
        for secret in [env("PG_TEST_PASSWORD").as_str(), "wrong-db-password"] {
            assert!(!r.raw.contains(secret), "{}: the password leaked", row.name);
        }
        // A username is a credential value too: texts name it masked (PostgreSQL quotes it back).
        for text in [&d["message"], &r.body["lastError"]] {
            let text = text.as_str().unwrap_or("");
            assert!(!text.contains(row.user), "{}: {text}", row.name);
        }
        more(row, d, &r.raw);
    }
}

pub(super) fn step_names(d: &Value) -> Vec<&str> {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

mod certificates;
mod kafka;
mod mongo;
mod mysql;
mod postgres;
mod sftp;

//! Login probes against a real PostgreSQL (Debian's server, started by `make integration` through
//! local/with-postgres.sh: TLS on PG_TEST_PORT with a CA of its own in PROBE_EXTRA_CA_FILE, no TLS
//! on PG_TEST_PLAIN_PORT). One row per outcome: the code, the depth, and what the status becomes.

use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::{json, Value};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with `make integration` (it starts PostgreSQL)")
    })
}

fn port(plain: bool) -> u16 {
    env(if plain {
        "PG_TEST_PLAIN_PORT"
    } else {
        "PG_TEST_PORT"
    })
    .parse()
    .unwrap()
}

struct Row {
    name: &'static str,
    host: &'static str,
    plain: bool,
    sslmode: Option<&'static str>,
    user: &'static str,
    password: Option<&'static str>,
    database: &'static str,
    code: &'static str,
    depth: Option<&'static str>,
}

fn body(row: &Row) -> Value {
    let mut config = json!({"host": row.host, "port": port(row.plain), "database": row.database});
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
    json!({"name": row.name, "type": "postgresql", "config": config, "authConfig": auth})
}

#[tokio::test]
async fn postgres_logins_reach_the_depth_the_credentials_allow() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("pglogin");
    let rows = [
        Row {
            name: "scram",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "app",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        Row {
            name: "wrong-password",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "app",
            password: Some("wrong-pg-password"),
            database: "appdb",
            code: "auth_failed",
            depth: Some("reachable"),
        },
        Row {
            name: "no-such-user",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "ghost",
            password: Some("right"),
            database: "appdb",
            code: "auth_failed",
            depth: Some("reachable"),
        },
        Row {
            name: "missing-db",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "app",
            password: Some("right"),
            database: "nosuchdb",
            code: "not_found",
            depth: Some("authenticated"),
        },
        Row {
            name: "no-grant",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "nogrant",
            password: Some("right"),
            database: "lockeddb",
            code: "permission_denied",
            depth: Some("authenticated"),
        },
        Row {
            name: "md5-over-tls",
            host: "127.0.0.1",
            plain: false,
            sslmode: Some("require"),
            user: "md5user",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        Row {
            name: "cleartext-over-tls",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "clearuser",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        Row {
            name: "trust",
            host: "127.0.0.1",
            plain: false,
            sslmode: None,
            user: "trustuser",
            password: None,
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        // Cleartext and MD5 are never sent unencrypted unless the user disabled TLS.
        Row {
            name: "cleartext-refused",
            host: "127.0.0.1",
            plain: true,
            sslmode: None,
            user: "clearuser",
            password: Some("right"),
            database: "appdb",
            code: "auth_unsupported",
            depth: Some("reachable"),
        },
        Row {
            name: "md5-refused",
            host: "127.0.0.1",
            plain: true,
            sslmode: None,
            user: "md5user",
            password: Some("right"),
            database: "appdb",
            code: "auth_unsupported",
            depth: Some("reachable"),
        },
        Row {
            name: "cleartext-disabled-tls",
            host: "127.0.0.1",
            plain: true,
            sslmode: Some("disable"),
            user: "clearuser",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        Row {
            name: "scram-without-tls",
            host: "127.0.0.1",
            plain: true,
            sslmode: None,
            user: "app",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        Row {
            name: "require-but-plain",
            host: "127.0.0.1",
            plain: true,
            sslmode: Some("require"),
            user: "app",
            password: Some("right"),
            database: "appdb",
            code: "tls_failed",
            depth: Some("reachable"),
        },
        // The server's certificate names `localhost` only, signed by the tests' CA.
        Row {
            name: "verify-full",
            host: "localhost",
            plain: false,
            sslmode: Some("verify-full"),
            user: "app",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
        Row {
            name: "verify-full-wrong-name",
            host: "127.0.0.1",
            plain: false,
            sslmode: Some("verify-full"),
            user: "app",
            password: Some("right"),
            database: "appdb",
            code: "tls_failed",
            depth: Some("reachable"),
        },
        Row {
            name: "verify-ca-any-name",
            host: "127.0.0.1",
            plain: false,
            sslmode: Some("verify-ca"),
            user: "app",
            password: Some("right"),
            database: "appdb",
            code: "ok",
            depth: Some("authorized"),
        },
    ];
    for row in &rows {
        let id = t.create_id(body(row)).await;
        let r = test_through(&tester, &t, &id).await;
        assert_eq!(r.status, 200, "{}: {}", row.name, r.raw);
        let d = &r.body["diagnostics"];
        assert_eq!(d["code"], row.code, "{}: {}", row.name, r.raw);
        assert_eq!(d["depth"].as_str(), row.depth, "{}: {}", row.name, r.raw);
        let status = if row.code == "ok" { "active" } else { "error" };
        assert_eq!(r.body["status"], status, "{}", row.name);
        assert!(
            !r.raw.contains(&env("PG_TEST_PASSWORD")),
            "{}: the password leaked",
            row.name
        );
        assert!(
            !r.raw.contains("wrong-pg-password"),
            "{}: the password leaked",
            row.name
        );
        match row.name {
            "scram" => {
                assert_eq!(d["server"]["product"], "PostgreSQL");
                assert!(d["server"]["version"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .next()
                    .unwrap()
                    .is_ascii_digit());
                assert!(
                    d["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
                    "{}",
                    r.raw
                );
                let steps: Vec<&str> = d["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["name"].as_str().unwrap())
                    .collect();
                assert_eq!(steps, ["dns", "tcp", "tls", "auth", "access"], "{}", r.raw);
                assert_eq!(d["warnings"], json!([]));
            }
            "cleartext-disabled-tls" => {
                let warnings = d["warnings"].to_string();
                assert!(warnings.contains("unencrypted"), "{warnings}");
            }
            "scram-without-tls" => {
                assert!(d["warnings"].to_string().contains("no TLS"), "{}", r.raw);
            }
            "verify-full-wrong-name" => {
                assert_eq!(d["tls"]["reason"], "hostname_mismatch", "{}", r.raw)
            }
            "cleartext-refused" => assert!(
                d["message"].as_str().unwrap().contains("not sent"),
                "{}",
                r.raw
            ),
            _ => {}
        }
    }
}

#[tokio::test]
async fn without_credentials_postgres_is_tested_to_reachable_and_says_so() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("pgnocreds");
    let id = t
        .create_id(json!({"name": "bare", "type": "postgresql", "config": {"host": "127.0.0.1", "port": port(false), "database": "appdb"}}))
        .await;
    let r = test_through(&tester, &t, &id).await;
    let d = &r.body["diagnostics"];
    assert_eq!(
        (d["code"].as_str(), d["depth"].as_str()),
        (Some("ok"), Some("reachable")),
        "{}",
        r.raw
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("credentials were not checked"),
        "{}",
        r.raw
    );
}

//! MySQL logins against Debian's MariaDB and the caching_sha2_password look-alike.

use super::*;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::json;

#[tokio::test]
async fn mysql_logins_reach_the_depth_the_credentials_allow() {
    let maria: u16 = env("MYSQL_TEST_PORT").parse().unwrap();
    let sha2: u16 = env("MYSQL_SHA2_TEST_PORT").parse().unwrap();
    let my = "mysql";
    let rows = [
        row(
            "native",
            my,
            "127.0.0.1",
            maria,
            None,
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "native-wrong",
            my,
            "127.0.0.1",
            maria,
            None,
            "app",
            Some("wrong-db-password"),
            "appdb",
            "auth_failed",
            "reachable",
        ),
        row(
            "native-missing-db",
            my,
            "127.0.0.1",
            maria,
            None,
            "app",
            Some("right"),
            "missingdb",
            "not_found",
            "authenticated",
        ),
        row(
            "native-hidden-db",
            my,
            "127.0.0.1",
            maria,
            None,
            "app",
            Some("right"),
            "nosuchdb",
            "permission_denied",
            "authenticated",
        ),
        row(
            "native-no-grant",
            my,
            "127.0.0.1",
            maria,
            None,
            "nogrant",
            Some("right"),
            "appdb",
            "permission_denied",
            "authenticated",
        ),
        row(
            "verify-identity",
            my,
            "localhost",
            maria,
            Some("VERIFY_IDENTITY"),
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "verify-full-wrong-name",
            my,
            "127.0.0.1",
            maria,
            Some("verify-full"),
            "app",
            Some("right"),
            "appdb",
            "tls_failed",
            "reachable",
        ),
        row(
            "no-tls",
            my,
            "127.0.0.1",
            maria,
            Some("DISABLED"),
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        // caching_sha2_password: the full path (RSA key exchange, no TLS) first, then the fast path.
        // Without TLS the password would go to whatever RSA key the server sends: refused
        // unless sslmode is disable (or the key is pinned: see below).
        row(
            "sha2-full-refused",
            my,
            "127.0.0.1",
            sha2,
            None,
            "sha2user",
            Some("right"),
            "appdb",
            "auth_unsupported",
            "reachable",
        ),
        row(
            "sha2-full",
            my,
            "127.0.0.1",
            sha2,
            Some("disable"),
            "sha2user",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "sha2-fast",
            my,
            "127.0.0.1",
            sha2,
            None,
            "sha2user",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "sha2-wrong",
            my,
            "127.0.0.1",
            sha2,
            Some("disable"),
            "sha2user",
            Some("wrong-db-password"),
            "appdb",
            "auth_failed",
            "reachable",
        ),
        row(
            "sha2-require",
            my,
            "127.0.0.1",
            sha2,
            Some("require"),
            "sha2user",
            Some("right"),
            "appdb",
            "tls_failed",
            "reachable",
        ),
    ];
    check("mylogin", &rows, |row, d, raw| match row.name {
        "native" => {
            assert_eq!(d["server"]["product"], "MariaDB", "{raw}");
            assert!(
                d["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
                "{raw}"
            );
        }
        "verify-full-wrong-name" => assert_eq!(d["tls"]["reason"], "hostname_mismatch"),
        "no-tls" => assert!(d["warnings"].to_string().contains("not encrypted"), "{raw}"),
        "sha2-full-refused" => {
            assert!(
                d["message"].as_str().unwrap().contains("serverPublicKey"),
                "{raw}"
            )
        }
        "sha2-full" | "sha2-fast" => {
            assert!(
                d["message"]
                    .as_str()
                    .unwrap()
                    .contains("caching_sha2_password"),
                "{raw}"
            )
        }
        _ => {}
    })
    .await;
}

#[tokio::test]
async fn mysql_full_authentication_without_tls_goes_only_to_a_pinned_key() {
    let sha2: u16 = env("MYSQL_SHA2_TEST_PORT").parse().unwrap();
    let pem = std::fs::read_to_string(env("MYSQL_SHA2_PUBLIC_KEY_FILE")).unwrap();
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("mypinned");
    // sha2pinned always takes the full path (the look-alike never caches it).
    let body = |pinned: Option<&str>| {
        let mut config = json!({"host": "127.0.0.1", "port": sha2, "database": "appdb"});
        if let Some(pem) = pinned {
            config["serverPublicKey"] = json!(pem);
        }
        json!({"name": format!("pinned-{}", pinned.is_some()), "type": "mysql", "config": config,
               "authConfig": {"username": "sha2pinned", "password": env("PG_TEST_PASSWORD")}})
    };
    let id = t.create_id(body(None)).await;
    let r = test_through(&tester, &t, &id).await;
    assert_eq!(
        r.body["diagnostics"]["code"], "auth_unsupported",
        "{}",
        r.raw
    );
    let id = t.create_id(body(Some(&pem))).await;
    let r = test_through(&tester, &t, &id).await;
    assert_eq!(
        (
            r.body["diagnostics"]["code"].as_str(),
            r.body["diagnostics"]["depth"].as_str()
        ),
        (Some("ok"), Some("authorized")),
        "{}",
        r.raw
    );
    let bad = t
        .create(json!({"name": "bad-pin", "type": "mysql",
            "config": {"host": "127.0.0.1", "port": sha2, "database": "appdb", "serverPublicKey": "not a key"}}))
        .await;
    assert_eq!(
        (bad.status, bad.fields()),
        (400, vec!["config.serverPublicKey".to_string()])
    );
}

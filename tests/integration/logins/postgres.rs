//! PostgreSQL logins against Debian's server (TLS and plain clusters).

use super::*;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::json;

#[tokio::test]
async fn postgres_logins_reach_the_depth_the_credentials_allow() {
    let (tls, plain) = (port(false), port(true));
    let pg = "postgresql";
    let rows = [
        row(
            "scram",
            pg,
            "127.0.0.1",
            tls,
            None,
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "wrong-password",
            pg,
            "127.0.0.1",
            tls,
            None,
            "app",
            Some("wrong-db-password"),
            "appdb",
            "auth_failed",
            "reachable",
        ),
        row(
            "no-such-user",
            pg,
            "127.0.0.1",
            tls,
            None,
            "ghost",
            Some("right"),
            "appdb",
            "auth_failed",
            "reachable",
        ),
        row(
            "missing-db",
            pg,
            "127.0.0.1",
            tls,
            None,
            "app",
            Some("right"),
            "nosuchdb",
            "not_found",
            "authenticated",
        ),
        row(
            "no-grant",
            pg,
            "127.0.0.1",
            tls,
            None,
            "nogrant",
            Some("right"),
            "lockeddb",
            "permission_denied",
            "authenticated",
        ),
        row(
            "md5-over-tls",
            pg,
            "127.0.0.1",
            tls,
            Some("require"),
            "md5user",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        // A readable password with sslmode absent: only over a certificate verified for the
        // host name (the test CA names localhost, not 127.0.0.1).
        row(
            "cleartext-over-tls",
            pg,
            "127.0.0.1",
            tls,
            None,
            "clearuser",
            Some("right"),
            "appdb",
            "auth_unsupported",
            "reachable",
        ),
        row(
            "cleartext-over-verified-tls",
            pg,
            "localhost",
            tls,
            None,
            "clearuser",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "cleartext-over-tls-require",
            pg,
            "127.0.0.1",
            tls,
            Some("require"),
            "clearuser",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "trust",
            pg,
            "127.0.0.1",
            tls,
            None,
            "trustuser",
            None,
            "appdb",
            "ok",
            "authorized",
        ),
        // Cleartext and MD5 are never sent unencrypted unless the user disabled TLS.
        row(
            "cleartext-refused",
            pg,
            "127.0.0.1",
            plain,
            None,
            "clearuser",
            Some("right"),
            "appdb",
            "auth_unsupported",
            "reachable",
        ),
        row(
            "md5-refused",
            pg,
            "127.0.0.1",
            plain,
            None,
            "md5user",
            Some("right"),
            "appdb",
            "auth_unsupported",
            "reachable",
        ),
        row(
            "cleartext-disabled-tls",
            pg,
            "127.0.0.1",
            plain,
            Some("disable"),
            "clearuser",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "scram-without-tls",
            pg,
            "127.0.0.1",
            plain,
            None,
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "require-but-plain",
            pg,
            "127.0.0.1",
            plain,
            Some("require"),
            "app",
            Some("right"),
            "appdb",
            "tls_failed",
            "reachable",
        ),
        // The server's certificate names `localhost` only, signed by the tests' CA.
        row(
            "verify-full",
            pg,
            "localhost",
            tls,
            Some("verify-full"),
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
        row(
            "verify-full-wrong-name",
            pg,
            "127.0.0.1",
            tls,
            Some("verify-full"),
            "app",
            Some("right"),
            "appdb",
            "tls_failed",
            "reachable",
        ),
        row(
            "verify-ca-any-name",
            pg,
            "127.0.0.1",
            tls,
            Some("verify-ca"),
            "app",
            Some("right"),
            "appdb",
            "ok",
            "authorized",
        ),
    ];
    check("pglogin", &rows, |row, d, raw| match row.name {
        "scram" => {
            assert_eq!(d["server"]["product"], "PostgreSQL");
            assert!(d["server"]["version"]
                .as_str()
                .unwrap()
                .starts_with(|c: char| c.is_ascii_digit()));
            assert!(
                d["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
                "{raw}"
            );
            assert_eq!(
                step_names(d),
                ["dns", "tcp", "tls", "auth", "access"],
                "{raw}"
            );
            assert_eq!(d["warnings"], json!([]));
        }
        "cleartext-disabled-tls" => {
            assert!(d["warnings"].to_string().contains("unencrypted"), "{raw}")
        }
        "scram-without-tls" => assert!(d["warnings"].to_string().contains("no TLS"), "{raw}"),
        "verify-full-wrong-name" => assert_eq!(d["tls"]["reason"], "hostname_mismatch", "{raw}"),
        "cleartext-refused" | "cleartext-over-tls" => {
            assert!(d["message"].as_str().unwrap().contains("not sent"), "{raw}")
        }
        "cleartext-over-tls-require" => assert!(
            d["warnings"]
                .to_string()
                .contains("without certificate verification"),
            "{raw}"
        ),
        _ => {}
    })
    .await;
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

//! MongoDB logins against the look-alike (SCRAM from scramp), also through mongodb+srv.

use super::*;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::json;

#[tokio::test]
async fn mongodb_logins_reach_the_depth_the_credentials_allow() {
    let base: u16 = env("MONGO_TEST_PORT").parse().unwrap();
    let right = env("PG_TEST_PASSWORD");
    // (name, connection string, user, password, code, depth)
    let rows = [
        (
            "scram256",
            format!("mongodb://127.0.0.1:{base}/appdb"),
            "app",
            right.as_str(),
            "ok",
            "authorized",
        ),
        (
            "scram1-only",
            format!("mongodb://127.0.0.1:{base}/appdb?authSource=admin"),
            "old",
            right.as_str(),
            "ok",
            "authorized",
        ),
        (
            "tls",
            format!("mongodb://localhost:{}/appdb?tls=true", base + 1),
            "app",
            right.as_str(),
            "ok",
            "authorized",
        ),
        (
            "wrong-password",
            format!("mongodb://127.0.0.1:{base}/appdb"),
            "app",
            "wrong-db-password",
            "auth_failed",
            "reachable",
        ),
        (
            "unknown-user",
            format!("mongodb://127.0.0.1:{base}/appdb"),
            "ghost",
            right.as_str(),
            "auth_failed",
            "reachable",
        ),
        (
            "no-grant",
            format!("mongodb://127.0.0.1:{base}/secretdb"),
            "app",
            right.as_str(),
            "permission_denied",
            "authenticated",
        ),
        // MongoDB lists a missing database as empty: authorized, nothing to report missing.
        (
            "empty-db",
            format!("mongodb://127.0.0.1:{base}/nosuchdb"),
            "app",
            right.as_str(),
            "ok",
            "authorized",
        ),
        (
            "tls-wrong-name",
            format!("mongodb://127.0.0.1:{}/appdb?tls=true", base + 1),
            "app",
            right.as_str(),
            "tls_failed",
            "-",
        ),
    ];
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("mongologin");
    for (name, uri, user, password, code, depth) in rows {
        let id = t
            .create_id(
                json!({"name": name, "type": "mongodb", "config": {"connectionString": uri},
                              "authConfig": {"username": user, "password": password}}),
            )
            .await;
        let r = test_through(&tester, &t, &id).await;
        let d = &r.body["diagnostics"];
        let depth = (depth != "-").then_some(depth);
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(code), depth),
            "{name}: {}",
            r.raw
        );
        for secret in [right.as_str(), "wrong-db-password"] {
            assert!(!r.raw.contains(secret), "{name}: leaked");
        }
        match name {
            "scram1-only" => assert!(
                d["message"].as_str().unwrap().contains("SCRAM-SHA-1"),
                "{}",
                r.raw
            ),
            "scram256" => assert!(
                d["message"].as_str().unwrap().contains("SCRAM-SHA-256"),
                "{}",
                r.raw
            ),
            "tls-wrong-name" => assert_eq!(d["tls"]["reason"], "hostname_mismatch", "{}", r.raw),
            _ => {}
        }
    }
}

/// `mongodb+srv://` means TLS (as the drivers do): the SRV target is logged in to over TLS, its
/// certificate checked against the target's name.
#[tokio::test]
async fn mongodb_srv_logs_in_over_tls_by_default() {
    let tls_port: u16 = env("MONGO_TEST_PORT").parse::<u16>().unwrap() + 1;
    let mut settings = probe_settings();
    settings.dns_server = Some(crate::support::listeners::srv_dns("localhost", tls_port).await);
    let tester = tester_probing_with(settings).await;
    let t = Tenant::new("mongosrvtls");
    let id = t
        .create_id(json!({"name": "atlas", "type": "mongodb",
                          "config": {"connectionString": "mongodb+srv://cluster0.example.net/appdb"},
                          "authConfig": {"username": "app", "password": env("PG_TEST_PASSWORD")}}))
        .await;
    let r = test_through(&tester, &t, &id).await;
    let d = &r.body["diagnostics"];
    assert_eq!(
        (d["code"].as_str(), d["depth"].as_str()),
        (Some("ok"), Some("authorized")),
        "{}",
        r.raw
    );
    assert_eq!(d["tls"]["subject"], "CN=localhost", "{}", r.raw);
    assert!(step_names(d).contains(&"tls"), "{}", r.raw);
}

//! Bad certificates refused by every login that speaks TLS.

use super::*;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::json;

/// Every login protocol that speaks TLS refuses an expired certificate and one from an unknown
/// CA with the reason named, and sends no credentials (local/with-databases.sh starts a server of
/// each kind presenting each bad certificate).
#[tokio::test]
async fn bad_certificates_fail_every_tls_login_with_their_reason() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("badcert");
    let auth = json!({"username": "app", "password": env("PG_TEST_PASSWORD")});
    for (stem, reason) in [("EXPIRED", "expired"), ("UNKNOWNCA", "unknown_issuer")] {
        let port =
            |service: &str| -> u16 { env(&format!("{service}_{stem}_TEST_PORT")).parse().unwrap() };
        let configs = [
            (
                "postgresql",
                json!({"host": "localhost", "port": port("PG"), "database": "appdb", "sslmode": "verify-full"}),
            ),
            (
                "mysql",
                json!({"host": "localhost", "port": port("MYSQL"), "database": "appdb", "sslmode": "verify-full"}),
            ),
            (
                "kafka",
                json!({"bootstrapServers": format!("localhost:{}", port("KAFKA")),
                       "securityProtocol": "SASL_SSL", "topic": "orders"}),
            ),
            (
                "mongodb",
                json!({"connectionString": format!("mongodb://localhost:{}/appdb?tls=true", port("MONGO"))}),
            ),
        ];
        for (kind, config) in configs {
            let name = format!("{kind}-{reason}");
            let id = t
                .create_id(
                    json!({"name": name, "type": kind, "config": config, "authConfig": auth}),
                )
                .await;
            let r = test_through(&tester, &t, &id).await;
            let d = &r.body["diagnostics"];
            assert_eq!(
                (d["code"].as_str(), d["tls"]["reason"].as_str()),
                (Some("tls_failed"), Some(reason)),
                "{name}: {}",
                r.raw
            );
            assert_eq!(r.body["status"], "error", "{name}");
            assert!(
                !step_names(d).contains(&"auth"),
                "{name}: credentials were sent after a failed handshake: {}",
                r.raw
            );
            assert!(!r.raw.contains(&env("PG_TEST_PASSWORD")), "{name}: leaked");
        }
    }
}

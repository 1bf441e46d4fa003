//! Kafka logins against the SASL look-alike (SCRAM from scramp).

use super::*;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::json;

/// One Kafka login: where, how, and what must come of it (`depth` "-" for none).
struct KafkaRow {
    name: &'static str,
    kind: &'static str,
    server: String,
    security: Option<&'static str>,
    mechanism: Option<&'static str>,
    password: Option<String>,
    topic: Option<&'static str>,
    code: &'static str,
    depth: &'static str,
}

#[tokio::test]
async fn kafka_logins_reach_the_depth_the_credentials_allow() {
    let base: u16 = env("KAFKA_TEST_PORT").parse().unwrap();
    let (sasl, sasl_ssl, plain) = (
        format!("127.0.0.1:{base}"),
        format!("localhost:{}", base + 1),
        format!("127.0.0.1:{}", base + 2),
    );
    let right = Some(env("PG_TEST_PASSWORD"));
    let wrong = Some("wrong-db-password".to_string());
    let k = |name,
             kind,
             server: &String,
             security,
             mechanism,
             password: &Option<String>,
             topic,
             code,
             depth| KafkaRow {
        name,
        kind,
        server: server.clone(),
        security,
        mechanism,
        password: password.clone(),
        topic,
        code,
        depth,
    };
    let (sp, ss, s256, s512) = (
        Some("SASL_PLAINTEXT"),
        Some("SASL_SSL"),
        Some("SCRAM-SHA-256"),
        Some("SCRAM-SHA-512"),
    );
    let rows = [
        k(
            "plain",
            "kafka",
            &sasl,
            sp,
            None,
            &right,
            Some("orders"),
            "ok",
            "authorized",
        ),
        k(
            "scram256",
            "kafka",
            &sasl,
            sp,
            s256,
            &right,
            Some("orders"),
            "ok",
            "authorized",
        ),
        k(
            "scram512-tls",
            "kafka",
            &sasl_ssl,
            ss,
            s512,
            &right,
            None,
            "ok",
            "authorized",
        ),
        k(
            "confluent-defaults",
            "confluent_kafka",
            &sasl_ssl,
            None,
            None,
            &right,
            Some("orders"),
            "ok",
            "authorized",
        ),
        k(
            "wrong-plain",
            "kafka",
            &sasl,
            sp,
            None,
            &wrong,
            None,
            "auth_failed",
            "reachable",
        ),
        k(
            "wrong-scram",
            "kafka",
            &sasl,
            sp,
            s256,
            &wrong,
            None,
            "auth_failed",
            "reachable",
        ),
        k(
            "missing-topic",
            "kafka",
            &sasl,
            sp,
            s256,
            &right,
            Some("nosuchtopic"),
            "not_found",
            "authenticated",
        ),
        k(
            "no-grant",
            "kafka",
            &sasl,
            sp,
            None,
            &right,
            Some("private"),
            "permission_denied",
            "authenticated",
        ),
        // TLS comes before Kafka speaks: a refused certificate leaves no depth at all.
        k(
            "wrong-name-tls",
            "kafka",
            &sasl_ssl.replace("localhost", "127.0.0.1"),
            ss,
            None,
            &right,
            None,
            "tls_failed",
            "-",
        ),
        k(
            "no-sasl",
            "kafka",
            &plain,
            Some("PLAINTEXT"),
            None,
            &None,
            Some("orders"),
            "ok",
            "reachable",
        ),
    ];
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("kafkalogin");
    for row in rows {
        let mut config = json!({"bootstrapServers": row.server});
        for (key, value) in [
            ("securityProtocol", row.security),
            ("saslMechanism", row.mechanism),
            ("topic", row.topic),
        ] {
            if let Some(v) = value {
                config[key] = json!(v);
            }
        }
        let mut body = json!({"name": row.name, "type": row.kind, "config": config});
        if let Some(p) = &row.password {
            body["authConfig"] = json!({"username": "app", "password": p});
        }
        let id = t.create_id(body).await;
        let r = test_through(&tester, &t, &id).await;
        let d = &r.body["diagnostics"];
        let depth = (row.depth != "-").then_some(row.depth);
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(row.code), depth),
            "{}: {}",
            row.name,
            r.raw
        );
        for secret in [env("PG_TEST_PASSWORD").as_str(), "wrong-db-password"] {
            assert!(!r.raw.contains(secret), "{}: leaked", row.name);
        }
        match row.name {
            "plain" => assert!(
                d["warnings"].to_string().contains("unencrypted"),
                "{}",
                r.raw
            ),
            "wrong-name-tls" => assert_eq!(d["tls"]["reason"], "hostname_mismatch", "{}", r.raw),
            "no-sasl" => assert!(
                d["message"].as_str().unwrap().contains("not checked"),
                "{}",
                r.raw
            ),
            _ => {}
        }
    }
}

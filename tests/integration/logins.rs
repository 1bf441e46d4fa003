//! Login probes against real servers started by `make integration` (local/with-databases.sh):
//! Debian's PostgreSQL (TLS on PG_TEST_PORT, none on PG_TEST_PLAIN_PORT) and MariaDB (TLS on
//! MYSQL_TEST_PORT), and a caching_sha2_password look-alike (MYSQL_SHA2_TEST_PORT); TLS from the
//! tests' PKI, whose CA is PROBE_EXTRA_CA_FILE. One row per outcome: code, depth, status.

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

/// One login to try and what must come of it.
struct Row {
    name: &'static str,
    kind: &'static str,
    host: &'static str,
    port: u16,
    sslmode: Option<&'static str>,
    user: &'static str,
    /// `Some("right")` is the servers' password.
    password: Option<&'static str>,
    database: &'static str,
    code: &'static str,
    depth: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn row(
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

fn body(row: &Row) -> Value {
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
async fn check(prefix: &str, rows: &[Row], more: impl Fn(&Row, &Value, &str)) {
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

fn step_names(d: &Value) -> Vec<&str> {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

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

#[tokio::test]
async fn sftp_logins_reach_the_depth_the_credentials_allow() {
    let port: u16 = env("SSH_TEST_PORT").parse().unwrap();
    let fingerprint = env("SSH_TEST_FINGERPRINT");
    let key =
        |name: &str| std::fs::read_to_string(format!("{}/{name}", env("SSH_TEST_KEYS"))).unwrap();
    let right = env("PG_TEST_PASSWORD");
    let other_pin = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // (name, path, pin, authConfig, code, depth)
    let rows = [
        (
            "password",
            "data",
            Some(fingerprint.as_str()),
            json!({"username": "sftpprobe", "password": right}),
            "ok",
            "authorized",
        ),
        (
            "ed25519",
            "data/report.csv",
            None,
            json!({"username": "sftpprobe", "privateKey": key("id_ed25519")}),
            "ok",
            "authorized",
        ),
        (
            "ecdsa",
            ".",
            None,
            json!({"username": "sftpprobe", "privateKey": key("id_ecdsa")}),
            "ok",
            "authorized",
        ),
        (
            "rsa-passphrase",
            ".",
            None,
            json!({"username": "sftpprobe", "privateKey": key("id_rsa"), "passphrase": "key-pass"}),
            "ok",
            "authorized",
        ),
        (
            "wrong-password",
            ".",
            None,
            json!({"username": "sftpprobe", "password": "wrong-db-password"}),
            "auth_failed",
            "reachable",
        ),
        (
            "missing-path",
            "nothing/here",
            None,
            json!({"username": "sftpprobe", "password": right}),
            "not_found",
            "authenticated",
        ),
        (
            "no-access",
            "locked/secret.txt",
            None,
            json!({"username": "sftpprobe", "password": right}),
            "permission_denied",
            "authenticated",
        ),
        (
            "pin-mismatch",
            ".",
            Some(other_pin),
            json!({"username": "sftpprobe", "password": right}),
            "host_key_mismatch",
            "reachable",
        ),
    ];
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("sftplogin");
    for (name, path, pin, auth, code, depth) in rows {
        let mut config = json!({"host": "127.0.0.1", "port": port, "path": path});
        if let Some(p) = pin {
            config["hostKeyFingerprint"] = json!(p);
        }
        let id = t
            .create_id(json!({"name": name, "type": "sftp", "config": config, "authConfig": auth}))
            .await;
        let r = test_through(&tester, &t, &id).await;
        let d = &r.body["diagnostics"];
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(code), Some(depth)),
            "{name}: {}",
            r.raw
        );
        assert_eq!(
            d["server"]["version"],
            fingerprint.as_str(),
            "{name}: the host key is reported"
        );
        for secret in [
            right.as_str(),
            "wrong-db-password",
            "key-pass",
            "PRIVATE KEY",
        ] {
            assert!(!r.raw.contains(secret), "{name}: leaked");
        }
        if name == "pin-mismatch" {
            let steps: Vec<&str> = d["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert!(
                !steps.contains(&"auth"),
                "no credentials are sent to an unpinned host: {}",
                r.raw
            );
        }
    }
}

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

/// `mongodb+srv://` means TLS (as the drivers do): the SRV target is logged in to over TLS, its
/// certificate checked against the target's name.
#[tokio::test]
async fn mongodb_srv_logs_in_over_tls_by_default() {
    let tls_port: u16 = env("MONGO_TEST_PORT").parse::<u16>().unwrap() + 1;
    let mut settings = probe_settings();
    settings.dns_server = Some(crate::listeners::srv_dns("localhost", tls_port).await);
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

#[tokio::test]
async fn sftp_trusts_the_first_host_key_and_refuses_a_changed_one() {
    let port: u16 = env("SSH_TEST_PORT").parse().unwrap();
    let fingerprint = env("SSH_TEST_FINGERPRINT");
    let other_pin = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let login = json!({"username": "sftpprobe", "password": env("PG_TEST_PASSWORD")});
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("tofu");
    let config = json!({"host": "127.0.0.1", "port": port, "path": "."});
    // A dry run only reports the key.
    let dry = crate::support::Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(json!({"type": "sftp", "config": config, "authConfig": login}))
        .event();
    let dry = crate::support::Reply::from(
        tester
            .handle(lambda_http::request::from_str(&dry.to_string()).unwrap())
            .await,
    );
    assert_eq!(
        dry.body["diagnostics"]["server"]["version"],
        fingerprint.as_str(),
        "{}",
        dry.raw
    );
    let id = t
        .create_id(json!({"name": "tofu", "type": "sftp", "config": config, "authConfig": login}))
        .await;
    assert!(t.get(&id).await.body["config"]
        .get("hostKeyFingerprint")
        .is_none());
    // The first successful test stores the key it saw, shown in the answer.
    let r = test_through(&tester, &t, &id).await;
    assert_eq!(r.body["diagnostics"]["code"], "ok", "{}", r.raw);
    assert_eq!(
        r.body["config"]["hostKeyFingerprint"],
        fingerprint.as_str(),
        "{}",
        r.raw
    );
    assert_eq!(
        t.get(&id).await.body["config"]["hostKeyFingerprint"],
        fingerprint.as_str()
    );
    // An update that leaves the pin out keeps it (and so keeps the stored password).
    let r = t
        .update(json!({"id": id, "config": {"host": "127.0.0.1", "port": port, "path": "data"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["config"]["hostKeyFingerprint"], fingerprint.as_str());
    // Removing or changing the pin moves the destination: the credentials must be re-entered.
    for pin in [Value::Null, json!(other_pin)] {
        let r = t.update(json!({"id": id, "config": {"host": "127.0.0.1", "port": port, "hostKeyFingerprint": pin}})).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "credentials_required"),
            "{}",
            r.raw
        );
    }
    // Another key than the pinned one is refused before any credential is sent.
    let r = t
        .update(json!({"id": id, "config": {"host": "127.0.0.1", "port": port, "hostKeyFingerprint": other_pin}, "authConfig": login}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = test_through(&tester, &t, &id).await;
    assert_eq!(
        r.body["diagnostics"]["code"], "host_key_mismatch",
        "{}",
        r.raw
    );
    assert_eq!(
        r.body["config"]["hostKeyFingerprint"], other_pin,
        "a stored pin is never replaced"
    );
    // An explicit null (credentials re-entered) removes the pin; the next success stores it again.
    let r = t
        .update(json!({"id": id, "config": {"host": "127.0.0.1", "port": port, "hostKeyFingerprint": null}, "authConfig": login}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(
        r.body["config"].get("hostKeyFingerprint").is_none(),
        "{}",
        r.raw
    );
    let r = test_through(&tester, &t, &id).await;
    assert_eq!(
        r.body["config"]["hostKeyFingerprint"],
        fingerprint.as_str(),
        "{}",
        r.raw
    );
}

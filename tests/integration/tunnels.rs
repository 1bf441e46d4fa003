//! Tunnelled probes through a real OpenSSH bastion (local/bastion_server.py, started by
//! local/with-databases.sh) to the real servers on 127.0.0.3: Debian's PostgreSQL and MariaDB, the
//! MongoDB look-alike and OpenSSH's SFTP. The tests' guard admits 127.0.0.1 only, so a probe that
//! reaches 127.0.0.3 went through the bastion; the bastion's authorized_keys holds the keys the
//! tenants fetched from `GET /api/v1/tunnel-key`.

use crate::logins::env;
use crate::support::{
    probe_settings, stack, test_through, tester_probing_with, Call, Reply, Tenant,
};
use serde_json::{json, Value};
use shared::envelope::KmsEnvelope;
use shared::handlers::test::Tester;
use shared::store::DynamoStore;
use std::io::Write;

const BEHIND: &str = "127.0.0.3";

fn port(name: &str) -> u16 {
    env(name).parse().unwrap()
}

/// A tenant whose tunnel key the bastion accepts.
async fn admitted_tenant(prefix: &str) -> (Tenant, Value) {
    let t = Tenant::new(prefix);
    let key = t.tunnel_key("viewer").await;
    assert_eq!(key.status, 200, "{}", key.raw);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(env("BASTION_AUTHORIZED_KEYS"))
        .unwrap();
    writeln!(file, "{}", key.body["publicKey"].as_str().unwrap()).unwrap();
    (t, key.body)
}

fn tunnel(pin: Option<&str>) -> Value {
    let mut t = json!({"host": "127.0.0.1", "port": port("BASTION_TEST_PORT"),
                       "username": env("BASTION_TEST_USER")});
    if let Some(pin) = pin {
        t["hostKeyFingerprint"] = json!(pin);
    }
    t
}

fn postgres(name: &str, tunnel: Value, password: &str) -> Value {
    json!({"name": name, "type": "postgresql",
           "config": {"host": BEHIND, "port": port("PG_TEST_PORT"), "database": "appdb",
                      "sslmode": "verify-full", "tunnel": tunnel},
           "authConfig": {"username": "app", "password": password}})
}

fn steps(d: &Value) -> Vec<(String, bool)> {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn tested(
    tester: &Tester<DynamoStore, KmsEnvelope>,
    t: &Tenant,
    body: Value,
) -> (String, Reply) {
    let id = t.create_id(body).await;
    let r = test_through(tester, t, &id).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    (id, r)
}

#[tokio::test]
async fn the_tenant_key_is_made_once_sealed_and_the_same_for_every_role() {
    let t = Tenant::new("tunkey");
    let (a, b, c) = tokio::join!(
        t.tunnel_key("viewer"),
        t.tunnel_key("editor"),
        t.tunnel_key("admin")
    );
    for r in [&a, &b, &c] {
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body, a.body, "concurrent first calls get the same key");
    }
    let line = a.body["publicKey"].as_str().unwrap();
    assert!(
        line.starts_with("ssh-ed25519 ") && line.ends_with(&format!(" connectors-api:{}", t.id))
    );
    assert!(a.body["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    assert!(a.body["createdAt"].is_string());
    assert!(!a.raw.contains("PRIVATE"));
    let other = Tenant::new("tunkey2").tunnel_key("admin").await;
    assert_ne!(
        other.body["publicKey"], a.body["publicKey"],
        "each tenant its own"
    );
    // What the table holds: the public half, the private half only sealed.
    let st = stack().await;
    let item = st
        .dynamo
        .get_item()
        .table_name(crate::support::TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", t.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("TUNNEL_KEY".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the key item");
    assert_eq!(item["publicKey"].as_s().unwrap(), line);
    assert!(!format!("{item:?}").contains("OPENSSH PRIVATE KEY"));
    // Without a token: 401, as every route.
    let anonymous = Call::new("GET", shared::handlers::tunnel_key::PATH)
        .send()
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn each_type_tests_active_through_the_bastion_and_pins_its_host_key() {
    let tester = tester_probing_with(probe_settings()).await;
    let (t, _) = admitted_tenant("tunok").await;
    let right = env("PG_TEST_PASSWORD");
    let fingerprint = env("BASTION_TEST_FINGERPRINT");
    let rows = [
        postgres("pg", tunnel(None), &right),
        json!({"name": "maria", "type": "mysql",
               "config": {"host": BEHIND, "port": port("MYSQL_TEST_PORT"), "database": "appdb",
                          "sslmode": "verify-full", "tunnel": tunnel(Some(&fingerprint))},
               "authConfig": {"username": "app", "password": right}}),
        json!({"name": "mongo", "type": "mongodb",
               "config": {"host": BEHIND, "port": port("MONGO_TEST_PORT"), "database": "appdb",
                          "tunnel": tunnel(None)},
               "authConfig": {"username": "app", "password": right}}),
        json!({"name": "sftp", "type": "sftp",
               "config": {"host": BEHIND, "port": port("SSH_TEST_PORT"), "path": "data",
                          "tunnel": tunnel(None)},
               "authConfig": {"username": "sftpprobe", "password": right}}),
    ];
    for body in rows {
        let name = body["name"].as_str().unwrap().to_string();
        let (id, r) = tested(&tester, &t, body).await;
        let d = &r.body["diagnostics"];
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some("ok"), Some("authorized")),
            "{name}: {}",
            r.raw
        );
        let names: Vec<String> = steps(d).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names[..4],
            ["tunnel.tcp", "tunnel.ssh", "tunnel.auth", "tunnel.forward"],
            "{name}"
        );
        assert!(
            !names.contains(&"dns".to_string()),
            "{name}: the target is not resolved here"
        );
        assert!(
            d["steps"][1]["detail"]
                .as_str()
                .unwrap()
                .contains(&fingerprint),
            "{name}"
        );
        assert!(!r.raw.contains(&right), "{name}: the password leaked");
        // Trust on first use: the bastion's key is pinned by the successful test.
        let stored = t.get(&id).await;
        assert_eq!(
            stored.body["config"]["tunnel"]["hostKeyFingerprint"],
            json!(fingerprint),
            "{name}"
        );
        if name == "pg" || name == "maria" {
            // The database's own certificate (verify-full passed: it names 127.0.0.3), read over
            // the forwarded channel.
            assert_eq!(d["tls"]["subject"], "CN=localhost", "{name}: {}", d["tls"]);
            assert_eq!(d["tls"]["issuer"], "CN=connectors-api test CA", "{name}");
        }
    }
    // Straight to 127.0.0.3, without the bastion, the guard refuses.
    let mut direct = postgres("direct", Value::Null, &right);
    direct["config"].as_object_mut().unwrap().remove("tunnel");
    let (_, r) = tested(&tester, &t, direct).await;
    assert_eq!(
        r.body["diagnostics"]["code"], "destination_blocked",
        "{}",
        r.raw
    );
}

#[tokio::test]
async fn tunnel_failures_give_their_codes_and_send_nothing_past_a_wrong_key() {
    let tester = tester_probing_with(probe_settings()).await;
    let (t, _) = admitted_tenant("tunfail").await;
    let right = env("PG_TEST_PASSWORD");
    let wrong_pin = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut closed = postgres("closed-forward", tunnel(None), &right);
    closed["config"]["port"] = json!(1);
    let mut blocked = postgres("blocked-bastion", tunnel(None), &right);
    blocked["config"]["tunnel"]["host"] = json!("127.0.0.2");
    let mut password = postgres("tunnel-password", tunnel(None), &right);
    password["authConfig"]["tunnel"] = json!({"password": env("BASTION_TEST_PASSWORD")});
    let mut wrong_tunnel_password = postgres("tunnel-password-wrong", tunnel(None), &right);
    wrong_tunnel_password["authConfig"]["tunnel"] = json!({"password": "not-the-bastions"});
    // (body, code, the step that failed, steps that must not have run)
    let rows = [
        (
            postgres("wrong-pin", tunnel(Some(wrong_pin)), &right),
            "host_key_mismatch",
            "tunnel.ssh",
        ),
        (blocked, "destination_blocked", "tunnel.tcp"),
        (closed, "connection_refused", "tunnel.forward"),
        (
            postgres("wrong-db-password", tunnel(None), "wrong-db-password"),
            "auth_failed",
            "auth",
        ),
        (wrong_tunnel_password, "auth_failed", "tunnel.auth"),
        (password, "ok", ""),
    ];
    for (body, code, failed) in rows {
        let name = body["name"].as_str().unwrap().to_string();
        let (_, r) = tested(&tester, &t, body).await;
        let d = &r.body["diagnostics"];
        assert_eq!(d["code"], code, "{name}: {}", r.raw);
        let steps = steps(d);
        match failed {
            "" => assert!(steps.iter().all(|(_, ok)| *ok), "{name}"),
            failed => assert_eq!(
                steps.last().map(|(n, ok)| (n.as_str(), *ok)),
                Some((failed, false)),
                "{name}: {steps:?}"
            ),
        }
        if name == "wrong-pin" {
            // Nothing went to a bastion whose key does not match: no login was tried.
            assert!(!steps.iter().any(|(n, _)| n == "tunnel.auth"), "{steps:?}");
            assert!(d["message"]
                .as_str()
                .unwrap()
                .contains(&env("BASTION_TEST_FINGERPRINT")));
        }
        if name == "wrong-db-password" {
            let tunnel_ok = steps
                .iter()
                .filter(|(n, _)| n.starts_with("tunnel."))
                .all(|(_, ok)| *ok);
            assert!(tunnel_ok, "the tunnel worked: {steps:?}");
        }
        assert!(
            !r.raw.contains(&right) && !r.raw.contains(&env("BASTION_TEST_PASSWORD")),
            "{name}"
        );
    }
    // A tenant whose key the bastion does not hold: refused at the tunnel's login.
    let stranger = Tenant::new("tunstranger");
    assert_eq!(stranger.tunnel_key("admin").await.status, 200);
    let (_, r) = tested(
        &tester,
        &stranger,
        postgres("stranger", tunnel(None), &right),
    )
    .await;
    let d = &r.body["diagnostics"];
    assert_eq!(d["code"], "auth_failed", "{}", r.raw);
    assert_eq!(
        steps(d).last().unwrap(),
        &("tunnel.auth".to_string(), false)
    );
    // A tenant without a key yet is told how to get one.
    let keyless = Tenant::new("tunkeyless");
    let (_, r) = tested(&tester, &keyless, postgres("keyless", tunnel(None), &right)).await;
    assert_eq!(r.body["diagnostics"]["code"], "invalid_config", "{}", r.raw);
    assert!(r.body["diagnostics"]["message"]
        .as_str()
        .unwrap()
        .contains("/api/v1/tunnel-key"));
}

#[tokio::test]
async fn a_dry_run_goes_through_the_tunnel_and_a_moved_tunnel_needs_the_credentials_again() {
    let tester = tester_probing_with(probe_settings()).await;
    let (t, _) = admitted_tenant("tundry").await;
    let right = env("PG_TEST_PASSWORD");
    let mut body = postgres("dry", tunnel(None), &right);
    body.as_object_mut().unwrap().remove("name");
    let event = Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(body)
        .event();
    let r = Reply::from(
        tester
            .handle(lambda_http::request::from_str(&event.to_string()).unwrap())
            .await,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["dryRun"], true);
    let d = &r.body["diagnostics"];
    assert_eq!(d["code"], "ok", "{}", r.raw);
    assert_eq!(d["steps"][0]["name"], "tunnel.tcp");
    // The tunnel is part of the destination: moving it needs the stored password again.
    let id = t.create_id(postgres("stored", tunnel(None), &right)).await;
    let mut moved = tunnel(None);
    moved["host"] = json!("bastion.example.com");
    let r = t
        .update(
            json!({"id": id, "config": {"host": BEHIND, "port": port("PG_TEST_PORT"),
                                                  "database": "appdb", "tunnel": moved}}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "credentials_required"),
        "{}",
        r.raw
    );
    // The same bastion, re-sent without its pin, keeps it and is no move.
    let r = t
        .update(
            json!({"id": id, "config": {"host": BEHIND, "port": port("PG_TEST_PORT"),
                                                  "database": "appdb", "sslmode": "verify-full",
                                                  "tunnel": tunnel(None)}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    // Bad tunnel shapes are a 400 naming the field.
    let bad = t
        .create(json!({"name": "bad", "type": "postgresql",
                              "config": {"host": BEHIND, "port": 5432, "database": "d",
                                         "tunnel": {"host": "b.example.com"}}}))
        .await;
    assert_eq!(
        (bad.status, bad.fields()),
        (400, vec!["config.tunnel".to_string()]),
        "{}",
        bad.raw
    );
    let srv = t
        .create(json!({"name": "srv", "type": "mongodb",
                              "config": {"connectionString": "mongodb+srv://c.example.net/db",
                                         "tunnel": tunnel(None)}}))
        .await;
    assert_eq!(
        (srv.status, srv.fields()),
        (400, vec!["config.tunnel".to_string()]),
        "{}",
        srv.raw
    );
}

//! Hostile servers (Hardening III, point 2): a length of 4 GiB, a count of 2^31−1, a 48 MB frame
//! or a megabyte of error text costs a probe a quick, clear failure, and the result is recorded
//! like any other; one hostile connector does not keep a sweep shard from the others.

use crate::support::listeners::{listen, Hostility, Peer};
use crate::support::{probe_settings, stack, Tenant};
use serde_json::{json, Map, Value};
use shared::envelope::{KmsEnvelope, SecretContext, SecretSealer};
use shared::handlers::test::Tester;
use shared::ids::new_connector_id;
use shared::model::{Connector, ConnectorType, Status};
use shared::store::{ConnectorReader, DynamoStore};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MAX_MESSAGE_CHARS: usize = 1024;

/// (type, config, authConfig) of a connector pointed at `addr`, logging in as a user.
fn pointed_at(how: Hostility, addr: SocketAddr) -> (ConnectorType, Value, Value) {
    let (host, port) = (addr.ip().to_string(), addr.port());
    let login = json!({"username": "probe_user", "password": "probe-password-1"});
    match how {
        Hostility::PostgresHugeLength | Hostility::PostgresHugeError => (
            ConnectorType::Postgresql,
            json!({"host": host, "port": port, "database": "d", "sslmode": "disable"}),
            login,
        ),
        Hostility::KafkaEndlessMechanisms => (
            ConnectorType::Kafka,
            json!({"bootstrapServers": addr.to_string(), "securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN"}),
            login,
        ),
        Hostility::MongoHugeFrame => (
            ConnectorType::Mongodb,
            json!({"host": host, "port": port}),
            json!({}),
        ),
        Hostility::MysqlHugeError => (
            ConnectorType::Mysql,
            json!({"host": host, "port": port, "database": "d", "sslmode": "disable"}),
            login,
        ),
    }
}

/// What each hostile server must come to: (how, code).
const EXPECTED: [(Hostility, &str); 5] = [
    (Hostility::PostgresHugeLength, "protocol_mismatch"),
    (Hostility::KafkaEndlessMechanisms, "auth_unsupported"),
    (Hostility::MongoHugeFrame, "protocol_mismatch"),
    (Hostility::PostgresHugeError, "auth_failed"),
    (Hostility::MysqlHugeError, "auth_failed"),
];

fn assert_tidy(text: &str) {
    assert!(
        text.chars().count() <= MAX_MESSAGE_CHARS,
        "{} chars",
        text.chars().count()
    );
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

#[tokio::test]
async fn each_hostile_server_gets_a_quick_clear_answer_and_the_result_is_recorded() {
    let t = Tenant::new("hostile-peers");
    for (how, code) in EXPECTED {
        let addr = listen(Peer::Hostile(how)).await;
        let (kind, config, auth) = pointed_at(how, addr);
        let id = t
            .create_id(json!({"name": format!("{how:?}"), "type": kind.as_str(), "config": config, "authConfig": auth}))
            .await;
        let started = Instant::now();
        let r = t.test(&id).await;
        assert_eq!(
            r.status,
            200,
            "{how:?}: {}",
            &r.raw[..r.raw.len().min(2000)]
        );
        // The probes' budget is 2 s (probe_settings): a probe that waited it out says timeout.
        assert_eq!(r.body["diagnostics"]["code"], code, "{how:?}: {}", r.raw);
        assert!(started.elapsed() < Duration::from_secs(10), "{how:?}");
        let stored = t.get(&id).await.body;
        assert_eq!(stored["status"], "error", "{how:?}");
        assert!(stored["lastTestedAt"].is_string(), "{how:?}: recorded");
        let last_error = stored["lastError"].as_str().unwrap();
        assert_tidy(last_error);
        for step in r.body["diagnostics"]["steps"].as_array().unwrap() {
            assert_tidy(step["detail"].as_str().unwrap());
        }
        if matches!(
            how,
            Hostility::PostgresHugeError | Hostility::MysqlHugeError
        ) {
            assert!(last_error.ends_with('…'), "{how:?}: cut, {last_error}");
        }
    }
}

/// A connector item for the shard test (the sweep tests' fixture, in shard 0), its secret sealed
/// as create would seal it.
async fn connector(
    tester: &Tester<DynamoStore, KmsEnvelope>,
    kind: ConnectorType,
    config: Value,
    auth: Value,
) -> Connector {
    let mut c = crate::sweep::connector("hostile-shard", 0, Status::Pending);
    // Every connector of this test in one shard, as the issue asks: shard 0.
    c.id = std::iter::repeat_with(new_connector_id)
        .find(|id| shared::model::due_shard(id) == shared::model::shard_key(0))
        .unwrap();
    c.kind = kind;
    c.config = config.as_object().unwrap().clone();
    let auth: Map<String, Value> = auth.as_object().unwrap().clone();
    c.auth_config_fields = shared::model::field_names(&auth);
    if !auth.is_empty() {
        let ctx = SecretContext {
            tenant_id: &c.tenant_id,
            connector_id: &c.id,
        };
        c.auth_config = Some(tester.sealer.seal(ctx, &auth).await.unwrap());
    }
    c.schedule(None);
    c
}

#[tokio::test]
async fn hostile_connectors_do_not_keep_a_sweep_from_the_others() {
    const TABLE: &str = "connectors-sweep-hostile";
    let mut tester = crate::sweep::sweep_tester(TABLE).await;
    tester.sweep.concurrency = 4;
    let healthy = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let mut all = Vec::new();
    for (how, _) in EXPECTED {
        let (kind, config, auth) = pointed_at(how, listen(Peer::Hostile(how)).await);
        all.push(connector(&tester, kind, config, auth).await);
    }
    let hostile = all.len();
    for _ in 0..12 {
        let config = json!({"host": "127.0.0.1", "port": healthy.port(), "database": "d"});
        all.push(connector(&tester, ConnectorType::Postgresql, config, json!({})).await);
    }
    crate::sweep::insert_all(TABLE, &all).await;

    let run = tester
        .sweep_shard(0, Instant::now() + Duration::from_secs(120), "hostile-test")
        .await
        .expect("the shard run took its lease");
    let summary = run.summary;
    assert_eq!(
        (summary.probed, summary.ok, summary.failed),
        (all.len(), all.len() - hostile, hostile),
        "{summary:?}"
    );
    for (i, c) in all.iter().enumerate() {
        let stored = tester
            .store
            .get(&c.tenant_id, &c.id)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.last_tested_at.is_some(), "{i} recorded");
        assert_eq!(
            stored.status,
            if i < hostile {
                Status::Error
            } else {
                Status::Active
            },
            "{i}: {:?}",
            stored.last_error
        );
        assert_tidy(stored.last_error.as_deref().unwrap_or(""));
    }
}

fn key_fixture(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/core/testdata/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}

#[tokio::test]
async fn keys_whose_derivation_never_ends_are_refused_at_create_and_at_probe_time() {
    let t = Tenant::new("slow-keys");
    let snowflake = |key: &str| {
        json!({"name": "sf", "type": "snowflake",
               "config": {"account": "xy12345.us-east-1", "warehouse": "W", "database": "D"},
               "authConfig": {"username": "u", "privateKey": key, "passphrase": "x"}})
    };
    let ssh = listen(Peer::Ssh).await;
    let sftp = |key: &str| {
        json!({"name": "sftp", "type": "sftp", "config": {"host": "127.0.0.1", "port": ssh.port()},
               "authConfig": {"username": "u", "privateKey": key, "passphrase": "pw"}})
    };
    for (body, problem) in [
        (snowflake(&key_fixture("pkcs8-pbkdf2-2m.pem")), "PBKDF2"),
        (snowflake(&key_fixture("pkcs8-scrypt-256mib.pem")), "scrypt"),
        (sftp(&key_fixture("openssh-bcrypt-2g-rounds")), "bcrypt"),
        (sftp(&key_fixture("putty-argon2.ppk")), "OpenSSH"),
    ] {
        let started = Instant::now();
        let r = t.create(body.clone()).await;
        assert_eq!(
            (r.status, r.fields()),
            (400, vec!["authConfig.privateKey".to_string()]),
            "{}",
            r.raw
        );
        assert!(r.raw.contains(problem), "{}", r.raw);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A key stored before the rule (written straight to the table) is checked again at probe
    // time, before it is derived: a quick invalid_config instead of hours of bcrypt.
    let st = stack().await;
    let tester = crate::support::tester_probing_with(probe_settings()).await;
    let auth = json!({"username": "u", "privateKey": key_fixture("openssh-bcrypt-2g-rounds"), "passphrase": "pw"});
    let mut c = connector(
        &tester,
        ConnectorType::Sftp,
        json!({"host": "127.0.0.1", "port": ssh.port()}),
        auth,
    )
    .await;
    c.tenant_id = t.id.clone();
    c.auth_config = Some(
        st.sealer
            .seal(SecretContext { tenant_id: &t.id, connector_id: &c.id }, &json!({"username": "u", "privateKey": key_fixture("openssh-bcrypt-2g-rounds"), "passphrase": "pw"}).as_object().unwrap().clone())
            .await
            .unwrap(),
    );
    crate::sweep::insert_all(crate::support::TABLE, &[c.clone()]).await;
    let started = Instant::now();
    let r = t.test(&c.id).await;
    assert_eq!(r.body["diagnostics"]["code"], "invalid_config", "{}", r.raw);
    assert!(r.raw.contains("bcrypt"), "{}", r.raw);
    assert!(started.elapsed() < Duration::from_secs(5));
}

//! SFTP logins against Debian's OpenSSH, and trust on first use of its host key.

use super::*;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::{json, Value};

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

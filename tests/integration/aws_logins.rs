//! AWS logins (aws_s3, amazon_kinesis) against an emulator that enforces IAM
//! (local/aws_iam_emulator.py): keys proven with GetCallerIdentity, a customer role assumed from
//! the function's role, then the bucket (HeadBucket + ListObjectsV2) or the stream. The function's
//! role is played by the emulator's `prober` user (allowed sts:AssumeRole) or `nobody`.

use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::{json, Value};
use shared::probe::Prober;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `make integration`"))
}

/// The SDK configuration of a function whose role is the emulator user `who`.
async fn function_sdk(who: &str) -> aws_config::SdkConfig {
    let upper = who.to_ascii_uppercase();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{}", env("AWS_IAM_TEST_PORT")))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            env(&format!("AWS_IAM_{upper}_KEY")),
            env(&format!("AWS_IAM_{upper}_SECRET")),
            None,
            None,
            "function-role",
        ))
        .load()
        .await
}

fn keys(who: &str, wrong_secret: bool) -> Value {
    let upper = who.to_ascii_uppercase();
    let secret = if wrong_secret {
        "wrong-aws-secret-0000000000000000000000".to_string()
    } else {
        env(&format!("AWS_IAM_{upper}_SECRET"))
    };
    json!({"accessKeyId": env(&format!("AWS_IAM_{upper}_KEY")), "secretAccessKey": secret})
}

#[tokio::test]
async fn aws_keys_and_roles_reach_the_depth_they_allow() {
    let role = json!({"roleArn": env("AWS_IAM_ROLE_ARN"), "externalId": "tenant-external-id"});
    let s3 = |bucket: &str| json!({"bucket": bucket, "region": "us-east-1"});
    let kinesis = |stream: &str| json!({"streamName": stream, "region": "us-east-1"});
    // (name, function role, type, authMethod, config, authConfig, code, depth)
    let rows = [
        (
            "keys",
            "prober",
            "aws_s3",
            "access_key",
            s3("granted-bucket"),
            keys("prober", false),
            "ok",
            "authorized",
        ),
        (
            "wrong-secret",
            "prober",
            "aws_s3",
            "access_key",
            s3("granted-bucket"),
            keys("prober", true),
            "auth_failed",
            "reachable",
        ),
        (
            "no-grant",
            "prober",
            "aws_s3",
            "access_key",
            s3("locked-bucket"),
            keys("prober", false),
            "permission_denied",
            "authenticated",
        ),
        (
            "missing",
            "prober",
            "aws_s3",
            "access_key",
            s3("missing-bucket"),
            keys("prober", false),
            "not_found",
            "authenticated",
        ),
        (
            "keys-without-policy",
            "prober",
            "aws_s3",
            "access_key",
            s3("granted-bucket"),
            keys("nobody", false),
            "permission_denied",
            "authenticated",
        ),
        (
            "assume-role",
            "prober",
            "aws_s3",
            "assume_role",
            s3("granted-bucket"),
            role.clone(),
            "ok",
            "authorized",
        ),
        (
            "role-no-grant",
            "prober",
            "aws_s3",
            "assume_role",
            s3("locked-bucket"),
            role.clone(),
            "permission_denied",
            "authenticated",
        ),
        (
            "assume-role-refused",
            "nobody",
            "aws_s3",
            "assume_role",
            s3("granted-bucket"),
            role.clone(),
            "auth_failed",
            "reachable",
        ),
        (
            "function-role",
            "prober",
            "aws_s3",
            "iam_role",
            s3("granted-bucket"),
            json!({}),
            "ok",
            "authorized",
        ),
        (
            "stream",
            "prober",
            "amazon_kinesis",
            "access_key",
            kinesis("granted-stream"),
            keys("prober", false),
            "ok",
            "authorized",
        ),
        (
            "stream-no-grant",
            "prober",
            "amazon_kinesis",
            "access_key",
            kinesis("granted-stream"),
            keys("nobody", false),
            "permission_denied",
            "authenticated",
        ),
        (
            "stream-missing",
            "prober",
            "amazon_kinesis",
            "access_key",
            kinesis("missing-stream"),
            keys("prober", false),
            "not_found",
            "authenticated",
        ),
        (
            "stream-wrong-secret",
            "prober",
            "amazon_kinesis",
            "access_key",
            kinesis("granted-stream"),
            keys("prober", true),
            "auth_failed",
            "reachable",
        ),
    ];
    let t = Tenant::new("awslogin");
    for (name, function, kind, method, config, auth, code, depth) in rows {
        let mut tester = tester_probing_with(probe_settings()).await;
        tester.prober = Prober::new(probe_settings(), &function_sdk(function).await);
        let mut body = json!({"name": name, "type": kind, "authMethod": method, "config": config});
        if auth != json!({}) {
            body["authConfig"] = auth;
        }
        let id = t.create_id(body).await;
        let r = test_through(&tester, &t, &id).await;
        let d = &r.body["diagnostics"];
        assert_eq!(
            (d["code"].as_str(), d["depth"].as_str()),
            (Some(code), Some(depth)),
            "{name}: {}",
            r.raw
        );
        for user in ["PROBER", "NOBODY"] {
            assert!(
                !r.raw.contains(&env(&format!("AWS_IAM_{user}_SECRET"))),
                "{name}: a secret key leaked"
            );
        }
        if name == "assume-role-refused" {
            // AWS answers with the AccessDenied code in XML the SDK reads; moto's denial body
            // is not the STS error shape, so the message falls back to the HTTP status there.
            // The role ARN is an authConfig value: a message names it masked, as authConfig is shown.
            let message = d["message"].as_str().unwrap();
            assert!(
                message.contains("AssumeRole of ar***") && message.contains("was refused"),
                "{}",
                r.raw
            );
            assert!(!message.contains("arn:aws:iam::"), "{}", r.raw);
        }
    }
}

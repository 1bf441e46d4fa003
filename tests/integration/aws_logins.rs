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
    // No externalId: the service sends the tenant's own (a role without the condition admits it).
    let role = json!({"roleArn": env("AWS_IAM_ROLE_ARN")});
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

/// The tenant whose ExternalId `tenant-role`'s trust policy names (local/aws_iam_emulator.py).
fn tenant_awsext() -> Tenant {
    Tenant {
        id: "awsext".into(),
        token: crate::support::token(&["awsext"], "admin"),
    }
}

#[tokio::test]
async fn a_role_is_assumed_only_with_the_tenants_own_external_id() {
    let arn = env("AWS_IAM_TENANT_ROLE_ARN");
    let mut tester = tester_probing_with(probe_settings()).await;
    tester.prober = Prober::new(probe_settings(), &function_sdk("prober").await);
    let body = |name: String, auth: Value| json!({"name": name, "type": "aws_s3", "config": {"bucket": "granted-bucket", "region": "us-east-1"}, "authConfig": auth});
    let suffix = shared::ids::new_connector_id();
    // The tenant the trust policy names: shown its awsExternalId, and the role is assumed.
    let owner = tenant_awsext();
    let own_id = shared::kinds::aws::external_id("awsext");
    let id = owner
        .create_id(body(format!("own-{suffix}"), json!({"roleArn": arn})))
        .await;
    assert_eq!(owner.get(&id).await.body["awsExternalId"], own_id.as_str());
    let r = test_through(&tester, &owner, &id).await;
    assert_eq!(r.body["diagnostics"]["code"], "ok", "{}", r.raw);
    assert_eq!(r.body["awsExternalId"], own_id.as_str());
    // Saying its own id explicitly is allowed; another tenant's is a 400 naming the field.
    let r = owner
        .create(body(
            format!("explicit-{suffix}"),
            json!({"roleArn": arn, "externalId": own_id}),
        ))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    // Another tenant naming the same role (and the owner's ExternalId) cannot borrow it.
    let other = Tenant::new("awsborrow");
    let r = other
        .create(body(
            "borrow".into(),
            json!({"roleArn": arn, "externalId": own_id}),
        ))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["authConfig.externalId".to_string()]),
        "{}",
        r.raw
    );
    let id = other
        .create_id(body("borrow".into(), json!({"roleArn": arn})))
        .await;
    let r = test_through(&tester, &other, &id).await;
    let d = &r.body["diagnostics"];
    assert_eq!(d["code"], "auth_failed", "{}", r.raw);
    let message = d["message"].as_str().unwrap();
    assert!(
        message.contains(&shared::kinds::aws::external_id(&other.id))
            && message.contains("trust policy"),
        "the message says what to change: {message}"
    );
    // The function's own role is off unless the deployment allows it.
    let r = other
        .create(
            json!({"name": "fn-role", "type": "aws_s3", "authMethod": "iam_role",
                       "config": {"bucket": "granted-bucket", "region": "us-east-1"}}),
        )
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["authMethod".to_string()]),
        "{}",
        r.raw
    );
    let r = other
        .update(json!({"id": id, "authMethod": "iam_role"}))
        .await;
    assert_eq!(
        (r.status, r.fields()),
        (400, vec!["authMethod".to_string()]),
        "{}",
        r.raw
    );
    // A connector stored with iam_role before the rule tests invalid_config, with the reason.
    let legacy = other
        .create_id(json!({"name": "legacy-fn-role", "type": "aws_s3",
                          "config": {"bucket": "granted-bucket", "region": "us-east-1"}}))
        .await;
    let st = crate::support::stack().await;
    st.dynamo
        .update_item()
        .table_name(crate::support::TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", other.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("CONNECTOR#{legacy}")),
        )
        .update_expression("SET authMethod = :m")
        .expression_attribute_values(
            ":m",
            aws_sdk_dynamodb::types::AttributeValue::S("iam_role".into()),
        )
        .send()
        .await
        .unwrap();
    let r = test_through(&tester, &other, &legacy).await;
    assert_eq!(r.body["diagnostics"]["code"], "invalid_config", "{}", r.raw);
    assert!(r.raw.contains("AllowFunctionRole"), "{}", r.raw);
}

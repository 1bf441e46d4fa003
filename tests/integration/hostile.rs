//! Hostile input: huge, deep, non-UTF-8 or numerically absurd bodies, names built to deceive,
//! and forged or misused tokens — each a clear 4xx, and nothing stored.

use crate::support::{postgres, signed, token_claims, unique_tenant, Call, Reply, Tenant};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

async fn post_raw(t: &Tenant, body: &str) -> Reply {
    Call::new("POST", "/api/v1/connectors")
        .bearer(&t.token)
        .raw_body(body)
        .send()
        .await
}

async fn assert_nothing_stored(t: &Tenant) {
    let list = t.list(None, None).await;
    assert_eq!(list.body["total"], 0, "{}", list.raw);
}

#[tokio::test]
async fn absurd_bodies_are_refused_clearly() {
    let t = Tenant::new("absurd");
    let cases: Vec<(String, u16, &str)> = vec![
        // 1 MB of JSON: refused before parsing.
        (format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 20)), 413, "payload_too_large"),
        // Nested past serde_json's recursion limit.
        (format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)), 400, "invalid_json"),
        (format!("{{\"name\": \"n\", \"type\": \"mysql\", \"config\": {}1{}}}", "{\"a\":".repeat(5_000), "}".repeat(5_000)), 400, "invalid_json"),
        // Numbers beyond f64.
        (r#"{"name": "n", "type": "mysql", "config": {"host": "h.example.com", "port": 1e400, "database": "d"}}"#.into(), 400, "invalid_json"),
        (r#"{"name": "n", "type": "mysql", "config": {"host": "h.example.com", "port": -1e400, "database": "d"}}"#.into(), 400, "invalid_json"),
        // Lone surrogates are not Unicode.
        (r#"{"name": "\ud800", "type": "mysql"}"#.into(), 400, "invalid_json"),
        // Duplicate keys: ambiguous, refused rather than last-one-wins.
        (r#"{"name": "a", "name": "b", "type": "mysql"}"#.into(), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let r = post_raw(&t, &body).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code),
            "{}…: {}",
            &body[..body.len().min(80)],
            r.raw
        );
    }
    let valid = |config: serde_json::Value| json!({"name": "n", "type": "mysql", "config": config});
    let base = json!({"host": "h.example.com", "database": "d"});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        valid(c)
    };
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    for (body, field) in [
        (with("port", json!(1e30)), "config.port"),
        (
            with("port", json!(99999999999999999999u128 as f64)),
            "config.port",
        ),
        (with("port", json!(3306.5)), "config.port"),
        (with("extra", json!(1e300)), "config.extra"),
        (with("extra", json!(1e-300)), "config.extra"),
        (with("extra", deep), "config.extra"),
        (with("", json!("empty key")), "config."),
    ] {
        let r = t.create(body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{body}: {}",
            r.raw
        );
        let fields = r.fields();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{fields:?} should name {field}"
        );
    }
    assert_nothing_stored(&t).await;
    // Big but sane numbers are kept as sent.
    let r = t
        .create(
            with("port", json!(3306))
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain([("name".to_string(), json!("ok"))])
                .collect(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
}

#[tokio::test]
async fn names_built_to_deceive_are_refused_and_unicode_is_one_spelling() {
    let t = Tenant::new("names");
    for name in [
        "nul\u{0}byte",
        "escape\u{1b}[31mred",
        "del\u{7f}",
        "c1\u{85}control",
        "right\u{202e}txt.exe",
        "zero\u{200b}width",
        "bom\u{feff}",
        "line\u{2028}separator",
        "isolate\u{2066}x\u{2069}",
        "tag\u{e0041}",
        "nonchar\u{fffe}",
        "\u{200d}",
        "   ",
    ] {
        let r = t.create(postgres(name)).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{name:?}: {}",
            r.raw
        );
        assert_eq!(r.body["error"]["details"][0]["field"], "name");
    }
    let r = t.create(postgres(&"é".repeat(129))).await;
    assert_eq!(r.status, 400, "129 characters (not bytes) is too long");
    assert_nothing_stored(&t).await;

    // Ordinary non-ASCII is welcome, stored in NFC; a decomposed spelling is the same name.
    for name in ["数据仓库 🚀", "Ünïcödé", &"é".repeat(128)] {
        assert_eq!(t.create(postgres(name)).await.status, 201, "{name}");
    }
    let r = t.create(postgres("Café")).await;
    assert_eq!(r.status, 201);
    let decomposed = t.create(postgres("Cafe\u{301}")).await;
    assert_eq!(
        (decomposed.status, decomposed.code()),
        (409, "name_taken"),
        "{}",
        decomposed.raw
    );
    let upper = t.create(postgres("CAFE\u{301}")).await;
    assert_eq!(upper.code(), "name_taken");
    assert_eq!(t.list(None, None).await.body["total"], 4);
}

#[tokio::test]
async fn forged_and_misused_tokens_store_nothing() {
    let tenant = unique_tenant("forged");
    let good = token_claims(&[&tenant], "admin");
    let mut bad: Vec<(&str, String)> = Vec::new();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    bad.push((
        "alg none",
        format!("{header}.{}.", URL_SAFE_NO_PAD.encode(good.to_string())),
    ));
    let genuine = signed(&good);
    let (head, rest) = genuine.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut forged_claims = good.clone();
    forged_claims["role"] = json!("admin");
    forged_claims["tenants"] = json!([tenant, "someone-else"]);
    bad.push((
        "tampered payload",
        format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(forged_claims.to_string())
        ),
    ));
    for (label, key, value) in [
        ("wrong issuer", "iss", json!("https://evil.example")),
        ("wrong audience", "aud", json!("another-api")),
        ("expired", "exp", json!(1_600_000_000u64)),
        ("not yet valid", "nbf", json!(4_000_000_000u64)),
    ] {
        let mut c = good.clone();
        c[key] = value;
        bad.push((label, signed(&c)));
    }
    for (label, token) in &bad {
        let r = Call::new("POST", "/api/v1/connectors")
            .bearer(token)
            .json(postgres("x"))
            .send()
            .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "{label}: {}",
            r.raw
        );
        assert!(!r.raw.contains(token.as_str()));
    }
    let r = Call::new("POST", "/api/v1/connectors")
        .bearer(&signed(&good))
        .header("x-tenant-id", "someone-else")
        .json(postgres("x"))
        .send()
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.raw);
    let r = Call::new("GET", "/api/v1/connectors")
        .bearer(&signed(&good))
        .send()
        .await;
    assert_eq!(r.body["total"], 0, "nothing was stored for {tenant}");
}

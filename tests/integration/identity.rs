//! Tenants are isolated; roles follow the spec's matrix; identity comes from the authorizer or a token.

use crate::support::{postgres, token, unique_tenant, Call, Tenant};
use serde_json::json;

#[tokio::test]
async fn another_tenant_sees_nothing() {
    let (a, b) = (Tenant::new("iso-a"), Tenant::new("iso-b"));
    let c = a.create(postgres("private")).await.body;
    let id = c["id"].as_str().unwrap();

    assert_eq!(b.get(id).await.status, 404);
    assert_eq!(
        b.update(json!({"id": id, "name": "stolen"})).await.status,
        404
    );
    assert_eq!(b.delete(id).await.status, 404);
    let list = b.list(None, None).await;
    assert_eq!(
        (
            list.body["total"].as_u64(),
            list.body["data"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let r = a.get(id).await;
    assert_eq!(
        (
            r.status,
            r.body["name"].as_str(),
            r.body["version"].as_u64()
        ),
        (200, Some("private"), Some(1)),
        "untouched"
    );
}

#[tokio::test]
async fn viewers_read_but_do_not_write() {
    let t = Tenant::new("roles");
    let id = t.create(postgres("seen")).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let viewer = t.with_role("viewer");
    let list = Call::new("GET", "/api/v1/connectors")
        .bearer(&viewer)
        .send()
        .await;
    assert_eq!(list.status, 200);
    let detail = Call::new("GET", &format!("/api/v1/connectors/{id}"))
        .bearer(&viewer)
        .send()
        .await;
    assert_eq!(
        detail.status, 200,
        "detail from the raw path when no path parameter is set"
    );

    let post = Call::new("POST", "/api/v1/connectors")
        .bearer(&viewer)
        .json(postgres("nope"))
        .send()
        .await;
    let put = Call::new("PUT", "/api/v1/connectors")
        .bearer(&viewer)
        .json(json!({"id": id, "name": "x"}))
        .send()
        .await;
    let del = Call::new("DELETE", "/api/v1/connectors")
        .query("id", &id)
        .bearer(&viewer)
        .send()
        .await;
    for r in [&post, &put, &del] {
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.raw);
    }
    assert_eq!(t.list(None, None).await.body["total"], 1);
    assert_eq!(t.get(&id).await.body["name"], "seen");

    let editor = t.with_role("editor");
    let r = Call::new("PUT", "/api/v1/connectors")
        .bearer(&editor)
        .json(json!({"id": id, "name": "edited"}))
        .send()
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn no_token_no_access() {
    let r = Call::new("GET", "/api/v1/connectors").send().await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = Call::new("GET", "/api/v1/connectors")
        .header("x-tenant-id", "acme")
        .send()
        .await;
    assert_eq!(r.status, 401, "a header alone never grants anything");
    let r = Call::new("GET", "/api/v1/connectors")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await;
    assert_eq!(r.status, 401);
    let r = Call::new("GET", "/api/v1/connectors")
        .bearer("not.a.jwt")
        .send()
        .await;
    assert_eq!(r.status, 401);
    let tenant = unique_tenant("forged");
    let mut forged = token(&[&tenant], "admin");
    forged.push('x');
    let r = Call::new("GET", "/api/v1/connectors")
        .bearer(&forged)
        .send()
        .await;
    assert_eq!(r.status, 401, "tampered signature");
}

#[tokio::test]
async fn x_tenant_id_selects_among_the_tokens_tenants() {
    let (a, b) = (unique_tenant("multi-a"), unique_tenant("multi-b"));
    let both = token(&[&a, &b], "editor");
    let r = Call::new("POST", "/api/v1/connectors")
        .bearer(&both)
        .header("x-tenant-id", &b)
        .json(postgres("in-b"))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let in_b = Call::new("GET", "/api/v1/connectors")
        .bearer(&both)
        .header("X-Tenant-Id", &b)
        .send()
        .await;
    assert_eq!(in_b.body["total"], 1);
    let in_a = Call::new("GET", "/api/v1/connectors")
        .bearer(&both)
        .header("X-Tenant-Id", &a)
        .send()
        .await;
    assert_eq!(in_a.body["total"], 0);
    let r = Call::new("GET", "/api/v1/connectors")
        .bearer(&both)
        .send()
        .await;
    assert_eq!((r.status, r.code()), (400, "tenant_required"));
    let r = Call::new("GET", "/api/v1/connectors")
        .bearer(&both)
        .header("x-tenant-id", "someone-else")
        .send()
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
}

#[tokio::test]
async fn the_authorizer_context_is_trusted_over_headers() {
    let tenant = unique_tenant("authz");
    let r = Call::new("POST", "/api/v1/connectors")
        .authorizer(&tenant, "admin")
        .json(postgres("via-authorizer"))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_str().unwrap().to_string();
    // A client header naming another tenant does not move the request out of the authorizer's tenant.
    let r = Call::new("GET", "/api/v1/connectors")
        .authorizer(&tenant, "viewer")
        .header("x-tenant-id", "other")
        .send()
        .await;
    assert_eq!((r.status, r.body["total"].as_u64()), (200, Some(1)));
    let r = Call::new("DELETE", "/api/v1/connectors")
        .authorizer(&tenant, "viewer")
        .query("id", &id)
        .send()
        .await;
    assert_eq!(r.status, 403);
}

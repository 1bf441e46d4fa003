//! Names are unique per tenant ignoring case; renames and deletes free them.

use crate::support::{postgres, Tenant};
use serde_json::json;

#[tokio::test]
async fn duplicate_names_conflict_ignoring_case() {
    let t = Tenant::new("dup");
    assert_eq!(t.create(postgres("Orders DB")).await.status, 201);
    for name in ["Orders DB", "orders db", "ORDERS DB", "  Orders DB  "] {
        let r = t.create(postgres(name)).await;
        assert_eq!((r.status, r.code()), (409, "name_taken"), "{name:?}");
    }
    assert_eq!(
        t.list(None, None).await.body["total"],
        1,
        "refused creates are not counted"
    );
}

#[tokio::test]
async fn rename_frees_the_old_name_and_keeps_uniqueness() {
    let t = Tenant::new("rename");
    let a = t.create(postgres("alpha")).await.body;
    let b = t.create(postgres("beta")).await.body;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let r = t.update(json!({"id": b_id, "name": "ALPHA"})).await;
    assert_eq!((r.status, r.code()), (409, "name_taken"));
    assert_eq!(t.get(b_id).await.body["name"], "beta");

    let r = t.update(json!({"id": a_id, "name": "gamma"})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        t.create(postgres("alpha")).await.status,
        201,
        "old name is free"
    );
    assert_eq!(
        t.create(postgres("Gamma")).await.status,
        409,
        "new name is claimed"
    );

    let r = t.update(json!({"id": a_id, "name": "GAMMA"})).await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (200, Some("GAMMA")),
        "a change of case only is allowed"
    );
}

#[tokio::test]
async fn delete_frees_the_name_and_decrements_the_total() {
    let t = Tenant::new("free");
    let a = t.create(postgres("reuse-me")).await.body;
    assert_eq!(t.create(postgres("other")).await.status, 201);
    assert_eq!(t.list(None, None).await.body["total"], 2);
    assert_eq!(t.delete(a["id"].as_str().unwrap()).await.status, 204);
    assert_eq!(t.list(None, None).await.body["total"], 1);
    assert_eq!(t.create(postgres("Reuse-Me")).await.status, 201);
    assert_eq!(t.list(None, None).await.body["total"], 2);
}

#[tokio::test]
async fn the_same_name_in_two_tenants_is_fine() {
    let (a, b) = (Tenant::new("na"), Tenant::new("nb"));
    assert_eq!(a.create(postgres("shared")).await.status, 201);
    assert_eq!(b.create(postgres("shared")).await.status, 201);
}

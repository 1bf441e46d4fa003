//! Create, read, update and delete, end to end.

use crate::support::{postgres, Tenant};
use serde_json::json;

#[tokio::test]
async fn round_trip() {
    let t = Tenant::new("crud");
    let created = t
        .create(json!({
            "name": "  Customer Data Warehouse ",
            "type": "snowflake",
            "description": "Main data warehouse",
            "config": {"account": "xy12345.us-east-1", "warehouse": "COMPUTE_WH", "database": "ANALYTICS", "role": "READER"},
            "authConfig": {"username": "svc_kaireon", "password": "secret"}
        }))
        .await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let c = &created.body;
    let id = c["id"].as_str().unwrap();
    assert!(id.starts_with("conn_"));
    assert_eq!(
        created.headers["location"],
        format!("/api/v1/connectors/{id}").as_str()
    );
    assert_eq!(created.headers["content-type"], "application/json");
    assert_eq!(c["name"], "Customer Data Warehouse", "names are trimmed");
    assert_eq!(c["authMethod"], "access_key");
    assert_eq!(c["status"], "pending");
    assert_eq!(c["lastTestedAt"], json!(null));
    assert_eq!(c["lastError"], json!(null));
    assert_eq!(
        c["config"]["role"], "READER",
        "unknown config fields are kept"
    );
    assert_eq!(c["authConfigFields"], json!(["password", "username"]));
    assert!(c.get("authConfig").is_none());
    assert!(!created.raw.contains("svc_kaireon") && !created.raw.contains("\"secret\""));

    let got = t.get(id).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);

    let listed = t.list(None, None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["hasMore"], false);
    assert_eq!(listed.body["nextCursor"], json!(null));
    assert_eq!(listed.body["data"], json!([created.body]));

    let updated = t
        .update(json!({"id": id, "description": "Renamed warehouse", "status": "inactive"}))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.raw);
    assert_eq!(updated.body["description"], "Renamed warehouse");
    assert_eq!(updated.body["status"], "inactive");
    assert_eq!(
        updated.body["name"], "Customer Data Warehouse",
        "fields not sent are kept"
    );
    assert_eq!(
        updated.body["authConfigFields"],
        json!(["password", "username"])
    );
    assert_eq!(updated.body["version"], 2);
    assert_eq!(t.get(id).await.body, updated.body);

    let deleted = t.delete(id).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.raw, "");
    assert_eq!(t.get(id).await.status, 404);
    assert_eq!(t.delete(id).await.status, 404);
    assert_eq!(t.list(None, None).await.body["total"], 0);
}

#[tokio::test]
async fn update_applies_only_the_fields_present_and_null_clears() {
    let t = Tenant::new("patch");
    let mut body = postgres("orders");
    body["description"] = json!("orders db");
    body["authConfig"] = json!({"password": "p@ssw0rd-long"});
    let c = t.create(body).await.body;
    let id = c["id"].as_str().unwrap();

    let r = t
        .update(json!({"id": id, "description": null, "authConfig": null}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["description"], json!(null));
    assert_eq!(r.body["authConfigFields"], json!([]));
    assert_eq!(r.body["config"], c["config"]);

    // Clearing config of a type that requires it is refused, and nothing changes.
    let r = t.update(json!({"id": id, "config": null})).await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    assert_eq!(t.get(id).await.body["config"], c["config"]);
}

#[tokio::test]
async fn a_type_change_revalidates_the_merged_config() {
    let t = Tenant::new("retype");
    let c = t.create(postgres("warehouse")).await.body;
    let id = c["id"].as_str().unwrap();

    let r = t.update(json!({"id": id, "type": "snowflake"})).await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let fields = r.fields();
    assert!(
        fields.contains(&"config.account".to_string())
            && fields.contains(&"config.warehouse".to_string()),
        "{fields:?}"
    );

    let r = t.update(json!({"id": id, "type": "mysql", "config": {"host": "10.0.0.5", "port": 3306, "database": "app"}})).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["type"], "mysql");
    assert_eq!(r.body["status"], "pending");
}

#[tokio::test]
async fn update_errors() {
    let t = Tenant::new("upderr");
    let c = t.create(postgres("a")).await.body;
    let id = c["id"].as_str().unwrap();
    let r = t.update(json!({"id": id})).await;
    assert_eq!((r.status, r.code()), (400, "nothing_to_update"));
    let r = t.update(json!({"name": "x"})).await;
    assert_eq!((r.status, r.code()), (400, "missing_id"));
    let r = t
        .update(json!({"id": "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV", "name": "x"}))
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    // Any non-empty string of at most 128 characters is an id to look up (the spec's own example
    // `conn_001` included): not ours, so not found. Only a missing, empty, non-string or longer id
    // is a 400.
    for missing in ["nope", "conn_001", &"x".repeat(128)] {
        let r = t.update(json!({"id": missing, "name": "x"})).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{missing}");
    }
    for bad in [
        json!(""),
        json!("x".repeat(129)),
        json!(5),
        json!(["conn_001"]),
    ] {
        let r = t.update(json!({"id": bad, "name": "x"})).await;
        assert_eq!((r.status, r.code()), (400, "invalid_id"), "{bad}");
        assert_eq!(r.fields(), ["id"]);
    }
    for status in ["error", "pending", "ACTIVE", ""] {
        let r = t.update(json!({"id": id, "status": status})).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "status {status:?}"
        );
    }
    let r = t.update(json!({"id": id, "name": null})).await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    assert_eq!(
        t.get(id).await.body["version"],
        1,
        "failed updates write nothing"
    );
}

#[tokio::test]
async fn delete_errors() {
    let t = Tenant::new("delerr");
    let r = crate::support::Call::new("DELETE", "/api/v1/connectors")
        .bearer(&t.token)
        .send()
        .await;
    assert_eq!((r.status, r.code()), (400, "missing_id"));
    for missing in ["conn_bad", "conn_001", "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
        let r = t.delete(missing).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{missing}");
    }
    for bad in ["", &"x".repeat(129)] {
        let r = t.delete(bad).await;
        assert_eq!((r.status, r.code()), (400, "invalid_id"), "{bad:?}");
    }
    // The spec's example id on detail and test: 404, like any other id that names nothing.
    assert_eq!(t.get("conn_001").await.status, 404);
    let r = t.test("conn_001").await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.raw);
    let r = crate::support::Call::new("POST", "/api/v1/connectors/test")
        .bearer(&t.token)
        .json(serde_json::json!({"id": ""}))
        .send()
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_id"));
}

#[tokio::test]
async fn delete_honours_if_match() {
    let t = Tenant::new("delifmatch");
    let id = t.create_id(postgres("guarded")).await;
    let delete = |etag: &str| {
        crate::support::Call::new("DELETE", "/api/v1/connectors")
            .query("id", &id)
            .header("If-Match", etag)
            .bearer(&t.token)
            .send()
    };
    for stale in ["\"2\"", "W/\"1\"", "\"stale-0\""] {
        let r = delete(stale).await;
        assert_eq!((r.status, r.code()), (412, "version_mismatch"), "{stale}");
    }
    assert_eq!(delete("1").await.code(), "invalid_if_match");
    assert_eq!(
        t.get(&id).await.status,
        200,
        "a refused delete removed nothing"
    );
    assert_eq!(delete("\"1\"").await.status, 204);
    assert_eq!(t.get(&id).await.status, 404);
}

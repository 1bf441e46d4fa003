//! Cursor pagination and the kept-by-writes total.

use crate::support::{postgres, Tenant};
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn forty_five_connectors_in_pages_of_twenty() {
    let t = Tenant::new("paging");
    let mut created = Vec::new();
    for i in 0..45 {
        let r = t.create(postgres(&format!("db-{i:02}"))).await;
        assert_eq!(r.status, 201, "{}", r.raw);
        created.push(r.body["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut has_more_flags = Vec::new();
    for _ in 0..3 {
        let r = t.list(Some("20"), cursor.as_deref()).await;
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.body["total"], 45);
        let page: Vec<String> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        has_more_flags.push(r.body["hasMore"].as_bool().unwrap());
        if r.body["hasMore"] == true {
            assert_eq!(r.body["nextCursor"], json!(page.last().unwrap()));
        } else {
            assert_eq!(r.body["nextCursor"], json!(null));
        }
        cursor = r.body["nextCursor"].as_str().map(str::to_string);
        seen.extend(page);
    }
    assert_eq!(has_more_flags, [true, true, false]);
    assert_eq!(seen.len(), 45);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        45,
        "no duplicates"
    );
    assert_eq!(seen, created, "creation order, no gaps");
}

#[tokio::test]
async fn a_page_ending_exactly_at_the_last_item_has_no_more() {
    let t = Tenant::new("exact");
    for i in 0..4 {
        assert_eq!(t.create(postgres(&format!("e{i}"))).await.status, 201);
    }
    let first = t.list(Some("2"), None).await;
    assert_eq!(first.body["hasMore"], true);
    let second = t.list(Some("2"), first.body["nextCursor"].as_str()).await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        second.body["hasMore"], false,
        "the emulator omits LastEvaluatedKey here; DynamoDB would not"
    );
    assert_eq!(second.body["nextCursor"], json!(null));
}

#[tokio::test]
async fn the_cursor_of_a_deleted_connector_still_works() {
    let t = Tenant::new("gone");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            t.create(postgres(&format!("g{i}"))).await.body["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(t.delete(&ids[0]).await.status, 204);
    let r = t.list(Some("5"), Some(&ids[0])).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let page: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[1].as_str(), ids[2].as_str()]);
}

#[tokio::test]
async fn bad_limits_and_cursors() {
    let t = Tenant::new("badpage");
    for limit in ["0", "101", "-1", "abc", ""] {
        let r = t.list(Some(limit), None).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_limit"),
            "limit {limit:?}"
        );
    }
    for cursor in [
        "abc",
        "conn_",
        "conn_01arz3ndektsv4rrffq69g5fav",
        "CONNECTOR#x",
    ] {
        let r = t.list(None, Some(cursor)).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_cursor"),
            "cursor {cursor:?}"
        );
    }
    let r = t.list(Some("100"), None).await;
    assert_eq!((r.status, r.body["total"].as_u64()), (200, Some(0)));
}

//! GET /api/v1/connectors/{id}/tests (every role; served by the list function): a connector's
//! recent test results, newest first, with the list's `limit` rules and a result id as cursor.
//! At most `HISTORY_MAX` results and none older than the retention (`HISTORY_DAYS`) are shown:
//! the reader stops there, whatever the table still holds.

use crate::error::ApiError;
use crate::http::{json, query_param};
use crate::ids::{is_requested_id, result_id_floor};
use crate::model::TestResult;
use crate::paging::{parse_limit, parse_result_cursor};
use crate::store::{ConnectorReader, History, HISTORY_MAX};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// The path after a connector's id.
pub const SUFFIX: &str = "/tests";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultView<'a> {
    result_id: &'a str,
    #[serde(flatten)]
    result: &'a TestResult,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryPage<'a> {
    data: Vec<ResultView<'a>>,
    has_more: bool,
    next_cursor: Option<&'a str>,
}

/// One page of `id`'s history; 404 for a connector the tenant does not have (deleted, another
/// tenant's, unknown: a deleted one's leftover results expire).
pub async fn page<S: ConnectorReader + History>(
    store: &S,
    tenant: &str,
    id: &str,
    req: &Request,
    retention: Duration,
) -> Result<Response<Body>, ApiError> {
    if !is_requested_id(id) {
        return Err(ApiError::invalid_id("id"));
    }
    let limit = parse_limit(query_param(req, "limit")?.as_deref())?;
    let cursor = parse_result_cursor(query_param(req, "cursor")?)?;
    let oldest = result_id_floor(SystemTime::now() - retention);
    // Where the cursor stands, read beside the connector: the reader stops at HISTORY_MAX. A
    // cursor past the retention stands past the end (nothing older is shown, and DynamoDB
    // refuses a start key outside the key condition).
    let position = async {
        match &cursor {
            Some(c) if c.as_str() < oldest.as_str() => Ok(HISTORY_MAX),
            Some(c) => store.newer_count(tenant, id, c, &oldest).await,
            None => Ok(0),
        }
    };
    let (connector, position) = tokio::join!(store.get(tenant, id), position);
    connector?.ok_or_else(ApiError::not_found)?;
    let position = position?;
    let room = HISTORY_MAX.saturating_sub(position);
    let take = limit.min(room);
    let mut items = match take {
        0 => Vec::new(),
        n => {
            store
                .results(tenant, id, cursor.as_deref(), &oldest, n + 1)
                .await?
        }
    };
    // One more than the page tells whether there is more (never DynamoDB's LastEvaluatedKey).
    let has_more = items.len() > take && position + take < HISTORY_MAX;
    items.truncate(take);
    let body = HistoryPage {
        data: items
            .iter()
            .map(|i| ResultView {
                result_id: &i.result_id,
                result: &i.result,
            })
            .collect(),
        has_more,
        next_cursor: has_more
            .then(|| items.last().map(|i| i.result_id.as_str()))
            .flatten(),
    };
    Ok(json(200, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, Trigger};
    use crate::store::{HistoryItem, MemoryStore};
    use crate::testing::{reply, request};
    use serde_json::json;

    fn item(connector: &str, result_id: String, at: &str) -> HistoryItem {
        HistoryItem {
            result_id,
            connector_id: connector.into(),
            result: TestResult {
                at: at.into(),
                status: Status::Active,
                code: "ok".into(),
                depth: Some("authorized".into()),
                latency_ms: 12,
                message: "fine".into(),
                trigger: Trigger::Manual,
                request_id: None,
            },
            expires_at: 0,
        }
    }

    async fn stored(store: &MemoryStore) -> String {
        let b = json!({"name": "db", "type": "postgresql",
                       "config": {"host": "db.example.com", "port": 5432, "database": "app"}});
        let req = request("POST", "/api/v1/connectors", "acme", "admin", Some(b));
        let sealer = crate::testing::FakeSealer::default();
        let (_, view) = reply(super::super::create::handle(store, &sealer, None, req).await);
        view["id"].as_str().unwrap().to_string()
    }

    async fn get(store: &MemoryStore, tenant: &str, path: &str) -> (u16, serde_json::Value) {
        let req = request("GET", path, tenant, "viewer", None);
        reply(super::super::list::handle(store, None, req, Duration::from_secs(30 * 86_400)).await)
    }

    #[tokio::test]
    async fn newest_first_paged_capped_at_a_hundred_and_expired_ones_unread() {
        let store = MemoryStore::default();
        let id = stored(&store).await;
        let now = SystemTime::now();
        // 105 results a second apart, and one from 40 days ago that TTL has not deleted yet.
        for n in 0..105u64 {
            let at = now - Duration::from_secs(200 - n);
            let rid = ulid::Ulid::from_datetime(at).to_string();
            store
                .put_result("acme", &item(&id, rid, &n.to_string()))
                .await
                .unwrap();
        }
        let old = ulid::Ulid::from_datetime(now - Duration::from_secs(40 * 86_400)).to_string();
        store
            .put_result("acme", &item(&id, old.clone(), "old"))
            .await
            .unwrap();
        let base = format!("/api/v1/connectors/{id}/tests");
        let (status, first) = get(&store, "acme", &format!("{base}?limit=30")).await;
        assert_eq!(status, 200, "{first}");
        let ats: Vec<&str> = first["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["at"].as_str().unwrap())
            .collect();
        assert_eq!(ats.first(), Some(&"104"));
        assert_eq!(ats.len(), 30);
        let mut seen = 30;
        let mut cursor = first["nextCursor"].as_str().unwrap().to_string();
        loop {
            let (_, page) = get(&store, "acme", &format!("{base}?limit=30&cursor={cursor}")).await;
            let n = page["data"].as_array().unwrap().len();
            assert!(n > 0, "a page promised by nextCursor is not empty");
            seen += n;
            assert!(
                !page.to_string().contains("\"old\""),
                "expired results are not read"
            );
            match page["nextCursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => {
                    assert_eq!(page["hasMore"], false);
                    break;
                }
            }
        }
        assert_eq!(seen, HISTORY_MAX, "the reader stops at 100");
        // Another tenant, an unknown id and a bad cursor.
        assert_eq!(get(&store, "other", &base).await.0, 404);
        assert_eq!(
            get(
                &store,
                "acme",
                "/api/v1/connectors/conn_01M94VZV2ZYNNDCRKECQCW4BA7/tests"
            )
            .await
            .0,
            404
        );
        // A cursor older than the retention: an empty last page, not an error.
        let (status, page) = get(&store, "acme", &format!("{base}?cursor={old}")).await;
        assert_eq!(
            (
                status,
                page["data"].as_array().unwrap().len(),
                page["hasMore"].as_bool()
            ),
            (200, 0, Some(false))
        );
        let (status, e) = get(&store, "acme", &format!("{base}?cursor=nope")).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("invalid_cursor"))
        );
    }
}

//! GET /api/v1/connectors (a page), GET /api/v1/connectors/{id} (one connector) and
//! GET /api/v1/connectors/{id}/tests (its history, `history.rs`).

use super::{respond, BASE_PATH};
use crate::deadline::{crud_answer_by, within};
use crate::error::ApiError;
use crate::http::{json, path_param, query_param, with_etag};
use crate::identity::{identify, READ_ROLES};
use crate::ids::is_requested_id;
use crate::model::ConnectorView;
pub use crate::paging::{parse_cursor, parse_limit, DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::{ConnectorReader, History};
use crate::telemetry::request::observed;
use crate::token::TokenVerifier;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::time::Duration;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody<'a> {
    data: Vec<ConnectorView<'a>>,
    total: u64,
    has_more: bool,
    next_cursor: Option<&'a str>,
}

/// `history`: how long results stay in a connector's history (`HISTORY_DAYS`).
pub async fn handle<S: ConnectorReader + History>(
    store: &S,
    verifier: Option<&TokenVerifier>,
    req: Request,
    history: Duration,
) -> Response<Body> {
    observed("list", req, |req| async move {
        respond(within(crud_answer_by(&req), run(store, verifier, &req, history)).await)
    })
    .await
}

async fn run<S: ConnectorReader + History>(
    store: &S,
    verifier: Option<&TokenVerifier>,
    req: &Request,
    history: Duration,
) -> Result<Response<Body>, ApiError> {
    let who = identify(req, verifier, READ_ROLES).await?;
    if let Some(id) = history_id(req) {
        return super::history::page(store, &who.tenant_id, &id, req, history).await;
    }
    if let Some(id) = detail_id(req) {
        if !is_requested_id(&id) {
            return Err(ApiError::invalid_id("id"));
        }
        let connector = store
            .get(&who.tenant_id, &id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        return Ok(with_etag(json(200, &connector.view()), connector.version));
    }
    let limit = parse_limit(query_param(req, "limit")?.as_deref())?;
    let cursor = parse_cursor(query_param(req, "cursor")?)?;
    let page = store.page(&who.tenant_id, limit, cursor.as_deref()).await?;
    let next_cursor = if page.has_more {
        page.items.last().map(|c| c.id.as_str())
    } else {
        None
    };
    let body = ListBody {
        data: page.items.iter().map(|c| c.view()).collect(),
        total: page.total,
        has_more: page.has_more,
        next_cursor,
    };
    Ok(json(200, &body))
}

/// The `{id}` of `GET /api/v1/connectors/{id}/tests`.
fn history_id(req: &Request) -> Option<String> {
    let path = req.uri().path().trim_end_matches('/');
    let rest = path.strip_prefix(BASE_PATH)?.strip_prefix('/')?;
    let id = rest.strip_suffix(super::history::SUFFIX)?;
    Some(path_param(req, "id").unwrap_or_else(|| id.to_string()))
}

/// The `{id}` of `GET /api/v1/connectors/{id}`: from API Gateway's path parameters, or the raw path.
fn detail_id(req: &Request) -> Option<String> {
    path_param(req, "id").or_else(|| {
        let rest = req
            .uri()
            .path()
            .strip_prefix(BASE_PATH)?
            .strip_prefix('/')?;
        (!rest.is_empty()).then(|| rest.trim_end_matches('/').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in [
            "0",
            "101",
            "-1",
            "abc",
            "",
            "1.5",
            " 5",
            "99999999999999999999999",
        ] {
            let e = parse_limit(Some(bad)).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_limit"), "{bad:?}");
        }
    }
}

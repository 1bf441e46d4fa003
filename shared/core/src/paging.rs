//! The list's paging parameters: `limit` and the opaque-looking `cursor`.

use crate::error::{ApiError, FieldProblem};
use crate::ids::is_connector_id;

/// Connectors per page unless `limit` says otherwise, and the most a page holds.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// `limit`: an integer from 1 to 100, default 20.
/// The cursor is the id of the last connector of the previous page (it becomes the Query's
/// ExclusiveStartKey), so only a well-formed connector id is accepted.
pub fn parse_cursor(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(c) if !is_connector_id(&c) => Err(ApiError::new(
            400,
            "invalid_cursor",
            "cursor must be the id of the last connector of the previous page",
        )
        .with_details(vec![FieldProblem::new("cursor", "not a connector id")])),
        other => Ok(other),
    }
}

/// A history page's cursor: the id of the last result of the previous page.
pub fn parse_result_cursor(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(c) if !crate::ids::is_result_id(&c) => Err(ApiError::new(
            400,
            "invalid_cursor",
            "cursor must be the id of the last result of the previous page",
        )
        .with_details(vec![FieldProblem::new("cursor", "not a result id")])),
        other => Ok(other),
    }
}

pub fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::new(
                400,
                "invalid_limit",
                "limit must be an integer from 1 to 100",
            )
            .with_details(vec![FieldProblem::new(
                "limit",
                "must be an integer from 1 to 100",
            )])),
        },
    }
}

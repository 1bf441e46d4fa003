//! Request parsing and response building shared by every handler.

use crate::error::{ApiError, FieldProblem};
use crate::strict_json::Strict;
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds a JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    // serde_json writes valid UTF-8: straight into the String the body holds, no second pass.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    response(status, Body::Text(text))
}

/// Sets `ETag: "<version>"`, the value `If-Match` takes on update.
pub fn with_etag(mut resp: Response<Body>, version: u64) -> Response<Body> {
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// What an `If-Match` header (RFC 9110 §13.1.1) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header, or `*`: any current version.
    Any,
    /// The strong entity tags listed (weak ones never match under strong comparison).
    Strong(Vec<String>),
}

impl IfMatch {
    /// True when the connector at `version` (ETag `"<version>"`) satisfies the precondition.
    pub fn allows(&self, version: u64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Strong(tags) => tags.iter().any(|t| *t == version.to_string()),
        }
    }
}

/// The request's `If-Match`: a header that is not `*` or a list of entity tags is a 400; any
/// well-formed tag that is not the current one (`"stale-0"`, `W/"3"`) later fails with 412.
pub fn if_match(req: &Request) -> Result<IfMatch, ApiError> {
    let Some(raw) = req.headers().get(header::IF_MATCH) else {
        return Ok(IfMatch::Any);
    };
    let bad = || {
        ApiError::new(
            400,
            "invalid_if_match",
            "If-Match must be \"*\" or a list of entity tags like \"3\" (the connector's ETag)",
        )
        .with_details(vec![FieldProblem::new(
            "If-Match",
            "not \"*\" or a list of entity tags",
        )])
    };
    let text = std::str::from_utf8(raw.as_bytes())
        .map_err(|_| bad())?
        .trim();
    if text == "*" {
        return Ok(IfMatch::Any);
    }
    parse_entity_tags(text)
        .map(|tags| {
            IfMatch::Strong(
                tags.into_iter()
                    .filter(|(weak, _)| !weak)
                    .map(|(_, tag)| tag.to_string())
                    .collect(),
            )
        })
        .ok_or_else(bad)
}

/// `#entity-tag` (RFC 9110 §8.8.3 and §5.6.1): `(weak, opaque)` pairs, or None when malformed.
/// The opaque part may hold commas, so the list is scanned, not split.
fn parse_entity_tags(text: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let weak = rest.starts_with("W/");
        if weak {
            rest = &rest[2..];
        }
        let body = rest.strip_prefix('"')?;
        let end = body.find('"')?;
        let opaque = &body[..end];
        // etagc = %x21 / %x23-7E / obs-text
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push((weak, opaque));
        rest = body[end + 1..].trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
    (!tags.is_empty()).then_some(tags)
}

/// A JSON response from text already serialized (e.g. a kept idempotent answer).
pub fn json_text(status: u16, body: String) -> Response<Body> {
    response(status, Body::Text(body))
}

/// An empty response (e.g. 204); still typed as JSON so every response carries the same header.
pub fn empty(status: u16) -> Response<Body> {
    response(status, Body::Empty)
}

fn response(status: u16, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

impl ApiError {
    /// The single place where errors become HTTP responses.
    pub fn into_response(self) -> Response<Body> {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        let mut resp = json(self.status, &json!({ "error": error }));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}

/// Parses the body as one JSON object, enforcing the size limit.
pub fn json_object(req: &Request) -> Result<Map<String, Value>, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            400,
            "invalid_json",
            "request body is empty; expected a JSON object",
        ));
    }
    match serde_json::from_slice::<Strict>(bytes).map(|s| s.0) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(
            400,
            "invalid_body",
            "request body must be a JSON object",
        )),
        // serde_json's message names line and column, never echoes the input.
        Err(e) => Err(ApiError::new(
            400,
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )),
    }
}

/// A single query-string parameter; repeated parameters are an error.
pub fn query_param(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    let params = req.query_string_parameters();
    match params.all(name) {
        None => Ok(None),
        Some(values) if values.len() == 1 => Ok(Some(values[0].to_string())),
        Some(_) => Err(ApiError::new(
            400,
            "invalid_query",
            format!("query parameter {name} is given more than once"),
        )
        .with_details(vec![FieldProblem::new(name, "given more than once")])),
    }
}

/// A path parameter set by API Gateway (or the local router).
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters().first(name).map(str::to_string)
}

/// The records of a direct invocation whose every record comes from `source` (`aws:sqs`,
/// `aws:dynamodb`), or None for any other event (an empty batch included).
pub fn event_records<'a>(event: &'a Value, source: &str) -> Option<&'a Vec<Value>> {
    let records = event.get("Records")?.as_array()?;
    records
        .iter()
        .all(|r| r.get("eventSource").and_then(Value::as_str) == Some(source))
        .then_some(records)
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_if_match(v: &str) -> Request {
        let mut req = Request::default();
        req.headers_mut()
            .insert(header::IF_MATCH, header::HeaderValue::from_str(v).unwrap());
        req
    }

    #[test]
    fn if_match_uses_strong_comparison_of_well_formed_tags() {
        assert_eq!(if_match(&Request::default()).unwrap(), IfMatch::Any);
        assert!(if_match(&with_if_match("*")).unwrap().allows(7));
        let cases: &[(&str, bool)] = &[
            ("\"3\"", true),
            (" \"3\" ", true),
            ("\"1\", \"3\"", true),
            ("\"1\",\"2\"", false),
            ("W/\"3\"", false),
            ("W/\"3\", \"3\"", true),
            ("\"stale-0\"", false),
            ("\"a,b\", \"3\"", true),
            ("\"\"", false),
            ("\"03\"", false),
        ];
        for (header, allows) in cases {
            let parsed = if_match(&with_if_match(header)).unwrap();
            assert_eq!(parsed.allows(3), *allows, "{header}");
        }
        for bad in [
            "3",
            "\"3",
            "3\"",
            "w/\"3\"",
            "\"3\" \"4\"",
            "\"a b\"",
            ",",
            "\"3\"x",
            "W/3",
        ] {
            let e = if_match(&with_if_match(bad)).unwrap_err();
            assert_eq!((e.status, e.code), (400, "invalid_if_match"), "{bad}");
        }
    }
}

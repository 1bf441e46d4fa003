//! The API Gateway Lambda authorizer (REQUEST, payload 2.0, simple responses): verifies the bearer
//! token, picks the tenant (`X-Tenant-Id` among the token's tenants), and applies the role matrix
//! of the route. The handlers then trust `requestContext.authorizer.lambda`.

use crate::identity::{bearer_token, resolve, Role, READ_ROLES, TENANT_HEADER, WRITE_ROLES};
use crate::telemetry::metrics::Line;
use crate::telemetry::request::count_request;
use crate::token::TokenVerifier;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use serde_json::{json, Value};
use tracing::Instrument;

/// The roles allowed on each route of the API (`METHOD /path` as API Gateway's `routeKey`).
pub fn roles_for_route(route_key: &str) -> Option<&'static [Role]> {
    match route_key {
        "GET /api/v1/connectors"
        | "GET /api/v1/connectors/{id}"
        | "GET /api/v1/connectors/{id}/tests"
        | "GET /api/v1/tunnel-key" => Some(READ_ROLES),
        "POST /api/v1/connectors"
        | "PUT /api/v1/connectors"
        | "DELETE /api/v1/connectors"
        | "POST /api/v1/connectors/test" => Some(WRITE_ROLES),
        _ => None,
    }
}

fn deny(reason: &str) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    // The reason goes to the log, not to the caller (API Gateway answers 403 itself).
    tracing::info!(reason, "request denied");
    let mut resp = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    resp.is_authorized = false;
    resp.context = json!({});
    resp
}

/// Decides one request; its log lines carry API Gateway's request id, and its `Requests` metric
/// counts an allowed request as `2xx` and a denied one as `4xx` (API Gateway answers it 403).
pub async fn authorize(
    verifier: &TokenVerifier,
    event: ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    let api_id = event.request_context.request_id.clone().unwrap_or_default();
    let span = tracing::error_span!("request", apiRequestId = %api_id);
    let resp = decide(verifier, event).instrument(span).await;
    let mut line = Line::new();
    line.set("requestId", api_id)
        .set("level", "INFO")
        .set("message", "request")
        .set("function", "authorizer");
    count_request(&mut line, if resp.is_authorized { "2xx" } else { "4xx" });
    line.emit();
    resp
}

async fn decide(
    verifier: &TokenVerifier,
    event: ApiGatewayV2CustomAuthorizerV2Request,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    let route = event.route_key.as_deref().unwrap_or_default();
    let Some(allowed) = roles_for_route(route) else {
        return deny("unknown route");
    };
    let header = |name: &str| event.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(token) = header("authorization").and_then(bearer_token) else {
        return deny("no bearer token");
    };
    let claims = match verifier.verify(token).await {
        Ok(c) => c,
        Err(e) => return deny(&e.0),
    };
    let who = match resolve(&claims, header(TENANT_HEADER)) {
        Ok(who) => who,
        Err(e) => return deny(&e.message),
    };
    if !allowed.contains(&who.role) {
        return deny("role not allowed on this route");
    }
    let mut resp = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    resp.is_authorized = true;
    resp.context =
        json!({"tenantId": who.tenant_id, "role": who.role.as_str(), "sub": who.subject});
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_matrix_covers_every_route() {
        assert_eq!(roles_for_route("GET /api/v1/connectors"), Some(READ_ROLES));
        assert_eq!(
            roles_for_route("GET /api/v1/connectors/{id}"),
            Some(READ_ROLES)
        );
        for write in [
            "POST /api/v1/connectors",
            "PUT /api/v1/connectors",
            "DELETE /api/v1/connectors",
            "POST /api/v1/connectors/test",
        ] {
            assert_eq!(roles_for_route(write), Some(WRITE_ROLES), "{write}");
            assert!(!WRITE_ROLES.contains(&Role::Viewer));
        }
        assert_eq!(roles_for_route("GET /api/v1/tunnel-key"), Some(READ_ROLES));
        assert_eq!(roles_for_route("POST /api/v1/tunnel-key"), None);
        assert_eq!(roles_for_route("GET /api/v1/other"), None);
        assert_eq!(roles_for_route("$default"), None);
    }
}

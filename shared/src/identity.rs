//! Who is calling: tenant and role from the authorizer context, or from a bearer token locally.

use crate::error::ApiError;
use crate::ids::is_tenant_id;
use crate::telemetry::scope::{note, timed, Step};
use crate::token::{TokenClaims, TokenVerifier};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// Roles of the spec's matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "editor" => Some(Self::Editor),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }
}

/// Roles allowed to read (GET).
pub const READ_ROLES: &[Role] = &[Role::Admin, Role::Editor, Role::Viewer];
/// Roles allowed to write (POST, PUT, DELETE, test).
pub const WRITE_ROLES: &[Role] = &[Role::Admin, Role::Editor];

pub const TENANT_HEADER: &str = "x-tenant-id";

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant_id: String,
    pub role: Role,
    pub subject: String,
}

/// Resolves the caller and checks that its role is one of `allowed`.
pub async fn identify(
    req: &Request,
    verifier: Option<&TokenVerifier>,
    allowed: &[Role],
) -> Result<Identity, ApiError> {
    let identity = caller(req, verifier).await?;
    permit(&identity, allowed)?;
    Ok(identity)
}

/// Resolves the caller (authorizer context, else the bearer token) without judging its role.
pub async fn caller(req: &Request, verifier: Option<&TokenVerifier>) -> Result<Identity, ApiError> {
    let who = timed(Step::Identity, async {
        match authorizer_context(req) {
            Some(ctx) => ctx,
            None => from_token(req, verifier).await,
        }
    })
    .await?;
    // The request's log line names the tenant (never a metric dimension).
    note(|g| g.tenant = Some(who.tenant_id.clone()));
    Ok(who)
}

/// 403 unless the caller's role is one of `allowed`.
pub fn permit(identity: &Identity, allowed: &[Role]) -> Result<(), ApiError> {
    if allowed.contains(&identity.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "role {} may not do this",
            identity.role.as_str()
        )))
    }
}

/// `requestContext.authorizer.lambda.{tenantId, role, sub}` set by the API Gateway authorizer.
fn authorizer_context(req: &Request) -> Option<Result<Identity, ApiError>> {
    let RequestContext::ApiGatewayV2(ctx) = req.request_context_ref()? else {
        return None;
    };
    let fields = &ctx.authorizer.as_ref()?.fields;
    let tenant = fields.get("tenantId")?.as_str()?;
    let role = fields
        .get("role")
        .and_then(|r| r.as_str())
        .and_then(Role::parse);
    let subject = fields
        .get("sub")
        .and_then(|s| s.as_str())
        .unwrap_or_default();
    Some(match role {
        Some(role) if is_tenant_id(tenant) => Ok(Identity {
            tenant_id: tenant.to_string(),
            role,
            subject: subject.to_string(),
        }),
        _ => Err(ApiError::forbidden(
            "the authorizer context holds no usable tenant and role",
        )),
    })
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer_token(header: &str) -> Option<&str> {
    header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

async fn from_token(req: &Request, verifier: Option<&TokenVerifier>) -> Result<Identity, ApiError> {
    let header = req
        .headers()
        .get(lambda_http::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
    })?;
    let verifier = verifier
        .ok_or_else(|| ApiError::unauthorized("token verification is not configured here"))?;
    let claims = verifier
        .verify(token)
        .await
        .map_err(|e| ApiError::unauthorized(e.0))?;
    let wanted =
        match req.headers().get(TENANT_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::new(400, "invalid_tenant", "X-Tenant-Id is not valid text")
            })?),
        };
    resolve(&claims, wanted)
}

/// Picks the tenant (the `X-Tenant-Id` header selects among the token's tenants) and the role.
pub fn resolve(claims: &TokenClaims, wanted: Option<&str>) -> Result<Identity, ApiError> {
    let tenants = claims.tenant_ids();
    let tenant = match wanted {
        Some(t) if tenants.contains(&t) => t,
        Some(_) => {
            return Err(ApiError::forbidden(
                "the token does not grant the tenant named by X-Tenant-Id",
            ))
        }
        None => match tenants.as_slice() {
            [only] => only,
            [] => return Err(ApiError::forbidden("the token grants no tenant")),
            _ => {
                return Err(ApiError::new(
                    400,
                    "tenant_required",
                    "the token grants several tenants; choose one with X-Tenant-Id",
                ))
            }
        },
    };
    if !is_tenant_id(tenant) {
        return Err(ApiError::forbidden(
            "the tenant id must match [A-Za-z0-9_-]{1,64}",
        ));
    }
    let role = claims
        .role
        .as_deref()
        .and_then(Role::parse)
        .ok_or_else(|| {
            ApiError::forbidden("the token carries no known role (admin, editor, viewer)")
        })?;
    Ok(Identity {
        tenant_id: tenant.to_string(),
        role,
        subject: claims.sub.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(tenant: Option<&str>, tenants: &[&str], role: Option<&str>) -> TokenClaims {
        TokenClaims {
            sub: Some("user-1".into()),
            tenants: tenant
                .iter()
                .chain(tenants)
                .map(|t| t.to_string())
                .collect(),
            role: role.map(str::to_string),
        }
    }

    #[test]
    fn single_tenant_needs_no_header() {
        let id = resolve(&claims(Some("acme"), &[], Some("viewer")), None).unwrap();
        assert_eq!((id.tenant_id.as_str(), id.role), ("acme", Role::Viewer));
    }

    #[test]
    fn header_selects_among_the_tokens_tenants() {
        let c = claims(None, &["a", "b"], Some("admin"));
        assert_eq!(resolve(&c, Some("b")).unwrap().tenant_id, "b");
        assert_eq!(resolve(&c, None).unwrap_err().code, "tenant_required");
        let e = resolve(&c, Some("c")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "forbidden"));
    }

    #[test]
    fn a_header_alone_grants_nothing() {
        let e = resolve(&claims(None, &[], Some("admin")), Some("acme")).unwrap_err();
        assert_eq!(e.status, 403);
    }

    #[test]
    fn unknown_role_and_bad_tenant_ids_are_refused() {
        assert_eq!(
            resolve(&claims(Some("acme"), &[], Some("root")), None)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            resolve(&claims(Some("acme"), &[], None), None)
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(
            resolve(&claims(Some("a#b"), &[], Some("admin")), None)
                .unwrap_err()
                .status,
            403
        );
    }
}

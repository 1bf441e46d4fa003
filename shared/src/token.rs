//! Bearer token verification, shared by the authorizer function and the handlers' local fallback.
//!
//! Keys: an HS256 secret (local), or a JWKS fetched at init and refetched on an unknown `kid`
//! (RS256 and ES256 keys). The token's `alg` must be the key's; `none` never parses. Issuer,
//! audience and `exp` are required, `nbf` is honoured, with a small leeway.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// What the API reads from a token, whatever the claim names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenClaims {
    pub sub: Option<String>,
    pub tenants: Vec<String>,
    pub role: Option<String>,
}

impl TokenClaims {
    /// Every tenant the token grants.
    pub fn tenant_ids(&self) -> Vec<&str> {
        self.tenants.iter().map(String::as_str).collect()
    }
}

/// Where tenants and role are found: by default `tenant` (string) and `tenants` (list), and
/// `role`; for Cognito e.g. `custom:tenantId` and `cognito:groups`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimNames {
    /// One claim holding a tenant id, a comma list, or a list; None = `tenant` + `tenants`.
    pub tenant: Option<String>,
    /// The role claim: a string, or a list (the strongest known role wins); None = `role`.
    pub role: Option<String>,
}

/// Why a token was refused; the text is safe to send (it never echoes the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRejected(pub String);

fn rejected(why: &str) -> TokenRejected {
    TokenRejected(format!("invalid token: {why}"))
}

enum Keys {
    Secret(DecodingKey),
    Jwks(Jwks),
}

struct Jwks {
    url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    last_fetch: Mutex<Option<Instant>>,
    refetch_after: Duration,
}

/// An unknown `kid` refetches the JWKS at most this often by default (so random kids cannot hammer
/// the issuer); a rotated key is picked up within this time.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// Verifies signature, issuer, audience, `exp` and `nbf`, and reads tenants and role.
pub struct TokenVerifier {
    keys: Keys,
    validation: Validation,
    claims: ClaimNames,
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v.leeway = LEEWAY_SECS;
    v
}

impl TokenVerifier {
    /// HS256 with a shared secret (local development and tests).
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Self {
        Self {
            keys: Keys::Secret(DecodingKey::from_secret(secret)),
            validation: validation(issuer, audience),
            claims: ClaimNames::default(),
        }
    }

    /// RS256/ES256 keys from a JWKS URL, fetched now (at init).
    pub async fn jwks(url: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::public_web_config())
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let jwks = Jwks {
            url: url.to_string(),
            http,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            refetch_after: REFETCH_AFTER,
        };
        jwks.fetch().await?;
        Ok(Self {
            keys: Keys::Jwks(jwks),
            validation: validation(issuer, audience),
            claims: ClaimNames::default(),
        })
    }

    /// Changes how often an unknown `kid` may refetch the JWKS (tests; a fast-rotating issuer).
    pub fn with_jwks_refetch_interval(mut self, interval: Duration) -> Self {
        if let Keys::Jwks(j) = &mut self.keys {
            j.refetch_after = interval;
        }
        self
    }

    pub fn with_claims(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    pub async fn verify(&self, token: &str) -> Result<TokenClaims, TokenRejected> {
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no such algorithm.
        let header = decode_header(token).map_err(|_| rejected("malformed"))?;
        let (key, alg) = match &self.keys {
            Keys::Secret(k) => (k.clone(), Algorithm::HS256),
            Keys::Jwks(j) => j.key_for(header.kid.as_deref()).await?,
        };
        if header.alg != alg {
            return Err(rejected("algorithm not accepted"));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let data = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| rejected(describe(e.kind())))?;
        Ok(self.read_claims(&data.claims))
    }

    fn read_claims(&self, claims: &Map<String, Value>) -> TokenClaims {
        let strings = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => s
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let mut tenants = match &self.claims.tenant {
            Some(name) => strings(claims.get(name)),
            None => [
                strings(claims.get("tenant")),
                strings(claims.get("tenants")),
            ]
            .concat(),
        };
        let mut seen = std::collections::HashSet::new();
        tenants.retain(|t| seen.insert(t.clone()));
        let roles = strings(claims.get(self.claims.role.as_deref().unwrap_or("role")));
        let role = ["admin", "editor", "viewer"]
            .iter()
            .find(|r| roles.iter().any(|g| g == *r))
            .map(|r| r.to_string())
            .or_else(|| roles.first().cloned());
        TokenClaims {
            sub: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            tenants,
            role,
        }
    }
}

impl Jwks {
    async fn fetch(&self) -> Result<(), String> {
        if let Ok(mut last) = self.last_fetch.lock() {
            *last = Some(Instant::now());
        }
        let set = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("JWKS fetch failed: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("JWKS fetch failed: {e}"))?;
        let set: JwkSet =
            serde_json::from_slice(&set).map_err(|e| format!("JWKS is not a key set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, (key, alg));
            }
        }
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        Ok(())
    }

    fn lookup(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<(DecodingKey, Algorithm), TokenRejected> {
        let kid = kid.ok_or_else(|| rejected("no key id"))?;
        if let Some(found) = self.lookup(kid) {
            return Ok(found);
        }
        let may_refetch = self
            .last_fetch
            .lock()
            .ok()
            .is_some_and(|last| last.is_none_or(|t| t.elapsed() >= self.refetch_after));
        if may_refetch {
            if let Err(e) = self.fetch().await {
                tracing::warn!(error = %e, "JWKS refetch failed");
            }
        }
        self.lookup(kid).ok_or_else(|| rejected("unknown key id"))
    }
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not accepted",
        K::MissingRequiredClaim(_) => "a required claim (exp, iss, aud) is missing",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(names: ClaimNames, claims: Value) -> TokenClaims {
        TokenVerifier::hs256(b"k", "i", "a")
            .with_claims(names)
            .read_claims(claims.as_object().unwrap())
    }

    #[test]
    fn default_claim_names() {
        let c = read(
            ClaimNames::default(),
            json!({"sub": "u", "tenant": "a", "tenants": ["b", "a"], "role": "editor"}),
        );
        assert_eq!(
            c,
            TokenClaims {
                sub: Some("u".into()),
                tenants: vec!["a".into(), "b".into()],
                role: Some("editor".into())
            }
        );
    }

    #[test]
    fn cognito_claim_names() {
        let names = ClaimNames {
            tenant: Some("custom:tenantId".into()),
            role: Some("cognito:groups".into()),
        };
        let c = read(
            names,
            json!({"custom:tenantId": "acme, beta", "cognito:groups": ["viewer", "admin", "staff"]}),
        );
        assert_eq!(c.tenants, ["acme", "beta"]);
        assert_eq!(
            c.role.as_deref(),
            Some("admin"),
            "the strongest known role among the groups"
        );
    }

    #[tokio::test]
    async fn alg_none_and_garbage_are_refused() {
        let v = TokenVerifier::hs256(b"secret", "i", "a");
        // {"alg":"none"}.{"exp":9999999999,"iss":"i","aud":"a","tenant":"t","role":"admin"}.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjk5OTk5OTk5OTksImlzcyI6ImkiLCJhdWQiOiJhIiwidGVuYW50IjoidCIsInJvbGUiOiJhZG1pbiJ9.";
        assert!(v.verify(none).await.is_err());
        assert!(v.verify("a.b.c").await.is_err());
        assert!(v.verify("").await.is_err());
    }
}

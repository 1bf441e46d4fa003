//! Bearer token verification, shared by the handlers' local fallback (and the authorizer).

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Claims this API reads from a token.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    #[serde(default)]
    pub role: Option<String>,
}

impl TokenClaims {
    /// Every tenant the token grants, `tenant` first.
    pub fn tenant_ids(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.tenant.iter().map(String::as_str).collect();
        for t in self.tenants.iter().flatten() {
            if !all.contains(&t.as_str()) {
                all.push(t);
            }
        }
        all
    }
}

/// Why a token was refused; the text is safe to send (it never echoes the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRejected(pub String);

/// Verifies signature, issuer, audience, `exp` and `nbf`.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

impl TokenVerifier {
    /// HS256 with a shared secret (local development and tests).
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenRejected> {
        decode::<TokenClaims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenRejected(format!("invalid token: {}", describe(e.kind()))))
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

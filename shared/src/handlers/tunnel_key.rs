//! GET /api/v1/tunnel-key (every role): the tenant's SSH public key, for the `authorized_keys` of
//! the bastions its connectors tunnel through (`config.tunnel`). The Ed25519 pair is made on the
//! first call: the private key is sealed with KMS (context: the tenant and the key's purpose) and
//! never leaves the service; concurrent first calls get the same key (a conditional write). Served
//! by the create function, which already holds GenerateDataKey, PutItem and GetItem.

use super::audited;
use crate::audit::AuditEvent;
use crate::envelope::{SecretContext, SecretSealer};
use crate::error::ApiError;
use crate::http::json;
use crate::identity::{caller, permit, READ_ROLES};
use crate::ids::now_rfc3339;
use crate::model::PlainSecret;
use crate::store::{StoreError, TunnelKeyRecord, TunnelKeys};
use crate::token::TokenVerifier;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use lambda_http::{Body, Request, Response};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey};
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

/// The route (the create function serves it beside `POST /api/v1/connectors`).
pub const PATH: &str = "/api/v1/tunnel-key";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyView<'a> {
    public_key: &'a str,
    fingerprint: &'a str,
    created_at: &'a str,
}

pub async fn handle<S: TunnelKeys, E: SecretSealer>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: Request,
) -> Response<Body> {
    audited(
        "tunnel_key",
        crate::deadline::crud_answer_by,
        req,
        async |req, audit| run(store, sealer, verifier, req, audit).await,
    )
    .await
}

async fn run<S: TunnelKeys, E: SecretSealer>(
    store: &S,
    sealer: &E,
    verifier: Option<&TokenVerifier>,
    req: &Request,
    audit: &mut AuditEvent,
) -> Result<Response<Body>, ApiError> {
    let who = caller(req, verifier).await?;
    audit.identity(&who);
    permit(&who, READ_ROLES)?;
    let record = match store.tunnel_key(&who.tenant_id).await? {
        Some(record) => record,
        None => first_key(store, sealer, &who.tenant_id).await?,
    };
    Ok(json(
        200,
        &KeyView {
            public_key: &record.public_key,
            fingerprint: &record.fingerprint,
            created_at: &record.created_at,
        },
    ))
}

/// Makes, seals and stores the tenant's key; when a concurrent call stored one first, that one.
async fn first_key<S: TunnelKeys, E: SecretSealer>(
    store: &S,
    sealer: &E,
    tenant: &str,
) -> Result<TunnelKeyRecord, ApiError> {
    let (pem, public_key, fingerprint) = generate(tenant)?;
    let mut secret = PlainSecret::default();
    secret
        .0
        .insert("privateKey".into(), Value::String(pem.to_string()));
    let sealed = sealer
        .seal(SecretContext::tunnel_key(tenant), &secret.0)
        .await?;
    let record = TunnelKeyRecord {
        public_key,
        fingerprint,
        created_at: now_rfc3339(),
        sealed,
    };
    match store.put_tunnel_key(tenant, &record).await {
        Ok(()) => {
            tracing::info!(tenant, fingerprint = %record.fingerprint, "tunnel key created");
            Ok(record)
        }
        Err(StoreError::Conflict) => store
            .tunnel_key(tenant)
            .await?
            .ok_or_else(ApiError::internal),
        Err(e) => Err(e.into()),
    }
}

/// A new Ed25519 pair: the private key (OpenSSH PEM), the public key line and its fingerprint.
fn generate(tenant: &str) -> Result<(Zeroizing<String>, String, String), ApiError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut seed[..])
        .map_err(|_| ApiError::internal())?;
    let mut private = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let comment = format!("connectors-api:{tenant}");
    private.set_comment(comment.as_str());
    let pem = private
        .to_openssh(LineEnding::LF)
        .map_err(|_| ApiError::internal())?;
    let mut public = private.public_key().clone();
    public.set_comment(comment.as_str());
    let line = public.to_openssh().map_err(|_| ApiError::internal())?;
    let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
    Ok((pem, line, fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{request, FakeSealer};

    fn body(resp: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(resp.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn each_tenant_gets_one_key_made_once_and_every_role_reads_it() {
        let (store, sealer) = (MemoryStore::default(), FakeSealer::default());
        let get = |tenant: &str, role: &str| request("GET", PATH, tenant, role, None);
        let first = handle(&store, &sealer, None, get("t1", "viewer")).await;
        assert_eq!(first.status(), 200);
        let first = body(&first);
        let line = first["publicKey"].as_str().unwrap();
        assert!(
            line.starts_with("ssh-ed25519 AAAA") && line.ends_with(" connectors-api:t1"),
            "{line}"
        );
        assert!(first["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:"));
        let again = body(&handle(&store, &sealer, None, get("t1", "admin")).await);
        assert_eq!(again, first, "the same key on every call");
        let other = body(&handle(&store, &sealer, None, get("t2", "editor")).await);
        assert_ne!(
            other["publicKey"], first["publicKey"],
            "each tenant its own"
        );
        // The private half is stored sealed, and opens to the key of the public line.
        let stored = store.tunnel_key("t1").await.unwrap().unwrap();
        let opened = sealer
            .open(SecretContext::tunnel_key("t1"), &stored.sealed)
            .await
            .unwrap();
        let pem = opened.0["privateKey"].as_str().unwrap();
        let key = russh::keys::decode_secret_key(pem, None).unwrap();
        assert_eq!(
            key.public_key().fingerprint(HashAlg::Sha256).to_string(),
            first["fingerprint"]
        );
        assert!(!serde_json::to_string(&first).unwrap().contains("PRIVATE"));
    }

    #[tokio::test]
    async fn a_concurrent_first_call_gets_the_key_that_was_stored() {
        let (store, sealer) = (MemoryStore::default(), FakeSealer::default());
        let winner = first_key(&store, &sealer, "t").await.unwrap();
        // A second first call (it read no key before the winner stored one) loses the
        // conditional write and answers the stored key.
        let loser = first_key(&store, &sealer, "t").await.unwrap();
        assert_eq!(loser, winner);
    }
}

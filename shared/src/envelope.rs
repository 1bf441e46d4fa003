//! KMS envelope encryption of authConfig: a fresh AES-256-GCM data key per write, bound to the
//! tenant and connector by the KMS encryption context and by the GCM associated data.

use crate::model::{PlainSecret, SealedSecret};
use crate::telemetry::scope::{Step, Timed};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use serde_json::{Map, Value};
use std::future::Future;
use zeroize::Zeroizing;

/// Format version written into every sealed record.
const FORMAT_V1: u8 = 1;

/// Which connector a secret belongs to; sealed and opened with the same context only.
#[derive(Debug, Clone, Copy)]
pub struct SecretContext<'a> {
    pub tenant_id: &'a str,
    pub connector_id: &'a str,
}

/// The `connector_id` that marks the tenant's tunnel key: no connector id holds `:`.
const TUNNEL_KEY: &str = "purpose:tunnel-key";

impl<'a> SecretContext<'a> {
    /// The tenant's SSH tunnel key: sealed under the tenant and the key's purpose.
    pub fn tunnel_key(tenant_id: &'a str) -> Self {
        Self {
            tenant_id,
            connector_id: TUNNEL_KEY,
        }
    }

    /// The KMS encryption context: the tenant, and the connector or the key's purpose.
    fn pairs(&self) -> [(&'static str, &str); 2] {
        match self.connector_id {
            TUNNEL_KEY => [("tenantId", self.tenant_id), ("purpose", "tunnel-key")],
            id => [("tenantId", self.tenant_id), ("connectorId", id)],
        }
    }

    fn aad(&self) -> String {
        // Neither id can hold ':' (both are validated), so this encoding is unambiguous.
        let [(_, tenant), (name, value)] = self.pairs();
        format!("connectors-api:v{FORMAT_V1}:tenantId={tenant}:{name}={value}")
    }
}

/// Why sealing or opening failed; never holds secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// KMS is throttling or unreachable: worth a retry later.
    Unavailable,
    /// Wrong context, tampered record, or a KMS refusal.
    Refused(String),
}

/// Seals and opens authConfig values.
pub trait SecretSealer: Send + Sync {
    fn seal(
        &self,
        ctx: SecretContext<'_>,
        secret: &Map<String, Value>,
    ) -> impl Future<Output = Result<SealedSecret, CryptoError>> + Send;
    /// Seals, and MACs the same secret under a key derived from the same data key: a fingerprint
    /// of the secret that is useless to whoever reads the table (the key is only ever wrapped).
    fn seal_tagged(
        &self,
        ctx: SecretContext<'_>,
        secret: &Map<String, Value>,
    ) -> impl Future<Output = Result<(SealedSecret, SecretTag), CryptoError>> + Send;
    /// The MAC of `secret` under the data key `wrapped_key` (one KMS Decrypt), to compare with a
    /// tag from `seal_tagged`.
    fn tag_with(
        &self,
        ctx: SecretContext<'_>,
        wrapped_key: &[u8],
        key_id: &str,
        secret: &Map<String, Value>,
    ) -> impl Future<Output = Result<SecretTag, CryptoError>> + Send;
    fn open(
        &self,
        ctx: SecretContext<'_>,
        sealed: &SealedSecret,
    ) -> impl Future<Output = Result<PlainSecret, CryptoError>> + Send;
}

/// HMAC-SHA256 of a secret (hex), keyed from its connector's data key; compared in constant time.
#[derive(Debug, Clone)]
pub struct SecretTag(pub String);

impl PartialEq for SecretTag {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes())
            .is_ok()
    }
}

/// What the MAC key is derived with, so it is never the encryption key itself.
const TAG_KEY_LABEL: &[u8] = b"connectors-api:idempotency-mac:v2";

/// The tag of `secret` in `ctx` under `data_key`: HMAC(HMAC(data_key, label), aad || 0 || JSON).
fn tag(
    data_key: &[u8],
    ctx: SecretContext<'_>,
    secret: &Map<String, Value>,
) -> Result<SecretTag, CryptoError> {
    use aws_lc_rs::hmac;
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, data_key), TAG_KEY_LABEL);
    let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
    let json = Zeroizing::new(
        serde_json::to_vec(secret).map_err(|_| CryptoError::Refused("unserializable".into()))?,
    );
    let mut ctx_hmac = hmac::Context::with_key(&key);
    ctx_hmac.update(ctx.aad().as_bytes());
    ctx_hmac.update(&[0]);
    ctx_hmac.update(&json);
    let mac = ctx_hmac.sign();
    Ok(SecretTag(hex::encode(mac.as_ref())))
}

/// Envelope encryption with KMS data keys.
#[derive(Clone)]
pub struct KmsEnvelope {
    kms: aws_sdk_kms::Client,
    key_id: String,
    rng: SystemRandom,
}

impl KmsEnvelope {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            kms,
            key_id: key_id.into(),
            rng: SystemRandom::new(),
        }
    }

    /// Builds the client from the process's one `SdkConfig`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Self {
        Self::new(aws_sdk_kms::Client::new(sdk), key_id)
    }
}

impl SecretSealer for KmsEnvelope {
    async fn seal(
        &self,
        ctx: SecretContext<'_>,
        secret: &Map<String, Value>,
    ) -> Result<SealedSecret, CryptoError> {
        self.seal_tagged(ctx, secret)
            .await
            .map(|(sealed, _)| sealed)
    }

    async fn tag_with(
        &self,
        ctx: SecretContext<'_>,
        wrapped_key: &[u8],
        key_id: &str,
        secret: &Map<String, Value>,
    ) -> Result<SecretTag, CryptoError> {
        let plain_key = self.unwrap_key(ctx, wrapped_key, key_id).await?;
        tag(&plain_key, ctx, secret)
    }

    async fn seal_tagged(
        &self,
        ctx: SecretContext<'_>,
        secret: &Map<String, Value>,
    ) -> Result<(SealedSecret, SecretTag), CryptoError> {
        let out = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context(ctx)))
            .send()
            .timed(Step::Kms)
            .await
            .map_err(kms_error)?;
        let plain_key = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        let wrapped_key = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .unwrap_or_default();
        let key_id = out.key_id.unwrap_or_else(|| self.key_id.clone());
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Refused("no randomness".into()))?;
        let mut buf = Zeroizing::new(
            serde_json::to_vec(secret)
                .map_err(|_| CryptoError::Refused("unserializable".into()))?,
        );
        aead_key(&plain_key)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ctx.aad().as_bytes()),
                &mut *buf,
            )
            .map_err(|_| CryptoError::Refused("encryption failed".into()))?;
        let tagged = tag(&plain_key, ctx, secret)?;
        Ok((
            SealedSecret {
                v: FORMAT_V1,
                ciphertext: buf.to_vec(),
                nonce: nonce.to_vec(),
                wrapped_key,
                key_id,
            },
            tagged,
        ))
    }

    async fn open(
        &self,
        ctx: SecretContext<'_>,
        sealed: &SealedSecret,
    ) -> Result<PlainSecret, CryptoError> {
        if sealed.v != FORMAT_V1 {
            return Err(CryptoError::Refused(format!(
                "unknown format version {}",
                sealed.v
            )));
        }
        let plain_key = self
            .unwrap_key(ctx, &sealed.wrapped_key, &sealed.key_id)
            .await?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce)
            .map_err(|_| CryptoError::Refused("bad nonce".into()))?;
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        let plain = aead_key(&plain_key)?
            .open_in_place(nonce, Aad::from(ctx.aad().as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Refused("authentication failed".into()))?;
        match serde_json::from_slice::<Value>(plain) {
            Ok(Value::Object(map)) => Ok(PlainSecret(map)),
            _ => Err(CryptoError::Refused("sealed value is not an object".into())),
        }
    }
}

impl KmsEnvelope {
    /// The plaintext data key (KMS Decrypt under the connector's encryption context).
    async fn unwrap_key(
        &self,
        ctx: SecretContext<'_>,
        wrapped_key: &[u8],
        key_id: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let out = self
            .kms
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped_key.to_vec()))
            .set_encryption_context(Some(context(ctx)))
            .send()
            .timed(Step::Kms)
            .await
            .map_err(kms_error)?;
        Ok(Zeroizing::new(
            out.plaintext.map(Blob::into_inner).unwrap_or_default(),
        ))
    }
}

fn context(ctx: SecretContext<'_>) -> std::collections::HashMap<String, String> {
    ctx.pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::Refused("KMS returned no usable data key".into()))
}

fn kms_error<E>(e: aws_sdk_kms::error::SdkError<E>) -> CryptoError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_kms::error::SdkError;
    let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    // Down, cut off or throttling (KMS throttles with a 400) — after the SDK's own retries.
    let transient = matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || status == 429
        || status >= 500
        || matches!(
            e.as_service_error().and_then(|se| se.code()),
            Some("ThrottlingException" | "LimitExceededException" | "KMSInternalException")
        );
    // The SDK's text names the request, never its plaintext; it is logged, never returned.
    let detail = aws_sdk_kms::error::DisplayErrorContext(&e).to_string();
    if transient {
        tracing::warn!(error = %detail, "KMS unavailable");
        CryptoError::Unavailable
    } else {
        tracing::warn!(error = %detail, "KMS refused");
        CryptoError::Refused("KMS refused the request".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_depend_on_the_data_key_the_connector_and_the_secret() {
        let secret = json!({"password": "p1"}).as_object().cloned().unwrap();
        let other = json!({"password": "p2"}).as_object().cloned().unwrap();
        let ctx = SecretContext {
            tenant_id: "t",
            connector_id: "conn_a",
        };
        let elsewhere = SecretContext {
            tenant_id: "u",
            connector_id: "conn_a",
        };
        let key = [7u8; 32];
        let t = tag(&key, ctx, &secret).unwrap();
        assert_eq!(t, tag(&key, ctx, &secret).unwrap());
        assert_eq!(t.0.len(), 64);
        assert_ne!(t, tag(&key, ctx, &other).unwrap());
        assert_ne!(t, tag(&[8u8; 32], ctx, &secret).unwrap());
        assert_ne!(t, tag(&key, elsewhere, &secret).unwrap());
        // Not a plain hash of the secret, which a table reader could recompute for guesses.
        let plain = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &serde_json::to_vec(&secret).unwrap(),
        );
        let plain = hex::encode(plain.as_ref());
        assert_ne!(t.0, plain);
    }
}

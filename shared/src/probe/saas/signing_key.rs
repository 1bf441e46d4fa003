//! RS256 assertions signed with a tenant's private key (Snowflake key-pair login, Google service
//! accounts): a PKCS#8 PEM, passphrase-encrypted or not, held zeroized; the signature by
//! `jsonwebtoken` over aws-lc-rs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use pkcs8::der::{Decode, SecretDocument};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use serde::Serialize;
use zeroize::Zeroizing;

/// rsaEncryption (RFC 8017).
const RSA_OID: &str = "1.2.840.113549.1.1.1";

/// An RSA private key ready to sign.
pub struct SigningKey {
    /// The RSAPrivateKey (PKCS#1 DER), zeroized on drop.
    pkcs1: Zeroizing<Vec<u8>>,
    /// SHA-256 of the public key's SubjectPublicKeyInfo DER.
    public_sha256: Vec<u8>,
}

impl SigningKey {
    /// From a PKCS#8 PEM (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with `passphrase`). The error
    /// says what is wrong with the key, never what it holds.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, String> {
        if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") && passphrase.is_none() {
            return Err("the private key is encrypted and no passphrase was given".into());
        }
        let (label, doc) = SecretDocument::from_pem(pem.trim())
            .map_err(|_| "the private key is not a PEM document".to_string())?;
        let doc = match label {
            "PRIVATE KEY" => doc,
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase =
                    passphrase.ok_or("the private key is encrypted and no passphrase was given")?;
                EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes())
                    .map_err(|_| "the encrypted private key does not parse".to_string())?
                    .decrypt(passphrase)
                    .map_err(|_| "the passphrase does not decrypt the private key".to_string())?
            }
            "RSA PRIVATE KEY" => {
                return Err("the private key is PKCS#1 (BEGIN RSA PRIVATE KEY): convert it to PKCS#8 (openssl pkcs8 -topk8)".into())
            }
            other => return Err(format!("a PEM {other:?} is not a PKCS#8 private key")),
        };
        let info = PrivateKeyInfoRef::from_der(doc.as_bytes())
            .map_err(|_| "the private key is not PKCS#8".to_string())?;
        if info.algorithm.oid.to_string() != RSA_OID {
            return Err("the private key is not an RSA key".into());
        }
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(doc.as_bytes())
            .map_err(|_| "the RSA private key is not usable (2048 to 8192 bits)".to_string())?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| "the public key cannot be encoded".to_string())?;
        let public_sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref())
            .as_ref()
            .to_vec();
        Ok(Self {
            pkcs1: Zeroizing::new(info.private_key.as_bytes().to_vec()),
            public_sha256,
        })
    }

    /// `SHA256:` and the base64 SHA-256 of the public key (Snowflake's `RSA_PUBLIC_KEY_FP`).
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(&self.public_sha256)
        )
    }

    /// A compact RS256 JWT of `claims` (with `kid` in the header when given).
    pub fn sign(&self, claims: &impl Serialize, kid: Option<&str>) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&self.pkcs1);
        jsonwebtoken::encode(&header, claims, &key).map_err(|_| "signing failed".to_string())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::Pkcs8V1Der;
    use pkcs8::der::pem::LineEnding;

    fn generated() -> (String, aws_lc_rs::rsa::KeyPair) {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der = pair.as_der().unwrap();
        let doc = SecretDocument::try_from(der.as_ref()).unwrap();
        let pem = doc.to_pem("PRIVATE KEY", LineEnding::LF).unwrap();
        (pem.to_string(), pair)
    }

    #[test]
    fn signs_rs256_that_the_public_key_verifies_and_fingerprints_the_spki() {
        let (pem, pair) = generated();
        let key = SigningKey::from_pem(&pem, None).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref());
        assert_eq!(
            key.fingerprint(),
            format!(
                "SHA256:{}",
                base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
            )
        );
        let claims = serde_json::json!({"sub": "A.B", "exp": unix_now() + 60});
        let jwt = key.sign(&claims, Some("k1")).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_rsa_der(pair.public_key().as_ref());
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation).unwrap();
        assert_eq!(decoded.claims["sub"], "A.B");
        assert_eq!(decoded.header.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn bad_keys_are_named_without_their_content() {
        let (pem, _) = generated();
        let pkcs1 = pem.replace("PRIVATE KEY", "RSA PRIVATE KEY");
        for (input, expect) in [
            ("not a key", "not a PEM"),
            (pkcs1.as_str(), "PKCS#1"),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
                "no passphrase",
            ),
        ] {
            let e = SigningKey::from_pem(input, None).err().unwrap();
            assert!(e.contains(expect), "{e}");
            assert!(!e.contains("MII"), "{e}");
        }
    }
}

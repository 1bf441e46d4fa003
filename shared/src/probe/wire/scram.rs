//! The client side of SCRAM (RFC 5802, RFC 7677) for the brokers and databases that name the
//! user inside the exchange (Kafka, MongoDB). PostgreSQL uses the `postgres-protocol` crate's,
//! which leaves the user out as PostgreSQL wants. SASLprep is not applied: passwords are used
//! as given (UTF-8), which is what the servers do for ASCII passwords.

use crate::probe::report::{Failure, ProbeCode};
use aws_lc_rs::{digest, hmac, pbkdf2, rand::SecureRandom};
use base64::engine::{general_purpose::STANDARD, Engine};
use std::num::NonZeroU32;
use zeroize::Zeroizing;

/// The hash a mechanism names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// More iterations than any server needs (MongoDB's default is 15,000, Kafka's 4,096): a server
/// asking for more is refused rather than allowed to burn the probe's CPU, which the other probes
/// of a sweep shard share. The cap postgres-protocol applies to PostgreSQL's SCRAM.
pub const MAX_ITERATIONS: u32 = 100_000;

/// One SCRAM conversation, client side.
pub struct Scram {
    hash: Hash,
    password: Zeroizing<Vec<u8>>,
    nonce: String,
    first_bare: String,
    server_signature: Option<Vec<u8>>,
}

fn refused(message: &str) -> Failure {
    Failure::new(ProbeCode::AuthFailed, message)
}

fn malformed() -> Failure {
    Failure::new(
        ProbeCode::ProtocolMismatch,
        "the server's SCRAM message is malformed",
    )
}

/// `=` and `,` in a user name are escaped as `=3D` and `=2C`.
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    /// Starts a conversation; `password` is what the mechanism hashes (MongoDB's SCRAM-SHA-1 takes
    /// a digest of it, see `mongo`).
    pub fn new(hash: Hash, user: &str, password: &[u8]) -> Result<Self, Failure> {
        let mut raw = [0u8; 18];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| Failure::new(ProbeCode::ProtocolMismatch, "no randomness for SCRAM"))?;
        Ok(Self::with_nonce(
            hash,
            user,
            password,
            &STANDARD.encode(raw),
        ))
    }

    /// The same with a given nonce (tests replay RFC vectors).
    pub fn with_nonce(hash: Hash, user: &str, password: &[u8], nonce: &str) -> Self {
        Self {
            hash,
            password: Zeroizing::new(password.to_vec()),
            nonce: nonce.to_string(),
            first_bare: format!("n={},r={nonce}", escape(user)),
            server_signature: None,
        }
    }

    /// client-first-message (no channel binding).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// client-final-message for the server's first message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, Failure> {
        if let Some(e) = server_first.strip_prefix("e=") {
            return Err(refused(&format!("the server refused: {e}")));
        }
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .ok_or_else(malformed)
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err(Failure::new(
                ProbeCode::ProtocolMismatch,
                "the server's SCRAM nonce does not extend ours",
            ));
        }
        let salt = STANDARD.decode(field("s=")?).map_err(|_| malformed())?;
        let iterations: u32 = field("i=")?.parse().map_err(|_| malformed())?;
        if iterations > MAX_ITERATIONS {
            return Err(Failure::new(
                ProbeCode::AuthUnsupported,
                format!("the server asks for {iterations} SCRAM iterations (more than {MAX_ITERATIONS})"),
            ));
        }
        let iterations = NonZeroU32::new(iterations).ok_or_else(malformed)?;
        let mut salted = Zeroizing::new(vec![0u8; self.hash.len()]);
        pbkdf2::derive(
            self.hash.pbkdf2(),
            iterations,
            &salt,
            &self.password,
            &mut salted,
        );
        let key = hmac::Key::new(self.hash.hmac(), &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac::sign(
            &hmac::Key::new(self.hash.hmac(), stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac::sign(&key, b"Server Key");
        self.server_signature = Some(
            hmac::sign(
                &hmac::Key::new(self.hash.hmac(), server_key.as_ref()),
                auth_message.as_bytes(),
            )
            .as_ref()
            .to_vec(),
        );
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks server-final-message: the server proves it knew the password too.
    pub fn verify_server(&self, server_final: &str) -> Result<(), Failure> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(refused(&format!("the server refused the credentials: {e}")));
        }
        let v = server_final
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .ok_or_else(malformed)?;
        let given = STANDARD.decode(v).map_err(|_| malformed())?;
        match &self.server_signature {
            Some(expected)
                if aws_lc_rs::constant_time::verify_slices_are_equal(expected, &given).is_ok() =>
            {
                Ok(())
            }
            _ => Err(refused(
                "the server's SCRAM signature is wrong: it does not know this password",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7677_sha256_vector() {
        // RFC 7677 §3: user "user", password "pencil".
        let mut c = Scram::with_nonce(Hash::Sha256, "user", b"pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.client_final(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(c
            .verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_ok());
        assert_eq!(
            c.verify_server("v=AAAA").unwrap_err().code,
            ProbeCode::AuthFailed
        );
    }

    #[test]
    fn rfc_5802_sha1_vector() {
        let mut c = Scram::with_nonce(Hash::Sha1, "user", b"pencil", "fyko+d2lbbFgONRv9qkxdawL");
        let server_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
        assert_eq!(
            c.client_final(server_first).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(c.verify_server("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").is_ok());
    }

    #[test]
    fn hostile_server_messages_are_refused() {
        let mut c = Scram::with_nonce(Hash::Sha256, "a,b=c", b"pw", "abc");
        assert_eq!(c.client_first(), "n,,n=a=2Cb=3Dc,r=abc");
        assert_eq!(
            c.client_final("r=xyz,s=AAAA,i=1").unwrap_err().code,
            ProbeCode::ProtocolMismatch
        );
        assert_eq!(
            c.client_final("r=abcdef,s=AAAA,i=99999999")
                .unwrap_err()
                .code,
            ProbeCode::AuthUnsupported
        );
        assert_eq!(
            c.client_final("e=unknown-user").unwrap_err().code,
            ProbeCode::AuthFailed
        );
        assert_eq!(
            c.client_final("r=abcdef,i=1").unwrap_err().code,
            ProbeCode::ProtocolMismatch
        );
    }
}

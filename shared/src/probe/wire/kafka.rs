//! How we log in to Kafka (and Confluent Cloud): TLS when `securityProtocol` says SSL or SASL_SSL,
//! ApiVersions, then for SASL_* SaslHandshake (v1) and SaslAuthenticate (v0) with PLAIN or
//! SCRAM-SHA-256/512, then Metadata (v1) for `config.topic` (or for no topic: the cluster answers).
//! Only non-flexible request versions are used, so every message is the classic encoding.

use super::frame::{FrameReader, Framing};
use super::scram::{Hash, Scram};
use super::{send, Io};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use crate::probe::tls::{self, Verify};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub use crate::kinds::kafka::{Mechanism, Security, SECURITY_PROTOCOL};

pub struct Login<'a> {
    pub host: &'a str,
    pub security: Security,
    pub mechanism: Mechanism,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub topic: Option<&'a str>,
}

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const METADATA: i16 = 3;
const CLIENT_ID: &[u8] = b"connectors-api-probe";

/// A request: length, header v1 (api key, version, correlation id, client id), body.
pub fn request(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 32);
    m.extend_from_slice(&api_key.to_be_bytes());
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(&correlation.to_be_bytes());
    m.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    m.extend_from_slice(CLIENT_ID);
    m.extend_from_slice(body);
    let mut out = (m.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&m);
    out
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A reader over a response body.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.0.len()
    }
    fn take(&mut self, n: usize) -> Result<&[u8], Failure> {
        if self.0.len() < n {
            return Err(mismatch());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, Failure> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| mismatch())?,
        ))
    }
    fn i32(&mut self) -> Result<i32, Failure> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| mismatch())?,
        ))
    }
    fn string(&mut self) -> Result<Option<String>, Failure> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(len as usize)?).into_owned(),
        ))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Failure> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize)?.to_vec())
    }
}

fn mismatch() -> Failure {
    Failure::mismatch(FRAMING.product)
}

/// Responses: a 4-byte big-endian size, then the correlation id. A probe's Metadata names one
/// topic (or none), so 4 MiB leaves room for clusters with many brokers.
const FRAMING: Framing = Framing {
    product: "a Kafka broker",
    header: 4,
    length: |h| {
        let len = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        (len >= 4).then(|| len as usize + 4)
    },
    cap: 4 << 20,
};

/// Sends a request and reads its response body (after the correlation id, which must match).
async fn call<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    correlation: &mut i32,
    api_key: i16,
    version: i16,
    body: &[u8],
    limit: Duration,
) -> Result<Vec<u8>, Failure> {
    *correlation += 1;
    send(
        stream,
        &request(api_key, version, *correlation, body),
        limit,
    )
    .await?;
    let whole = frames.next(stream, &FRAMING, limit).await?;
    let got = i32::from_be_bytes([whole[4], whole[5], whole[6], whole[7]]);
    if got != *correlation {
        return Err(mismatch());
    }
    Ok(whole[8..].to_vec())
}

/// Connects (TLS when the security protocol says so), logs in and asks for metadata.
pub async fn login<S: Io>(
    stream: S,
    login: &Login<'_>,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    if !login.security.tls() {
        return session(&mut { stream }, login, false, limit, rec).await;
    }
    let mut tls_stream =
        tls::handshake(stream, login.host, Verify::Full, limit, Instant::now(), rec).await?;
    session(&mut tls_stream, login, true, limit, rec).await
}

async fn session<S: Io + ?Sized>(
    stream: &mut S,
    login: &Login<'_>,
    encrypted: bool,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let mut frames = FrameReader::default();
    let mut correlation = 0;
    let started = Instant::now();
    let versions = call(
        stream,
        &mut frames,
        &mut correlation,
        API_VERSIONS,
        0,
        &[],
        limit,
    )
    .await?;
    let mut r = Reader(&versions);
    let error = r.i16()?;
    if error != 0 {
        return Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("Kafka refused ApiVersions (error {error})"),
        ));
    }
    rec.reached(Depth::Reachable);
    rec.record(
        StepName::Protocol,
        true,
        started.elapsed().as_millis() as u64,
        "Kafka answered ApiVersions",
    );
    if login.security.sasl() {
        let (Some(user), Some(password)) = (login.user, login.password) else {
            return Err(Failure::new(
                ProbeCode::AuthFailed,
                "the security protocol is SASL, and authConfig has no username and password",
            ));
        };
        let started = Instant::now();
        let result = authenticate(
            stream,
            &mut frames,
            &mut correlation,
            login.mechanism,
            user,
            password,
            limit,
        )
        .await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(()) => {
                rec.reached(Depth::Authenticated);
                rec.record(
                    StepName::Auth,
                    true,
                    ms,
                    format!("user {user} accepted ({})", login.mechanism.name()),
                );
                if login.mechanism == Mechanism::Plain && !encrypted {
                    rec.warn("SASL PLAIN over SASL_PLAINTEXT: the password was sent unencrypted");
                }
            }
            Err(f) => rec.record(StepName::Auth, false, ms, f.message.clone()),
        }
        result?;
    }
    let started = Instant::now();
    let outcome = metadata(stream, &mut frames, &mut correlation, login.topic, limit).await;
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(detail) => {
            rec.record(StepName::Access, true, ms, detail.clone());
            if login.security.sasl() {
                rec.reached(Depth::Authorized);
                Ok(detail)
            } else {
                Ok(format!(
                    "{detail}; credentials were not checked ({SECURITY_PROTOCOL} has no SASL)"
                ))
            }
        }
        Err(f) => {
            rec.record(StepName::Access, false, ms, f.message.clone());
            Err(f)
        }
    }
}

/// SaslHandshake v1, then SaslAuthenticate v0 rounds.
async fn authenticate<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    correlation: &mut i32,
    mechanism: Mechanism,
    user: &str,
    password: &str,
    limit: Duration,
) -> Result<(), Failure> {
    let mut body = Vec::new();
    string(&mut body, mechanism.name());
    let answer = call(stream, frames, correlation, SASL_HANDSHAKE, 1, &body, limit).await?;
    let mut r = Reader(&answer);
    let error = r.i16()?;
    if error == 33 {
        // The count is the peer's: each name takes at least its 2-byte length, so no more can
        // stand in what remains, and the first one that does not parse ends the list.
        let count = (r.i32()?.max(0) as usize).min(r.remaining() / 2).min(16);
        let mut offered: Vec<String> = Vec::new();
        for _ in 0..count {
            match r.string() {
                Ok(Some(name)) => offered.push(name),
                _ => break,
            }
        }
        return Err(Failure::new(
            ProbeCode::AuthUnsupported,
            format!(
                "the broker does not enable {} (it offers {})",
                mechanism.name(),
                offered.join(", ")
            ),
        ));
    }
    if error != 0 {
        return Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("Kafka refused SaslHandshake (error {error})"),
        ));
    }
    match mechanism {
        Mechanism::Plain => {
            let mut token = Zeroizing::new(Vec::with_capacity(user.len() + password.len() + 2));
            token.push(0);
            token.extend_from_slice(user.as_bytes());
            token.push(0);
            token.extend_from_slice(password.as_bytes());
            sasl_authenticate(stream, frames, correlation, &token, limit).await?;
        }
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
            let hash = if mechanism == Mechanism::ScramSha256 {
                Hash::Sha256
            } else {
                Hash::Sha512
            };
            let mut scram = Scram::new(hash, user, password.as_bytes())?;
            let first = sasl_authenticate(
                stream,
                frames,
                correlation,
                scram.client_first().as_bytes(),
                limit,
            )
            .await?;
            let last = scram.client_final(&String::from_utf8_lossy(&first))?;
            let server_final =
                sasl_authenticate(stream, frames, correlation, last.as_bytes(), limit).await?;
            scram.verify_server(&String::from_utf8_lossy(&server_final))?;
        }
    }
    Ok(())
}

/// One SaslAuthenticate v0 round: the server's bytes, or the refusal.
async fn sasl_authenticate<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    correlation: &mut i32,
    token: &[u8],
    limit: Duration,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::with_capacity(token.len() + 4);
    body.extend_from_slice(&(token.len() as i32).to_be_bytes());
    body.extend_from_slice(token);
    let answer = Zeroizing::new(body);
    let response = call(
        stream,
        frames,
        correlation,
        SASL_AUTHENTICATE,
        0,
        &answer,
        limit,
    )
    .await?;
    let mut r = Reader(&response);
    let error = r.i16()?;
    let message = r.string()?.unwrap_or_default();
    match error {
        0 => r.bytes(),
        58 => Err(Failure::new(
            ProbeCode::AuthFailed,
            format!("Kafka refused the credentials: {message}"),
        )),
        e => Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("Kafka refused SaslAuthenticate (error {e}): {message}"),
        )),
    }
}

/// Metadata v1 for the topic (or for none): its error code decides.
async fn metadata<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    correlation: &mut i32,
    topic: Option<&str>,
    limit: Duration,
) -> Result<String, Failure> {
    let mut body = Vec::new();
    match topic {
        Some(t) => {
            body.extend_from_slice(&1i32.to_be_bytes());
            string(&mut body, t);
        }
        None => body.extend_from_slice(&0i32.to_be_bytes()),
    }
    let response = call(stream, frames, correlation, METADATA, 1, &body, limit).await?;
    let mut r = Reader(&response);
    let brokers = r.i32()?.max(0);
    for _ in 0..brokers {
        r.i32()?;
        r.string()?;
        r.i32()?;
        r.string()?;
    }
    r.i32()?; // controller id
    let topics = r.i32()?;
    let Some(name) = topic else {
        return Ok(format!("the cluster answered Metadata ({brokers} brokers)"));
    };
    if topics < 1 {
        return Err(mismatch());
    }
    match r.i16()? {
        0 => Ok(format!("topic {name} is readable")),
        3 => Err(Failure::new(
            ProbeCode::NotFound,
            format!("topic {name} does not exist"),
        )),
        29 => Err(Failure::new(
            ProbeCode::PermissionDenied,
            format!("not authorized for topic {name}"),
        )),
        e => Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("Metadata for topic {name} failed (error {e})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_use_header_v1() {
        let r = request(SASL_HANDSHAKE, 1, 7, b"\x00\x05PLAIN");
        assert_eq!(
            i32::from_be_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len() - 4
        );
        assert_eq!(&r[4..8], &[0, 17, 0, 1]);
        assert_eq!(i32::from_be_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[12..14], &(CLIENT_ID.len() as i16).to_be_bytes());
        assert!(r.ends_with(b"\x00\x05PLAIN"));
    }

    #[test]
    fn settings_parse_like_the_java_client_spells_them() {
        assert_eq!(Security::parse("sasl_ssl"), Some(Security::SaslSsl));
        assert_eq!(Security::parse("SSL"), Some(Security::Ssl));
        assert_eq!(Security::parse("TLS"), None);
        assert_eq!(
            Mechanism::parse("scram-sha-512"),
            Some(Mechanism::ScramSha512)
        );
        assert_eq!(Mechanism::parse("GSSAPI"), None);
    }
}

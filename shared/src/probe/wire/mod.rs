//! Database and broker wire protocols that log in: one file per protocol, each exposing one
//! `async fn` that takes the guarded connection, the config and the secret, and reports how deep
//! it got. The byte-level encoding stays pure and unit-tested.

pub mod bson;
pub mod frame;
pub mod kafka;
pub mod mongo;
pub mod mysql;
pub mod postgres;
pub mod scram;

use super::report::{Failure, ProbeCode, Recorder};
use crate::model::SslMode;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How a connection travels, for deciding whether a password the server can read may go over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Plain,
    /// TLS whose certificate was not verified for the host name.
    UnverifiedTls,
    /// TLS with the chain and the host name verified.
    VerifiedTls,
}

impl Channel {
    /// The channel after a TLS handshake that the recorder saw.
    pub fn after_tls(rec: &Recorder) -> Self {
        match rec.tls_verified() {
            true => Channel::VerifiedTls,
            false => Channel::UnverifiedTls,
        }
    }
}

/// Whether a password the server can read (cleartext, MD5, MySQL's full authentication) may go
/// over `channel`: over TLS verified for the host name; over unverified TLS only when `sslmode`
/// was set (the user accepted the risk); without TLS only when `sslmode` is `disable`.
pub fn may_reveal(
    given: Option<SslMode>,
    channel: Channel,
    mechanism: &str,
    rec: &mut Recorder,
) -> Result<(), Failure> {
    match (channel, given) {
        (Channel::VerifiedTls, _) => Ok(()),
        (Channel::UnverifiedTls, Some(_)) => Ok(()),
        (Channel::UnverifiedTls, None) => Err(Failure::new(
            ProbeCode::AuthUnsupported,
            format!(
                "the server asks for the password by {mechanism}, so it could read it; it was not sent because the \
                 server's TLS certificate is not verified for its host name (sslmode is not set): add the \
                 server's CA to the probes' trust (PROBE_EXTRA_CA_FILE) and use the name its certificate holds, \
                 or set sslmode to require to accept the risk"
            ),
        )),
        (Channel::Plain, Some(SslMode::Disable)) => {
            rec.warn(format!(
                "the password was sent unencrypted by {mechanism} (sslmode is disable)"
            ));
            Ok(())
        }
        (Channel::Plain, _) => Err(Failure::new(
            ProbeCode::AuthUnsupported,
            format!(
                "the server asks for the password by {mechanism} on an unencrypted connection; it was not sent \
                 (enable TLS on the server, or set sslmode to disable to allow it)"
            ),
        )),
    }
}

/// The warning of TLS that `sslmode` (prefer, require) asked not to verify, when it did not verify.
pub fn warn_unverified(given: Option<SslMode>, rec: &mut Recorder) {
    if let (Some(mode @ (SslMode::Prefer | SslMode::Require)), false) = (given, rec.tls_verified())
    {
        rec.warn(format!(
            "TLS without certificate verification (sslmode {mode:?}): the server's identity was not checked"
        ));
    }
}

/// A connection that may or may not be TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Writes all of `bytes` within `limit`.
pub async fn send<S: Io + ?Sized>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), Failure> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("the connection closed while sending ({})", e.kind()),
        )),
        Err(_) => Err(Failure::new(ProbeCode::Timeout, "sending timed out")),
    }
}

/// Reads what arrives next (appending to `buf`) within `limit`; a closed connection is a failure.
pub async fn receive<S: Io + ?Sized>(
    stream: &mut S,
    buf: &mut bytes::BytesMut,
    limit: Duration,
) -> Result<(), Failure> {
    match tokio::time::timeout(limit, stream.read_buf(buf)).await {
        Ok(Ok(0)) => Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            "the service closed the connection without the expected reply",
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("reading failed ({})", e.kind()),
        )),
        Err(_) => Err(Failure::new(
            ProbeCode::Timeout,
            format!("no reply within {} ms", limit.as_millis()),
        )),
    }
}

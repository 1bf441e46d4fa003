//! Database and broker wire protocols that log in: one file per protocol, each exposing one
//! `async fn` that takes the guarded connection, the config and the secret, and reports how deep
//! it got. The byte-level encoding stays pure and unit-tested.

pub mod bson;
pub mod kafka;
pub mod mongo;
pub mod mysql;
pub mod postgres;
pub mod scram;

use super::report::{Failure, ProbeCode};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

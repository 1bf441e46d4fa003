//! TCP connect and the protocol handshakes that prove which service answers.

use super::report::{Failure, ProbeCode};
use super::wire::{send, Io};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Connects to the first address that accepts, trying each checked address in turn.
pub async fn connect(
    addrs: &[SocketAddr],
    limit: Duration,
) -> Result<(TcpStream, String), Failure> {
    let mut last = Failure::new(ProbeCode::ConnectionRefused, "no address to connect to");
    for addr in addrs {
        match timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, format!("connected to {addr}"))),
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
                last = Failure::new(
                    ProbeCode::ConnectionRefused,
                    format!("{addr} refused the connection"),
                )
            }
            Ok(Err(e)) => {
                last = Failure::new(
                    ProbeCode::ConnectionRefused,
                    format!("{addr} could not be reached ({})", e.kind()),
                )
            }
            Err(_) => {
                last = Failure::new(
                    ProbeCode::Timeout,
                    format!(
                        "connecting to {addr} timed out after {} ms",
                        limit.as_millis()
                    ),
                )
            }
        }
    }
    Err(last)
}

/// A TCP service proven by its greeting, when there is no login to prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SSLRequest; a reply of `S` or `N`.
    Postgres,
    /// The server greeting, protocol version 10.
    Mysql,
    /// The `SSH-2.0-` banner.
    Ssh,
}

/// Proves the service speaks `protocol`; `limit` bounds each read.
pub async fn handshake<S: Io>(
    stream: &mut S,
    protocol: Protocol,
    limit: Duration,
) -> Result<((), String), Failure> {
    match protocol {
        Protocol::Postgres => postgres(stream, limit).await,
        Protocol::Mysql => mysql(stream, limit).await,
        Protocol::Ssh => ssh(stream, limit).await,
    }
    .map(|detail| ((), detail))
}

/// Reads at least `min` bytes (up to `buf.len()`), or fails as a timeout / mismatch.
async fn read_at_least<S: Io>(
    stream: &mut S,
    buf: &mut [u8],
    min: usize,
    limit: Duration,
) -> Result<usize, Failure> {
    let mut filled = 0;
    while filled < min {
        match timeout(limit, stream.read(&mut buf[filled..])).await {
            Ok(Ok(0)) => {
                return Err(Failure::new(
                    ProbeCode::ProtocolMismatch,
                    "the service closed the connection without the expected reply",
                ))
            }
            Ok(Ok(n)) => filled += n,
            Ok(Err(e)) => {
                return Err(Failure::new(
                    ProbeCode::ProtocolMismatch,
                    format!("reading failed ({})", e.kind()),
                ))
            }
            Err(_) => {
                return Err(Failure::new(
                    ProbeCode::Timeout,
                    format!("no reply within {} ms", limit.as_millis()),
                ))
            }
        }
    }
    Ok(filled)
}

fn mismatch(expected: &str) -> Failure {
    Failure::mismatch(expected)
}

/// SSLRequest (length 8, code 80877103); a Postgres answers a single `S` or `N` and then waits
/// for us. A server that says more (an SSH banner starts with `S` too) is something else.
async fn postgres<S: Io>(stream: &mut S, limit: Duration) -> Result<String, Failure> {
    send(stream, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f], limit).await?;
    let mut buf = [0u8; 64];
    let n = read_at_least(stream, &mut buf, 1, limit).await?;
    let more = n > 1
        || matches!(timeout(Duration::from_millis(50), stream.read(&mut buf[1..])).await, Ok(Ok(m)) if m > 0);
    match buf[0] {
        b'S' if !more => Ok("PostgreSQL answered the SSLRequest (TLS available)".into()),
        b'N' if !more => Ok("PostgreSQL answered the SSLRequest (no TLS)".into()),
        _ => Err(mismatch("PostgreSQL")),
    }
}

/// The server speaks first: a packet header (3-byte length, sequence) then protocol version 10,
/// or an error packet (0xff) when it refuses this client.
async fn mysql<S: Io>(stream: &mut S, limit: Duration) -> Result<String, Failure> {
    let mut buf = [0u8; 5];
    read_at_least(stream, &mut buf, 5, limit).await?;
    match buf[4] {
        10 => Ok("MySQL sent its protocol 10 greeting".into()),
        0xff => Err(Failure::new(
            ProbeCode::AuthFailed,
            "MySQL refused this client before authentication",
        )),
        _ => Err(mismatch("MySQL")),
    }
}

/// The server speaks first with `SSH-2.0-…` (or `SSH-1.99-…`).
async fn ssh<S: Io>(stream: &mut S, limit: Duration) -> Result<String, Failure> {
    let mut buf = [0u8; 255];
    let n = read_at_least(stream, &mut buf, 8, limit).await?;
    let banner = String::from_utf8_lossy(&buf[..n]);
    let line = banner.lines().next().unwrap_or_default().trim_end();
    if line.starts_with("SSH-2.0-") || line.starts_with("SSH-1.99-") {
        Ok(format!(
            "SSH banner {}",
            line.chars().take(64).collect::<String>()
        ))
    } else {
        Err(mismatch("an SSH server"))
    }
}

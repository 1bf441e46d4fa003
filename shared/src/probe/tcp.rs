//! TCP connect and the protocol handshakes that prove which service answers.

use super::report::{Failure, ProbeCode};
use super::target::Protocol;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Proves the service speaks `protocol`; `limit` bounds each read.
pub async fn handshake(
    stream: &mut TcpStream,
    protocol: Protocol,
    limit: Duration,
) -> Result<((), String), Failure> {
    match protocol {
        Protocol::Postgres => postgres(stream, limit).await,
        Protocol::Mysql => mysql(stream, limit).await,
        Protocol::Ssh => ssh(stream, limit).await,
        Protocol::Mongo => mongo(stream, limit).await,
        Protocol::Kafka => kafka(stream, limit).await,
    }
    .map(|detail| ((), detail))
}

async fn send(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> Result<(), Failure> {
    match timeout(limit, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("the connection closed while sending ({})", e.kind()),
        )),
        Err(_) => Err(Failure::new(ProbeCode::Timeout, "sending timed out")),
    }
}

/// Reads at least `min` bytes (up to `buf.len()`), or fails as a timeout / mismatch.
async fn read_at_least(
    stream: &mut TcpStream,
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
    Failure::new(
        ProbeCode::ProtocolMismatch,
        format!("the service does not answer like {expected}"),
    )
}

/// SSLRequest (length 8, code 80877103); a Postgres answers a single `S` or `N` and then waits
/// for us. A server that says more (an SSH banner starts with `S` too) is something else.
async fn postgres(stream: &mut TcpStream, limit: Duration) -> Result<String, Failure> {
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
async fn mysql(stream: &mut TcpStream, limit: Duration) -> Result<String, Failure> {
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
async fn ssh(stream: &mut TcpStream, limit: Duration) -> Result<String, Failure> {
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

/// OP_MSG (opcode 2013) with `{hello: 1, $db: "admin"}`; a MongoDB answers with an OP_MSG.
async fn mongo(stream: &mut TcpStream, limit: Duration) -> Result<String, Failure> {
    send(stream, &mongo_hello(), limit).await?;
    let mut header = [0u8; 16];
    read_at_least(stream, &mut header, 16, limit).await?;
    let response_to = i32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let opcode = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if opcode == 2013 && response_to == MONGO_REQUEST_ID {
        Ok("MongoDB answered hello".into())
    } else {
        Err(mismatch("MongoDB"))
    }
}

const MONGO_REQUEST_ID: i32 = 1;

fn mongo_hello() -> Vec<u8> {
    let mut doc = Vec::new();
    doc.push(0x10); // int32
    doc.extend_from_slice(b"hello\0");
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.push(0x02); // string
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0);
    let doc_len = (doc.len() + 4) as i32;
    let mut body = Vec::new();
    body.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    body.push(0); // section kind 0: body
    body.extend_from_slice(&doc_len.to_le_bytes());
    body.extend_from_slice(&doc);
    let mut msg = Vec::new();
    msg.extend_from_slice(&((16 + body.len()) as i32).to_le_bytes());
    msg.extend_from_slice(&MONGO_REQUEST_ID.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&2013i32.to_le_bytes());
    msg.extend_from_slice(&body);
    msg
}

const KAFKA_CORRELATION_ID: i32 = 0x636f_6e6e;

/// ApiVersions v0 (api key 18); a Kafka broker answers with our correlation id.
async fn kafka(stream: &mut TcpStream, limit: Duration) -> Result<String, Failure> {
    send(stream, &kafka_api_versions(), limit).await?;
    let mut buf = [0u8; 10];
    read_at_least(stream, &mut buf, 10, limit).await?;
    let correlation = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let error = i16::from_be_bytes([buf[8], buf[9]]);
    match (correlation == KAFKA_CORRELATION_ID, error) {
        (true, 0) => Ok("Kafka answered ApiVersions".into()),
        (true, e) => Ok(format!("Kafka answered ApiVersions with error code {e}")),
        (false, _) => Err(mismatch("a Kafka broker")),
    }
}

fn kafka_api_versions() -> Vec<u8> {
    let client_id = b"connectors-api";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&KAFKA_CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut msg = (body.len() as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongo_hello_is_a_well_formed_op_msg() {
        let msg = mongo_hello();
        assert_eq!(
            i32::from_le_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(i32::from_le_bytes(msg[12..16].try_into().unwrap()), 2013);
        let doc_len = i32::from_le_bytes(msg[21..25].try_into().unwrap()) as usize;
        assert_eq!(21 + doc_len, msg.len(), "the BSON document fills the rest");
        assert_eq!(*msg.last().unwrap(), 0);
    }

    #[test]
    fn kafka_request_is_length_prefixed() {
        let msg = kafka_api_versions();
        assert_eq!(
            i32::from_be_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len() - 4
        );
        assert_eq!(i16::from_be_bytes(msg[4..6].try_into().unwrap()), 18);
    }
}

//! Local peers for the probes: tiny servers that speak (or fail to speak) each protocol on 127.0.0.1.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a listener does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum Peer {
    /// Answers an SSLRequest with `N` (after `delay`).
    Postgres { delay: Duration },
    /// Sends a protocol 10 greeting.
    Mysql,
    /// Sends an SSH banner.
    Ssh,
    /// Answers an OP_MSG with an OP_MSG.
    Mongo,
    /// Answers ApiVersions.
    Kafka,
    /// An HTTP server with a route per behaviour (see `http_reply`).
    Http,
    /// Accepts and never answers.
    Silent,
    /// Hostile servers (Hardening III): each answers its protocol's first exchange, then sends
    /// what would make a careless client allocate, loop or store without bound.
    Hostile(Hostility),
}

/// How a hostile look-alike misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Hostility {
    /// PostgreSQL: an authentication message claiming 4 GiB (`R ff ff ff ff`), then endless bytes.
    PostgresHugeLength,
    /// PostgreSQL: an ErrorResponse whose message is 1 MB of text (with control characters).
    PostgresHugeError,
    /// Kafka: a SaslHandshake answer listing 2^31−1 mechanisms and none of them.
    KafkaEndlessMechanisms,
    /// MongoDB: a reply to `hello` claiming 48 MB, then endless bytes.
    MongoHugeFrame,
    /// MySQL: an ERR packet of 600 kB of text instead of a greeting.
    MysqlHugeError,
}

/// Starts a listener on 127.0.0.1 and returns its address; it runs until the test binary ends.
pub async fn listen(peer: Peer) -> SocketAddr {
    serve_apart(move |stream| serve(peer, stream)).await
}

/// Binds 127.0.0.1 and serves each connection with `handle`, from a thread and runtime of its own,
/// as a real server is a process of its own: on the test's single-threaded runtime, a busy test
/// (a fanned-out sweep decoding and signing for 32 invocations in a debug build) kept a look-alike
/// from answering within the probes' 2 s.
async fn serve_apart<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (bound, addr) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _ = bound.send(listener.local_addr().unwrap());
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream));
            }
        });
    });
    addr.await.unwrap()
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn serve(peer: Peer, mut s: TcpStream) {
    let mut buf = vec![0u8; 4096];
    match peer {
        Peer::Postgres { delay } => {
            if s.read_exact(&mut buf[..8]).await.is_ok()
                && buf[..8] == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
            {
                tokio::time::sleep(delay).await;
                let _ = s.write_all(b"N").await;
            }
        }
        Peer::Mysql => {
            let mut payload = vec![10u8];
            payload.extend_from_slice(b"8.0.36\0");
            payload.extend_from_slice(&[0; 40]);
            let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
            packet.push(0);
            packet.extend_from_slice(&payload);
            let _ = s.write_all(&packet).await;
        }
        Peer::Ssh => {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6p1 Debian\r\n").await;
        }
        Peer::Mongo => {
            // One OP_MSG in, one OP_MSG `{ok: 1.0}` out (what `hello` needs to go on).
            if s.read_exact(&mut buf[..16]).await.is_ok() {
                let len = i32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
                let mut rest = vec![0u8; len.saturating_sub(16)];
                let _ = s.read_exact(&mut rest).await;
                let request_id = buf[4..8].to_vec();
                let doc = b"\x11\x00\x00\x00\x01ok\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00";
                let mut reply = Vec::new();
                reply.extend_from_slice(&((21 + doc.len()) as i32).to_le_bytes());
                reply.extend_from_slice(&7i32.to_le_bytes());
                reply.extend_from_slice(&request_id);
                reply.extend_from_slice(&2013i32.to_le_bytes());
                reply.extend_from_slice(&[0, 0, 0, 0, 0]);
                reply.extend_from_slice(doc);
                let _ = s.write_all(&reply).await;
            }
        }
        Peer::Kafka => {
            // ApiVersions (no API listed) and Metadata (no broker, no topic), until closed.
            kafka_answers(s, |api_key| match api_key {
                18 => Some(&[0, 0, 0, 0, 0, 0]),
                3 => Some(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
                _ => None,
            })
            .await
        }
        Peer::Http => {
            let request = read_http_request(&mut s).await;
            let mut words = request.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let header = |name: &str| {
                request.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
            };
            let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let reply = match path {
                "/oauth/token" => token_reply(method, header("authorization").as_deref(), body),
                "/needs-api-key" if header("x-api-key").as_deref() == Some(API_KEY) => {
                    http_reply(method, "/ok", None)
                }
                "/needs-api-key" => http_reply(method, "/auth", None),
                _ => http_reply(method, path, header("authorization").as_deref()),
            };
            let _ = s.write_all(reply.as_bytes()).await;
        }
        Peer::Silent => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Peer::Hostile(how) => hostile(how, s).await,
    }
}

/// Answers Kafka requests until the client hangs up: each reply is the request's correlation id
/// and the body `answer` gives its api key (none: hang up).
async fn kafka_answers(mut s: TcpStream, answer: impl Fn(i16) -> Option<&'static [u8]>) {
    let mut size = [0u8; 4];
    while s.read_exact(&mut size).await.is_ok() {
        let mut req = vec![0u8; i32::from_be_bytes(size) as usize];
        if s.read_exact(&mut req).await.is_err() {
            break;
        }
        let Some(answer) = answer(i16::from_be_bytes([req[0], req[1]])) else {
            break;
        };
        let mut body = req[4..8].to_vec(); // correlation id
        body.extend_from_slice(answer);
        let mut reply = (body.len() as i32).to_be_bytes().to_vec();
        reply.extend_from_slice(&body);
        if s.write_all(&reply).await.is_err() {
            break;
        }
    }
}

/// Writes `junk` until the client hangs up or 10 s have passed.
async fn flood(s: &mut TcpStream) {
    let junk = vec![b'A'; 64 * 1024];
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < until && s.write_all(&junk).await.is_ok() {}
}

async fn hostile(how: Hostility, mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    match how {
        Hostility::PostgresHugeLength | Hostility::PostgresHugeError => {
            // SSLRequest (answered N) or straight the StartupMessage (sslmode disable).
            if s.read(&mut buf).await.unwrap_or(0) == 8 {
                let _ = s.write_all(b"N").await;
                let _ = s.read(&mut buf).await;
            }
            if let Hostility::PostgresHugeLength = how {
                let _ = s.write_all(&[b'R', 0xff, 0xff, 0xff, 0xff]).await;
                flood(&mut s).await;
            } else {
                let mut text = b"\x1b[31mno\r\n".to_vec();
                text.resize(1_000_000, b'x');
                let mut body = b"SFATAL\0C28P01\0M".to_vec();
                body.extend_from_slice(&text);
                body.extend_from_slice(b"\0\0");
                let mut msg = vec![b'E'];
                msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
                msg.extend_from_slice(&body);
                let _ = s.write_all(&msg).await;
            }
        }
        Hostility::KafkaEndlessMechanisms => {
            kafka_answers(s, |api_key| match api_key {
                18 => Some(&[0, 0, 0, 0, 0, 0]),
                // error 33 (unsupported mechanism), then a count of 2^31-1 and no names.
                17 => Some(&[0, 33, 0x7f, 0xff, 0xff, 0xff]),
                _ => None,
            })
            .await
        }
        Hostility::MongoHugeFrame => {
            if s.read(&mut buf).await.unwrap_or(0) > 0 {
                let mut reply = 48_000_000i32.to_le_bytes().to_vec();
                reply.extend_from_slice(&[0; 17]);
                let _ = s.write_all(&reply).await;
                flood(&mut s).await;
            }
        }
        Hostility::MysqlHugeError => {
            let mut payload = vec![0xff, 0x15, 0x04];
            payload.extend_from_slice(b"#28000");
            payload.resize(600_000, b'y');
            let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
            packet.push(0);
            packet.extend_from_slice(&payload);
            let _ = s.write_all(&packet).await;
        }
    }
}

/// The API key `/needs-api-key` wants in `X-Api-Key`, and the client credentials `/oauth/token`
/// takes (HTTP Basic, RFC 6749 §2.3.1) and the token it issues for them.
pub const API_KEY: &str = "hdr-key-0123456789";
pub const CLIENT: (&str, &str) = ("probe-client", "client-secret-0123");
pub const ISSUED_TOKEN: &str = "cc-token-0123456789";

/// One HTTP/1.1 request: the head and as much body as Content-Length says.
async fn read_http_request(s: &mut tokio::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf).await {
        data.extend_from_slice(&buf[..n]);
        // Not HTTP at all (another protocol's probe): answer what came, as HTTP would.
        if !data.first().is_some_and(u8::is_ascii_uppercase) {
            break;
        }
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0usize);
            if body.len() >= length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).to_string()
}

/// An OAuth 2.0 token endpoint (client credentials grant, RFC 6749 §4.4 and §5).
fn token_reply(method: &str, auth: Option<&str>, body: &str) -> String {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", CLIENT.0, CLIENT.1))
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let grant = form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "client_credentials");
    let (status, json) = if method != "POST" || !grant {
        (
            "400 Bad Request",
            r#"{"error":"unsupported_grant_type"}"#.to_string(),
        )
    } else if auth != Some(expected.as_str()) {
        (
            "401 Unauthorized",
            r#"{"error":"invalid_client"}"#.to_string(),
        )
    } else {
        (
            "200 OK",
            format!(
                r#"{{"access_token":"{ISSUED_TOKEN}","token_type":"Bearer","expires_in":3600}}"#
            ),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
}

fn http_reply(method: &str, path: &str, auth: Option<&str>) -> String {
    let (status, extra) = match path {
        "/ok" => ("200 OK", String::new()),
        "/moved" => ("301 Moved Permanently", "Location: /ok\r\n".to_string()),
        "/chain" => ("302 Found", "Location: /moved\r\n".to_string()),
        "/loop" => ("302 Found", "Location: /loop\r\n".to_string()),
        "/to-private" => ("302 Found", "Location: http://10.0.0.1/\r\n".to_string()),
        "/to-metadata" => (
            "302 Found",
            "Location: http://169.254.169.254/latest/meta-data/\r\n".to_string(),
        ),
        "/auth" => ("401 Unauthorized", String::new()),
        "/forbidden" => ("403 Forbidden", String::new()),
        "/missing" => ("404 Not Found", String::new()),
        "/boom" => ("500 Internal Server Error", String::new()),
        "/nohead" if method == "HEAD" => ("405 Method Not Allowed", String::new()),
        "/nohead" => ("200 OK", String::new()),
        "/needs-token" if auth == Some("Bearer s3cret-token") => ("200 OK", String::new()),
        "/needs-cc-token" if auth == Some(&format!("Bearer {ISSUED_TOKEN}")) => {
            ("200 OK", String::new())
        }
        "/needs-cc-token" => ("401 Unauthorized", String::new()),
        "/needs-token" => ("401 Unauthorized", String::new()),
        _ => ("404 Not Found", String::new()),
    };
    format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

/// A DNS server on 127.0.0.1 (UDP) that answers SRV queries for `_mongodb._tcp.*` with one record
/// pointing at `target:port`, and NXDOMAIN for anything else.
pub async fn srv_dns(target: &'static str, port: u16) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = srv_reply(&buf[..n], target, port) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    addr
}

fn srv_reply(query: &[u8], target: &str, port: u16) -> Option<Vec<u8>> {
    // Header (12 bytes), then the question: labels up to a zero byte, QTYPE, QCLASS.
    let mut i = 12;
    let mut labels = Vec::new();
    while *query.get(i)? != 0 {
        let len = query[i] as usize;
        labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_string());
        i += 1 + len;
    }
    let question_end = i + 5;
    let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
    let matches = qtype == 33 && labels.len() > 2 && labels[0] == "_mongodb" && labels[1] == "_tcp";
    let mut reply = query[..2].to_vec();
    reply.extend_from_slice(&[0x81, if matches { 0x80 } else { 0x83 }]);
    reply.extend_from_slice(&[0, 1, 0, u8::from(matches), 0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    if matches {
        let mut rdata = vec![0, 0, 0, 5];
        rdata.extend_from_slice(&port.to_be_bytes());
        for label in target.split('.') {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label.as_bytes());
        }
        rdata.push(0);
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 0, 60]);
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    Some(reply)
}

/// The tests' PKI (local/test_pki.py, written by `make integration` into TEST_PKI_DIR).
pub fn pki(file: &str) -> std::path::PathBuf {
    let dir = std::env::var("TEST_PKI_DIR")
        .expect("TEST_PKI_DIR is not set: run the integration tests with `make integration`");
    std::path::Path::new(&dir).join(file)
}

/// A TLS server on 127.0.0.1 presenting `<stem>.crt` from the tests' PKI; after the handshake it
/// answers any HTTP request with 200 and closes.
pub async fn tls_http(stem: &str) -> SocketAddr {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(pki(&format!("{stem}.crt")))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki(&format!("{stem}.key"))).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    serve_apart(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            // A refused handshake ends here: the client saw what it needed.
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            let _ = tls.shutdown().await;
        }
    })
    .await
}

/// What a recording listener received, every connection's bytes in order.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// A listener that keeps every byte it is sent (to prove that no secret reached it) and answers
/// each HTTP request head with `200 {}`.
pub async fn recorder() -> (SocketAddr, Received) {
    let seen = Received::default();
    let keep = seen.clone();
    let addr = serve_apart(move |mut s| {
        let keep = keep.clone();
        async move {
            let mut buf = [0u8; 4096];
            while let Ok(Ok(n @ 1..)) =
                tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
            {
                keep.lock().unwrap().extend_from_slice(&buf[..n]);
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = s.write_all(reply.as_bytes()).await;
                }
            }
        }
    })
    .await;
    (addr, seen)
}

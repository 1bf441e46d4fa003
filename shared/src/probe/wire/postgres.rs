//! How we log in to PostgreSQL (and Redshift, which speaks its protocol): SSLRequest as `sslmode`
//! asks, StartupMessage with user and database, then trust, cleartext, MD5 or SCRAM-SHA-256
//! (messages and SCRAM from the `postgres-protocol` crate), until ReadyForQuery: the database is
//! usable with these credentials. Then Terminate.
//!
//! A cleartext or MD5 password (one the server can read) goes only over TLS verified for the host
//! name; over unverified TLS only when `sslmode` is set (prefer, require: the user accepts the
//! risk, and a warning says so); without TLS only with `sslmode: disable` (`wire::may_reveal`).
//! SCRAM never sends the password.

use super::frame::{FrameReader, Framing};
use super::{may_reveal, receive, send, warn_unverified, Channel, Io};
use crate::model::SslMode;
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use crate::probe::tls;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Who logs in where.
pub struct Login<'a> {
    /// The host the certificate must name (verify-full).
    pub host: &'a str,
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: &'a str,
    /// `config.sslmode` as given; absent prefers TLS like `prefer`, but reveals no password
    /// over a certificate that was not verified.
    pub sslmode: Option<SslMode>,
}

impl Login<'_> {
    fn mode(&self) -> SslMode {
        self.sslmode.unwrap_or(SslMode::DEFAULT)
    }
}

/// The SSLRequest's answer.
enum Offer {
    Tls,
    Plain,
}

/// Logs in on a connected (guarded) socket; `limit` bounds each exchange.
pub async fn login<S: Io>(
    mut stream: S,
    login: &Login<'_>,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    if login.mode() == SslMode::Disable {
        rec.reached(Depth::Reachable);
        rec.warn("sslmode is disable: the connection to PostgreSQL is not encrypted");
        return session(&mut stream, login, Channel::Plain, limit, rec).await;
    }
    let started = Instant::now();
    let offer = ssl_request(&mut stream, limit).await?;
    rec.reached(Depth::Reachable);
    match offer {
        Offer::Tls => {
            let verify = tls::verify_for(login.mode());
            let mut tls_stream =
                tls::handshake(stream, login.host, verify, limit, started, rec).await?;
            warn_unverified(login.sslmode, rec);
            let channel = Channel::after_tls(rec);
            session(&mut tls_stream, login, channel, limit, rec).await
        }
        Offer::Plain if matches!(login.mode(), SslMode::Prefer) => {
            rec.warn("the server offers no TLS: the connection to PostgreSQL is not encrypted");
            session(&mut stream, login, Channel::Plain, limit, rec).await
        }
        Offer::Plain => {
            let message = format!(
                "the server offers no TLS, and sslmode is {:?}",
                login.mode()
            );
            rec.record(
                StepName::Tls,
                false,
                started.elapsed().as_millis() as u64,
                message.clone(),
            );
            Err(Failure::new(ProbeCode::TlsFailed, message))
        }
    }
}

/// SSLRequest; a PostgreSQL answers one byte, `S` or `N`.
async fn ssl_request<S: Io>(stream: &mut S, limit: Duration) -> Result<Offer, Failure> {
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    send(stream, &buf, limit).await?;
    let mut answer = BytesMut::with_capacity(1);
    receive(stream, &mut answer, limit).await?;
    match (answer.first(), answer.len()) {
        (Some(b'S'), 1) => Ok(Offer::Tls),
        (Some(b'N'), 1) => Ok(Offer::Plain),
        _ => Err(mismatch()),
    }
}

/// StartupMessage, authentication, and the wait for ReadyForQuery.
async fn session<S: Io + ?Sized>(
    stream: &mut S,
    login: &Login<'_>,
    channel: Channel,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let mut out = BytesMut::new();
    frontend::startup_message(
        [
            ("user", login.user),
            ("database", login.database),
            ("application_name", "connectors-api-probe"),
        ],
        &mut out,
    )
    .map_err(|_| invalid("user and database must not contain NUL characters"))?;
    send(stream, &out, limit).await?;
    let started = Instant::now();
    let mut frames = FrameReader::default();
    let mut scram: Option<ScramSha256> = None;
    let mut method = "trust";
    // A server gets a bounded number of messages to reach ReadyForQuery.
    for _ in 0..MAX_MESSAGES {
        let message = next(stream, &mut frames, limit).await?;
        let mut reply = BytesMut::new();
        match message {
            Message::AuthenticationOk => {
                rec.reached(Depth::Authenticated);
                rec.record(
                    StepName::Auth,
                    true,
                    started.elapsed().as_millis() as u64,
                    format!("user {} accepted ({method})", login.user),
                );
                continue;
            }
            Message::AuthenticationCleartextPassword => {
                method = "cleartext password";
                let password = password_in_clear(login, channel, method, rec)?;
                frontend::password_message(password.as_bytes(), &mut reply)
                    .map_err(|_| invalid("the password must not contain NUL characters"))?;
            }
            Message::AuthenticationMd5Password(body) => {
                method = "MD5";
                let password = password_in_clear(login, channel, method, rec)?;
                let hashed = Zeroizing::new(postgres_protocol::authentication::md5_hash(
                    login.user.as_bytes(),
                    password.as_bytes(),
                    body.salt(),
                ));
                frontend::password_message(hashed.as_bytes(), &mut reply)
                    .map_err(|_| invalid("the password must not contain NUL characters"))?;
            }
            Message::AuthenticationSasl(body) => {
                let offered: Vec<String> = body
                    .mechanisms()
                    .map(|m| Ok(m.to_string()))
                    .collect()
                    .map_err(|_| mismatch())?;
                if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(Failure::new(
                        ProbeCode::AuthUnsupported,
                        format!(
                            "the server asks for SASL mechanisms we do not speak: {}",
                            offered.join(", ")
                        ),
                    ));
                }
                method = SCRAM_SHA_256;
                let password = needs_password(login)?;
                let client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, client.message(), &mut reply)
                    .map_err(|_| mismatch())?;
                scram = Some(client);
            }
            Message::AuthenticationSaslContinue(body) => {
                let client = scram.as_mut().ok_or_else(mismatch)?;
                client.update(body.data()).map_err(|_| {
                    Failure::new(ProbeCode::ProtocolMismatch, "the server's SCRAM challenge is malformed")
                })?;
                frontend::sasl_response(client.message(), &mut reply).map_err(|_| mismatch())?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let client = scram.as_mut().ok_or_else(mismatch)?;
                // Proves the server knew the password too (mutual authentication).
                client.finish(body.data()).map_err(|_| {
                    Failure::new(
                        ProbeCode::AuthFailed,
                        "the server's SCRAM signature is wrong: it does not know this password",
                    )
                })?;
                continue;
            }
            Message::AuthenticationGss
            | Message::AuthenticationGssContinue(_)
            | Message::AuthenticationKerberosV5
            | Message::AuthenticationSspi
            | Message::AuthenticationScmCredential => {
                return Err(Failure::new(
                    ProbeCode::AuthUnsupported,
                    "the server asks for GSSAPI, SSPI, Kerberos or SCM credentials, which we do not speak",
                ))
            }
            Message::ParameterStatus(p) => {
                if p.name().ok() == Some("server_version") {
                    if let Ok(v) = p.value() {
                        rec.server("PostgreSQL", v);
                    }
                }
                continue;
            }
            Message::ReadyForQuery(_) => {
                rec.reached(Depth::Authorized);
                rec.record(
                    StepName::Access,
                    true,
                    started.elapsed().as_millis() as u64,
                    format!("database {} is open", login.database),
                );
                let mut bye = BytesMut::new();
                frontend::terminate(&mut bye);
                // Best effort: the verdict is in; a server that closed first changes nothing.
                let _ = send(stream, &bye, limit).await;
                return Ok(format!(
                    "logged in to database {} as {} ({method})",
                    login.database, login.user
                ));
            }
            Message::ErrorResponse(body) => {
                let failure = refused(&body);
                let step = if rec.depth() >= Some(Depth::Authenticated) {
                    StepName::Access
                } else {
                    StepName::Auth
                };
                rec.record(step, false, started.elapsed().as_millis() as u64, failure.message.clone());
                return Err(failure);
            }
            // BackendKeyData, notices: nothing to answer.
            _ => continue,
        }
        send(stream, &reply, limit).await?;
    }
    Err(Failure::mismatch_because(
        PRODUCT,
        format!("no ReadyForQuery within {MAX_MESSAGES} messages"),
    ))
}

const PRODUCT: &str = "PostgreSQL";

/// Messages a login may take (parameter statuses and notices included).
const MAX_MESSAGES: usize = 256;

/// Backend messages: a type byte, then a length that counts itself. No message a login meets
/// comes near 1 MiB; an error's text is cut to a message's length later.
const FRAMING: Framing = Framing {
    product: PRODUCT,
    header: 5,
    length: |h| {
        let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        (len >= 4).then(|| len as usize + 1)
    },
    cap: 1 << 20,
};

/// The next whole backend message.
async fn next<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    limit: Duration,
) -> Result<Message, Failure> {
    let mut frame = frames.next(stream, &FRAMING, limit).await?;
    match Message::parse(&mut frame) {
        Ok(Some(message)) => Ok(message),
        _ => Err(mismatch()),
    }
}

fn needs_password(login: &Login<'_>) -> Result<Zeroizing<String>, Failure> {
    login
        .password
        .map(|p| Zeroizing::new(p.to_string()))
        .ok_or_else(|| {
            Failure::new(
                ProbeCode::AuthFailed,
                "the server asks for a password and authConfig has none",
            )
        })
}

/// A password the server wants in clear (or as MD5, as good as clear), where `may_reveal` allows.
fn password_in_clear(
    login: &Login<'_>,
    channel: Channel,
    method: &str,
    rec: &mut Recorder,
) -> Result<Zeroizing<String>, Failure> {
    may_reveal(login.sslmode, channel, method, rec)?;
    needs_password(login)
}

/// An ErrorResponse as a probe failure: SQLSTATE 28P01/28000 refused credentials, 3D000 no such
/// database, 42501 no CONNECT privilege.
fn refused(body: &ErrorResponseBody) -> Failure {
    let mut code = String::new();
    let mut text = String::new();
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        match field.type_() {
            b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'M' => text = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            _ => {}
        }
    }
    classify(&code, &text)
}

fn classify(sqlstate: &str, text: &str) -> Failure {
    let probe_code = match sqlstate {
        "28P01" | "28000" => ProbeCode::AuthFailed,
        "3D000" => ProbeCode::NotFound,
        "42501" => ProbeCode::PermissionDenied,
        _ => ProbeCode::ProtocolMismatch,
    };
    Failure::new(
        probe_code,
        format!("PostgreSQL refused ({sqlstate}): {text}"),
    )
}

fn mismatch() -> Failure {
    Failure::mismatch(PRODUCT)
}

fn invalid(message: &str) -> Failure {
    Failure::new(ProbeCode::InvalidConfig, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_codes() {
        assert_eq!(
            classify("28P01", "password authentication failed").code,
            ProbeCode::AuthFailed
        );
        assert_eq!(
            classify("28000", "no pg_hba.conf entry").code,
            ProbeCode::AuthFailed
        );
        assert_eq!(
            classify("3D000", "database \"x\" does not exist").code,
            ProbeCode::NotFound
        );
        assert_eq!(
            classify("42501", "permission denied for database").code,
            ProbeCode::PermissionDenied
        );
        assert_eq!(
            classify("53300", "too many connections").code,
            ProbeCode::ProtocolMismatch
        );
    }

    #[tokio::test]
    async fn an_error_response_captured_from_a_server_is_classified() {
        // ErrorResponse as PostgreSQL 16 sends it for a wrong password.
        let mut raw = BytesMut::new();
        let fields: &[(u8, &str)] = &[
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "28P01"),
            (b'M', "password authentication failed for user \"app\""),
            (b'F', "auth.c"),
            (b'L', "323"),
            (b'R', "auth_failed"),
        ];
        let mut body = Vec::new();
        for (t, v) in fields {
            body.push(*t);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        raw.extend_from_slice(b"E");
        raw.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        raw.extend_from_slice(&body);
        let Ok(Some(Message::ErrorResponse(e))) = Message::parse(&mut raw) else {
            panic!("an ErrorResponse");
        };
        let f = refused(&e);
        assert_eq!(f.code, ProbeCode::AuthFailed);
        assert!(f.message.contains("28P01"), "{}", f.message);
    }

    #[test]
    fn a_readable_password_needs_verified_tls_unless_sslmode_says_otherwise() {
        let mut rec = Recorder::default();
        let login = |sslmode| Login {
            host: "db.example.com",
            user: "app",
            password: Some("pw"),
            database: "app",
            sslmode,
        };
        let refused = |mode, channel, rec: &mut Recorder| {
            password_in_clear(&login(mode), channel, "MD5", rec)
                .err()
                .map(|e| e.code)
        };
        use Channel::*;
        let denied = Some(ProbeCode::AuthUnsupported);
        assert_eq!(refused(None, Plain, &mut rec), denied);
        assert_eq!(refused(Some(SslMode::Prefer), Plain, &mut rec), denied);
        assert_eq!(
            refused(None, UnverifiedTls, &mut rec),
            denied,
            "default: verified only"
        );
        assert_eq!(refused(None, VerifiedTls, &mut rec), None);
        assert_eq!(
            refused(Some(SslMode::Require), UnverifiedTls, &mut rec),
            None
        );
        assert_eq!(
            refused(Some(SslMode::Prefer), UnverifiedTls, &mut rec),
            None
        );
        assert_eq!(refused(Some(SslMode::Disable), Plain, &mut rec), None);
        assert_eq!(
            rec.finish(Ok(String::new())).warnings.len(),
            1,
            "disable warns"
        );
    }
}

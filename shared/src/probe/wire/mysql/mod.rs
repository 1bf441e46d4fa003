//! How we log in to MySQL and MariaDB: the server's greeting (HandshakeV10), TLS when it offers
//! it and `sslmode` asks (SSLRequest), HandshakeResponse41 with the database, then
//! `mysql_native_password` or `caching_sha2_password` (fast path; full path over TLS, or the RSA
//! public-key exchange without it), following AuthSwitchRequest. OK means the database is open.
//! Then COM_QUIT. The bytes are `codec.rs`'s.

mod codec;

use super::frame::{FrameReader, Framing};
use super::{may_reveal, send, warn_unverified, Channel, Io};
use crate::kinds::sql::{SslMode, SERVER_PUBLIC_KEY};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use crate::probe::tls;
use codec::*;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Who logs in where.
pub struct Login<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub database: &'a str,
    /// `config.sslmode` as given (see `postgres::Login::sslmode`).
    pub sslmode: Option<SslMode>,
    /// The pinned server key (`kinds::sql`): the server's RSA key (PEM) to encrypt the password to without
    /// TLS; without it, the key a server sends is not trusted.
    pub server_public_key: Option<&'a str>,
}

/// caching_sha2_password's full authentication, where the server reads the password.
const FULL_AUTH: &str = "caching_sha2_password full authentication";

/// Packets: a 3-byte little-endian length and a sequence number. Nothing a login meets comes near
/// 1 MiB; an error's text is cut to a message's length later.
const FRAMING: Framing = Framing {
    product: "MySQL",
    header: 4,
    length: |h| Some(u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize + 4),
    cap: 1 << 20,
};

/// Packets a login may take (auth switches and more-data rounds included).
const MAX_PACKETS: usize = 32;

/// Reads one whole packet: (sequence, payload).
async fn read_packet<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    limit: Duration,
) -> Result<(u8, Vec<u8>), Failure> {
    let whole = frames.next(stream, &FRAMING, limit).await?;
    Ok((whole[3], whole[4..].to_vec()))
}

fn mismatch() -> Failure {
    Failure::mismatch(FRAMING.product)
}

/// Logs in on a connected (guarded) socket; `limit` bounds each exchange.
pub async fn login<S: Io>(
    mut stream: S,
    login: &Login<'_>,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let mut frames = FrameReader::default();
    let (_, first) = read_packet(&mut stream, &mut frames, limit).await?;
    if first.first() == Some(&0xff) {
        let (code, text) = parse_error(&first);
        return Err(classify(code, &text));
    }
    let greeting = parse_greeting(&first).ok_or_else(mismatch)?;
    rec.reached(Depth::Reachable);
    let product = if greeting
        .server_version
        .to_ascii_lowercase()
        .contains("mariadb")
    {
        "MariaDB"
    } else {
        "MySQL"
    };
    rec.server(product, &greeting.server_version);
    let offers_tls = greeting.capabilities & CLIENT_SSL != 0;
    let warning = match (login.sslmode.unwrap_or(SslMode::DEFAULT), offers_tls) {
        (SslMode::Disable, _) => "sslmode is disable: the connection to MySQL is not encrypted",
        (_, true) => {
            let started = Instant::now();
            send(&mut stream, &packet(1, &head(client_flags(true))), limit).await?;
            let verify = tls::verify_for(login.sslmode.unwrap_or(SslMode::DEFAULT));
            let mut tls_stream =
                tls::handshake(stream, login.host, verify, limit, started, rec).await?;
            warn_unverified(login.sslmode, rec);
            let channel = Channel::after_tls(rec);
            let frames = FrameReader::default();
            return authenticate(
                &mut tls_stream,
                frames,
                &greeting,
                login,
                channel,
                2,
                limit,
                rec,
            )
            .await;
        }
        (SslMode::Prefer, false) => {
            "the server offers no TLS: the connection to MySQL is not encrypted"
        }
        (mode, false) => {
            return Err(Failure::new(
                ProbeCode::TlsFailed,
                format!("the server offers no TLS, and sslmode is {mode:?}"),
            ))
        }
    };
    rec.warn(warning);
    authenticate(
        &mut stream,
        frames,
        &greeting,
        login,
        Channel::Plain,
        1,
        limit,
        rec,
    )
    .await
}

/// HandshakeResponse41 and the authentication exchange, until OK or ERR.
#[allow(clippy::too_many_arguments)]
async fn authenticate<S: Io + ?Sized>(
    stream: &mut S,
    mut frames: FrameReader,
    greeting: &Greeting,
    login: &Login<'_>,
    channel: Channel,
    mut seq: u8,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let started = Instant::now();
    let password = Zeroizing::new(login.password.unwrap_or_default().to_string());
    let mut plugin = greeting.plugin.clone();
    let mut scramble = greeting.scramble.clone();
    let mut requested_key = false;
    let first = auth_response(&plugin, &password, &scramble).unwrap_or_default();
    send(
        stream,
        &packet(
            seq,
            &handshake_response(login, channel != Channel::Plain, &plugin, &first),
        ),
        limit,
    )
    .await?;
    for _ in 0..MAX_PACKETS {
        let (got, payload) = read_packet(stream, &mut frames, limit).await?;
        seq = got.wrapping_add(1);
        match payload.first() {
            Some(0x00) => {
                rec.reached(Depth::Authorized);
                let ms = started.elapsed().as_millis() as u64;
                rec.record(
                    StepName::Auth,
                    true,
                    ms,
                    format!("user {} accepted ({plugin})", login.user),
                );
                rec.record(
                    StepName::Access,
                    true,
                    0,
                    format!("database {} is open", login.database),
                );
                // COM_QUIT, best effort: the verdict is in.
                let _ = send(stream, &packet(0, &[0x01]), limit).await;
                return Ok(format!(
                    "logged in to database {} as {} ({plugin})",
                    login.database, login.user
                ));
            }
            Some(0xff) => {
                let (code, text) = parse_error(&payload);
                let failure = classify(code, &text);
                // A database error comes after the credentials were accepted.
                let step = if matches!(code, 1044 | 1049) {
                    rec.reached(Depth::Authenticated);
                    StepName::Access
                } else {
                    StepName::Auth
                };
                rec.record(
                    step,
                    false,
                    started.elapsed().as_millis() as u64,
                    failure.message.clone(),
                );
                return Err(failure);
            }
            // AuthSwitchRequest: another plugin, another scramble.
            Some(0xfe) => {
                let rest = &payload[1..];
                let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
                scramble = rest.get(end + 1..).unwrap_or_default().to_vec();
                if scramble.last() == Some(&0) {
                    scramble.pop();
                }
                let answer = auth_response(&plugin, &password, &scramble).ok_or_else(|| {
                    Failure::new(
                        ProbeCode::AuthUnsupported,
                        format!("the server asks for the {plugin} authentication plugin, which we do not speak"),
                    )
                })?;
                send(stream, &packet(seq, &answer), limit).await?;
            }
            // AuthMoreData of caching_sha2_password.
            Some(0x01) if plugin == SHA2 => match payload.get(1) {
                Some(0x03) => {} // fast path accepted; OK follows
                Some(0x04) if channel != Channel::Plain => {
                    may_reveal(login.sslmode, channel, FULL_AUTH, rec)?;
                    let mut clear = Zeroizing::new(password.as_bytes().to_vec());
                    clear.push(0);
                    send(stream, &packet(seq, &clear), limit).await?;
                }
                // Full authentication without TLS: the password encrypted to the pinned key.
                Some(0x04) if login.server_public_key.is_some() => {
                    let pem = login.server_public_key.unwrap_or_default().as_bytes();
                    let sealed = rsa_seal(pem, &password, &scramble)?;
                    send(stream, &packet(seq, &sealed), limit).await?;
                }
                // Or to the key the server sends, which whoever answers could: only when the
                // user accepted an unencrypted connection (libmysqlclient refuses by default).
                Some(0x04) if login.sslmode == Some(SslMode::Disable) => {
                    requested_key = true;
                    rec.warn(format!("the password was encrypted to an RSA key the server sent, which was not verified (sslmode is disable; set config.{SERVER_PUBLIC_KEY} to pin it)"));
                    send(stream, &packet(seq, &[0x02]), limit).await?;
                }
                Some(0x04) => {
                    return Err(Failure::new(
                        ProbeCode::AuthUnsupported,
                        format!(
                            "the server asks for {FULL_AUTH} without TLS; the password would be encrypted to an \
                             RSA key the server sends, which whoever answers could send: it was not sent. Enable \
                             TLS on the server, set config.{SERVER_PUBLIC_KEY} to the server's public key (PEM), or \
                             set sslmode to disable to accept the risk"
                        ),
                    ))
                }
                Some(b'-') if requested_key => {
                    requested_key = false;
                    let sealed = rsa_seal(&payload[1..], &password, &scramble)?;
                    send(stream, &packet(seq, &sealed), limit).await?;
                }
                _ => return Err(mismatch()),
            },
            _ => return Err(mismatch()),
        }
    }
    Err(Failure::mismatch_because(
        FRAMING.product,
        format!("no OK or ERR within {MAX_PACKETS} packets"),
    ))
}

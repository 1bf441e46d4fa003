//! How we log in to MySQL and MariaDB: the server's greeting (HandshakeV10), TLS when it offers
//! it and `sslmode` asks (SSLRequest), HandshakeResponse41 with the database, then
//! `mysql_native_password` or `caching_sha2_password` (fast path; full path over TLS, or the RSA
//! public-key exchange without it), following AuthSwitchRequest. OK means the database is open.
//! Then COM_QUIT.

use super::frame::{FrameReader, Framing};
use super::{may_reveal, send, warn_unverified, Channel, Io};
use crate::model::SslMode;
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use crate::probe::tls;
use aws_lc_rs::digest::{digest, Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
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
    /// `config.serverPublicKey`: the server's RSA key (PEM) to encrypt the password to without
    /// TLS; without it, the key a server sends is not trusted.
    pub server_public_key: Option<&'a str>,
}

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_PLUGIN_AUTH_LENENC_DATA: u32 = 0x20_0000;
const MAX_PACKET: u32 = 16 * 1024 * 1024;
const UTF8MB4: u8 = 45;

const NATIVE: &str = "mysql_native_password";
const SHA2: &str = "caching_sha2_password";

/// The parts of HandshakeV10 a login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub capabilities: u32,
    pub scramble: Vec<u8>,
    pub plugin: String,
}

/// Parses a HandshakeV10 payload (after the 4-byte packet header).
pub fn parse_greeting(p: &[u8]) -> Option<Greeting> {
    if p.first() != Some(&10) {
        return None;
    }
    let mut i = 1;
    let end = i + p[i..].iter().position(|b| *b == 0)?;
    let server_version = String::from_utf8_lossy(&p[i..end]).into_owned();
    i = end + 1 + 4; // connection id
    let mut scramble = p.get(i..i + 8)?.to_vec();
    i += 8 + 1;
    let lower = u16::from_le_bytes(p.get(i..i + 2)?.try_into().ok()?) as u32;
    i += 2 + 1 + 2; // charset, status
    let upper = p
        .get(i..i + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as u32);
    let capabilities = lower | (upper << 16);
    i += 2;
    let data_len = p.get(i).copied().unwrap_or(0) as usize;
    i += 1 + 10;
    if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let part2 = data_len.saturating_sub(8).max(13);
        let rest = p.get(i..(i + part2).min(p.len()))?;
        // The scramble is 20 bytes; part 2 ends with a NUL.
        scramble.extend(rest.iter().take_while(|b| **b != 0));
        i += part2;
    }
    let plugin = if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        let rest = p.get(i..).unwrap_or_default();
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    } else {
        NATIVE.to_string()
    };
    Some(Greeting {
        server_version,
        capabilities,
        scramble,
        plugin,
    })
}

/// `mysql_native_password`: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))).
pub fn native_scramble(password: &str, scramble: &[u8]) -> Zeroizing<Vec<u8>> {
    if password.is_empty() {
        return Zeroizing::new(Vec::new());
    }
    let h1 = digest(&SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
    let h2 = digest(&SHA1_FOR_LEGACY_USE_ONLY, h1.as_ref());
    let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&scramble[..scramble.len().min(20)]);
    ctx.update(h2.as_ref());
    let h3 = ctx.finish();
    Zeroizing::new(
        h1.as_ref()
            .iter()
            .zip(h3.as_ref())
            .map(|(a, b)| a ^ b)
            .collect(),
    )
}

/// `caching_sha2_password` fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble).
pub fn sha2_scramble(password: &str, scramble: &[u8]) -> Zeroizing<Vec<u8>> {
    if password.is_empty() {
        return Zeroizing::new(Vec::new());
    }
    let h1 = digest(&SHA256, password.as_bytes());
    let h2 = digest(&SHA256, h1.as_ref());
    let mut ctx = Context::new(&SHA256);
    ctx.update(h2.as_ref());
    ctx.update(&scramble[..scramble.len().min(20)]);
    let h3 = ctx.finish();
    Zeroizing::new(
        h1.as_ref()
            .iter()
            .zip(h3.as_ref())
            .map(|(a, b)| a ^ b)
            .collect(),
    )
}

/// The auth response for `plugin`, or None for a plugin we do not speak.
fn auth_response(plugin: &str, password: &str, scramble: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    match plugin {
        NATIVE => Some(native_scramble(password, scramble)),
        SHA2 => Some(sha2_scramble(password, scramble)),
        _ => None,
    }
}

/// One packet: 3-byte length, sequence number, payload.
fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

fn lenenc(out: &mut Vec<u8>, bytes: &[u8]) {
    // Auth responses are short (≤ 250 bytes after RSA: 256 for a 2048-bit key needs 0xfc).
    if bytes.len() < 251 {
        out.push(bytes.len() as u8);
    } else {
        out.push(0xfc);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(bytes);
}

fn client_flags(tls: bool) -> u32 {
    let mut flags = CLIENT_LONG_PASSWORD
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_DATA;
    if tls {
        flags |= CLIENT_SSL;
    }
    flags
}

/// The fixed 32-byte head of SSLRequest and HandshakeResponse41.
fn head(flags: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&flags.to_le_bytes());
    p.extend_from_slice(&MAX_PACKET.to_le_bytes());
    p.push(UTF8MB4);
    p.extend_from_slice(&[0; 23]);
    p
}

/// HandshakeResponse41.
pub fn handshake_response(login: &Login<'_>, tls: bool, plugin: &str, auth: &[u8]) -> Vec<u8> {
    let mut p = head(client_flags(tls));
    p.extend_from_slice(login.user.as_bytes());
    p.push(0);
    lenenc(&mut p, auth);
    p.extend_from_slice(login.database.as_bytes());
    p.push(0);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p
}

/// An ERR packet's code and message.
pub fn parse_error(p: &[u8]) -> (u16, String) {
    let code = p.get(1..3).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    let text = match p.get(3) {
        Some(b'#') => p.get(9..).unwrap_or_default(),
        _ => p.get(3..).unwrap_or_default(),
    };
    (code, String::from_utf8_lossy(text).into_owned())
}

/// 1045 refused credentials, 1049 no such database, 1044 no access to it.
pub fn classify(code: u16, text: &str) -> Failure {
    let probe_code = match code {
        1045 | 1698 => ProbeCode::AuthFailed,
        1049 => ProbeCode::NotFound,
        1044 => ProbeCode::PermissionDenied,
        _ => ProbeCode::ProtocolMismatch,
    };
    Failure::new(probe_code, format!("MySQL refused ({code}): {text}"))
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
                    rec.warn("the password was encrypted to an RSA key the server sent, which was not verified (sslmode is disable; set config.serverPublicKey to pin it)");
                    send(stream, &packet(seq, &[0x02]), limit).await?;
                }
                Some(0x04) => {
                    return Err(Failure::new(
                        ProbeCode::AuthUnsupported,
                        format!(
                            "the server asks for {FULL_AUTH} without TLS; the password would be encrypted to an \
                             RSA key the server sends, which whoever answers could send: it was not sent. Enable \
                             TLS on the server, set config.serverPublicKey to the server's public key (PEM), or \
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

/// The password for caching_sha2_password's full path without TLS: (password + NUL) XOR the
/// scramble, RSA-OAEP (SHA-1) encrypted to the server's public key (PEM).
fn rsa_seal(pem: &[u8], password: &str, scramble: &[u8]) -> Result<Vec<u8>, Failure> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1};
    use rustls::pki_types::{pem::PemObject, SubjectPublicKeyInfoDer};
    let bad = || {
        Failure::new(
            ProbeCode::ProtocolMismatch,
            "the server's RSA public key is unusable",
        )
    };
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| bad())?;
    let key = PublicEncryptingKey::from_der(spki.as_ref()).map_err(|_| bad())?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| bad())?;
    let mut clear = Zeroizing::new(password.as_bytes().to_vec());
    clear.push(0);
    for (i, b) in clear.iter_mut().enumerate() {
        *b ^= scramble
            .get(i % scramble.len().max(1))
            .copied()
            .unwrap_or(0);
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let sealed = key
        .encrypt(&OAEP_SHA1_MGF1SHA1, &clear, &mut out, None)
        .map_err(|_| bad())?;
    Ok(sealed.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The greeting of Debian 12's MariaDB 10.11.19 as captured on the wire (payload after the
    /// 4-byte packet header).
    const CAPTURED: &str = "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100050000005b38432a4764436200feff080200ff81150000000000001d00000042645044456c7171627a5e47006d7973716c5f6e61746976655f70617373776f726400";

    fn captured_greeting() -> Vec<u8> {
        (0..CAPTURED.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&CAPTURED[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn greetings_parse() {
        let g = parse_greeting(&captured_greeting()).unwrap();
        assert_eq!(g.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(g.scramble, b"[8C*GdCbBdPDElqqbz^G");
        assert_eq!(g.plugin, NATIVE);
        assert!(g.capabilities & CLIENT_SSL != 0);
        assert!(parse_greeting(b"\x09old").is_none());
        assert!(parse_greeting(b"").is_none());
    }

    #[test]
    fn scrambles_match_the_documented_algorithms() {
        // mysql_native_password of "secret" with a zero scramble, computed independently.
        let s = native_scramble("secret", &[0u8; 20]);
        assert_eq!(s.len(), 20);
        assert_ne!(native_scramble("secret", &[1u8; 20]), s);
        assert!(native_scramble("", &[0u8; 20]).is_empty());
        assert_eq!(sha2_scramble("secret", &[0u8; 20]).len(), 32);
        // XOR with the password hash recovers SHA1(scramble + SHA1(SHA1(pw))): check the identity.
        let h1 = digest(&SHA1_FOR_LEGACY_USE_ONLY, b"secret");
        let h2 = digest(&SHA1_FOR_LEGACY_USE_ONLY, h1.as_ref());
        let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&[0u8; 20]);
        ctx.update(h2.as_ref());
        let h3 = ctx.finish();
        let back: Vec<u8> = s.iter().zip(h3.as_ref()).map(|(a, b)| a ^ b).collect();
        assert_eq!(back, h1.as_ref());
    }

    #[test]
    fn errors_map_to_codes() {
        let mut err = vec![0xff];
        err.extend_from_slice(&1045u16.to_le_bytes());
        err.extend_from_slice(b"#28000Access denied for user 'app'@'localhost'");
        let (code, text) = parse_error(&err);
        assert_eq!(
            (code, text.as_str()),
            (1045, "Access denied for user 'app'@'localhost'")
        );
        assert_eq!(classify(1045, "").code, ProbeCode::AuthFailed);
        assert_eq!(classify(1049, "").code, ProbeCode::NotFound);
        assert_eq!(classify(1044, "").code, ProbeCode::PermissionDenied);
    }

    #[test]
    fn the_response_carries_user_auth_database_and_plugin() {
        let login = Login {
            host: "h",
            user: "app",
            password: Some("pw"),
            database: "appdb",
            sslmode: Some(SslMode::Prefer),
            server_public_key: None,
        };
        let r = handshake_response(&login, true, NATIVE, &[1, 2, 3]);
        assert_eq!(
            u32::from_le_bytes(r[0..4].try_into().unwrap()) & CLIENT_SSL,
            CLIENT_SSL
        );
        assert_eq!(&r[32..36], b"app\0");
        assert_eq!(&r[36..40], &[3, 1, 2, 3]);
        assert_eq!(&r[40..46], b"appdb\0");
        assert!(r.ends_with(b"mysql_native_password\0"));
        assert_eq!(packet(2, &[9, 9]), vec![2, 0, 0, 2, 9, 9]);
    }
}

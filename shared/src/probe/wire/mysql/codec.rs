//! MySQL's wire protocol, pure: the greeting, HandshakeResponse41, the password scrambles of
//! `mysql_native_password` and `caching_sha2_password`, packets, errors, and the RSA sealing of
//! the full path without TLS. `mod.rs` drives the login with it (as sqlx separates its
//! `protocol/` from its `connection/`).

use super::Login;
use crate::probe::report::{Failure, ProbeCode};
use aws_lc_rs::digest::{digest, Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use zeroize::Zeroizing;

pub(super) const CLIENT_LONG_PASSWORD: u32 = 0x1;
pub(super) const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
pub(super) const CLIENT_PROTOCOL_41: u32 = 0x200;
pub(super) const CLIENT_SSL: u32 = 0x800;
pub(super) const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
pub(super) const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
pub(super) const CLIENT_PLUGIN_AUTH_LENENC_DATA: u32 = 0x20_0000;
pub(super) const MAX_PACKET: u32 = 16 * 1024 * 1024;
pub(super) const UTF8MB4: u8 = 45;

pub(super) const NATIVE: &str = "mysql_native_password";
pub(super) const SHA2: &str = "caching_sha2_password";

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
pub(super) fn auth_response(
    plugin: &str,
    password: &str,
    scramble: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    match plugin {
        NATIVE => Some(native_scramble(password, scramble)),
        SHA2 => Some(sha2_scramble(password, scramble)),
        _ => None,
    }
}

/// One packet: 3-byte length, sequence number, payload.
pub(super) fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

pub(super) fn lenenc(out: &mut Vec<u8>, bytes: &[u8]) {
    // Auth responses are short (≤ 250 bytes after RSA: 256 for a 2048-bit key needs 0xfc).
    if bytes.len() < 251 {
        out.push(bytes.len() as u8);
    } else {
        out.push(0xfc);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(bytes);
}

pub(super) fn client_flags(tls: bool) -> u32 {
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
pub(super) fn head(flags: u32) -> Vec<u8> {
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

/// The password for caching_sha2_password's full path without TLS: (password + NUL) XOR the
/// scramble, RSA-OAEP (SHA-1) encrypted to the server's public key (PEM).
pub(super) fn rsa_seal(pem: &[u8], password: &str, scramble: &[u8]) -> Result<Vec<u8>, Failure> {
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
    use crate::model::SslMode;

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

//! How we log in to MongoDB: TLS for `mongodb+srv://` and `tls=true`, `hello` with
//! `saslSupportedMechs`, SCRAM-SHA-256 (SCRAM-SHA-1 when that is all the server offers) against
//! `authSource` (default `admin`) with saslStart / saslContinue, then `listCollections` (nameOnly)
//! on the database. MongoDB lists a missing database as empty, so there is no `not_found` here.

use super::bson::{self, get, Bson, Doc};
use super::frame::{FrameReader, Framing};
use super::scram::{Hash, Scram};
use super::{send, Io};
use crate::probe::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use crate::probe::tls::{self, Verify};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub use crate::kinds::mongo::Settings;

/// One OP_MSG (opcode 2013) with a single body section.
pub fn op_msg(request_id: i32, doc: &Doc) -> Vec<u8> {
    let body = bson::encode(doc);
    let mut out = Vec::with_capacity(body.len() + 21);
    out.extend_from_slice(&((21 + body.len()) as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&2013i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&body);
    out
}

fn mismatch() -> Failure {
    Failure::mismatch(FRAMING.product)
}

/// Runs one command and returns its reply document.
async fn command<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    request_id: &mut i32,
    doc: &Doc,
    limit: Duration,
) -> Result<Doc, Failure> {
    *request_id += 1;
    send(stream, &op_msg(*request_id, doc), limit).await?;
    let whole = frames.next(stream, &FRAMING, limit).await?;
    let response_to = i32::from_le_bytes([whole[8], whole[9], whole[10], whole[11]]);
    let opcode = i32::from_le_bytes([whole[12], whole[13], whole[14], whole[15]]);
    if opcode != 2013 || response_to != *request_id || whole[20] != 0 {
        return Err(mismatch());
    }
    bson::decode(&whole[21..]).ok_or_else(mismatch)
}

/// OP_MSG replies: a little-endian length that counts itself, a 16-byte header, flags and a
/// kind-0 section. MongoDB allows 48 MB; the replies a probe asks for (hello, SASL,
/// listCollections by name) are small, so 4 MiB keeps 16 hostile probes in a function's memory.
const FRAMING: Framing = Framing {
    product: "MongoDB",
    header: 21,
    length: |h| {
        let len = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        (len >= 21).then_some(len as usize)
    },
    cap: 4 << 20,
};

fn ok(reply: &Doc) -> bool {
    get(reply, "ok").and_then(Bson::number) == Some(1.0)
}

/// A failed command as a probe failure: 18 refused credentials, 13 not authorized.
fn refused(reply: &Doc, what: &str) -> Failure {
    let code = get(reply, "code").and_then(Bson::number).unwrap_or(0.0) as i64;
    let text = match get(reply, "errmsg") {
        Some(Bson::Str(s)) => s.clone(),
        _ => String::new(),
    };
    let probe_code = match code {
        18 => ProbeCode::AuthFailed,
        13 => ProbeCode::PermissionDenied,
        _ => ProbeCode::ProtocolMismatch,
    };
    Failure::new(
        probe_code,
        format!("MongoDB refused {what} ({code}): {text}"),
    )
}

fn s(v: &str) -> Bson {
    Bson::Str(v.to_string())
}

/// Logs in on a connected (guarded) socket.
pub async fn login<S: Io>(
    stream: S,
    host: &str,
    settings: &Settings,
    user: Option<&str>,
    password: Option<&str>,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    if !settings.tls {
        return session(&mut { stream }, settings, user, password, limit, rec).await;
    }
    let mut tls_stream =
        tls::handshake(stream, host, Verify::Full, limit, Instant::now(), rec).await?;
    session(&mut tls_stream, settings, user, password, limit, rec).await
}

async fn session<S: Io + ?Sized>(
    stream: &mut S,
    settings: &Settings,
    user: Option<&str>,
    password: Option<&str>,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    let mut frames = FrameReader::default();
    let mut id = 0;
    let started = Instant::now();
    let mut hello: Doc = vec![("hello".into(), Bson::Int32(1))];
    if let Some(u) = user {
        hello.push((
            "saslSupportedMechs".into(),
            s(&format!("{}.{u}", settings.auth_source)),
        ));
    }
    hello.push(("$db".into(), s("admin")));
    let reply = command(stream, &mut frames, &mut id, &hello, limit).await?;
    if !ok(&reply) {
        return Err(mismatch());
    }
    rec.reached(Depth::Reachable);
    rec.record(
        StepName::Protocol,
        true,
        started.elapsed().as_millis() as u64,
        "MongoDB answered hello",
    );
    let (Some(user), Some(password)) = (user, password) else {
        return Ok("MongoDB answered hello; credentials were not checked (no username and password in authConfig)".into());
    };
    let offered: Vec<String> = match get(&reply, "saslSupportedMechs") {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|m| match m {
                Bson::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    // An unknown user gets no list: SCRAM-SHA-256 then fails as a wrong password would.
    let sha1_only = !offered.is_empty() && !offered.iter().any(|m| m == "SCRAM-SHA-256");
    if sha1_only && !offered.iter().any(|m| m == "SCRAM-SHA-1") {
        return Err(Failure::new(
            ProbeCode::AuthUnsupported,
            format!(
                "the server offers only {} for this user",
                offered.join(", ")
            ),
        ));
    }
    let started = Instant::now();
    let mechanism = if sha1_only {
        "SCRAM-SHA-1"
    } else {
        "SCRAM-SHA-256"
    };
    let auth = scram(
        stream,
        &mut frames,
        &mut id,
        settings,
        user,
        password,
        sha1_only,
        limit,
    )
    .await;
    let ms = started.elapsed().as_millis() as u64;
    match &auth {
        Ok(()) => {
            rec.reached(Depth::Authenticated);
            rec.record(
                StepName::Auth,
                true,
                ms,
                format!(
                    "user {user} accepted ({mechanism}, authSource {})",
                    settings.auth_source
                ),
            );
        }
        Err(f) => rec.record(StepName::Auth, false, ms, f.message.clone()),
    }
    auth?;
    let started = Instant::now();
    let list: Doc = vec![
        ("listCollections".into(), Bson::Int32(1)),
        ("nameOnly".into(), Bson::Bool(true)),
        ("$db".into(), s(&settings.database)),
    ];
    let reply = command(stream, &mut frames, &mut id, &list, limit).await?;
    let ms = started.elapsed().as_millis() as u64;
    if !ok(&reply) {
        let failure = refused(&reply, "listCollections");
        rec.record(StepName::Access, false, ms, failure.message.clone());
        return Err(failure);
    }
    rec.reached(Depth::Authorized);
    rec.record(
        StepName::Access,
        true,
        ms,
        format!("database {} is listable", settings.database),
    );
    Ok(format!(
        "logged in as {user} ({mechanism}) and listed database {}",
        settings.database
    ))
}

/// saslStart / saslContinue with SCRAM; SCRAM-SHA-1 hashes MongoDB's password digest.
#[allow(clippy::too_many_arguments)]
async fn scram<S: Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    id: &mut i32,
    settings: &Settings,
    user: &str,
    password: &str,
    sha1: bool,
    limit: Duration,
) -> Result<(), Failure> {
    let (hash, secret, mechanism) = if sha1 {
        let digest = digest::compute_hex(format!("{user}:mongo:{password}").as_bytes());
        (Hash::Sha1, digest, "SCRAM-SHA-1")
    } else {
        (
            Hash::Sha256,
            Zeroizing::new(password.as_bytes().to_vec()),
            "SCRAM-SHA-256",
        )
    };
    let mut client = Scram::new(hash, user, &secret)?;
    let start: Doc = vec![
        ("saslStart".into(), Bson::Int32(1)),
        ("mechanism".into(), s(mechanism)),
        (
            "payload".into(),
            Bson::Binary(client.client_first().into_bytes()),
        ),
        ("autoAuthorize".into(), Bson::Int32(1)),
        (
            "options".into(),
            Bson::Doc(vec![("skipEmptyExchange".into(), Bson::Bool(true))]),
        ),
        ("$db".into(), s(&settings.auth_source)),
    ];
    let reply = command(stream, frames, id, &start, limit).await?;
    if !ok(&reply) {
        return Err(refused(&reply, "saslStart"));
    }
    let payload = |r: &Doc| match get(r, "payload") {
        Some(Bson::Binary(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err(mismatch()),
    };
    let conversation = get(&reply, "conversationId")
        .cloned()
        .ok_or_else(mismatch)?;
    let last = client.client_final(&payload(&reply)?)?;
    let cont: Doc = vec![
        ("saslContinue".into(), Bson::Int32(1)),
        ("conversationId".into(), conversation.clone()),
        ("payload".into(), Bson::Binary(last.into_bytes())),
        ("$db".into(), s(&settings.auth_source)),
    ];
    let reply = command(stream, frames, id, &cont, limit).await?;
    if !ok(&reply) {
        return Err(refused(&reply, "saslContinue"));
    }
    client.verify_server(&payload(&reply)?)?;
    if get(&reply, "done") != Some(&Bson::Bool(true)) {
        // A server without skipEmptyExchange wants one empty round more.
        let empty: Doc = vec![
            ("saslContinue".into(), Bson::Int32(1)),
            ("conversationId".into(), conversation),
            ("payload".into(), Bson::Binary(Vec::new())),
            ("$db".into(), s(&settings.auth_source)),
        ];
        let reply = command(stream, frames, id, &empty, limit).await?;
        if !ok(&reply) {
            return Err(refused(&reply, "saslContinue"));
        }
    }
    Ok(())
}

/// MongoDB's SCRAM-SHA-1 password: the hex MD5 of `user:mongo:password`.
mod digest {
    use md5::{Digest, Md5};
    use zeroize::Zeroizing;

    pub fn compute_hex(input: &[u8]) -> Zeroizing<Vec<u8>> {
        let digest = Md5::digest(input);
        // Straight into the zeroized buffer: no intermediate string holds the digest's hex.
        let mut hex = Zeroizing::new(vec![0u8; 2 * digest.len()]);
        hex::encode_to_slice(digest, &mut hex[..]).expect("a buffer twice the digest's length");
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha1_password_is_mongodbs_digest() {
        // MongoDB's documented example digest for user "user", password "pencil".
        let d = digest::compute_hex(b"user:mongo:pencil");
        assert_eq!(
            String::from_utf8(d.to_vec()).unwrap(),
            "1c33006ec1ffd90f9cadcbcc0e118200"
        );
    }

    #[test]
    fn op_msg_frames_one_body_section() {
        let m = op_msg(7, &vec![("hello".into(), Bson::Int32(1))]);
        assert_eq!(
            i32::from_le_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(i32::from_le_bytes(m[4..8].try_into().unwrap()), 7);
        assert_eq!(i32::from_le_bytes(m[12..16].try_into().unwrap()), 2013);
        assert_eq!(m[20], 0);
    }
}

//! How we log in to SFTP: a real SSH handshake (the `russh` crate, aws-lc-rs crypto), the server's
//! host key fingerprint reported (`SHA256:…`) and, when `config.hostKeyFingerprint` pins one,
//! checked before anything else (a mismatch sends no credentials); password or private key
//! (OpenSSH format: ed25519, ECDSA, RSA; optional passphrase); then the `sftp` subsystem and a stat
//! of `config.path` (default `.`) with the SFTP v3 messages written here (INIT, STAT).

use super::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use super::wire::frame::{FrameReader, Framing};
use super::wire::send;
use russh::client::{self, AuthResult};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who logs in where.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub private_key: Option<&'a str>,
    pub passphrase: Option<&'a str>,
    pub path: &'a str,
    pub pinned: Option<&'a str>,
}

/// Notes the server's host key and accepts it unless a pinned fingerprint differs (the SFTP
/// server's, and a tunnel's bastion's).
pub(crate) struct HostKey {
    pub(crate) pinned: Option<String>,
    pub(crate) seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.fingerprint(HashAlg::Sha256).to_string()
            }
            PublicKeyOrCertificate::Certificate(c) => {
                c.public_key().fingerprint(HashAlg::Sha256).to_string()
            }
        };
        let accepted = self
            .pinned
            .as_deref()
            .is_none_or(|p| p.trim() == fingerprint);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fingerprint);
        }
        Ok(accepted)
    }

    // A probe opens its own channels and accepts none from the server: a hostile server opening
    // channel after channel would otherwise grow the session without bound. Dropping the reply
    // rejects the channel.
    async fn server_channel_open_session(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: &str,
        _: u32,
        _: &str,
        _: u32,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: &str,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: &str,
        _: u32,
        _: &str,
        _: u32,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: &str,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _: russh::Channel<client::Msg>,
        _: &str,
        _: u32,
        _: client::ChannelOpenHandle,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The client settings of a probe's SSH session: inactivity bounded, and few packets buffered
/// per channel (russh re-opens the window on arrival, not on read: 100 packets of up to 256 KiB
/// each would let a server park 26 MB per probe).
pub(crate) fn client_config(inactivity: Duration) -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: Some(inactivity),
        channel_buffer_size: 8,
        ..client::Config::default()
    })
}

fn failure(code: ProbeCode, message: impl Into<String>) -> Failure {
    Failure::new(code, message)
}

/// The SSH session: handshake, authentication, SFTP stat.
pub async fn login<S: super::wire::Io + 'static>(
    stream: S,
    login: &Login<'_>,
    limit: Duration,
    rec: &mut Recorder,
) -> Result<String, Failure> {
    // The key is opened first: a bad one (or one over the KDF cap) ends the probe before any
    // network exchange.
    let key = match login.private_key {
        Some(pem) => Some(super::kdf::ssh_key(pem, login.passphrase).await?),
        None => None,
    };
    let seen = Arc::new(Mutex::new(None));
    let handler = HostKey {
        pinned: login.pinned.map(str::to_string),
        seen: seen.clone(),
    };
    let config = client_config(limit);
    let started = Instant::now();
    let connected =
        tokio::time::timeout(limit, client::connect_stream(config, stream, handler)).await;
    let fingerprint = seen.lock().ok().and_then(|s| s.clone());
    let ms = started.elapsed().as_millis() as u64;
    let mut session = match connected {
        Err(_) => return Err(failure(ProbeCode::Timeout, "the SSH handshake timed out")),
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            return Err(match (&fingerprint, login.pinned) {
                (Some(f), Some(pin)) if f.as_str() != pin.trim() => {
                    rec.reached(Depth::Reachable);
                    rec.server("SSH", f);
                    rec.record(StepName::Protocol, false, ms, format!("host key {f}"));
                    failure(
                        ProbeCode::HostKeyMismatch,
                        format!("the server's host key is {f}, not the pinned {pin}; no credentials were sent"),
                    )
                }
                _ => failure(
                    ProbeCode::ProtocolMismatch,
                    format!("the SSH handshake failed: {e}"),
                ),
            })
        }
    };
    rec.reached(Depth::Reachable);
    let fingerprint = fingerprint.unwrap_or_default();
    rec.record(
        StepName::Protocol,
        true,
        ms,
        format!("SSH host key {fingerprint}"),
    );
    rec.server("SSH", &fingerprint);
    rec.host_key(&fingerprint);
    let started = Instant::now();
    let auth = authenticate(&mut session, login, key, limit).await;
    let ms = started.elapsed().as_millis() as u64;
    match &auth {
        Ok(method) => {
            rec.reached(Depth::Authenticated);
            rec.record(
                StepName::Auth,
                true,
                ms,
                format!("user {} accepted ({method})", login.user),
            );
        }
        Err(f) => rec.record(StepName::Auth, false, ms, f.message.clone()),
    }
    let method = auth?;
    let started = Instant::now();
    let access = tokio::time::timeout(limit, stat(&session, login.path, limit))
        .await
        .unwrap_or_else(|_| {
            Err(failure(
                ProbeCode::Timeout,
                "the SFTP subsystem did not answer",
            ))
        });
    let ms = started.elapsed().as_millis() as u64;
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    match access {
        Ok(detail) => {
            rec.reached(Depth::Authorized);
            rec.record(StepName::Access, true, ms, detail);
            Ok(format!(
                "logged in as {} ({method}); {} is readable over SFTP",
                login.user, login.path
            ))
        }
        Err(f) => {
            rec.record(StepName::Access, false, ms, f.message.clone());
            Err(f)
        }
    }
}

/// Private key first when there is one, else the password.
async fn authenticate(
    session: &mut client::Handle<HostKey>,
    login: &Login<'_>,
    key: Option<russh::keys::PrivateKey>,
    limit: Duration,
) -> Result<&'static str, Failure> {
    let within =
        |what: &'static str| move |_| failure(ProbeCode::Timeout, format!("{what} timed out"));
    let refused = |e: russh::Error| {
        failure(
            ProbeCode::ProtocolMismatch,
            format!("SSH authentication failed: {e}"),
        )
    };
    let (result, method) = match (key, login.password) {
        (Some(key), _) => {
            let hash = tokio::time::timeout(limit, session.best_supported_rsa_hash())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            let result =
                tokio::time::timeout(limit, session.authenticate_publickey(login.user, key))
                    .await
                    .map_err(within("public key authentication"))?
                    .map_err(refused)?;
            (result, "public key")
        }
        (None, Some(password)) => {
            let result =
                tokio::time::timeout(limit, session.authenticate_password(login.user, password))
                    .await
                    .map_err(within("password authentication"))?
                    .map_err(refused)?;
            (result, "password")
        }
        (None, None) => {
            return Err(failure(
                ProbeCode::AuthFailed,
                "authConfig has neither password nor privateKey",
            ))
        }
    };
    match result {
        AuthResult::Success => Ok(method),
        AuthResult::Failure { .. } => Err(failure(
            ProbeCode::AuthFailed,
            format!("the SSH server refused the {method} of user {}", login.user),
        )),
    }
}

const SSH_FXP_INIT: u8 = 1;
const SSH_FXP_VERSION: u8 = 2;
const SSH_FXP_STAT: u8 = 17;
const SSH_FXP_STATUS: u8 = 101;
const SSH_FXP_ATTRS: u8 = 105;

/// One SFTP packet: length, type, payload.
pub fn sftp_packet(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// SSH_FXP_STAT of `path` with request id 1.
pub fn stat_request(path: &str) -> Vec<u8> {
    let mut p = 1u32.to_be_bytes().to_vec();
    p.extend_from_slice(&(path.len() as u32).to_be_bytes());
    p.extend_from_slice(path.as_bytes());
    sftp_packet(SSH_FXP_STAT, &p)
}

/// What a STAT answer means: ATTRS is there; STATUS 2 no such file, 3 permission denied.
pub fn stat_outcome(kind: u8, payload: &[u8], path: &str) -> Result<String, Failure> {
    match kind {
        SSH_FXP_ATTRS => Ok(format!("{path} exists")),
        SSH_FXP_STATUS => {
            let code = payload
                .get(4..8)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            Err(match code {
                2 => failure(ProbeCode::NotFound, format!("{path} does not exist")),
                3 => failure(
                    ProbeCode::PermissionDenied,
                    format!("{path} is not accessible to this user"),
                ),
                c => failure(
                    ProbeCode::ProtocolMismatch,
                    format!("SFTP stat of {path} failed (status {c})"),
                ),
            })
        }
        _ => Err(failure(
            ProbeCode::ProtocolMismatch,
            "the SFTP server answered out of protocol",
        )),
    }
}

/// Opens the `sftp` subsystem, INIT (version 3), STAT of the path.
async fn stat(
    session: &client::Handle<HostKey>,
    path: &str,
    limit: Duration,
) -> Result<String, Failure> {
    let unavailable = |e: russh::Error| {
        failure(
            ProbeCode::PermissionDenied,
            format!("the SFTP subsystem is not available: {e}"),
        )
    };
    let channel = session.channel_open_session().await.map_err(unavailable)?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(unavailable)?;
    let mut stream = channel.into_stream();
    send(
        &mut stream,
        &sftp_packet(SSH_FXP_INIT, &3u32.to_be_bytes()),
        limit,
    )
    .await?;
    let mut frames = FrameReader::default();
    let (kind, _) = read_sftp(&mut stream, &mut frames, limit).await?;
    if kind != SSH_FXP_VERSION {
        return Err(failure(
            ProbeCode::ProtocolMismatch,
            "the SFTP server did not answer INIT",
        ));
    }
    send(&mut stream, &stat_request(path), limit).await?;
    let (kind, payload) = read_sftp(&mut stream, &mut frames, limit).await?;
    stat_outcome(kind, &payload, path)
}

/// SFTP packets: a 4-byte big-endian length, then the type. The answers to INIT and STAT are a
/// few hundred bytes; 256 KiB is generous.
const SFTP_FRAMING: Framing = Framing {
    product: "an SFTP server",
    header: 5,
    length: |h| {
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        (len > 0).then(|| len + 4)
    },
    cap: 256 << 10,
};

async fn read_sftp<S: super::wire::Io + ?Sized>(
    stream: &mut S,
    frames: &mut FrameReader,
    limit: Duration,
) -> Result<(u8, Vec<u8>), Failure> {
    let whole = frames.next(stream, &SFTP_FRAMING, limit).await?;
    Ok((whole[4], whole[5..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_messages_follow_sftp_v3() {
        let r = stat_request("data/in");
        assert_eq!(
            u32::from_be_bytes(r[0..4].try_into().unwrap()) as usize,
            r.len() - 4
        );
        assert_eq!(r[4], SSH_FXP_STAT);
        assert_eq!(&r[5..9], &1u32.to_be_bytes());
        assert_eq!(&r[13..], b"data/in");
        let status = |code: u32| {
            let mut p = 1u32.to_be_bytes().to_vec();
            p.extend_from_slice(&code.to_be_bytes());
            stat_outcome(SSH_FXP_STATUS, &p, "x").unwrap_err().code
        };
        assert_eq!(status(2), ProbeCode::NotFound);
        assert_eq!(status(3), ProbeCode::PermissionDenied);
        assert!(stat_outcome(SSH_FXP_ATTRS, &[0, 0, 0, 1, 0, 0, 0, 0], "x").is_ok());
    }
}

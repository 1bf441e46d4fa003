//! Probes through an SSH bastion (`config.tunnel`): the bastion is connected to through the SSRF
//! guard like any destination, its host key is checked against the pin before any credential
//! goes to it, the tunnel logs in (the tenant's platform key by default), and the bastion opens a
//! `direct-tcpip` channel to the target. The inner probe then runs over that channel exactly as
//! it runs over TCP. The target is opened by the bastion, inside the customer's network: our
//! guard does not judge it.

use super::report::{Failure, ProbeCode, Recorder, StepName};
use super::ssh::HostKey;
use crate::kinds::tunnel::{Tunnel, TunnelAuth};
use russh::client::{self, AuthResult, Msg};
use russh::keys::PrivateKeyWithHashAlg;
use russh::ChannelStream;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The forwarded channel, and the SSH session that carries it (dropping the session would close
/// the channel).
pub struct Tunnelled {
    stream: ChannelStream<Msg>,
    session: Option<client::Handle<HostKey>>,
}

impl Drop for Tunnelled {
    /// Ends the bastion session with the probe: its task would otherwise live on as long as a
    /// server keeps it busy, into later invocations.
    fn drop(&mut self) {
        let (Some(session), Ok(runtime)) =
            (self.session.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let bye = session.disconnect(russh::Disconnect::ByApplication, "", "en");
            let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
        });
    }
}

impl AsyncRead for Tunnelled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tunnelled {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How the tunnel proves itself, opened before any network exchange.
enum Credential<'a> {
    Key(Box<russh::keys::PrivateKey>, &'static str),
    Password(&'a str),
}

/// What the tenant must do when the tunnel would use a key it does not have yet.
const NO_TENANT_KEY: &str = "this tenant has no tunnel key yet: GET /api/v1/tunnel-key and add its publicKey to the bastion's authorized_keys (or give authConfig.tunnel.privateKey or password)";

async fn credential<'a>(auth: &TunnelAuth<'a>) -> Result<Credential<'a>, Failure> {
    let named = |name: &'static str| {
        move |e: Failure| {
            Failure::new(
                ProbeCode::InvalidConfig,
                e.message.replace("authConfig.privateKey", name),
            )
        }
    };
    match auth {
        TunnelAuth::TenantKey(None) => Err(Failure::new(ProbeCode::InvalidConfig, NO_TENANT_KEY)),
        TunnelAuth::TenantKey(Some(pem)) => Ok(Credential::Key(
            Box::new(
                super::kdf::ssh_key(pem, None)
                    .await
                    .map_err(named("the tenant's tunnel key"))?,
            ),
            "the tenant's tunnel key",
        )),
        TunnelAuth::Key { pem, passphrase } => Ok(Credential::Key(
            Box::new(
                super::kdf::ssh_key(pem, *passphrase)
                    .await
                    .map_err(named("authConfig.tunnel.privateKey"))?,
            ),
            "authConfig.tunnel.privateKey",
        )),
        TunnelAuth::Password(p) => Ok(Credential::Password(p)),
    }
}

/// Over `bastion` (a TCP stream the guard admitted, recorded as `tunnel.tcp` by the caller): the
/// SSH handshake with the host key checked (`tunnel.ssh`), the login (`tunnel.auth`), and the
/// forward to `target` (`tunnel.forward`).
pub async fn open(
    bastion: tokio::net::TcpStream,
    tunnel: &Tunnel<'_>,
    target: (&str, u16),
    limit: Duration,
    rec: &mut Recorder,
) -> Result<Tunnelled, Failure> {
    let credential = credential(&tunnel.auth).await?;
    let seen = Arc::new(Mutex::new(None));
    let handler = HostKey {
        pinned: tunnel.pinned.map(str::to_string),
        seen: seen.clone(),
    };
    let config = super::ssh::client_config(limit * 4);
    let started = Instant::now();
    let connected =
        tokio::time::timeout(limit, client::connect_stream(config, bastion, handler)).await;
    let fingerprint = seen.lock().ok().and_then(|s| s.clone());
    let ms = started.elapsed().as_millis() as u64;
    let bastion = format!("{}:{}", tunnel.host, tunnel.port);
    let mut session = match connected {
        Ok(Ok(session)) => session,
        failed => {
            let failure = match (&fingerprint, tunnel.pinned, failed) {
                (Some(f), Some(pin), _) if f.as_str() != pin.trim() => Failure::new(
                    ProbeCode::HostKeyMismatch,
                    format!("the bastion's host key is {f}, not the pinned {pin}; nothing was sent to it"),
                ),
                (_, _, Err(_)) => Failure::new(
                    ProbeCode::Timeout,
                    format!("the SSH handshake with the bastion {bastion} timed out"),
                ),
                (_, _, Ok(Err(e))) => Failure::new(
                    ProbeCode::ProtocolMismatch,
                    format!("the SSH handshake with the bastion {bastion} failed: {e}"),
                ),
                (_, _, Ok(Ok(_))) => unreachable!("matched above"),
            };
            rec.record(StepName::TunnelSsh, false, ms, failure.message.clone());
            return Err(failure);
        }
    };
    let fingerprint = fingerprint.unwrap_or_default();
    rec.record(
        StepName::TunnelSsh,
        true,
        ms,
        format!("bastion {bastion}, host key {fingerprint}"),
    );
    let started = Instant::now();
    let auth = login(&mut session, tunnel.username, credential, limit).await;
    let ms = started.elapsed().as_millis() as u64;
    match &auth {
        Ok(how) => rec.record(
            StepName::TunnelAuth,
            true,
            ms,
            format!("user {} accepted ({how})", tunnel.username),
        ),
        Err(f) => rec.record(StepName::TunnelAuth, false, ms, f.message.clone()),
    }
    auth?;
    // The bastion accepted the login: its key is the one to trust on first use (even if the
    // target behind it then fails), so the next test sends nothing to another server.
    rec.tunnel_host_key(&fingerprint);
    let started = Instant::now();
    let (host, port) = target;
    let opened = tokio::time::timeout(
        limit,
        session.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0),
    )
    .await;
    let ms = started.elapsed().as_millis() as u64;
    let channel = match opened {
        Ok(Ok(channel)) => channel,
        failed => {
            let failure = match failed {
                Err(_) => Failure::new(
                    ProbeCode::Timeout,
                    format!("the bastion did not open a forward to {host}:{port} in time"),
                ),
                Ok(Err(e)) => Failure::new(
                    ProbeCode::ConnectionRefused,
                    format!("the bastion could not open a forward to {host}:{port} ({e})"),
                ),
                Ok(Ok(_)) => unreachable!("matched above"),
            };
            rec.record(StepName::TunnelForward, false, ms, failure.message.clone());
            return Err(failure);
        }
    };
    rec.record(
        StepName::TunnelForward,
        true,
        ms,
        format!("the bastion opened {host}:{port}"),
    );
    Ok(Tunnelled {
        stream: channel.into_stream(),
        session: Some(session),
    })
}

/// The tunnel's login: its key (the RSA hash the bastion prefers) or its password.
async fn login(
    session: &mut client::Handle<HostKey>,
    user: &str,
    credential: Credential<'_>,
    limit: Duration,
) -> Result<&'static str, Failure> {
    let timed_out = |_| Failure::new(ProbeCode::Timeout, "the bastion's login timed out");
    let refused = |e: russh::Error| {
        Failure::new(
            ProbeCode::ProtocolMismatch,
            format!("the bastion's login failed: {e}"),
        )
    };
    let (result, how) = match credential {
        Credential::Key(key, how) => {
            let hash = tokio::time::timeout(limit, session.best_supported_rsa_hash())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(*key), hash);
            let result = tokio::time::timeout(limit, session.authenticate_publickey(user, key))
                .await
                .map_err(timed_out)?
                .map_err(refused)?;
            (result, how)
        }
        Credential::Password(password) => {
            let result = tokio::time::timeout(limit, session.authenticate_password(user, password))
                .await
                .map_err(timed_out)?
                .map_err(refused)?;
            (result, "authConfig.tunnel.password")
        }
    };
    match result {
        AuthResult::Success => Ok(how),
        AuthResult::Failure { .. } => Err(Failure::new(
            ProbeCode::AuthFailed,
            format!("the bastion refused {how} for user {user}"),
        )),
    }
}

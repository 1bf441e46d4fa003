//! HTTP probes: HEAD (GET when HEAD gets 405), redirects followed by hand, every hop through the guard.

use super::net::{resolve_checked, Overrides, Pins};
use super::report::{Depth, Failure, ProbeCode, Recorder, StepName, TlsReason};
use super::ssrf::{literal_host, Guard};
use super::tls;
use crate::kinds::http::{HttpAuth, TOKEN_URL_FIELD};
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};
use url::Url;

pub const MAX_REDIRECTS: usize = 3;

pub struct HttpProbe<'a> {
    pub client: &'a reqwest::Client,
    pub pins: &'a Pins,
    pub guard: &'a Guard,
    /// `PROBE_RESOLVE` (tests and local look-alikes only).
    pub overrides: &'a Overrides,
    pub connect_timeout: Duration,
}

impl HttpProbe<'_> {
    pub async fn run(
        &self,
        start: Url,
        auth: &HttpAuth,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let fetched;
        let auth = match auth {
            HttpAuth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let token = self
                    .client_credentials(token_url, client_id, client_secret, scope.as_deref(), rec)
                    .await?;
                fetched = HttpAuth::Bearer(token);
                &fetched
            }
            other => other,
        };
        let origin = start.origin();
        let mut url = start;
        for hop in 0..=MAX_REDIRECTS {
            self.check_destination(&url, rec).await?;
            // Credentials go only to the origin they were configured for.
            let auth = if url.origin() == origin {
                auth
            } else {
                &HttpAuth::None
            };
            let (status, location) = self.request(&url, auth, rec).await?;
            rec.reached(Depth::Reachable);
            let sent_credentials = !matches!(auth, HttpAuth::None);
            if status.is_redirection() {
                let Some(location) = location else {
                    let (result, depth) = classify(status, sent_credentials);
                    rec.reached(depth);
                    return result;
                };
                let next = url.join(&location).map_err(|_| {
                    Failure::new(ProbeCode::HttpError, "the redirect has an invalid Location")
                })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(Failure::new(
                        ProbeCode::DestinationBlocked,
                        format!("redirect to a {} URL refused", next.scheme()),
                    ));
                }
                if hop == MAX_REDIRECTS {
                    return Ok(format!(
                        "reachable; stopped after {MAX_REDIRECTS} redirects{}",
                        unchecked(sent_credentials)
                    ));
                }
                url = next;
                continue;
            }
            let (result, depth) = classify(status, sent_credentials);
            rec.reached(depth);
            if sent_credentials && depth == Depth::Authenticated {
                rec.record(
                    StepName::Access,
                    false,
                    0,
                    format!("HTTP {}", status.as_u16()),
                );
            } else if sent_credentials {
                rec.record(
                    StepName::Auth,
                    result.is_ok(),
                    0,
                    format!("HTTP {}", status.as_u16()),
                );
            }
            return result;
        }
        Ok(format!(
            "reachable; stopped after {MAX_REDIRECTS} redirects"
        ))
    }

    /// OAuth 2.0 client credentials at `token_url` (through the guard like any destination; the
    /// client authenticated with HTTP Basic, RFC 6749 §2.3.1): the access token.
    async fn client_credentials(
        &self,
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        let url = Url::parse(token_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::new(
                    ProbeCode::InvalidConfig,
                    format!("{TOKEN_URL_FIELD} is not an http(s) URL"),
                )
            })?;
        self.check_destination(&url, rec).await?;
        if url.scheme() == "http" {
            rec.warn("the client secret was sent to the token endpoint over unencrypted http");
        }
        let mut fields = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            fields.push(("scope", scope));
        }
        let request = super::oauth::form(
            self.client
                .post(url)
                .basic_auth(client_id, Some(client_secret)),
            &fields,
        );
        let started = Instant::now();
        let sent = request.send().await;
        let ms = started.elapsed().as_millis() as u64;
        let resp = sent.map_err(|e| {
            let f = transport_failure(&e);
            rec.record(
                StepName::Auth,
                false,
                ms,
                format!("token endpoint: {}", f.message),
            );
            f
        })?;
        let status = resp.status().as_u16();
        let body = read_bounded(resp).await?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let token = super::oauth::access_token(status, &json, TOKEN_URL_FIELD);
        rec.record(
            StepName::Auth,
            token.is_ok(),
            ms,
            format!("token endpoint: HTTP {status}"),
        );
        rec.reached(Depth::Reachable);
        token
    }

    /// Checks the hop's destination and pins its checked addresses for the client.
    pub(super) async fn check_destination(
        &self,
        url: &Url,
        rec: &mut Recorder,
    ) -> Result<(), Failure> {
        let host = url
            .host_str()
            .ok_or_else(|| Failure::new(ProbeCode::InvalidConfig, "the URL has no host"))?;
        if let Some(ip) = literal_host(url) {
            let started = Instant::now();
            let checked = self.guard.check(ip).map_err(|b| {
                Failure::new(
                    ProbeCode::DestinationBlocked,
                    format!("destination blocked: {b}"),
                )
            });
            rec.record(
                StepName::Dns,
                checked.is_ok(),
                started.elapsed().as_millis() as u64,
                match &checked {
                    Ok(()) => format!("{ip} (literal address)"),
                    Err(f) => f.message.clone(),
                },
            );
            return checked;
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = rec
            .step(
                StepName::Dns,
                resolve_checked(self.guard, self.overrides, host, port, self.connect_timeout),
            )
            .await?;
        self.pins.pin(host, addrs);
        Ok(())
    }

    /// One request (HEAD, then GET on 405), recorded as an `http` step; returns the status and `Location`.
    async fn request(
        &self,
        url: &Url,
        auth: &HttpAuth,
        rec: &mut Recorder,
    ) -> Result<(StatusCode, Option<String>), Failure> {
        let started = Instant::now();
        let mut result = self.send(Method::HEAD, url, auth).await;
        if matches!(result, Ok((StatusCode::METHOD_NOT_ALLOWED, _, _))) {
            result = self.send(Method::GET, url, auth).await;
        }
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok((status, location, (certificate, version))) => {
                let detail = match &location {
                    Some(loc) if status.is_redirection() => {
                        format!("HTTP {} redirect to {loc}", status.as_u16())
                    }
                    _ => format!("HTTP {}", status.as_u16()),
                };
                rec.record(
                    StepName::Http,
                    status.is_success() || status.is_redirection(),
                    ms,
                    detail,
                );
                if url.scheme() == "https" {
                    rec.record(
                        StepName::Tls,
                        true,
                        0,
                        "TLS handshake and certificate verified (timed with the request)",
                    );
                    let report = tls::report_of(certificate.as_deref(), version, None);
                    let warning = tls::expiry_warning(&report);
                    rec.tls(report, warning);
                }
                Ok((status, location))
            }
            Err((f, reason)) => {
                let step = if f.code == ProbeCode::TlsFailed {
                    rec.tls(tls::report_of(None, None, reason), None);
                    StepName::Tls
                } else {
                    StepName::Http
                };
                rec.record(step, false, ms, f.message.clone());
                Err(f)
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        auth: &HttpAuth,
    ) -> Result<(StatusCode, Option<String>, Handshake), (Failure, Option<TlsReason>)> {
        let mut req = self.client.request(method, url.clone());
        req = match auth {
            HttpAuth::None | HttpAuth::ClientCredentials { .. } => req,
            HttpAuth::Bearer(token) => req.bearer_auth(token),
            HttpAuth::Basic { username, password } => req.basic_auth(username, Some(password)),
            HttpAuth::Header { name, value } => req.header(name.as_str(), value.as_str()),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| (transport_failure(&e), tls_reason(&e)))?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((resp.status(), location, handshake_of(&resp)))
    }
}

/// What the TLS handshake of an HTTPS answer showed: the server's certificate (DER) and the
/// protocol version.
pub(super) type Handshake = (Option<Vec<u8>>, Option<String>);

/// The handshake an answer came over.
pub(super) fn handshake_of(resp: &reqwest::Response) -> Handshake {
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>();
    (
        info.and_then(|i| i.peer_certificate()).map(<[u8]>::to_vec),
        info.and_then(|i| i.version()).and_then(version_name),
    )
}

/// The version as the wire probes name it (rustls' spelling: `TLSv1.3`).
fn version_name(v: reqwest::tls::Version) -> Option<String> {
    use reqwest::tls::Version;
    let name = match v {
        Version::TLS_1_3 => "TLSv1.3",
        Version::TLS_1_2 => "TLSv1.2",
        Version::TLS_1_1 => "TLSv1.1",
        Version::TLS_1_0 => "TLSv1.0",
        _ => return None,
    };
    Some(name.to_string())
}

fn unchecked(sent_credentials: bool) -> &'static str {
    if sent_credentials {
        ""
    } else {
        "; credentials were not checked (no credentials in authConfig)"
    }
}

/// What an answer means, and how deep it proves the probe got. Without credentials any answer
/// shows the service reachable (401/403 included: nothing was checked); with them a 2xx/3xx is
/// authorized, 401 refused credentials, 403 accepted credentials without access.
fn classify(status: StatusCode, sent_credentials: bool) -> (Result<String, Failure>, Depth) {
    let code = status.as_u16();
    let outcome = |r| (r, Depth::Reachable);
    match code {
        200..=399 if sent_credentials => (Ok(format!("HTTP {code}")), Depth::Authorized),
        200..=399 | 401 | 403 if !sent_credentials => {
            outcome(Ok(format!("reachable (HTTP {code}){}", unchecked(false))))
        }
        401 => outcome(Err(Failure::new(
            ProbeCode::AuthFailed,
            "HTTP 401: credentials refused",
        ))),
        403 => (
            Err(Failure::new(
                ProbeCode::PermissionDenied,
                "HTTP 403: credentials accepted, access to this resource refused",
            )),
            Depth::Authenticated,
        ),
        404 => outcome(Err(Failure::new(
            ProbeCode::NotFound,
            "HTTP 404: the resource does not exist",
        ))),
        _ => outcome(Err(Failure::new(
            ProbeCode::HttpError,
            format!("HTTP {code}"),
        ))),
    }
}

/// The body of an answer, up to `MAX_BODY` bytes (the probes read small JSON answers).
pub(super) async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, Failure> {
    const MAX_BODY: usize = 256 * 1024;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_failure(&e))? {
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// The certificate reason behind a failed request, when rustls gave one. hyper wraps it in
/// io::Errors (two deep) whose `source()` skips it, so each is opened with `get_ref`.
pub(super) fn tls_reason(e: &reqwest::Error) -> Option<TlsReason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            return Some(tls::reason_of(r));
        }
        source = match s.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static))
                .or_else(|| s.source()),
            None => s.source(),
        };
    }
    None
}

/// Maps a client error without its text (which may hold the URL, and so a token in a query string).
pub(super) fn transport_failure(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::new(ProbeCode::Timeout, "the request timed out");
    }
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Failure::new(ProbeCode::ConnectionRefused, "the connection was refused");
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Failure::new(ProbeCode::Timeout, "connecting timed out");
            }
        }
        chain.push_str(&s.to_string().to_lowercase());
        source = s.source();
    }
    if [
        "certificate",
        "tls",
        "handshake",
        "invalidcontenttype",
        "peer",
    ]
    .iter()
    .any(|w| chain.contains(w))
    {
        return Failure::new(
            ProbeCode::TlsFailed,
            "the TLS handshake failed (certificate or protocol)",
        );
    }
    if chain.contains("not checked by the ssrf guard") {
        return Failure::new(
            ProbeCode::DestinationBlocked,
            "the destination was not checked by the SSRF guard",
        );
    }
    if e.is_connect() {
        return Failure::new(ProbeCode::ConnectionRefused, "the connection failed");
    }
    Failure::new(ProbeCode::HttpError, "the request failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_depth() {
        let c = |s: u16, creds: bool| {
            let (r, depth) = classify(StatusCode::from_u16(s).unwrap(), creds);
            (r.map(|_| ()).map_err(|f| f.code), depth)
        };
        use Depth::*;
        assert_eq!(c(200, true), (Ok(()), Authorized));
        assert_eq!(c(301, true), (Ok(()), Authorized));
        assert_eq!(c(200, false), (Ok(()), Reachable));
        assert_eq!(c(401, false), (Ok(()), Reachable));
        assert_eq!(c(403, false), (Ok(()), Reachable));
        assert_eq!(c(401, true), (Err(ProbeCode::AuthFailed), Reachable));
        assert_eq!(
            c(403, true),
            (Err(ProbeCode::PermissionDenied), Authenticated)
        );
        assert_eq!(c(404, false), (Err(ProbeCode::NotFound), Reachable));
        assert_eq!(c(500, true), (Err(ProbeCode::HttpError), Reachable));
        assert_eq!(c(418, false), (Err(ProbeCode::HttpError), Reachable));
    }
}

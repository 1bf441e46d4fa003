//! What a probe reports: a code, a message, how deep it got, and timed steps.

use serde::Serialize;
use std::time::Instant;

/// The outcome codes of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCode {
    Ok,
    InvalidConfig,
    DestinationBlocked,
    DnsFailed,
    ConnectionRefused,
    Timeout,
    TlsFailed,
    ProtocolMismatch,
    HttpError,
    /// The service refused these credentials.
    AuthFailed,
    /// Logged in, but the named database / path / topic / resource was refused.
    PermissionDenied,
    /// The service asks for a mechanism we do not speak, or for a cleartext password on an
    /// unencrypted connection (the message says which).
    AuthUnsupported,
    /// The SSH server's host key is not the pinned one (no credentials were sent).
    HostKeyMismatch,
    NotFound,
}

/// How far a probe got, deepest first to last: the service answered its protocol; it accepted
/// these credentials; the named database / path / topic is usable with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    Reachable,
    Authenticated,
    Authorized,
}

impl Depth {
    /// The depth as the API writes it (`authenticated`), for metric dimensions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reachable => "reachable",
            Self::Authenticated => "authenticated",
            Self::Authorized => "authorized",
        }
    }
}

/// Why a handshake failed, as `diagnostics.tls.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsReason {
    Expired,
    NotYetValid,
    HostnameMismatch,
    UnknownIssuer,
    SelfSigned,
    Handshake,
}

/// `diagnostics.tls`: what was negotiated and the server's certificate, or why it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Whole days from now to notAfter (negative once expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<TlsReason>,
    /// The chain and the host name verified, whatever `sslmode` asked (decides whether a
    /// password the server could read may be sent; not shown).
    #[serde(skip)]
    pub verified: bool,
}

/// What the service says it is, where its protocol tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    pub product: String,
    pub version: String,
}

impl ProbeCode {
    /// The code as the API writes it (`auth_failed`), for metric dimensions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::InvalidConfig => "invalid_config",
            Self::DestinationBlocked => "destination_blocked",
            Self::DnsFailed => "dns_failed",
            Self::ConnectionRefused => "connection_refused",
            Self::Timeout => "timeout",
            Self::TlsFailed => "tls_failed",
            Self::ProtocolMismatch => "protocol_mismatch",
            Self::HttpError => "http_error",
            Self::AuthFailed => "auth_failed",
            Self::PermissionDenied => "permission_denied",
            Self::AuthUnsupported => "auth_unsupported",
            Self::HostKeyMismatch => "host_key_mismatch",
            Self::NotFound => "not_found",
        }
    }

    /// True when something was sent to the destination (and so the breaker should count it).
    pub fn reached_network(self) -> bool {
        !matches!(self, Self::InvalidConfig | Self::DestinationBlocked)
    }
}

/// The stages a probe goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    Dns,
    Tcp,
    Tls,
    Protocol,
    Http,
    Bucket,
    Auth,
    /// Using the named database / path / topic / resource.
    Access,
    /// The SSH bastion of `config.tunnel`: TCP through the guard, the SSH handshake (host key),
    /// the login, and the forward the bastion opens to the target.
    #[serde(rename = "tunnel.tcp")]
    TunnelTcp,
    #[serde(rename = "tunnel.ssh")]
    TunnelSsh,
    #[serde(rename = "tunnel.auth")]
    TunnelAuth,
    #[serde(rename = "tunnel.forward")]
    TunnelForward,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: StepName,
    pub ok: bool,
    pub ms: u64,
    pub detail: String,
}

/// The whole report of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    pub code: ProbeCode,
    pub message: String,
    /// The deepest level reached, on success or failure; absent when not even reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<Depth>,
    pub latency_ms: u64,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    /// The SSH host key fingerprint the server showed (`SHA256:…`), for trust on first use.
    #[serde(skip)]
    pub host_key: Option<String>,
    /// The host key the tunnel's bastion showed, for trust on first use.
    #[serde(skip)]
    pub tunnel_host_key: Option<String>,
}

/// A failure that ends a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ProbeCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ProbeCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The peer does not speak `product`'s protocol.
    pub fn mismatch(product: &str) -> Self {
        Self::new(
            ProbeCode::ProtocolMismatch,
            format!("the service does not answer like {product}"),
        )
    }

    /// The peer broke `product`'s protocol in a way worth naming.
    pub fn mismatch_because(product: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            ProbeCode::ProtocolMismatch,
            format!("the service does not answer like {product}: {why}"),
        )
    }
}

/// Collects steps while a probe runs.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    pub steps: Vec<Step>,
    depth: Option<Depth>,
    warnings: Vec<String>,
    server: Option<ServerInfo>,
    tls: Option<TlsReport>,
    host_key: Option<String>,
    tunnel_host_key: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
            depth: None,
            warnings: Vec::new(),
            server: None,
            tls: None,
            host_key: None,
            tunnel_host_key: None,
        }
    }
}

impl Recorder {
    /// Notes that the probe got at least this deep.
    pub fn reached(&mut self, depth: Depth) {
        self.depth = self.depth.max(Some(depth));
    }

    pub fn depth(&self) -> Option<Depth> {
        self.depth
    }

    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// The TLS report; `warning` (an expiring certificate) goes with it.
    pub fn tls(&mut self, report: TlsReport, warning: Option<String>) {
        if let Some(w) = warning {
            self.warnings.push(w);
        }
        self.tls = Some(report);
    }

    /// The SSH host key fingerprint the server showed.
    pub fn host_key(&mut self, fingerprint: &str) {
        self.host_key = Some(fingerprint.to_string());
    }

    /// The SSH host key fingerprint the tunnel's bastion showed.
    pub fn tunnel_host_key(&mut self, fingerprint: &str) {
        self.tunnel_host_key = Some(fingerprint.to_string());
    }

    /// True when the recorded TLS handshake verified the chain and the host name.
    pub fn tls_verified(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.verified)
    }

    /// True once a TLS report was recorded (a probe of several requests reports the first).
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn server(&mut self, product: &str, version: &str) {
        self.server = Some(ServerInfo {
            product: product.to_string(),
            version: version.to_string(),
        });
    }

    /// Runs one step, timing it and recording its outcome.
    pub async fn step<T>(
        &mut self,
        name: StepName,
        fut: impl std::future::Future<Output = Result<(T, String), Failure>>,
    ) -> Result<T, Failure> {
        let start = Instant::now();
        let result = fut.await;
        let ms = start.elapsed().as_millis() as u64;
        match result {
            Ok((value, detail)) => {
                self.steps.push(Step {
                    name,
                    ok: true,
                    ms,
                    detail,
                });
                Ok(value)
            }
            Err(f) => {
                self.steps.push(Step {
                    name,
                    ok: false,
                    ms,
                    detail: f.message.clone(),
                });
                Err(f)
            }
        }
    }

    /// Records a step that already happened.
    pub fn record(&mut self, name: StepName, ok: bool, ms: u64, detail: impl Into<String>) {
        self.steps.push(Step {
            name,
            ok,
            ms,
            detail: detail.into(),
        });
    }

    /// The report; every text in it is tidied (a server's text is the server's choice).
    pub fn finish(self, result: Result<String, Failure>) -> Diagnostics {
        self.finish_masked(result, None)
    }

    /// The report, every credential value of `secret` that a text names masked first (so no cut
    /// splits a value, and a control character inside one does not hide it), then every text
    /// tidied.
    pub fn finish_masked(
        self,
        result: Result<String, Failure>,
        secret: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Diagnostics {
        let latency_ms = self.started.elapsed().as_millis() as u64;
        let (code, message) = match result {
            Ok(message) => (ProbeCode::Ok, message),
            Err(f) => (f.code, f.message),
        };
        let mut d = Diagnostics {
            code,
            message,
            depth: self.depth,
            latency_ms,
            steps: self.steps,
            warnings: self.warnings,
            server: self.server,
            tls: self.tls,
            host_key: self.host_key,
            tunnel_host_key: self.tunnel_host_key,
        };
        if let Some(secret) = secret {
            d.redact(secret);
        }
        for text in d.texts() {
            *text = tidy(text);
        }
        d
    }
}

/// The most characters a message, a step's detail or a warning keeps (`lastError` included).
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// A text fit to store and show: control characters removed, at most `MAX_MESSAGE_CHARS`
/// characters (cut with `…`).
pub fn tidy(text: &str) -> String {
    let mut kept = text.chars().filter(|c| !c.is_control());
    let mut out: String = kept.by_ref().take(MAX_MESSAGE_CHARS - 1).collect();
    match (kept.next(), kept.next()) {
        (None, _) => {}
        (Some(last), None) => out.push(last),
        (Some(_), Some(_)) => out.push('…'),
    }
    out
}

impl Diagnostics {
    /// Every text of the report, the server's and its certificate's included.
    fn texts(&mut self) -> impl Iterator<Item = &mut String> {
        let server = self
            .server
            .iter_mut()
            .flat_map(|s| [&mut s.product, &mut s.version]);
        let tls = self.tls.iter_mut().flat_map(|t| {
            [&mut t.version, &mut t.subject, &mut t.issuer]
                .into_iter()
                .flatten()
        });
        std::iter::once(&mut self.message)
            .chain(self.steps.iter_mut().map(|s| &mut s.detail))
            .chain(self.warnings.iter_mut())
            .chain(server)
            .chain(tls)
    }

    /// Replaces every credential value that a text names (ours, or a server echoing it back,
    /// as PostgreSQL quotes `user "svc_…"`) with its masked form, as `authConfig` is shown.
    fn redact(&mut self, secret: &serde_json::Map<String, serde_json::Value>) {
        let mut values = Vec::new();
        collect_strings(secret, &mut values);
        // Longest first, so a value inside another is not masked half-way.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for text in self.texts() {
            for v in &values {
                if text.contains(*v) {
                    *text = text.replace(*v, &crate::masking::mask_str(v));
                }
            }
        }
    }
}

/// The string leaves of a secret worth masking in text (three characters or more).
fn collect_strings<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<&'a str>,
) {
    for v in map.values() {
        match v {
            serde_json::Value::String(s) if s.chars().count() >= 3 => out.push(s),
            serde_json::Value::Object(m) => collect_strings(m, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod texts {
    use super::*;

    #[test]
    fn texts_are_cut_and_cleaned() {
        assert_eq!(tidy("fine"), "fine");
        assert_eq!(tidy("a\u{0}b\r\nc\u{1b}[31m"), "abc[31m");
        let long = "é".repeat(5000);
        let cut = tidy(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(
            tidy(&"x".repeat(MAX_MESSAGE_CHARS)).chars().count(),
            MAX_MESSAGE_CHARS
        );
        assert!(!tidy(&"x".repeat(MAX_MESSAGE_CHARS)).ends_with('…'));
    }

    #[test]
    fn credential_values_in_texts_are_masked() {
        let mut rec = Recorder::default();
        rec.record(StepName::Auth, true, 1, "user svc_kaireon accepted");
        // A value with a control character in it, named at the very end of a long text.
        rec.warn(format!(
            "{}ctl\u{7}secret-value",
            "x".repeat(MAX_MESSAGE_CHARS - 8)
        ));
        let secret =
            serde_json::json!({"username": "svc_kaireon", "password": "ctl\u{7}secret-value"});
        let d = rec.finish_masked(
            Err(Failure::new(
                ProbeCode::AuthFailed,
                "password authentication failed for user \"svc_kaireon\"",
            )),
            secret.as_object(),
        );
        assert!(
            !d.warnings[0].contains("secret"),
            "masked before the cut: {}",
            d.warnings[0]
        );
        assert_eq!(
            d.message,
            "password authentication failed for user \"sv***on\""
        );
        assert_eq!(d.steps[0].detail, "user sv***on accepted");
    }
}

#[cfg(test)]
mod names {
    use super::*;

    #[test]
    fn metric_names_are_the_api_names() {
        use ProbeCode::*;
        for code in [
            Ok,
            InvalidConfig,
            DestinationBlocked,
            DnsFailed,
            ConnectionRefused,
            Timeout,
            TlsFailed,
            ProtocolMismatch,
            HttpError,
            AuthFailed,
            PermissionDenied,
            AuthUnsupported,
            HostKeyMismatch,
            NotFound,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        for depth in [Depth::Reachable, Depth::Authenticated, Depth::Authorized] {
            assert_eq!(serde_json::to_value(depth).unwrap(), depth.as_str());
        }
    }
}

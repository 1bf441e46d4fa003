//! One TLS client for the probes that speak TLS on a raw socket (database wire protocols), and the
//! reason codes of a failed handshake.
//!
//! Trust: the Mozilla roots compiled into `webpki-roots`, plus `PROBE_EXTRA_CA_FILE` (PEM; private
//! CAs, and the tests' own CA). Built on first use, not at init: most probes never need it.
//! Every handshake reports the server's certificate (subject, issuer, expiry; `certificate_report`),
//! also when it fails, and a certificate expiring within `PROBE_CERT_WARN_DAYS` (14) is a warning.
//! Verification follows libpq's `sslmode`: `Encrypt` (prefer, require) checks nothing,
//! `Chain` (verify-ca) the chain only, `Full` (verify-full) the chain and the host name.

use super::report::{Failure, ProbeCode, Recorder, StepName, TlsReason, TlsReport};
use super::wire::Io;
use crate::model::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_rustls::client::TlsStream;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encrypted, nothing checked (libpq's prefer and require).
    Encrypt,
    /// The chain up to a trusted root, any host name (verify-ca).
    Chain,
    /// The chain and the host name (verify-full).
    Full,
}

/// The verification libpq's `sslmode` asks for (MySQL's spellings map to the same modes).
pub fn verify_for(mode: SslMode) -> Verify {
    match mode {
        SslMode::VerifyFull => Verify::Full,
        SslMode::VerifyCa => Verify::Chain,
        _ => Verify::Encrypt,
    }
}

/// A handshake failure: the probe failure and the report that goes with it.
pub type TlsFailure = (Failure, TlsReport);

/// The trusted roots, read once (the extra CA file may be unreadable: every TLS probe then fails
/// with a message naming the setting, none panics).
fn roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            if let Ok(path) = std::env::var("PROBE_EXTRA_CA_FILE") {
                if !path.trim().is_empty() {
                    let pem = std::fs::read(path.trim()).map_err(|e| {
                        format!("PROBE_EXTRA_CA_FILE cannot be read ({})", e.kind())
                    })?;
                    for cert in CertificateDer::pem_slice_iter(&pem) {
                        let cert =
                            cert.map_err(|_| "PROBE_EXTRA_CA_FILE is not PEM".to_string())?;
                        store
                            .add(cert)
                            .map_err(|_| "PROBE_EXTRA_CA_FILE holds an unusable certificate")?;
                    }
                }
            }
            Ok(Arc::new(store))
        })
        .clone()
}

/// The HTTP probes' configuration (reqwest): the same roots, verified in full, HTTP/1.1 only.
/// One client serves every HTTP probe, so no per-handshake slot (reqwest hands over the
/// certificate with the answer).
pub fn http_config() -> Result<ClientConfig, String> {
    let (base, webpki) = base()?;
    let mut config = (*base).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(Recording {
            inner: webpki,
            verify: Verify::Full,
            seen: None,
            verified: None,
        }));
    Ok(config)
}

/// The error a certificate that names itself as its issuer gets instead of `UnknownIssuer`.
#[derive(Debug)]
struct SelfSignedCertificate;

impl std::fmt::Display for SelfSignedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-signed certificate")
    }
}

impl std::error::Error for SelfSignedCertificate {}

/// The base configuration and the web-PKI verifier.
type Base = (Arc<ClientConfig>, Arc<WebPkiServerVerifier>);
/// Where a handshake leaves the server's certificate (DER).
type Seen = Arc<Mutex<Option<Vec<u8>>>>;

/// The base configuration and the web-PKI verifier, built once.
fn base() -> Result<Base, String> {
    static BASE: OnceLock<Result<Base, String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(roots()?, provider.clone())
            .build()
            .map_err(|e| format!("TLS verifier: {e}"))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS defaults: {e}"))?
            .with_webpki_verifier(webpki.clone())
            .with_no_client_auth();
        Ok((Arc::new(config), webpki))
    })
    .clone()
}

/// A configuration for one handshake: the verification `verify` asks for, and the slot where the
/// server's certificate lands (also when it is refused, for the report).
fn config(verify: Verify) -> Result<(Arc<ClientConfig>, Seen, Verified), String> {
    let (base, webpki) = base()?;
    let seen = Arc::new(Mutex::new(None));
    let verified = Verified::default();
    let mut config = (*base).clone();
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(Recording {
            inner: webpki,
            verify,
            seen: Some(seen.clone()),
            verified: Some(verified.clone()),
        }));
    Ok((Arc::new(config), seen, verified))
}

/// Where a handshake notes whether the chain and the host name verified in full.
type Verified = Arc<std::sync::atomic::AtomicBool>;

/// The web-PKI verifier at the level `verify` asks for (libpq's lenient modes check nothing, or
/// the chain without the name), keeping the server's certificate for the report when there is a
/// slot for it, and saying so when an unknown issuer is the certificate itself.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    verify: Verify,
    seen: Option<Seen>,
    verified: Option<Verified>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(Ok(mut seen)) = self.seen.as_ref().map(|s| s.lock()) {
            *seen = Some(end_entity.to_vec());
        }
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if let Some(slot) = &self.verified {
            slot.store(verified.is_ok(), std::sync::atomic::Ordering::Relaxed);
        }
        if self.verify == Verify::Encrypt {
            return Ok(ServerCertVerified::assertion());
        }
        match verified {
            // webpki checks the chain first, then the name: a name error means the chain was good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.verify == Verify::Chain => Ok(ServerCertVerified::assertion()),
            // webpki says "unknown issuer" for a certificate that signed itself: say which it is.
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if self_signed(end_entity) =>
            {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(SelfSignedCertificate)),
                )))
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The reason a rustls error gives, if it is about the certificate.
pub fn reason_of(e: &rustls::Error) -> TlsReason {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => TlsReason::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsReason::NotYetValid,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsReason::HostnameMismatch,
            C::UnknownIssuer => TlsReason::UnknownIssuer,
            C::Other(o) if o.0.is::<SelfSignedCertificate>() => TlsReason::SelfSigned,
            _ => TlsReason::Handshake,
        },
        _ => TlsReason::Handshake,
    }
}

/// Days before notAfter from which a certificate is a warning (`PROBE_CERT_WARN_DAYS`, 14).
pub fn warn_days() -> i64 {
    *WARN_DAYS.get().unwrap_or(&DEFAULT_WARN_DAYS)
}

/// `PROBE_CERT_WARN_DAYS` when it is not set.
pub const DEFAULT_WARN_DAYS: i64 = 14;

static WARN_DAYS: OnceLock<i64> = OnceLock::new();

/// Set once at init by `ProbeSettings::from_env` (which refuses a bad value there, not at the
/// first probe); the first call wins.
pub fn set_warn_days(days: i64) {
    let _ = WARN_DAYS.set(days);
}

/// Subject, issuer and expiry of a DER certificate, as of `now` (Unix seconds); None when it
/// does not parse.
pub fn certificate_report(der: &[u8], now: i64) -> Option<TlsReport> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after;
    let format = &time::format_description::well_known::Rfc3339;
    Some(TlsReport {
        subject: Some(cert.subject().to_string()),
        issuer: Some(cert.issuer().to_string()),
        not_after: not_after.to_datetime().format(format).ok(),
        days_left: Some((not_after.timestamp() - now).div_euclid(86_400)),
        ..TlsReport::default()
    })
}

/// True for a certificate that names itself as its issuer.
fn self_signed(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The report of a handshake: the certificate seen (if any), the version, the reason.
pub fn report_of(
    der: Option<&[u8]>,
    version: Option<String>,
    reason: Option<TlsReason>,
) -> TlsReport {
    let mut report = der
        .and_then(|d| certificate_report(d, unix_now()))
        .unwrap_or_default();
    report.version = version;
    report.reason = reason;
    report
}

/// A warning when the certificate expires within `warn_days()`.
pub fn expiry_warning(report: &TlsReport) -> Option<String> {
    let days = report.days_left?;
    (days < warn_days()).then(|| {
        format!(
            "the server's TLS certificate expires in {days} days ({})",
            report.not_after.as_deref().unwrap_or("?")
        )
    })
}

/// TLS over an already connected (guarded) socket; `host` is what the certificate must name.
pub async fn connect<S: Io>(
    stream: S,
    host: &str,
    verify: Verify,
    limit: Duration,
) -> Result<(TlsStream<S>, TlsReport), TlsFailure> {
    let failed = |message: String, reason: TlsReason, der: Option<Vec<u8>>| {
        let report = report_of(der.as_deref(), None, Some(reason));
        let code = match report.reason {
            Some(TlsReason::SelfSigned) => "self-signed",
            _ => "",
        };
        let message = if code.is_empty() {
            message
        } else {
            format!("{message} (the certificate is {code})")
        };
        (Failure::new(ProbeCode::TlsFailed, message), report)
    };
    let (config, seen, verified) =
        config(verify).map_err(|m| failed(m, TlsReason::Handshake, None))?;
    let taken = || seen.lock().ok().and_then(|mut s| s.take());
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        failed(
            format!("{host} is not a TLS server name"),
            TlsReason::Handshake,
            None,
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = match tokio::time::timeout(limit, connector.connect(name, stream)).await {
        Err(_) => {
            return Err((
                Failure::new(ProbeCode::Timeout, "the TLS handshake timed out"),
                report_of(taken().as_deref(), None, Some(TlsReason::Handshake)),
            ))
        }
        Ok(Err(e)) => {
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let reason = rustls_error.map_or(TlsReason::Handshake, reason_of);
            let detail = rustls_error.map_or_else(|| e.kind().to_string(), |r| r.to_string());
            return Err(failed(
                format!("the TLS handshake failed: {detail}"),
                reason,
                taken(),
            ));
        }
        Ok(Ok(tls)) => tls,
    };
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .and_then(|v| v.as_str())
        .map(|v| v.replace('_', "."));
    let mut report = report_of(taken().as_deref(), version, None);
    report.verified = verified.load(std::sync::atomic::Ordering::Relaxed);
    Ok((tls, report))
}

/// The TLS handshake of a wire protocol, recorded: the `tls` step (timed from `started`, which may
/// include the protocol's own request to start TLS), the report, an expiring certificate's warning.
pub async fn handshake<S: Io>(
    stream: S,
    host: &str,
    verify: Verify,
    limit: Duration,
    started: Instant,
    rec: &mut Recorder,
) -> Result<TlsStream<S>, Failure> {
    let result = connect(stream, host, verify, limit).await;
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((tls, report)) => {
            let detail = format!(
                "{} ({verify:?})",
                report.version.as_deref().unwrap_or("TLS")
            );
            let warning = expiry_warning(&report);
            rec.tls(report, warning);
            rec.record(StepName::Tls, true, ms, detail);
            Ok(tls)
        }
        Err((failure, report)) => {
            rec.tls(report, None);
            rec.record(StepName::Tls, false, ms, failure.message.clone());
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_map_to_reasons() {
        let cert = |c| rustls::Error::InvalidCertificate(c);
        assert_eq!(
            reason_of(&cert(CertificateError::Expired)),
            TlsReason::Expired
        );
        assert_eq!(
            reason_of(&cert(CertificateError::NotValidYet)),
            TlsReason::NotYetValid
        );
        assert_eq!(
            reason_of(&cert(CertificateError::NotValidForName)),
            TlsReason::HostnameMismatch
        );
        assert_eq!(
            reason_of(&cert(CertificateError::UnknownIssuer)),
            TlsReason::UnknownIssuer
        );
        assert_eq!(
            reason_of(&rustls::Error::HandshakeNotComplete),
            TlsReason::Handshake
        );
    }

    #[test]
    fn the_three_verification_levels_build() {
        for v in [Verify::Encrypt, Verify::Chain, Verify::Full] {
            assert!(config(v).is_ok());
        }
    }

    /// Subject db.example.com, issuer Example CA, notAfter 2027-01-01T00:00:00Z.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBGjCBwaADAgECAgEHMAoGCCqGSM49BAMCMBUxEzARBgNVBAMMCkV4YW1wbGUg
Q0EwHhcNMjYwMTAxMDAwMDAwWhcNMjcwMTAxMDAwMDAwWjAZMRcwFQYDVQQDDA5k
Yi5leGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIIRb6/P6VwF
h6A3NtD0U1MJi72MM77VEticaGWen6EO89LF2CZtZquFHjRO56YnhJGKEUj8Q7oq
ZUrWIoGxIF0wCgYIKoZIzj0EAwIDSAAwRQIhAOqFthHlIyXBiV1AAvIKg5yNUB7n
H4UTk3rbUGpNcjWmAiBMSBXjD2Pqxa+5ru/6nGE/aKv2Q6AX8tF+YqpSFivTUA==
-----END CERTIFICATE-----
";

    #[test]
    fn the_report_names_subject_issuer_and_days_left() {
        let der = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let not_after = 1_798_761_600; // 2027-01-01T00:00:00Z
        let r = certificate_report(&der, not_after - 10 * 86_400).unwrap();
        assert_eq!(r.subject.as_deref(), Some("CN=db.example.com"));
        assert_eq!(r.issuer.as_deref(), Some("CN=Example CA"));
        assert_eq!(r.not_after.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(r.days_left, Some(10));
        assert!(expiry_warning(&r).unwrap().contains("10 days"));
        let later = certificate_report(&der, not_after - 100 * 86_400).unwrap();
        assert_eq!(expiry_warning(&later), None);
        let expired = certificate_report(&der, not_after + 3600).unwrap();
        assert_eq!(expired.days_left, Some(-1));
        assert!(!self_signed(&der), "issued by another name");
        assert!(certificate_report(b"not a certificate", 0).is_none());
    }
}

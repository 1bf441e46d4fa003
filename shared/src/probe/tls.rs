//! One TLS client for the probes that speak TLS on a raw socket (database wire protocols), and the
//! reason codes of a failed handshake.
//!
//! Trust: the Mozilla roots compiled into `webpki-roots`, plus `PROBE_EXTRA_CA_FILE` (PEM; private
//! CAs, and the tests' own CA). Built on first use, not at init: most probes never need it.
//! Verification follows libpq's `sslmode`: `Encrypt` (prefer, require) checks nothing,
//! `Chain` (verify-ca) the chain only, `Full` (verify-full) the chain and the host name.

use super::report::{Failure, ProbeCode, TlsReason, TlsReport};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
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

fn config(verify: Verify) -> Result<Arc<ClientConfig>, String> {
    static CONFIGS: OnceLock<[Result<Arc<ClientConfig>, String>; 3]> = OnceLock::new();
    let all = CONFIGS.get_or_init(|| {
        [Verify::Encrypt, Verify::Chain, Verify::Full].map(|v| build(v).map(Arc::new))
    });
    let i = match verify {
        Verify::Encrypt => 0,
        Verify::Chain => 1,
        Verify::Full => 2,
    };
    all[i].clone()
}

fn build(verify: Verify) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(roots()?, provider.clone())
        .build()
        .map_err(|e| format!("TLS verifier: {e}"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS defaults: {e}"))?;
    let config = match verify {
        Verify::Full => builder.with_webpki_verifier(webpki),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                inner: webpki,
                check_chain: verify == Verify::Chain,
            })),
    };
    Ok(config.with_no_client_auth())
}

/// libpq's lenient modes: no check at all, or the chain without the name.
#[derive(Debug)]
struct Lenient {
    inner: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        // webpki checks the chain first, then the name: a name error means the chain was good.
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
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
            _ => TlsReason::Handshake,
        },
        _ => TlsReason::Handshake,
    }
}

/// TLS over an already connected (guarded) socket; `host` is what the certificate must name.
pub async fn connect(
    stream: TcpStream,
    host: &str,
    verify: Verify,
    limit: Duration,
) -> Result<(TlsStream<TcpStream>, TlsReport), TlsFailure> {
    let failure = |message: String, reason: TlsReason| {
        (
            Failure::new(ProbeCode::TlsFailed, message),
            TlsReport {
                version: None,
                reason: Some(reason),
            },
        )
    };
    let config = config(verify).map_err(|m| failure(m, TlsReason::Handshake))?;
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        failure(
            format!("{host} is not a TLS server name"),
            TlsReason::Handshake,
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = match tokio::time::timeout(limit, connector.connect(name, stream)).await {
        Err(_) => {
            return Err((
                Failure::new(ProbeCode::Timeout, "the TLS handshake timed out"),
                TlsReport {
                    version: None,
                    reason: Some(TlsReason::Handshake),
                },
            ))
        }
        Ok(Err(e)) => {
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let reason = rustls_error.map_or(TlsReason::Handshake, reason_of);
            let detail = rustls_error.map_or_else(|| e.kind().to_string(), |r| r.to_string());
            return Err(failure(
                format!("the TLS handshake failed: {detail}"),
                reason,
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
    Ok((
        tls,
        TlsReport {
            version,
            reason: None,
        },
    ))
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
}

//! Trust roots for outgoing TLS, built at init without reading the system certificate store.
//!
//! The default clients (the AWS SDK's and reqwest's) load every certificate under /etc/ssl at
//! init; on this machine that is most of a cold start (≈8 ms of ≈12 ms). The AWS SDK talks only
//! to AWS endpoints, whose chains end at Amazon Trust Services roots, so it trusts exactly those
//! (bundled PEM, five certificates). Probes reach arbitrary public hosts and trust the Mozilla
//! roots compiled into `webpki-roots` (no parsing at startup).

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use std::sync::Arc;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2 (the cross-signing root of the first four).
const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The HTTPS client for every AWS SDK client of the process.
pub fn aws_http_client() -> SharedHttpClient {
    let trust = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_else(|e| panic!("bundled Amazon root certificates: {e}"));
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// A rustls configuration trusting the public web PKI, for reqwest (probes and JWKS).
pub fn public_web_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("TLS defaults: {e}"))
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_amazon_roots_parse_as_five_certificates() {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        let (added, rejected) = store.add_parsable_certificates(certs);
        assert_eq!((added, rejected), (5, 0));
    }

    #[test]
    fn public_config_trusts_the_web_pki() {
        let config = public_web_config();
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}

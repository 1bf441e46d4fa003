//! TLS is diagnosed: the certificate is reported (subject, issuer, notAfter, days left), one close
//! to expiry is a warning, and a refused one says why — over HTTP (rest_api) and on the raw
//! sockets of the database wire protocols (`probe::tls::connect`). Servers present certificates
//! from the tests' PKI (local/test_pki.py), whose CA is PROBE_EXTRA_CA_FILE.

use crate::support::listeners::tls_http;
use crate::support::{probe_settings, test_through, tester_probing_with, Tenant};
use serde_json::json;
use shared::probe::tls::{connect, Verify};
use std::time::Duration;

#[tokio::test]
async fn https_probes_report_the_certificate_and_why_it_was_refused() {
    let tester = tester_probing_with(probe_settings()).await;
    let t = Tenant::new("tlshttp");
    for (stem, code, reason) in [
        ("localhost", "ok", None),
        ("expiring", "ok", None),
        ("expired", "tls_failed", Some("expired")),
        ("future", "tls_failed", Some("not_yet_valid")),
        ("wrongname", "tls_failed", Some("hostname_mismatch")),
        ("unknownca", "tls_failed", Some("unknown_issuer")),
        ("selfsigned", "tls_failed", Some("self_signed")),
    ] {
        let addr = tls_http(stem).await;
        let id = t
            .create_id(json!({"name": stem, "type": "rest_api", "config": {"url": format!("https://localhost:{}/", addr.port())}}))
            .await;
        let r = test_through(&tester, &t, &id).await;
        let d = &r.body["diagnostics"];
        assert_eq!(d["code"], code, "{stem}: {}", r.raw);
        assert_eq!(d["tls"]["reason"].as_str(), reason, "{stem}: {}", r.raw);
        if code == "ok" {
            assert_eq!(d["tls"]["subject"], "CN=localhost", "{stem}: {}", r.raw);
            let version = d["tls"]["version"].as_str().unwrap_or_default();
            assert!(version.starts_with("TLSv1."), "{stem}: {}", r.raw);
            assert_eq!(d["tls"]["issuer"], "CN=connectors-api test CA");
            assert!(d["tls"]["notAfter"].as_str().unwrap().ends_with('Z'));
            let days = d["tls"]["daysLeft"].as_i64().unwrap();
            let warned = d["warnings"].to_string().contains("expires in");
            if stem == "expiring" {
                assert!((3..=5).contains(&days) && warned, "{}", r.raw);
                assert_eq!(r.body["status"], "active", "a warning keeps it active");
            } else {
                assert!(days > 300 && !warned, "{}", r.raw);
            }
        }
    }
}

#[tokio::test]
async fn raw_socket_tls_tells_every_reason_apart() {
    let limit = Duration::from_secs(2);
    for (stem, verify, reason) in [
        ("localhost", Verify::Full, None),
        ("expired", Verify::Full, Some("expired")),
        ("future", Verify::Full, Some("not_yet_valid")),
        ("wrongname", Verify::Full, Some("hostname_mismatch")),
        ("wrongname", Verify::Chain, None),
        ("unknownca", Verify::Full, Some("unknown_issuer")),
        ("unknownca", Verify::Encrypt, None),
        ("selfsigned", Verify::Full, Some("self_signed")),
    ] {
        let addr = tls_http(stem).await;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let got = match connect(stream, "localhost", verify, limit).await {
            Ok((_, report)) => {
                assert!(report.version.as_deref().unwrap().starts_with("TLSv1."));
                assert!(
                    report.subject.is_some(),
                    "{stem}: the certificate is reported"
                );
                None
            }
            Err((failure, report)) => {
                assert_eq!(failure.code, shared::probe::report::ProbeCode::TlsFailed);
                assert!(
                    report.subject.is_some(),
                    "{stem}: reported even when refused"
                );
                Some(serde_json::to_value(report.reason.unwrap()).unwrap())
            }
        };
        assert_eq!(
            got.as_ref().and_then(|v| v.as_str()),
            reason,
            "{stem} {verify:?}"
        );
    }
}

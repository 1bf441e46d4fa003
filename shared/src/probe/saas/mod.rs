//! Warehouse and SaaS logins over HTTPS, one file per vendor. What they share lives here: every
//! request goes to one of the vendor's own hosts (`crate::vendor`) over https, through the guard
//! and its pins, no redirect followed, the answer read up to a bound; the first handshake's
//! certificate is reported.

pub mod azure;
pub mod databricks;
pub mod gcs_hmac;
pub mod google;
pub mod hubspot;
pub mod salesforce;
pub mod signing_key;
pub mod snowflake;

use super::http::{handshake_of, read_bounded, tls_reason, transport_failure, HttpProbe};
pub use super::oauth::form;
use super::report::{Depth, Failure, ProbeCode, Recorder, StepName};
use super::tls;
use crate::model::ConnectorType;
use crate::vendor;
use reqwest::{Method, RequestBuilder};
use serde_json::Value;
use std::time::Instant;
use url::Url;

/// What a vendor answered.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Requests to one vendor, for one probe.
pub struct Api<'a> {
    pub http: HttpProbe<'a>,
    pub kind: ConnectorType,
}

impl Api<'_> {
    /// A request for `send` (the probe's one client: guard pins, timeouts, no redirects).
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.client.request(method, url)
    }

    /// The end of a probe without credentials: one anonymous request shows the vendor answers.
    pub async fn reachable_only(
        &self,
        what: &str,
        request: RequestBuilder,
        vendor: &str,
        fields: &str,
        rec: &mut Recorder,
    ) -> Result<String, Failure> {
        self.send(StepName::Http, what, request, rec).await?;
        rec.reached(Depth::Reachable);
        Ok(format!(
            "{vendor} answered; credentials were not checked (no {fields} in authConfig)"
        ))
    }

    /// An OAuth 2.0 token request, recorded as the `auth` step: the access token and the answer.
    pub async fn token(
        &self,
        request: RequestBuilder,
        endpoint: &str,
        rec: &mut Recorder,
    ) -> Result<(String, Value), Failure> {
        let answer = self
            .send(StepName::Auth, "token endpoint", request, rec)
            .await?;
        rec.reached(Depth::Reachable);
        let json = answer.json();
        super::oauth::access_token(answer.status, &json, endpoint).map(|t| (t, json))
    }

    /// Sends one request to a vendor host, recorded as step `step` (`what` names it); fails
    /// before anything is sent when the host is not the vendor's (a stored legacy value) or the
    /// scheme is not https.
    pub async fn send(
        &self,
        step: StepName,
        what: &str,
        request: RequestBuilder,
        rec: &mut Recorder,
    ) -> Result<Answer, Failure> {
        let request = request.build().map_err(|_| {
            Failure::new(
                ProbeCode::InvalidConfig,
                format!("{what}: the request cannot be built"),
            )
        })?;
        let url = request.url().clone();
        let host = url.host_str().unwrap_or_default().to_string();
        if !vendor::is_allowed(self.kind, &host) {
            return Err(Failure::new(
                ProbeCode::DestinationBlocked,
                vendor::refusal(self.kind, &host),
            ));
        }
        if url.scheme() != "https" {
            return Err(Failure::new(
                ProbeCode::DestinationBlocked,
                format!("{what}: credentials are sent over https only"),
            ));
        }
        self.http.check_destination(&url, rec).await?;
        let started = Instant::now();
        let sent = self.http.client.execute(request).await;
        let ms = started.elapsed().as_millis() as u64;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let failure = transport_failure(&e);
                if failure.code == ProbeCode::TlsFailed {
                    rec.tls(tls::report_of(None, None, tls_reason(&e)), None);
                    rec.record(StepName::Tls, false, ms, failure.message.clone());
                } else {
                    rec.record(step, false, ms, format!("{what}: {}", failure.message));
                }
                return Err(failure);
            }
        };
        if !rec.has_tls() {
            let (certificate, version) = handshake_of(&resp);
            let report = tls::report_of(certificate.as_deref(), version, None);
            let warning = tls::expiry_warning(&report);
            rec.tls(report, warning);
            rec.record(
                StepName::Tls,
                true,
                0,
                format!("{host}: certificate verified"),
            );
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_bounded(resp).await?;
        rec.record(
            step,
            (200..400).contains(&status),
            started.elapsed().as_millis() as u64,
            format!("{what}: HTTP {status}"),
        );
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// One URL path segment, percent-encoded (a space is `%20`: `+` is a literal plus in a path).
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A JSON body.
pub fn json_body(request: RequestBuilder, body: &Value) -> RequestBuilder {
    request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

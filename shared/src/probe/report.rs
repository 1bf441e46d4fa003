//! What a probe reports: a code, a message, and timed steps.

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
    AuthFailed,
    NotFound,
}

impl ProbeCode {
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
    pub latency_ms: u64,
    pub steps: Vec<Step>,
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
}

/// Collects steps while a probe runs.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    pub steps: Vec<Step>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
        }
    }
}

impl Recorder {
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

    pub fn finish(self, result: Result<String, Failure>) -> Diagnostics {
        let latency_ms = self.started.elapsed().as_millis() as u64;
        let (code, message) = match result {
            Ok(message) => (ProbeCode::Ok, message),
            Err(f) => (f.code, f.message),
        };
        Diagnostics {
            code,
            message,
            latency_ms,
            steps: self.steps,
        }
    }
}

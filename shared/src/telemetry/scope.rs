//! What one invocation gathers while it runs — its request id, its caller's tenant, the time spent
//! per step, the probes it ran and the events worth counting — held in a task-local so the layers
//! that measure (identity, store, envelope, probe, breaker) need no extra parameter. Outside a
//! scope (a unit test, a spawned task) every call here does nothing.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static SCOPE: RefCell<Gathered>;
}

/// The steps a request's time is split into (`timings` on its log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Resolving the caller (authorizer context, or verifying a bearer token).
    Identity,
    /// DynamoDB calls.
    Store,
    /// KMS calls (sealing and opening authConfig).
    Kms,
    /// The network probe of a connector.
    Probe,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Identity, Step::Store, Step::Kms, Step::Probe];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Identity => "identity",
            Step::Store => "store",
            Step::Kms => "kms",
            Step::Probe => "probe",
        }
    }
}

/// One probe's outcome, as its metric dimensions take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSample {
    pub kind: &'static str,
    pub code: &'static str,
    pub depth: &'static str,
    pub latency_ms: u64,
}

/// What a sweep run (all shards, or one) did, for its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepSample {
    pub probed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Seconds from the oldest due `nextProbeAt` read to now (0 when nothing was due).
    pub lag_seconds: u64,
}

/// Everything one invocation gathered.
#[derive(Debug, Default)]
pub struct Gathered {
    pub request_id: String,
    pub tenant: Option<String>,
    /// Time per step, in the order of [`Step::ALL`]. Concurrent calls of one step add up.
    pub timings: [Duration; 4],
    pub probes: Vec<ProbeSample>,
    pub rate_limited: u32,
    pub circuits_opened: u32,
    pub sweeps: Vec<SweepSample>,
}

/// Runs `f` in a fresh scope; answers its output and what it gathered.
pub async fn gather<F: Future>(request_id: String, f: F) -> (F::Output, Gathered) {
    let fresh = RefCell::new(Gathered {
        request_id,
        ..Gathered::default()
    });
    SCOPE
        .scope(fresh, async {
            let out = f.await;
            (out, SCOPE.with(|g| g.take()))
        })
        .await
}

/// Changes the current scope's record, if there is one.
pub fn note(change: impl FnOnce(&mut Gathered)) {
    let _ = SCOPE.try_with(|g| change(&mut g.borrow_mut()));
}

/// Awaits `f`, adding the time it took to `step`.
pub async fn timed<F: Future>(step: Step, f: F) -> F::Output {
    let started = Instant::now();
    let out = f.await;
    let took = started.elapsed();
    note(|g| g.timings[step as usize] += took);
    out
}

/// `fut.timed(step)`: [`timed`] where a call chain ends (`client.get_item()…send().timed(Step::Store)`).
pub trait Timed: Future + Sized {
    fn timed(self, step: Step) -> impl Future<Output = Self::Output> {
        timed(step, self)
    }
}

impl<F: Future> Timed for F {}

/// The API request id of the current scope (API Gateway's, else Lambda's).
pub fn request_id() -> Option<String> {
    SCOPE
        .try_with(|g| g.borrow().request_id.clone())
        .ok()
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_gathers_only_its_own_notes() {
        note(|g| g.rate_limited += 1); // outside any scope: dropped
        let (out, g) = gather("req-1".into(), async {
            timed(Step::Store, tokio::time::sleep(Duration::from_millis(5))).await;
            note(|g| g.rate_limited += 1);
            request_id()
        })
        .await;
        assert_eq!(out.as_deref(), Some("req-1"));
        assert_eq!(g.rate_limited, 1);
        assert!(g.timings[Step::Store as usize] >= Duration::from_millis(5));
        assert_eq!(g.timings[Step::Kms as usize], Duration::ZERO);
        assert_eq!(request_id(), None);
    }
}

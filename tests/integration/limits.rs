//! The rate limit and the circuit breaker of the test endpoint, against the emulator.

use crate::support::listeners::{closed_port, listen, Peer};
use crate::support::{stack, test_through, tester_with, Reply, Tenant};
use futures_util::future::join_all;
use serde_json::json;
use shared::limits::breaker::BreakerPolicy;
use shared::limits::rate::RatePolicy;
use std::time::{Duration, SystemTime};

fn pg(name: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    json!({"name": name, "type": "postgresql", "config": {"host": "127.0.0.1", "port": addr.port(), "database": "d"}})
}

#[tokio::test]
async fn exactly_the_limit_is_admitted_under_concurrency() {
    let st = stack().await;
    let tenant = crate::support::unique_tenant("rate");
    let policy = RatePolicy {
        limit: 100,
        window: Duration::from_secs(60),
    };
    // One fixed moment, so nothing refills between the 150 calls whatever the clock does.
    let now = SystemTime::now();
    let calls = (0..150).map(|_| {
        let (store, tenant) = (st.store.clone(), tenant.clone());
        tokio::spawn(async move { policy.admit(&store, &tenant, now).await.unwrap() })
    });
    let decisions: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let admitted = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(admitted, 100);
    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort();
    assert_eq!(
        remaining,
        (0..100).collect::<Vec<u32>>(),
        "each admitted call saw its own count"
    );
    // Refused: nothing left, full again in a window, the next admission one interval (0.6 s) away.
    assert!(decisions.iter().filter(|d| !d.allowed).all(|d| (
        d.remaining,
        d.full_in_secs,
        d.retry_after()
    ) == (0, 60, 1)));
}

#[tokio::test]
async fn through_the_api_150_concurrent_tests_admit_exactly_100() {
    let st = stack().await;
    let mut tester = tester_with(&st.sdk, &st.key_id, BreakerPolicy::default(), 100);
    // A day per 100: nothing refills while the calls run, so exactly the bucket is admitted.
    tester.rate.window = Duration::from_secs(86_400);
    let tester = std::sync::Arc::new(tester);
    let t = std::sync::Arc::new(Tenant::new("rate150"));
    let calls = (0..150).map(|_| {
        let (tester, t) = (tester.clone(), t.clone());
        // The spec's own example id: admitted calls find nothing (404), refused ones are 429.
        tokio::spawn(async move { test_through(&tester, &t, "conn_001").await.status })
    });
    let mut statuses: Vec<u16> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 100);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 50);
}

#[tokio::test]
async fn over_the_limit_the_endpoint_answers_429_with_headers() {
    let st = stack().await;
    let tester = tester_with(&st.sdk, &st.key_id, BreakerPolicy::default(), 2);
    // 2 per 60 s: a bucket of 2, one more every 30 s.
    let t = Tenant::new("rate429");
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(test_through(&tester, &t, "conn_01ARZ3NDEKTSV4RRFFQ69G5FAV").await);
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 404, 429]);
    assert_eq!(replies[0].headers["ratelimit"], "\"tenant\";r=1;t=30");
    let r = &replies[2];
    assert_eq!(r.code(), "rate_limited");
    // The next admission is one refill (30 s) away, the bucket full in 60 s.
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    let header = r.headers["ratelimit"].to_str().unwrap();
    assert!(
        header == "\"tenant\";r=0;t=60" || header == "\"tenant\";r=0;t=59",
        "{header}"
    );
    assert_eq!(r.headers["ratelimit-policy"], "\"tenant\";q=2;w=60");
}

#[tokio::test]
async fn five_failures_open_the_circuit_and_an_update_resets_it() {
    let t = Tenant::new("breaker");
    let id = t.create_id(pg("flaky", closed_port().await)).await;
    for i in 1..=5 {
        let r = t.test(&id).await;
        assert_eq!(
            (r.status, r.body["diagnostics"]["code"].as_str()),
            (200, Some("connection_refused"))
        );
        assert_eq!(r.body["circuit"]["consecutiveFailures"], i);
        let state = if i < 5 { "closed" } else { "open" };
        assert_eq!(r.body["circuit"]["state"], state, "after {i} failures");
    }
    let r = t.test(&id).await;
    assert_eq!((r.status, r.code()), (503, "circuit_open"));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "open for 60 s: {retry}");
    assert!(
        r.headers.contains_key("ratelimit"),
        "rate headers on every response"
    );

    // A new destination closes the circuit.
    let live = listen(Peer::Postgres {
        delay: Duration::ZERO,
    })
    .await;
    let u = t.update(json!({"id": id, "config": {"host": "127.0.0.1", "port": live.port(), "database": "d"}})).await;
    assert_eq!(u.status, 200, "{}", u.raw);
    let r = t.test(&id).await;
    assert_eq!(
        (r.status, r.body["diagnostics"]["code"].as_str()),
        (200, Some("ok"))
    );
    assert_eq!(
        r.body["circuit"],
        json!({"state": "closed", "consecutiveFailures": 0, "retryAt": null})
    );
}

#[tokio::test]
async fn blocked_and_invalid_configs_do_not_count() {
    let t = Tenant::new("uncounted");
    let id = t
        .create_id(
            json!({"name": "blocked", "type": "rest_api", "config": {"url": "http://10.1.2.3/"}}),
        )
        .await;
    for _ in 0..7 {
        let r = t.test(&id).await;
        assert_eq!(
            (r.status, r.body["diagnostics"]["code"].as_str()),
            (200, Some("destination_blocked"))
        );
        assert_eq!(r.body["circuit"]["consecutiveFailures"], 0);
    }
}

/// A tester whose open period is zero, so the trial can be reached without waiting.
async fn instant_reopen_tester(
) -> shared::handlers::test::Tester<shared::store::DynamoStore, shared::envelope::KmsEnvelope> {
    let st = stack().await;
    let policy = BreakerPolicy {
        base_open: Duration::ZERO,
        ..BreakerPolicy::default()
    };
    tester_with(&st.sdk, &st.key_id, policy, 1000)
}

#[tokio::test]
async fn half_open_admits_exactly_one_trial() {
    let tester = std::sync::Arc::new(instant_reopen_tester().await);
    let t = std::sync::Arc::new(Tenant::new("halfopen"));
    let closed = closed_port().await;
    let id = t.create_id(pg("trial", closed)).await;
    for _ in 0..5 {
        test_through(&tester, &t, &id).await;
    }
    // Point the stored config at a slow peer without resetting the breaker (a raw write, as an
    // operator's fix of DNS would look from here), so the trial takes a while.
    let slow = listen(Peer::Postgres {
        delay: Duration::from_millis(400),
    })
    .await;
    let st = stack().await;
    let current = shared::store::ConnectorReader::get(&st.store, &t.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        current.breaker.unwrap().state,
        shared::limits::breaker::CircuitState::Open
    );
    let mut next = current.clone();
    next.config.insert("port".into(), json!(slow.port()));
    next.version += 1;
    shared::store::ConnectorWriter::replace(&st.store, &current, &next)
        .await
        .unwrap();

    let calls = (0..10).map(|_| {
        let (tester, t, id) = (tester.clone(), t.clone(), id.clone());
        tokio::spawn(async move { test_through(&tester, &t, &id).await })
    });
    let replies: Vec<Reply> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let trials: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let rejected = replies
        .iter()
        .filter(|r| r.status == 503 && r.code() == "circuit_open")
        .count();
    assert_eq!(
        (trials.len(), rejected),
        (1, 9),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(trials[0].body["diagnostics"]["code"], "ok");
    assert_eq!(
        trials[0].body["circuit"]["state"], "closed",
        "a successful trial closes the circuit"
    );
}

#[tokio::test]
async fn a_failed_trial_reopens_for_longer() {
    let tester = instant_reopen_tester().await;
    let t = Tenant::new("reopen");
    let id = t.create_id(pg("reopen", closed_port().await)).await;
    for _ in 0..5 {
        test_through(&tester, &t, &id).await;
    }
    // Open period 0: the next call is the trial; it fails and re-opens.
    let r = test_through(&tester, &t, &id).await;
    assert_eq!(
        (r.status, r.body["circuit"]["state"].as_str()),
        (200, Some("open")),
        "{}",
        r.raw
    );
    assert_eq!(r.body["circuit"]["consecutiveFailures"], 6);
    let st = stack().await;
    let stored = shared::store::ConnectorReader::get(&st.store, &t.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.breaker.unwrap().opens,
        2,
        "each re-open doubles the next open period"
    );
}

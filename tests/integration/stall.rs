//! A stalled AWS dependency (accepts connections, never answers: a process stopped with SIGSTOP)
//! must not hang a request: every endpoint answers our own 503 with Retry-After at least 1 s before
//! the invocation's deadline, the sweep returns its summary, nothing is half-written, and once the
//! dependency answers again the very next request succeeds.

use crate::faults::{assert_consistent, proxy, request, sdk_through, Fault};
use crate::support::{postgres, stack, tester_with, Call, Reply, Tenant, TABLE};
use futures_util::future::join_all;
use lambda_http::{Context, RequestExt};
use serde_json::json;
use shared::envelope::KmsEnvelope;
use shared::handlers::{create, delete, list, update};
use shared::limits::breaker::BreakerPolicy;
use shared::store::DynamoStore;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The invocation's time during the stall: Lambda's deadline this far ahead of each request.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(4);
/// After the stall: the template's timeout (the emulator may be busy with the other tests).
const CRUD_TIMEOUT: Duration = Duration::from_secs(10);

/// The request as Lambda delivers it, with its deadline `FUNCTION_TIMEOUT` from now.
fn with_deadline(call: Call) -> lambda_http::Request {
    due_in(call, FUNCTION_TIMEOUT)
}

fn due_in(call: Call, timeout: Duration) -> lambda_http::Request {
    let mut ctx = Context::default();
    let deadline = SystemTime::now() + timeout;
    ctx.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    request(call).with_lambda_context(ctx)
}

/// The store and sealer of a function whose AWS calls go through a proxy that can stall, with the
/// functions' own SDK timeouts (for the template's 10 s): each request's own deadline or budget
/// is what must answer a stall in time.
async fn behind_a_proxy() -> (
    crate::faults::Proxy,
    aws_config::SdkConfig,
    DynamoStore,
    KmsEnvelope,
) {
    let p = proxy("-", Fault::None).await;
    let timeouts = shared::config::aws_timeouts(CRUD_TIMEOUT - shared::deadline::MARGIN);
    let sdk = sdk_through(&p, Some(timeouts)).await;
    let store = DynamoStore::from_sdk(&sdk, TABLE);
    let sealer = KmsEnvelope::from_sdk(&sdk, &stack().await.key_id);
    (p, sdk, store, sealer)
}

#[tokio::test]
async fn a_stalled_dependency_answers_503_in_time_and_the_next_request_succeeds() {
    let st = stack().await;
    let t = Tenant::new("stall");
    // Written before the stall, through the healthy stack.
    let kept = t.create_id(postgres("kept")).await;
    let doomed = t.create_id(postgres("doomed")).await;

    let (p, sdk, store, sealer) = behind_a_proxy().await;
    let tester = tester_with(&sdk, &st.key_id, BreakerPolicy::default(), 100);
    let v = Some(&st.verifier);
    let calls = |suffix: &str| {
        let auth = |c: Call| c.bearer(&t.token);
        (
            auth(Call::new("GET", "/api/v1/connectors")),
            auth(Call::new("POST", "/api/v1/connectors")).json(json!({
                "name": format!("new-{suffix}"), "type": "mysql",
                "config": {"host": "db.example.com", "port": 3306, "database": "d"},
                "authConfig": {"username": "u", "password": "stalled-secret"}
            })),
            auth(Call::new("PUT", "/api/v1/connectors"))
                .json(json!({"id": kept, "description": format!("edited {suffix}")})),
            auth(Call::new("DELETE", "/api/v1/connectors")).query("id", &doomed),
            auth(Call::new("POST", "/api/v1/connectors/test")).json(json!({ "id": kept })),
        )
    };

    // Stalled: every endpoint answers 503 + Retry-After, ≥ 1 s before its deadline.
    p.stall(true);
    let (l, c, u, d, x) = calls("during");
    let started = Instant::now();
    // Bounded here too, so code without deadlines fails this test instead of hanging it.
    let all = join_all([
        Box::pin(timed(
            "list",
            list::handle(&store, v, with_deadline(l), crate::support::HISTORY),
        )) as Pending,
        Box::pin(timed(
            "create",
            create::handle(&store, &sealer, v, with_deadline(c)),
        )),
        Box::pin(timed(
            "update",
            update::handle(&store, &sealer, v, with_deadline(u)),
        )),
        Box::pin(timed("delete", delete::handle(&store, v, with_deadline(d)))),
        Box::pin(timed("test", tester.handle(with_deadline(x)))),
    ]);
    let replies: Vec<(&str, Reply, Duration)> = tokio::time::timeout(2 * FUNCTION_TIMEOUT, all)
        .await
        .expect("a stalled dependency hung the requests past their deadline");
    for (name, r, took) in &replies {
        assert_eq!(
            (r.status, r.code()),
            (503, "unavailable"),
            "{name}: {}",
            r.raw
        );
        assert!(
            r.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap()
                >= 1
        );
        assert!(
            *took <= FUNCTION_TIMEOUT - Duration::from_secs(1),
            "{name} answered after {took:?}, less than 1 s before its {FUNCTION_TIMEOUT:?} deadline"
        );
        assert!(!r.raw.contains("stalled-secret"));
    }
    // The sweep stops starting probes and returns its summary in time.
    let scheduled = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/scheduled.json"
    ))
    .unwrap();
    let sweep_started = Instant::now();
    let mut ctx = Context::default();
    ctx.deadline = (SystemTime::now() + FUNCTION_TIMEOUT)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = lambda_http::request::from_str(&scheduled)
        .unwrap()
        .with_lambda_context(ctx);
    let summary = tokio::time::timeout(2 * FUNCTION_TIMEOUT, tester.handle_event(event))
        .await
        .expect("a stalled dependency hung the sweep past its deadline");
    let summary = Reply::from(summary);
    assert_eq!(summary.status, 200, "{}", summary.raw);
    assert_eq!(summary.body["probed"], 0, "{}", summary.raw);
    assert!(sweep_started.elapsed() <= FUNCTION_TIMEOUT - Duration::from_secs(1));
    assert!(started.elapsed() < 2 * FUNCTION_TIMEOUT);

    // Resumed: the very next request of each kind succeeds, and what was written before is intact.
    p.stall(false);
    let before = t.get(&kept).await;
    assert_eq!(
        before.body["version"], 1,
        "the stalled update changed nothing"
    );
    assert_eq!(
        assert_consistent(&t.id).await,
        2,
        "the stalled create and delete wrote nothing"
    );
    let (l, c, u, d, x) = calls("after");
    let r = Reply::from(
        list::handle(&store, v, due_in(l, CRUD_TIMEOUT), crate::support::HISTORY).await,
    );
    assert_eq!(
        (r.status, r.body["total"].as_u64()),
        (200, Some(2)),
        "{}",
        r.raw
    );
    let r = Reply::from(create::handle(&store, &sealer, v, due_in(c, CRUD_TIMEOUT)).await);
    assert_eq!(r.status, 201, "{}", r.raw);
    let r = Reply::from(update::handle(&store, &sealer, v, due_in(u, CRUD_TIMEOUT)).await);
    assert_eq!(
        (r.status, r.body["version"].as_u64()),
        (200, Some(2)),
        "{}",
        r.raw
    );
    let r = Reply::from(delete::handle(&store, v, due_in(d, CRUD_TIMEOUT)).await);
    assert_eq!(r.status, 204, "{}", r.raw);
    let r = Reply::from(tester.handle(due_in(x, CRUD_TIMEOUT)).await);
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(assert_consistent(&t.id).await, 2);
}

type Pending<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (&'static str, Reply, Duration)> + Send + 'a>,
>;

async fn timed(
    name: &'static str,
    work: impl std::future::Future<Output = lambda_http::Response<lambda_http::Body>>,
) -> (&'static str, Reply, Duration) {
    let started = Instant::now();
    let resp = work.await;
    (name, Reply::from(resp), started.elapsed())
}

/// Hardening III, point 6: with the template's 10 s timeout, a stalled DynamoDB or KMS (which
/// answer in milliseconds when healthy) costs a list or CRUD request at most the request budget
/// (4 s), not the 8.5 s up to its deadline; 1 s of margin to the promised 5 s.
#[tokio::test]
async fn crud_answers_a_stall_within_five_seconds_whatever_the_function_timeout() {
    let st = stack().await;
    let t = Tenant::new("stall5");
    let kept = t.create_id(postgres("kept5")).await;
    let (p, _sdk, store, sealer) = behind_a_proxy().await;
    let v = Some(&st.verifier);
    let auth = |c: Call| c.bearer(&t.token);
    let create_call = auth(Call::new("POST", "/api/v1/connectors")).json(json!({
        "name": "new5", "type": "mysql",
        "config": {"host": "db.example.com", "port": 3306, "database": "d"},
        "authConfig": {"username": "u", "password": "stalled-secret"}
    }));
    p.stall(true);
    let all = join_all([
        Box::pin(timed(
            "list",
            list::handle(
                &store,
                v,
                due_in(auth(Call::new("GET", "/api/v1/connectors")), CRUD_TIMEOUT),
                crate::support::HISTORY,
            ),
        )) as Pending,
        Box::pin(timed(
            "create",
            create::handle(&store, &sealer, v, due_in(create_call, CRUD_TIMEOUT)),
        )),
        Box::pin(timed(
            "update",
            update::handle(
                &store,
                &sealer,
                v,
                due_in(
                    auth(Call::new("PUT", "/api/v1/connectors"))
                        .json(json!({"id": kept, "description": "x"})),
                    CRUD_TIMEOUT,
                ),
            ),
        )),
        Box::pin(timed(
            "delete",
            delete::handle(
                &store,
                v,
                due_in(
                    auth(Call::new("DELETE", "/api/v1/connectors")).query("id", &kept),
                    CRUD_TIMEOUT,
                ),
            ),
        )),
    ]);
    let replies = tokio::time::timeout(CRUD_TIMEOUT, all)
        .await
        .expect("a stalled dependency hung a CRUD request past its deadline");
    p.stall(false);
    for (name, r, took) in &replies {
        assert_eq!(
            (r.status, r.code()),
            (503, "unavailable"),
            "{name}: {}",
            r.raw
        );
        assert!(r.headers.contains_key("retry-after"), "{name}");
        assert!(
            *took < Duration::from_secs(5),
            "{name} answered the stall after {took:?}"
        );
    }
    assert_eq!(t.get(&kept).await.body["version"], 1, "nothing was written");
}

//! Faults between the functions and AWS: a fault-injecting proxy in front of the emulator
//! throttles, cuts or drops chosen operations; the handlers must answer 503 (with Retry-After)
//! and leave nothing half-written in the table.

use crate::support::{postgres, stack, Call, Reply, Tenant, TABLE};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::envelope::KmsEnvelope;
use shared::handlers::{create, list, update};
use shared::store::DynamoStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to requests whose `X-Amz-Target` ends with `op`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Nothing: every request is forwarded (until the proxy is stalled).
    None,
    /// Answers DynamoDB's throttling error, every time.
    Throttle,
    /// Closes the connection without an answer, every time (a service that is down).
    Drop,
    /// Forwards half of the first request's body, then cuts both connections.
    CutMidRequest,
    /// Forwards the first request whole (it takes effect), then cuts before the answer.
    CutBeforeAnswer,
}

pub struct Proxy {
    pub url: String,
    /// Operation names seen, in order.
    seen: Arc<Mutex<Vec<String>>>,
    /// While set, every request is read and never answered (a process stopped with SIGSTOP: the
    /// socket accepts, nothing replies); held requests are dropped, never forwarded.
    stalled: Arc<AtomicBool>,
}

impl Proxy {
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

pub async fn proxy(op: &'static str, fault: Fault) -> Proxy {
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("make test sets AWS_ENDPOINT_URL");
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fired = Arc::new(Mutex::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let (log, stall) = (seen.clone(), stalled.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, log, fired, stall) =
                (upstream.clone(), log.clone(), fired.clone(), stall.clone());
            tokio::spawn(async move {
                let _ = serve(client, &upstream, op, fault, &log, &fired, &stall).await;
            });
        }
    });
    Proxy { url, seen, stalled }
}

async fn serve(
    client: TcpStream,
    upstream: &str,
    op: &str,
    fault: Fault,
    log: &Mutex<Vec<String>>,
    fired: &Mutex<bool>,
    stalled: &AtomicBool,
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let n = client.read_until(b'\n', &mut head).await?;
            if n == 0 {
                return Ok(());
            }
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).to_lowercase();
        let header = |name: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
        };
        let mut body = vec![
            0;
            header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        ];
        client.read_exact(&mut body).await?;
        let target = header("x-amz-target").unwrap_or_default();
        let name = target.rsplit('.').next().unwrap_or("").to_string();
        log.lock().unwrap().push(name.clone());
        if stalled.load(Ordering::SeqCst) {
            // Hold the request unanswered until the client gives up on the connection.
            let mut rest = [0u8; 1024];
            while client.read(&mut rest).await? > 0 {}
            return Ok(());
        }
        let hit = name.eq_ignore_ascii_case(op);
        let first = hit && !std::mem::replace(&mut *fired.lock().unwrap(), true);
        match fault {
            Fault::Throttle if hit => {
                let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let reply = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-errortype: ThrottlingException\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                client.get_mut().write_all(reply.as_bytes()).await?;
                client.get_mut().write_all(body).await?;
                continue;
            }
            Fault::Drop if hit => return Ok(()),
            Fault::CutMidRequest if first => {
                let mut up = TcpStream::connect(upstream).await?;
                up.write_all(&head).await?;
                up.write_all(&body[..body.len() / 2]).await?;
                return Ok(());
            }
            _ => {}
        }
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&head).await?;
        up.write_all(&body).await?;
        let mut reply = Vec::new();
        up.read_to_end(&mut reply).await?; // the emulator closes after each answer
        if fault == Fault::CutBeforeAnswer && first {
            return Ok(());
        }
        client.get_mut().write_all(&reply).await?;
        return Ok(()); // its answer said Connection: close
    }
}

/// A store and sealer whose AWS calls go through the proxy, built as the functions build theirs
/// (the SDK's default retries), against the test table and key.
async fn through(p: &Proxy) -> (DynamoStore, KmsEnvelope) {
    let st = stack().await;
    let sdk = sdk_through(p, None).await;
    (
        DynamoStore::from_sdk(&sdk, TABLE),
        KmsEnvelope::from_sdk(&sdk, &st.key_id),
    )
}

/// The SDK configuration of the functions (with `timeouts` where given), sending to the proxy.
pub async fn sdk_through(
    p: &Proxy,
    timeouts: Option<aws_config::timeout::TimeoutConfig>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(t) = timeouts {
        loader = loader.timeout_config(t);
    }
    loader
        .http_client(shared::tls::aws_http_client())
        .endpoint_url(&p.url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub fn request(call: Call) -> lambda_http::Request {
    lambda_http::request::from_str(&call.event().to_string()).unwrap()
}

/// Every item of the tenant's partition, as (sk, item).
pub async fn partition(
    tenant: &str,
) -> Vec<(String, std::collections::HashMap<String, AttributeValue>)> {
    let out = stack()
        .await
        .dynamo
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| (i["sk"].as_s().unwrap().clone(), i.clone()))
        .collect()
}

/// Connectors, name claims and the counter agree: no transaction left half of itself behind.
pub async fn assert_consistent(tenant: &str) -> usize {
    let items = partition(tenant).await;
    let connectors = items
        .iter()
        .filter(|(sk, _)| sk.starts_with("CONNECTOR#"))
        .count();
    let names = items
        .iter()
        .filter(|(sk, _)| sk.starts_with("NAME#"))
        .count();
    let count = items
        .iter()
        .find(|(sk, _)| sk == "COUNT")
        .map(|(_, i)| i["count"].as_n().unwrap().parse::<usize>().unwrap())
        .unwrap_or(0);
    assert_eq!(
        (names, count),
        (connectors, connectors),
        "partition of {tenant}: {items:?}"
    );
    connectors
}

/// A create through the proxy's store and sealer.
async fn create_via(store: &DynamoStore, sealer: &KmsEnvelope, call: Call) -> Reply {
    let st = stack().await;
    Reply::from(create::handle(store, sealer, Some(&st.verifier), request(call)).await)
}

fn create_call(t: &Tenant, body: serde_json::Value) -> Call {
    Call::new("POST", "/api/v1/connectors")
        .bearer(&t.token)
        .json(body)
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_then_answered_with_503_and_retry_after() {
    let t = Tenant::new("throttled");
    let p = proxy("TransactWriteItems", Fault::Throttle).await;
    let (store, sealer) = through(&p).await;
    let st = stack().await;
    let r = create_via(&store, &sealer, create_call(&t, postgres("t"))).await;
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{}", r.raw);
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    let attempts = p
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|o| *o == "transactwriteitems")
        .count();
    assert!(
        attempts >= 3,
        "the SDK retried with backoff before giving up: {attempts} attempt(s)"
    );
    assert_eq!(assert_consistent(&t.id).await, 0);

    let p = proxy("Query", Fault::Throttle).await;
    let (store, _) = through(&p).await;
    let call = Call::new("GET", "/api/v1/connectors").bearer(&t.token);
    let r = Reply::from(
        list::handle(
            &store,
            Some(&st.verifier),
            request(call),
            crate::support::HISTORY,
        )
        .await,
    );
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{}", r.raw);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn kms_down_during_create_or_update_writes_nothing() {
    let t = Tenant::new("kmsdown");
    let st = stack().await;
    let p = proxy("GenerateDataKey", Fault::Drop).await;
    let (store, sealer) = through(&p).await;
    let body = json!({"name": "sealed", "type": "mysql", "config": {"host": "db.example.com", "port": 3306, "database": "d"},
                      "authMethod": "password", "authConfig": {"username": "u", "password": "kms-down-secret"}});
    let r = create_via(&store, &sealer, create_call(&t, body)).await;
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{}", r.raw);
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        partition(&t.id).await.is_empty(),
        "nothing written when KMS is down"
    );

    let id = t.create_id(postgres("plain")).await;
    let put = Call::new("PUT", "/api/v1/connectors")
        .bearer(&t.token)
        .json(json!({"id": id, "authConfig": {"password": "new-secret"}}));
    let r = Reply::from(update::handle(&store, &sealer, Some(&st.verifier), request(put)).await);
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{}", r.raw);
    let now = t.get(&id).await;
    assert_eq!(now.body["version"], 1, "the failed update changed nothing");
    assert!(now.body["authConfig"].is_null(), "{}", now.raw);
    assert_eq!(assert_consistent(&t.id).await, 1);
}

#[tokio::test]
async fn a_connection_cut_inside_a_transaction_leaves_no_partial_items() {
    // Cut while the request is on the wire: the transaction never ran; the SDK's retry creates it.
    let t = Tenant::new("cutmid");
    let p = proxy("TransactWriteItems", Fault::CutMidRequest).await;
    let (store, sealer) = through(&p).await;
    let r = create_via(&store, &sealer, create_call(&t, postgres("mid"))).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(assert_consistent(&t.id).await, 1);

    // Cut after the transaction ran, before its answer: all of it is there, and the SDK's retry,
    // which finds the new connector's own id taken, is known to be that same transaction: 201.
    let t = Tenant::new("cutlate");
    let p = proxy("TransactWriteItems", Fault::CutBeforeAnswer).await;
    let (store, sealer) = through(&p).await;
    let r = create_via(&store, &sealer, create_call(&t, postgres("late"))).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(assert_consistent(&t.id).await, 1);
    assert_eq!(t.get(r.body["id"].as_str().unwrap()).await.status, 200);

    // The same with an Idempotency-Key: the kept answer is written in the same transaction.
    let t = Tenant::new("cutkey");
    let p = proxy("TransactWriteItems", Fault::CutBeforeAnswer).await;
    let (store, sealer) = through(&p).await;
    let call = create_call(&t, postgres("late")).header("Idempotency-Key", "cut-1");
    let r = create_via(&store, &sealer, call.clone()).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(assert_consistent(&t.id).await, 1);
    let again = create_via(&store, &sealer, call).await;
    assert_eq!(
        (again.status, &again.body),
        (201, &r.body),
        "the client's own retry gets the same answer"
    );
}

#[tokio::test]
async fn a_delete_whose_answer_was_cut_is_still_a_204() {
    // The delete transaction runs, its answer is cut; the SDK's retry finds nothing to delete.
    let t = Tenant::new("cutdelete");
    let id = t.create_id(postgres("gone")).await;
    let p = proxy("TransactWriteItems", Fault::CutBeforeAnswer).await;
    let (store, _) = through(&p).await;
    let st = stack().await;
    let call = Call::new("DELETE", "/api/v1/connectors")
        .query("id", &id)
        .bearer(&t.token);
    let r = Reply::from(
        shared::handlers::delete::handle(&store, Some(&st.verifier), request(call)).await,
    );
    assert_eq!(r.status, 204, "{}", r.raw);
    assert_eq!(assert_consistent(&t.id).await, 0);
    assert_eq!(t.get(&id).await.status, 404);
    // Nothing there from the start is still a 404.
    assert_eq!(t.delete(&id).await.status, 404);
}

/// The `Timeout:` and `PROBE_TIMEOUT_MS` of the test function in template.yaml.
fn test_function_limits() -> (u64, u64) {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let start = template
        .find("BuildProperties: {Binary: test}")
        .expect("the test function");
    let section = &template[start..];
    let number = |key: &str| -> u64 {
        let at = section
            .find(key)
            .unwrap_or_else(|| panic!("{key} in the test function"));
        section[at + key.len()..]
            .trim_start_matches([' ', '"'])
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (number("Timeout:") * 1000, number("PROBE_TIMEOUT_MS:"))
}

#[tokio::test]
async fn a_target_that_never_answers_times_out_inside_the_probe_budget_and_the_lambda_timeout() {
    use crate::support::listeners::{listen, Peer};
    use crate::support::{probe_settings, test_through, tester_probing_with};
    let settings = probe_settings();
    let budget = settings.total_timeout;
    let tester = tester_probing_with(settings).await;
    let t = Tenant::new("silent");
    let silent = listen(Peer::Silent).await;
    let id = t
        .create_id(json!({"name": "silent", "type": "postgresql", "config": {"host": "127.0.0.1", "port": silent.port(), "database": "d"}}))
        .await;
    let started = std::time::Instant::now();
    let r = test_through(&tester, &t, &id).await;
    let took = started.elapsed();
    assert_eq!(r.body["diagnostics"]["code"], "timeout", "{}", r.raw);
    // The whole request (probe, KMS, table) ends within the probe budget plus a little.
    assert!(
        took < budget + std::time::Duration::from_secs(2),
        "took {took:?} for a {budget:?} budget"
    );
    // Deployed, the same holds with room to spare: the probe budget plus the same 2 s leaves at
    // least 5 s of the Lambda timeout for the table and KMS round trips.
    let (lambda_timeout_ms, probe_budget_ms) = test_function_limits();
    assert!(
        probe_budget_ms + 2_000 + 5_000 <= lambda_timeout_ms,
        "{probe_budget_ms} ms of probing in a {lambda_timeout_ms} ms Lambda"
    );
}

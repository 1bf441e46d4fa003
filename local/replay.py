"""Replays every sample event in events/ through the release binaries (target/lambda/*/bootstrap,
built by `cargo lambda build --release`) over the Lambda Runtime API that `cargo lambda watch
--only-lambda-apis` emulates, against the AWS emulator, and checks what each event should get.

Usage: replay.py EMULATOR_URL   (run under local/with-emulator.sh; exits non-zero on any mismatch)
"""

import json
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
FUNCTIONS = ["authorizer", "list", "create", "update", "delete", "test"]
SECRET = "replay-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token() -> str:
    env = dict(os.environ, JWT_SECRET=SECRET)
    return subprocess.check_output([sys.executable, os.path.join(ROOT, "local", "mint_token.py"), "acme", "admin"], env=env, text=True).strip()


def main() -> int:
    emulator = sys.argv[1]
    setup = subprocess.check_output([os.path.join(VENV_BIN, "python"), os.path.join(ROOT, "local", "aws_setup.py"), emulator, "connectors-replay"], text=True)
    env = dict(os.environ)
    env.update(line.split("=", 1) for line in setup.splitlines() if "=" in line)
    env.update(JWT_SECRET=SECRET, RUST_LOG="warn", PATH=VENV_BIN + os.pathsep + env.get("PATH", ""))
    # The sweep's shard queue, as the template wires it: the scheduled event fans out into it and
    # the replay hands its messages back to the function, as Lambda's event source mapping would.
    queue_url = sqs(emulator).create_queue(QueueName="connectors-replay-sweep-shards")["QueueUrl"]
    port = free_port()
    children = [subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", str(port)], cwd=ROOT, env=env)]
    try:
        time.sleep(3)
        for name in FUNCTIONS:
            binary = os.path.join(ROOT, "target", "lambda", name, "bootstrap")
            fn_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt/{name}", AWS_LAMBDA_FUNCTION_NAME=name,
                          AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1",
                          # As template.yaml sets it (cargo lambda's deadline is no moment in time).
                          FUNCTION_TIMEOUT_SECONDS="15" if name == "test" else "10")
            if name == "test":
                fn_env["SWEEP_QUEUE_URL"] = queue_url
            children.append(subprocess.Popen([binary], cwd=ROOT, env=fn_env))
        time.sleep(1)
        return replay(port, env, sqs(emulator), queue_url)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)


def invoke(port: int, function: str, event: dict, env: dict) -> dict:
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--data-ascii", json.dumps(event), "--output-format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        raise SystemExit(f"invoking {function} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def sqs(emulator: str):
    import boto3

    return boto3.client("sqs", endpoint_url=emulator, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def shard_event(message: dict) -> dict:
    """events/sweep-shard.json carrying one message received from the queue."""
    event = load("sweep-shard.json")
    event["Records"][0].update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"])
    return event


def load(name: str) -> dict:
    with open(os.path.join(ROOT, "events", name)) as f:
        return json.load(f)


def replay(port: int, env: dict, queue, queue_url: str) -> int:
    failures = []
    checks = []

    def expect(label: str, got, wanted) -> None:
        status = "ok" if got == wanted else "MISMATCH"
        print(f"{status:8} {label}: got {got!r}, expected {wanted!r}", flush=True)
        checks.append(label)
        if got != wanted:
            failures.append(label)

    authz = load("authorizer.json")
    expect("authorizer.json (placeholder token)", invoke(port, "authorizer", authz, env)["isAuthorized"], False)
    authz["headers"]["authorization"] = f"Bearer {token()}"
    result = invoke(port, "authorizer", authz, env)
    expect("authorizer.json (minted token)", (result["isAuthorized"], result["context"].get("tenantId")), (True, "acme"))

    for file, function, status in [
        ("create.json", "create", 201),
        ("create.json", "create", 409),
        ("list.json", "list", 200),
        ("list-cursor.json", "list", 200),
        ("detail.json", "list", 404),
        ("update.json", "update", 404),
        ("delete.json", "delete", 404),
        ("test.json", "test", 404),
        ("test-dry-run.json", "test", 200),
    ]:
        expect(f"{file} → {function}", invoke(port, function, load(file), env)["statusCode"], status)

    listed = json.loads(invoke(port, "list", load("list.json"), env)["body"])
    expect("list.json total after create", listed["total"], 1)
    expect("sweep-shard.json → test (no failed record)", invoke(port, "test", load("sweep-shard.json"), env), {"batchItemFailures": []})
    bad = load("sweep-shard.json")
    bad["Records"][0]["body"] = '{"shard": 99}'
    expect("sweep-shard.json with no shard message → that record fails",
           invoke(port, "test", bad, env), {"batchItemFailures": [{"itemIdentifier": bad["Records"][0]["messageId"]}]})

    expect("scheduled.json → test (fan-out)", invoke(port, "test", load("scheduled.json"), env), {"queued": 16})
    messages = []
    while True:
        got = queue.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        messages += got
    expect("the fan-out queued one message per shard", sorted(json.loads(m["Body"])["shard"] for m in messages), list(range(16)))
    answers = [invoke(port, "test", shard_event(m), env) for m in messages]
    expect("every shard message processed", [a for a in answers if a != {"batchItemFailures": []}], [])
    listed = json.loads(invoke(port, "list", load("list.json"), env)["body"])
    expect("the shard runs probed the new connector", [c.get("lastTestedAt") is not None for c in listed["data"]], [True])

    print(f"replay: {len(checks) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

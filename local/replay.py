"""Replays every sample event in events/ through the release binaries over the Lambda Runtime API
that `cargo lambda watch --only-lambda-apis` emulates, against the AWS emulator, and checks what
each event should get.

The binaries are the arm64 ones `make release` builds (target/lambda-arm64/*/bootstrap: the
architecture template.yaml deploys), run under user-mode emulation (Debian's qemu-user-static,
with the aarch64 glibc of libc6-arm64-cross as the sysroot) on an x86_64 machine. REPLAY_BINARIES
names another folder (target/lambda: the x86_64 build, run natively).

Each function's stdout goes to .local/replay/<function>.log; at the end its metric lines are
checked against the EMF specification (`cargo run --example emf-check`) and counted.

Usage: replay.py EMULATOR_URL   (run under local/with-emulator.sh; exits non-zero on any mismatch)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
FUNCTIONS = ["authorizer", "list", "create", "update", "delete", "test"]
SECRET = "replay-secret"


BINARIES = os.environ.get("REPLAY_BINARIES", os.path.join(ROOT, "target", "lambda-arm64"))
QEMU = "qemu-aarch64-static"
SYSROOT = "/usr/aarch64-linux-gnu"


def elf_machine(path: str) -> str:
    """The ELF header's e_machine: 'aarch64', 'x86_64' or the number."""
    with open(path, "rb") as f:
        header = f.read(20)
    machine = int.from_bytes(header[18:20], "little")
    return {0xB7: "aarch64", 0x3E: "x86_64"}.get(machine, str(machine))


def command(binary: str) -> list:
    """How to run `binary` here: natively, or under qemu when it is arm64 and this machine is not."""
    arch = elf_machine(binary)
    if arch == os.uname().machine:
        return [binary]
    if arch != "aarch64" or shutil.which(QEMU) is None or not os.path.isdir(SYSROOT):
        raise SystemExit(f"{binary} is {arch}; running it here needs {QEMU} and {SYSROOT} (apt-get install qemu-user-static libc6-arm64-cross)")
    return [QEMU, "-L", SYSROOT, binary]


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
    logs = os.path.join(ROOT, ".local", "replay")
    os.makedirs(logs, exist_ok=True)
    children = [subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", str(port)], cwd=ROOT, env=env)]
    try:
        time.sleep(3)
        for name in FUNCTIONS:
            binary = os.path.join(BINARIES, name, "bootstrap")
            fn_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt/{name}", AWS_LAMBDA_FUNCTION_NAME=name,
                          AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1",
                          # As template.yaml sets it (cargo lambda's deadline is no moment in time).
                          FUNCTION_TIMEOUT_SECONDS="15" if name == "test" else "10")
            if name == "test":
                fn_env["SWEEP_QUEUE_URL"] = queue_url
            run = command(binary)
            if name == FUNCTIONS[0]:
                print(f"replay: {elf_machine(binary)} binaries from {BINARIES}{' under ' + QEMU if run[0] == QEMU else ''}", flush=True)
            log = open(os.path.join(logs, f"{name}.log"), "w")
            children.append(subprocess.Popen(run, cwd=ROOT, env=fn_env, stdout=log))
        time.sleep(1)
        failed = replay(port, env, sqs(emulator), queue_url)
        time.sleep(1)  # the last lines reach the logs
        return failed | check_metrics(logs)
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


def check_metrics(logs: str) -> int:
    """Every function's metric lines pass the EMF check, with the counts the replay implies."""
    metrics, failures = [], []
    for name in FUNCTIONS:
        out = subprocess.run(["cargo", "run", "-q", "-p", "integration-tests", "--example", "emf-check", "--", os.path.join(logs, f"{name}.log")],
                             cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"{name}: {out.stdout[-2000:]}{out.stderr[-2000:]}")
            continue
        metrics += json.loads(out.stdout)["metrics"]

    def total(metric: str, **dims) -> float:
        return sum(m["sum"] for m in metrics if m["name"] == metric and m["dimensions"] == dims)

    for label, got, wanted in [
        ("authorizer: one allowed, one denied", (total("Requests", function="authorizer", statusClass="2xx"), total("Requests", function="authorizer", statusClass="4xx")), (1, 1)),
        ("create: one 201, one 409", (total("Requests", function="create", statusClass="2xx"), total("Requests", function="create", statusClass="4xx")), (1, 1)),
        ("the shard runs report what they probed", total("SweepProbed", service="connectors-api") >= 1, True),
        ("every probe counted (dry run + sweep)", total("ProbeResult", service="connectors-api") >= 2, True),
    ]:
        print(f"{'ok' if got == wanted else 'MISMATCH':8} metrics: {label}: got {got!r}, expected {wanted!r}", flush=True)
        if got != wanted:
            failures.append(label)
    for f in failures:
        print(f"MISMATCH metrics: {f}", flush=True)
    return 1 if failures else 0


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
        ("test-tunnel-dry-run.json", "test", 200),
        ("tunnel-key.json", "create", 200),
        ("history.json", "list", 404),
    ]:
        expect(f"{file} → {function}", invoke(port, function, load(file), env)["statusCode"], status)

    listed = json.loads(invoke(port, "list", load("list.json"), env)["body"])
    expect("list.json total after create", listed["total"], 1)
    missing = invoke(port, "list", load("detail.json"), env)
    request_id = load("detail.json")["requestContext"]["requestId"]
    expect("detail.json 404 names API Gateway's request id (body and X-Request-Id)",
           (json.loads(missing["body"])["error"].get("requestId"), {k.lower(): v for k, v in missing["headers"].items()}.get("x-request-id")),
           (request_id, request_id))
    expect("sweep-shard.json → test (no failed record)", invoke(port, "test", load("sweep-shard.json"), env), {"batchItemFailures": []})
    bad = load("sweep-shard.json")
    bad["Records"][0]["body"] = '{"shard": 99}'
    expect("sweep-shard.json with no shard message → that record fails",
           invoke(port, "test", bad, env), {"batchItemFailures": [{"itemIdentifier": bad["Records"][0]["messageId"]}]})

    # The stream batch goes to the publisher (the test binary's stream event kind): its history
    # item written, its event published to the emulator's default bus, no record failed.
    expect("stream-batch.json → test (publisher)", invoke(port, "test", load("stream-batch.json"), env), {"batchItemFailures": []})

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

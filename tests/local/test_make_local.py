"""`make local` as a new user meets it, through its own start script (local/run.sh):

- it still serves after idling longer than the local runtime's old 30 s timeout (cargo-lambda
  answered the functions' long-poll for their next event 408 without a request id, lambda_runtime
  panicked, and every function was dead until a restart);
- a file a tool writes into the checkout does not rebuild or restart the functions;
- two stacks on other ports run side by side, and stopping one (Ctrl-C) leaves the other serving
  with its own emulator;
- after a few requests, the function logs hold metric lines (EMF) that the checker accepts
  (`cargo run --example emf-check`, the same rules as the unit tests) with the right counts, and
  every error body's `requestId` is on that request's log lines.

This test waits real time on purpose (IDLE_SECONDS); it is the only one that does.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IDLE_SECONDS = 45  # longer than the 30 s after which the old stack died
SECRET = "make-local-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(tenant: str) -> str:
    env = dict(os.environ, JWT_SECRET=SECRET, JWT_ISSUER="connectors-api-local", JWT_AUDIENCE="connectors-api")
    out = subprocess.run([sys.executable, "local/mint_token.py", tenant, "admin"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def processes() -> dict:
    """pid → (parent pid, command line) of every live process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(entry.name)] = (int(fields[1]), cmd)
        except (OSError, ValueError):
            continue
    return found


def descendants(root: int) -> dict:
    """pid → command line of every live process below `root` (cargo-lambda starts the functions
    in sessions of their own, so the session does not find them; the parent chain does)."""
    table = processes()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmd) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmd
                frontier.append(pid)
    return found


class Stack:
    def __init__(self, name: str):
        self.port, self.emulator_port = free_port(), free_port()
        self.log_path = ROOT / ".local" / f"make-local-test-{name}.log"
        self.proc = None
        self.tenant = f"make-local-{name}"
        self.token = token(self.tenant)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/connectors"

    def start(self) -> None:
        self.log_path.parent.mkdir(exist_ok=True)
        env = dict(os.environ, PORT=str(self.port), AWS_EMULATOR_PORT=str(self.emulator_port), JWT_SECRET=SECRET, RUST_LOG="warn")
        env.pop("AWS_ENDPOINT_URL", None)
        self.log = open(self.log_path, "w")
        # Its own session, as a terminal would give it: Ctrl-C reaches the whole group.
        self.proc = subprocess.Popen(["local/run.sh"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make local exited: {self.log_path.read_text()[-3000:]}"
            try:
                status, _ = self.get(timeout=5)
                if status in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"make local did not serve within 600 s: {self.log_path.read_text()[-3000:]}")

    def get(self, timeout: float = 40):
        req = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def call(self, method: str, path: str = "", body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=40) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")

    def tunnel_key(self):
        """GET /api/v1/tunnel-key, routed by cargo lambda's router to the create function."""
        url = self.url.replace("/api/v1/connectors", "/api/v1/tunnel-key")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=40) as resp:
            return resp.status, json.loads(resp.read())

    def emulator_pid(self) -> int:
        return int((ROOT / ".local" / f"stack-{self.port}" / "emulator.pid").read_text())

    def functions(self) -> dict:
        return {pid: cmd for pid, cmd in descendants(self.proc.pid).items() if "target/debug/" in cmd}

    def stop(self) -> None:
        # The emulator is no descendant (its starter exited); its pid file names it.
        self.family = list(descendants(self.proc.pid))
        if (ROOT / ".local" / f"stack-{self.port}" / "emulator.pid").exists():
            self.family.append(self.emulator_pid())
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Nothing of this stack may outlive it: emulator, cargo-lambda, functions.
        deadline = time.monotonic() + 10
        while any(alive(p) for p in self.family) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in self.family if alive(p)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running after Ctrl-C: {left}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_make_local_survives_idling_tool_writes_and_a_second_stack():
    first, second = Stack("first"), Stack("second")
    try:
        first.start()
        status, body = first.get()
        assert status == 200, body

        # A tool writes a cache into the checkout: nothing is rebuilt or restarted.
        functions_before = first.functions()
        assert functions_before, "the list function runs after the first request"
        scratch = ROOT / ".hypothesis" / "make-local-test.txt"
        scratch.parent.mkdir(exist_ok=True)
        scratch.write_text(str(time.time()))
        (ROOT / ".local" / "scratch.txt").write_text("x")
        time.sleep(3)
        status, body = first.get(timeout=5)
        assert status == 200, body
        functions_after = first.functions()
        assert set(functions_before) <= set(functions_after), "a function restarted after a non-source write"

        # Idle longer than the old timeout, then use it again: answered at once.
        time.sleep(IDLE_SECONDS)
        started = time.monotonic()
        status, body = first.get(timeout=10)
        assert status == 200, (status, body, first.log_path.read_text()[-2000:])
        assert time.monotonic() - started < 5
        assert "panicked" not in first.log_path.read_text()

        # A second stack on other ports; stopping the first leaves it serving with its own emulator.
        second.start()
        assert second.get()[0] == 200
        first_emulator, second_emulator = first.emulator_pid(), second.emulator_pid()
        assert first_emulator != second_emulator
        first.stop()
        assert not alive(first_emulator)
        assert alive(second_emulator)
        status, body = second.get(timeout=10)
        assert status == 200, body
        # The tenant's tunnel key is served (by the create function), the same on a second call.
        status, key = second.tunnel_key()
        assert status == 200 and key["publicKey"].startswith("ssh-ed25519 "), key
        assert second.tunnel_key() == (200, key)
        metrics_and_request_ids(second)
    finally:
        for stack in (first, second):
            if stack.proc:
                stack.stop()


def metrics_and_request_ids(stack: Stack) -> None:
    """A few requests, then the log: valid EMF lines with the right counts, and each error's
    requestId on its request's lines."""
    pg = {"name": "measured", "type": "postgresql", "config": {"host": "127.0.0.1", "port": 5432, "database": "d"},
          "authMethod": "password", "authConfig": {"username": "u", "password": "make-local-metrics-secret"}}
    status, _, created = stack.call("POST", "", pg)
    assert status == 201, created
    errors = []
    for method, path, body, expected in [
        ("POST", "", {"name": "bad", "type": "postgresql", "config": {"port": 70000}}, 400),
        ("POST", "", pg, 409),
        ("GET", "/conn_01M8F3KVH9RKH7Q21NRM7GJ33Z", None, 404),
    ]:
        status, headers, answer = stack.call(method, path, body)
        assert status == expected, answer
        errors.append((headers, answer))
    # Loopback is blocked (PROBE_ALLOW_CIDRS is empty): the probe answers destination_blocked.
    status, _, tested = stack.call("POST", "/test", {"id": created["id"]})
    assert status == 200, tested
    code = tested["diagnostics"]["code"]
    time.sleep(1)  # the functions' last lines reach the log

    log = stack.log_path.read_text()
    for headers, answer in errors:
        rid = answer["error"]["requestId"]
        assert {k.lower(): v for k, v in headers.items()}["x-request-id"] == rid
        lines = [line for line in log.splitlines() if rid in line]
        assert any('"message":"request"' in line for line in lines), (rid, lines)

    checked = subprocess.run(["cargo", "run", "-q", "-p", "integration-tests", "--example", "emf-check", "--", str(stack.log_path)],
                             cwd=ROOT, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    report = json.loads(checked.stdout)
    assert report["emfLines"] >= 5 and report["invalid"] == []

    def total(name: str, **dims) -> float:
        return sum(m["sum"] for m in report["metrics"] if m["name"] == name and m["dimensions"] == dims)

    assert total("Requests", function="create", statusClass="2xx") == 1
    assert total("Requests", function="create", statusClass="4xx") == 2
    assert total("Requests", function="list", statusClass="4xx") == 1
    assert total("Requests", function="test", statusClass="2xx") == 1
    assert total("ProbeResult", code=code) == 1
    assert total("ProbeResult", type="postgresql", code=code, depth="none") == 1
    assert {m["namespace"] for m in report["metrics"]} == {"ConnectorsApi"}
    assert "make-local-metrics-secret" not in log

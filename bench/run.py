"""`make bench`: cold start, memory, warm latency, AWS round trips, binary size and sweep throughput
of the release binaries (target/lambda/*/bootstrap), side by side with a Python/boto3 peer.

Run under local/with-emulator.sh (AWS_ENDPOINT_URL names the emulator). Prints a Markdown table
and writes the figures as JSON (bench/results.json unless --out). Budgets: bench/check.py.
"""

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from runtime import LocalRuntime
from wiretap import Wiretap, busy, rounds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTIONS = ["authorizer", "list", "create", "update", "delete", "test"]
SECRET = "bench-secret"
TABLE = "connectors-bench"
SWEEP_TABLE = "connectors-bench-sweep"


def load_event(name: str) -> dict:
    with open(os.path.join(ROOT, "events", name)) as f:
        return json.load(f)


def pct(values: list, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        emulator = os.environ["AWS_ENDPOINT_URL"]
        setup = subprocess.check_output([sys.executable, os.path.join(ROOT, "local", "aws_setup.py"), emulator, TABLE], text=True)
        self.tap = Wiretap(int(emulator.rsplit(":", 1)[1]))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUST_LOG"))}
        env.update(line.split("=", 1) for line in setup.splitlines() if "=" in line)
        env.update(
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.tap.port}",
            AWS_LAMBDA_FUNCTION_NAME="bench",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench",
            AWS_LAMBDA_LOG_STREAM_NAME="bench",
            TABLE_NAME=TABLE,
            JWT_SECRET=SECRET,
            PROBE_ALLOW_CIDRS="127.0.0.1/32",
            TEST_RATE_LIMIT="100000000",
        )
        self.env = env
        self.pool: list = []  # connector ids created, consumed by update/test/delete
        self.results: dict = {"functions": {}, "peer": {}, "sweep": {}}
        self.counter = 0

    # ---- events -------------------------------------------------------------------------------

    def create_event(self, tenant: str = "acme") -> dict:
        self.counter += 1
        event = load_event("create.json")
        event["requestContext"]["authorizer"]["lambda"]["tenantId"] = tenant
        event["body"] = json.dumps({
            "name": f"bench-{self.counter}-{uuid.uuid4().hex[:8]}",
            "type": "postgresql",
            "config": {"host": "127.0.0.1", "port": self.tap.postgres_port, "database": "bench"},
            "authMethod": "password",
            # A secret to seal (create's KMS call) but no username: the test bench probes a TCP
            # target without logging in, so it measures our work, not a login's crypto.
            "authConfig": {"password": uuid.uuid4().hex},
        })
        return event

    def event_for(self, function: str) -> dict:
        if function == "create":
            return self.create_event()
        if function == "list":
            return load_event("list.json")
        if function == "update":
            event = load_event("update.json")
            event["body"] = json.dumps({"id": self.pool[0], "description": f"bench {self.counter}"})
            self.counter += 1
            return event
        if function == "test":
            event = load_event("test.json")
            event["body"] = json.dumps({"id": self.pool[0]})
            return event
        if function == "delete":
            connector_id = self.pool.pop()
            event = load_event("delete.json")
            event["rawQueryString"] = f"id={connector_id}"
            event["queryStringParameters"] = {"id": connector_id}
            return event
        if function == "authorizer":
            event = load_event("authorizer.json")
            event["headers"]["authorization"] = f"Bearer {self.token}"
            return event
        raise ValueError(function)

    def expect(self, function: str, inv) -> None:
        wanted = {"create": 201, "delete": 204, "list": 200, "update": 200, "test": 200}.get(function)
        if function == "authorizer":
            ok = inv.body.get("isAuthorized") is True
        else:
            ok = inv.body.get("statusCode") == wanted
        if not ok:
            raise SystemExit(f"{function}: unexpected answer {json.dumps(inv.body)[:400]}")
        if function == "create":
            self.pool.append(json.loads(inv.body["body"])["id"])

    # ---- measurements -------------------------------------------------------------------------

    def command(self, function: str) -> list:
        if function == "peer":
            return [sys.executable, os.path.join(ROOT, "bench", "peer", "bootstrap.py")]
        return [os.path.join(ROOT, self.args.binaries.format(name=function))]

    def cold_starts(self, function: str, event_for) -> dict:
        inits, rss_init, rss_first = [], [], []
        for _ in range(self.args.starts):
            rt = LocalRuntime()
            env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address)
            started = time.perf_counter()
            proc = subprocess.Popen(self.command(function), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                inits.append(rt.wait_for_init() - started)
                rss_init.append(peak_rss_kib(proc.pid))
                inv = rt.invoke(event_for())
                if function != "peer":
                    self.expect(function, inv)
                rss_first.append(peak_rss_kib(proc.pid))
            finally:
                proc.kill()
                proc.wait()
                rt.close()
        return {
            "init_ms_median": statistics.median(inits) * 1000,
            "init_ms_p90": pct(inits, 90) * 1000,
            "rss_init_mib": statistics.median(rss_init) / 1024,
            "rss_first_mib": statistics.median(rss_first) / 1024,
        }

    def warm(self, function: str) -> dict:
        rt = LocalRuntime()
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address)
        proc = subprocess.Popen(self.command(function), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latencies, emulator, calls_per, rounds_per, ops = [], [], [], [], None
        try:
            rt.wait_for_init()
            cpu_before = 0.0
            for i in range(self.args.warmup + self.args.warm):
                if i == self.args.warmup:
                    cpu_before = cpu_seconds(proc.pid)
                self.tap.take()
                inv = rt.invoke(self.event_for(function))
                calls = self.tap.take()
                self.expect(function, inv)
                if i < self.args.warmup:
                    continue
                latencies.append(inv.latency)
                emulator.append(busy(calls, inv.sent_at, inv.done_at))
                calls_per.append(len(calls))
                rounds_per.append(rounds(calls))
                ops = [c.op for c in sorted(calls, key=lambda c: c.start)]
            cpu_per_request = (cpu_seconds(proc.pid) - cpu_before) / self.args.warm
        finally:
            proc.kill()
            proc.wait()
            rt.close()
        overhead = [lat - emu for lat, emu in zip(latencies, emulator)]
        return {
            "warm_ms_median": statistics.median(latencies) * 1000,
            "warm_ms_p90": pct(latencies, 90) * 1000,
            "emulator_ms_median": statistics.median(emulator) * 1000,
            "overhead_ms_median": statistics.median(overhead) * 1000,
            "overhead_ms_p90": pct(overhead, 90) * 1000,
            "cpu_ms_per_request": cpu_per_request * 1000,
            "aws_calls": max(calls_per),
            "aws_rounds": max(rounds_per),
            "aws_operations": ops,
        }

    def sweep(self) -> dict:
        n = self.args.sweep
        # A table of its own, so exactly the seeded connectors are due.
        subprocess.check_output([sys.executable, os.path.join(ROOT, "local", "aws_setup.py"), os.environ["AWS_ENDPOINT_URL"], SWEEP_TABLE])
        rt = LocalRuntime()
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address, TABLE_NAME=SWEEP_TABLE, FUNCTION_TIMEOUT_SECONDS="900")
        # Seed through the create function, spread over 10 tenants. The emulator slows down as the
        # table grows (it copies tables per transaction): a create may answer 503 when its calls
        # time out, and is then retried as a client would, with its Idempotency-Key.
        proc = subprocess.Popen(self.command("create"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rt.wait_for_init()
            for i in range(n):
                event = self.create_event(tenant=f"sweep-{i % 10}")
                event["headers"]["idempotency-key"] = f"seed-{i}"
                for _ in range(5):
                    inv = rt.invoke(event)
                    if inv.body.get("statusCode") != 503:
                        break
                self.expect("create", inv)
        finally:
            proc.kill()
            proc.wait()
            rt.close()
        rt = LocalRuntime()
        # The sweep measures throughput, not the deadline: as long as the runtime's deadline (15 min).
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address, TABLE_NAME=SWEEP_TABLE, FUNCTION_TIMEOUT_SECONDS="900")
        proc = subprocess.Popen(self.command("test"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rt.wait_for_init()
            self.tap.take()
            inv = rt.invoke(load_event("scheduled.json"), timeout=600)
            calls = self.tap.take()
        finally:
            proc.kill()
            proc.wait()
            rt.close()
        summary = inv.body
        if summary.get("ok") != n:
            raise SystemExit(f"sweep: expected {n} ok probes, got {summary}")
        by_op: dict = {}
        for c in calls:
            by_op.setdefault(c.op, []).append(c.end - c.start)
        return {
            "connectors": n,
            "seconds": inv.latency,
            "per_second": summary["probed"] / inv.latency,
            "aws_calls": len(calls),
            "aws_calls_by_operation": {op: {"count": len(d), "emulator_ms_median": statistics.median(d) * 1000} for op, d in by_op.items()},
            "emulator_busy_seconds": busy(calls, inv.sent_at, inv.done_at),
            "concurrency": int(self.env.get("SWEEP_CONCURRENCY", "16")),
        }

    def run(self) -> dict:
        self.token = subprocess.check_output(
            [sys.executable, os.path.join(ROOT, "local", "mint_token.py"), "acme", "admin"],
            env=dict(os.environ, JWT_SECRET=SECRET), text=True).strip()
        for function in FUNCTIONS:
            path = self.command(function)[0]
            self.results["functions"][function] = {"size_mb": os.path.getsize(path) / 1e6}
        # Order matters: create fills the pool that update, test and delete use.
        for function in ["create", "list", "update", "test", "authorizer", "delete"]:
            print(f"bench: {function}", file=sys.stderr, flush=True)
            figures = self.results["functions"][function]
            if function == "delete":
                # Enough connectors for every cold start and warm call.
                while len(self.pool) < self.args.starts + self.args.warmup + self.args.warm + 1:
                    self.warm_fill()
            figures.update(self.cold_starts(function, lambda f=function: self.event_for(f)))
            figures.update(self.warm(function))
        print("bench: python peer", file=sys.stderr, flush=True)
        self.results["peer"] = self.cold_starts("peer", lambda: load_event("list.json"))
        self.results["peer"].update(self.warm_peer())
        print("bench: sweep", file=sys.stderr, flush=True)
        self.results["sweep"] = self.sweep()
        ours = [f["init_ms_median"] for f in self.results["functions"].values()]
        self.results["init_speedup_vs_peer"] = self.results["peer"]["init_ms_median"] / max(ours)
        self.results["machine"] = {"cpus": os.cpu_count(), "uname": " ".join(os.uname())}
        return self.results

    def warm_fill(self) -> None:
        rt = LocalRuntime()
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address)
        proc = subprocess.Popen(self.command("create"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rt.wait_for_init()
            for _ in range(50):
                self.expect("create", rt.invoke(self.create_event()))
        finally:
            proc.kill()
            proc.wait()
            rt.close()

    def warm_peer(self) -> dict:
        rt = LocalRuntime()
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address)
        proc = subprocess.Popen(self.command("peer"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        latencies = []
        try:
            rt.wait_for_init()
            for i in range(self.args.warmup + self.args.warm):
                inv = rt.invoke(load_event("list.json"))
                if i >= self.args.warmup:
                    latencies.append(inv.latency)
        finally:
            proc.kill()
            proc.wait()
            rt.close()
        return {"warm_ms_median": statistics.median(latencies) * 1000}


def table(r: dict) -> str:
    rows = ["| function | size MB | init ms (median / p90) | RSS MiB init / after 1st | warm ms | emulator ms | our overhead ms | our CPU ms/request | AWS calls / rounds |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, f in r["functions"].items():
        rows.append(f"| {name} | {f['size_mb']:.1f} | {f['init_ms_median']:.2f} / {f['init_ms_p90']:.2f} | "
                    f"{f['rss_init_mib']:.1f} / {f['rss_first_mib']:.1f} | {f['warm_ms_median']:.2f} | "
                    f"{f['emulator_ms_median']:.2f} | {f['overhead_ms_median']:.2f} | {f['cpu_ms_per_request']:.2f} | {f['aws_calls']} / {f['aws_rounds']} |")
    p = r["peer"]
    rows.append(f"| python peer (boto3, list) | – | {p['init_ms_median']:.1f} / {p['init_ms_p90']:.1f} | "
                f"{p['rss_init_mib']:.1f} / {p['rss_first_mib']:.1f} | {p['warm_ms_median']:.2f} | – | – | – | – |")
    s = r["sweep"]
    rows.append("")
    rows.append(f"Init speed-up over the Python peer (slowest of ours): {r['init_speedup_vs_peer']:.0f}×. "
                f"Sweep: {s['connectors']} connectors in {s['seconds']:.2f} s = {s['per_second']:.0f} connectors/s "
                f"({s['aws_calls']} AWS calls, concurrency {s['concurrency']}).")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sweep", type=int, default=1000)
    parser.add_argument("--binaries", default="target/lambda/{name}/bootstrap",
                        help="where the release binaries are, relative to the repository")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results.json"))
    args = parser.parse_args()
    results = Bench(args).run()
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

    def instructions(self, function: str) -> int:
        """Instructions per warm request, counted by callgrind (repeatable where timings are not):
        the difference between a run of init + A requests and one of init + B, over B - A."""
        counts = []
        for requests in (self.args.instr_from, self.args.instr_to):
            out = os.path.join(ROOT, ".local", f"callgrind-{function}-{requests}.out")
            rt = LocalRuntime()
            env = dict(self.env, AWS_LAMBDA_RUNTIME_API=rt.address)
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"] + self.command(function)
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                rt.wait_for_init()
                for _ in range(requests):
                    self.expect(function, rt.invoke(self.event_for(function), timeout=60))
            finally:
                # SIGTERM: valgrind writes its counts as the process ends.
                proc.terminate()
                proc.wait()
                rt.close()
            with open(out) as f:
                total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
            counts.append(total)
        return (counts[1] - counts[0]) // (self.args.instr_to - self.args.instr_from)

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
        # As template.yaml sets the test function: each shard run gets 15 s.
        return self.sweep_fanned_out(n, dict(env, FUNCTION_TIMEOUT_SECONDS="15"))

    def sweep_fanned_out(self, n: int, env: dict) -> dict:
        """The deployed sweep: the scheduled event fans out one message per shard to the emulator's
        SQS queue; each message is handed to a test process of its own (as Lambda's event source
        mapping would, `shard_workers` at a time), until the queue is empty."""
        import boto3
        from concurrent.futures import ThreadPoolExecutor

        endpoint = os.environ["AWS_ENDPOINT_URL"]
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        queue = sqs.create_queue(QueueName="connectors-bench-sweep-shards")["QueueUrl"]
        env = dict(env, SWEEP_QUEUE_URL=queue.replace(endpoint, env["AWS_ENDPOINT_URL"]))
        workers = []
        for _ in range(self.args.shard_workers):
            rt = LocalRuntime()
            proc = subprocess.Popen(self.command("test"), env=dict(env, AWS_LAMBDA_RUNTIME_API=rt.address), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rt.wait_for_init()
            workers.append((rt, proc))
        sqs_event = load_event("sweep-shard.json")
        try:
            cpu_before = sum(cpu_seconds(p.pid) for _, p in workers)
            self.tap.take()
            started = time.perf_counter()
            fan_out = workers[0][0].invoke(load_event("scheduled.json"), timeout=60)
            if fan_out.body != {"queued": 16}:
                raise SystemExit(f"sweep: the fan-out answered {fan_out.body}")
            messages = 0
            with ThreadPoolExecutor(len(workers)) as pool:
                while True:
                    got = []
                    while True:
                        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
                        if not batch:
                            break
                        got += batch
                    if not got:
                        break
                    messages += len(got)

                    def deliver(i_m):
                        i, m = i_m
                        event = copy.deepcopy(sqs_event)
                        event["Records"][0].update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"])
                        inv = workers[i % len(workers)][0].invoke(event, timeout=600)
                        if inv.body != {"batchItemFailures": []}:
                            raise SystemExit(f"sweep: a shard run answered {inv.body}")

                    # One message per worker at a time, as the event source mapping hands them out.
                    for start in range(0, len(got), len(workers)):
                        list(pool.map(deliver, enumerate(got[start:start + len(workers)])))
                    for m in got:
                        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
            seconds = time.perf_counter() - started
            calls = self.tap.take()
            cpu = sum(cpu_seconds(p.pid) for _, p in workers) - cpu_before
        finally:
            for rt, proc in workers:
                proc.kill()
                proc.wait()
                rt.close()
        probed = self.count_tested(SWEEP_TABLE)
        if probed != n:
            raise SystemExit(f"sweep: expected {n} connectors tested once, found {probed}")
        by_op: dict = {}
        for c in calls:
            by_op.setdefault(c.op, []).append(c.end - c.start)
        return {
            "connectors": n,
            "shard_messages": messages,
            "shard_workers": len(workers),
            "seconds": seconds,
            "per_second": n / seconds,
            "aws_calls": len(calls),
            "aws_calls_per_connector": len(calls) / n,
            "cpu_ms_per_connector": cpu * 1000 / n,
            "aws_calls_by_operation": {op: {"count": len(d), "emulator_ms_median": statistics.median(d) * 1000} for op, d in by_op.items()},
            "concurrency": int(self.env.get("SWEEP_CONCURRENCY", "16")),
        }

    def count_tested(self, table: str) -> int:
        """Connectors whose last test is recorded exactly once (version 2: created, then tested)."""
        import boto3

        dynamodb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        count, start = 0, None
        while True:
            page = dynamodb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
            count += sum(1 for item in page["Items"] if item["sk"]["S"].startswith("CONNECTOR#") and item["version"]["N"] == "2" and "lastTestedAt" in item)
            start = page.get("LastEvaluatedKey")
            if not start:
                return count

    def run(self) -> dict:
        self.token = subprocess.check_output(
            [sys.executable, os.path.join(ROOT, "local", "mint_token.py"), "acme", "admin"],
            env=dict(os.environ, JWT_SECRET=SECRET), text=True).strip()
        for function in FUNCTIONS:
            path = self.command(function)[0]
            arm64 = os.path.join(ROOT, self.args.arm64_binaries.format(name=function))
            self.results["functions"][function] = {
                "size_mb": os.path.getsize(path) / 1e6,
                "arm64_size_mb": os.path.getsize(arm64) / 1e6 if os.path.exists(arm64) else None,
            }
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
            if self.args.instructions:
                if function == "delete":
                    while len(self.pool) < self.args.instr_from + self.args.instr_to + 1:
                        self.warm_fill()
                figures["instructions_per_request"] = self.instructions(function)
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
    rows = ["| function | size MB x86_64 / arm64 | init ms (median / p90) | RSS MiB init / after 1st | warm ms | emulator ms | our overhead ms | our CPU ms/request | instructions/request | AWS calls / rounds |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, f in r["functions"].items():
        arm = f"{f['arm64_size_mb']:.1f}" if f.get("arm64_size_mb") else "–"
        instr = f"{f['instructions_per_request']:,}" if f.get("instructions_per_request") else "–"
        rows.append(f"| {name} | {f['size_mb']:.1f} / {arm} | {f['init_ms_median']:.2f} / {f['init_ms_p90']:.2f} | "
                    f"{f['rss_init_mib']:.1f} / {f['rss_first_mib']:.1f} | {f['warm_ms_median']:.2f} | "
                    f"{f['emulator_ms_median']:.2f} | {f['overhead_ms_median']:.2f} | {f['cpu_ms_per_request']:.2f} | {instr} | {f['aws_calls']} / {f['aws_rounds']} |")
    p = r["peer"]
    rows.append(f"| python peer (boto3, list) | – | {p['init_ms_median']:.1f} / {p['init_ms_p90']:.1f} | "
                f"{p['rss_init_mib']:.1f} / {p['rss_first_mib']:.1f} | {p['warm_ms_median']:.2f} | – | – | – | – | – |")
    s = r["sweep"]
    rows.append("")
    rows.append(f"Init speed-up over the Python peer (slowest of ours): {r['init_speedup_vs_peer']:.0f}×. "
                f"Sweep (fanned out: {s['shard_messages']} shard messages, {s['shard_workers']} test processes): "
                f"{s['connectors']} connectors in {s['seconds']:.2f} s = {s['per_second']:.0f} connectors/s, "
                f"{s['aws_calls_per_connector']:.3f} AWS calls and {s['cpu_ms_per_connector']:.2f} ms of our CPU per connector "
                f"({s['aws_calls']} calls, concurrency {s['concurrency']} per run).")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sweep", type=int, default=1000)
    parser.add_argument("--binaries", default="target/lambda/{name}/bootstrap",
                        help="where the x86_64 release binaries are, relative to the repository")
    parser.add_argument("--arm64-binaries", default="target/lambda-arm64/{name}/bootstrap",
                        help="where the arm64 release binaries are (sizes only)")
    parser.add_argument("--shard-workers", type=int, default=4, help="test processes consuming shard messages at once")
    parser.add_argument("--instructions", action=argparse.BooleanOptionalAction, default=True,
                        help="count instructions per warm request with callgrind")
    parser.add_argument("--instr-from", type=int, default=5)
    parser.add_argument("--instr-to", type=int, default=25)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results.json"))
    args = parser.parse_args()
    results = Bench(args).run()
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A minimal Lambda Runtime API (the 2018-06-01 protocol) for one function process.

It hands out one event at a time and timestamps, with time.perf_counter(), the moment the process
first asks for work (the end of its init) and, for each invocation, the moment the event is written
and the moment the response arrives: the invocation latency as Lambda would see it.
"""

import itertools
import json
import queue
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
# Far ahead, so the sweep never thinks its deadline is near.
DEADLINE_MS = 15 * 60 * 1000


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A killed function drops its connection; that is how every measurement ends.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Invocation:
    def __init__(self, request_id: str, event: dict):
        self.request_id = request_id
        self.event = event
        self.sent_at = 0.0
        self.done_at = 0.0
        self.body = None
        self.error = None
        self.done = threading.Event()

    @property
    def latency(self) -> float:
        return self.done_at - self.sent_at


class LocalRuntime:
    def __init__(self) -> None:
        self.pending: "queue.Queue[Invocation | None]" = queue.Queue()
        self.inflight: dict = {}
        self.first_poll = threading.Event()
        self.first_poll_at = 0.0
        self.init_error = None
        self.ids = itertools.count(1)
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # Headers and body go out as separate writes; without this, Nagle holds the body
                # back until the function's delayed ACK (40 ms) and the harness measures itself.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self.reply(404, b"{}")
                if not runtime.first_poll.is_set():
                    runtime.first_poll_at = time.perf_counter()
                    runtime.first_poll.set()
                inv = runtime.pending.get()
                if inv is None:
                    self.close_connection = True
                    return
                body = json.dumps(inv.event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", inv.request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + DEADLINE_MS))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                inv.sent_at = time.perf_counter()

            def do_POST(self):
                arrived = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts[:2] == ["init", "error"]:
                    runtime.init_error = data.decode(errors="replace")
                    runtime.first_poll.set()
                elif len(parts) == 3 and parts[0] == "invocation":
                    inv = runtime.inflight.pop(parts[1], None)
                    if inv is not None:
                        inv.done_at = arrived
                        if parts[2] == "response":
                            inv.body = json.loads(data) if data else None
                        else:
                            inv.error = data.decode(errors="replace")
                        inv.done.set()
                self.reply(202, b"{}")

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for_init(self, timeout: float = 30) -> float:
        """perf_counter() of the first `GET .../invocation/next`; raises if init failed."""
        if not self.first_poll.wait(timeout):
            raise RuntimeError("the function did not ask for an event within the timeout")
        if self.init_error is not None:
            raise RuntimeError(f"init failed: {self.init_error}")
        return self.first_poll_at

    def invoke(self, event: dict, timeout: float = 120) -> Invocation:
        inv = Invocation(str(next(self.ids)), event)
        self.inflight[inv.request_id] = inv
        self.pending.put(inv)
        if not inv.done.wait(timeout):
            raise RuntimeError("the function did not answer within the timeout")
        if inv.error is not None:
            raise RuntimeError(f"the invocation failed: {inv.error}")
        return inv

    def close(self) -> None:
        self.pending.put(None)
        self.server.shutdown()
        self.server.server_close()

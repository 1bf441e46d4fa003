"""A TCP proxy between the functions and the AWS emulator that records every AWS call as an
interval (first request byte in → last response byte out) with its operation name, plus a
Postgres look-alike to probe. Both run on one asyncio loop in a background thread.

Measured at the socket, an interval holds everything outside the function: loopback, this proxy
and the emulator. Latency minus the union of intervals is the function's own time.
"""

import asyncio
import re
import threading
import time

TARGET = re.compile(rb"\r\nx-amz-target: *([^\r\n]+)", re.IGNORECASE)
REQUEST_LINE = re.compile(rb"^([A-Z]+) ([^ ?]*)")


def operation(head: bytes) -> str:
    m = TARGET.search(head)
    if m:
        return m.group(1).decode().split(".")[-1]
    m = REQUEST_LINE.match(head)
    return f"{m.group(1).decode()} {m.group(2).decode()}" if m else "?"


class Call:
    __slots__ = ("op", "start", "end")

    def __init__(self, op: str, start: float):
        self.op, self.start, self.end = op, start, start


class Wiretap:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.calls: list = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        proxy = self.loop.run_until_complete(asyncio.start_server(self._proxy, "127.0.0.1", 0))
        postgres = self.loop.run_until_complete(asyncio.start_server(self._postgres, "127.0.0.1", 0))
        self.port = proxy.sockets[0].getsockname()[1]
        self.postgres_port = postgres.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def take(self) -> list:
        """The calls recorded since the last take()."""
        calls, self.calls = self.calls, []
        return calls

    async def _postgres(self, reader, writer) -> None:
        # SSLRequest (8 bytes) → 'N': "no TLS, go on", which the probe counts as a Postgres server.
        try:
            await reader.readexactly(8)
            writer.write(b"N")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _proxy(self, client_r, client_w) -> None:
        # HTTP/1.1 aware: the emulator (werkzeug) closes every connection after one response,
        # where AWS keeps it alive. The proxy keeps the function's connection alive and opens a
        # fresh one to the emulator per call, so the function sees AWS's behaviour and the cost of
        # the emulator's reconnects lands in the emulator's time, not the function's.
        try:
            while True:
                first = await client_r.read(1)
                if not first:
                    break
                call = Call("?", time.perf_counter())
                self.calls.append(call)
                head = first + await client_r.readuntil(b"\r\n\r\n")
                call.op = operation(head)
                body = await client_r.readexactly(content_length(head))
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_w.write(head + body)
                await up_w.drain()
                reply_head = await up_r.readuntil(b"\r\n\r\n")
                n = content_length(reply_head, None)
                reply = await (up_r.readexactly(n) if n is not None else up_r.read())
                up_w.close()
                reply_head = CLOSE.sub(b"", reply_head)
                if n is None:
                    reply_head = reply_head[:-2] + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                client_w.write(reply_head + reply)
                await client_w.drain()
                call.end = time.perf_counter()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            client_w.close()


CLOSE = re.compile(rb"\r\nconnection: *close", re.IGNORECASE)
LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def content_length(head: bytes, default=0):
    m = LENGTH.search(head)
    return int(m.group(1)) if m else default


def rounds(calls: list) -> int:
    """Sequential rounds: a call that starts after every earlier call ended opens a new round."""
    count, horizon = 0, float("-inf")
    for c in sorted(calls, key=lambda c: c.start):
        if c.start >= horizon:
            count += 1
        horizon = max(horizon, c.end)
    return count


def busy(calls: list, start: float, end: float) -> float:
    """Seconds within [start, end] covered by at least one call."""
    total, cur_s, cur_e = 0.0, None, None
    for c in sorted(calls, key=lambda c: c.start):
        s, e = max(c.start, start), min(c.end, end)
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total

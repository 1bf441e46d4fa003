"""What the protocol look-alikes (mysql_sha2_peer.py, kafka_peer.py, mongo_peer.py) share: reading
exactly n bytes, and a threaded TCP server, plain or TLS (the tests' PKI)."""

import socketserver
import ssl
import threading


def recv_exact(sock, n: int) -> bytes:
    """Exactly n bytes from the socket; ConnectionError when the client closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(port: int, handler, pki: str | None = None, background: bool = True, cert: str = "localhost",
          host: str = "127.0.0.1"):
    """Serves `handler` on host:port (127.0.0.1 unless told), with TLS when `pki` is given,
    presenting the certificate `cert` (a stem of test_pki.py: `localhost`, or `expired` /
    `unknownca` for the failure cases)."""
    server = Server((host, port), handler)
    if pki:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(f"{pki}/{cert}.crt", f"{pki}/{cert}.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    else:
        server.serve_forever()
    return server

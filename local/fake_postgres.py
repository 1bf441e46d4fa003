"""A Postgres look-alike for trying the test endpoint locally: answers an SSLRequest with `N`.

Usage: fake_postgres.py PORT   (listens on 127.0.0.1; Ctrl-C stops it)
"""

import socketserver
import sys

SSL_REQUEST = bytes([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F])


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        if self.request.recv(8) == SSL_REQUEST:
            self.request.sendall(b"N")


def main() -> None:
    port = int(sys.argv[1])
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler) as server:
        print(f"fake Postgres on 127.0.0.1:{port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""A Kafka broker look-alike for the login probes (no Kafka server ships in the reachable
registries). It answers the classic (non-flexible) encodings the probe sends and checks each
request as the Kafka protocol guide documents it: size, request header v1 (api key, version,
correlation id, non-null client id), ApiVersions v0, SaslHandshake v1, SaslAuthenticate v0 (PLAIN
token `\\0user\\0password`; SCRAM-SHA-256/512 with the real server side from `scramp`), Metadata v1.
Like a broker, a SASL listener closes the connection on any other request before authentication.

Listeners (ports from BASE): BASE   SASL_PLAINTEXT, BASE+1 SASL_SSL (certificate `localhost` from the
tests' PKI), BASE+2 PLAINTEXT (no SASL).
Users: app / probe-pass-1 (all mechanisms). Topics: `orders` (readable), `private`
(TOPIC_AUTHORIZATION_FAILED), anything else UNKNOWN_TOPIC_OR_PARTITION.

Usage: kafka_peer.py BASE_PORT PKI_DIR
"""

import socketserver
import ssl
import struct
import sys
import threading

from peer_io import recv_exact, serve
from scramp import ScramException, ScramMechanism

USERS = {"app": "probe-pass-1"}
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
AUTH_INFO = {
    (m, u): ScramMechanism(m).make_auth_info(p, iteration_count=4096)
    for m in MECHANISMS[1:]
    for u, p in USERS.items()
}
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA = 18, 17, 36, 3
SUPPORTED = {API_VERSIONS: (0, 3), SASL_HANDSHAKE: (0, 1), SASL_AUTHENTICATE: (0, 2), METADATA: (0, 12)}


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Broker(socketserver.BaseRequestHandler):
    sasl = True
    port = 0

    def setup(self):
        self.mechanism = None
        self.scram = None
        self.authenticated = not self.sasl

    def handle(self):
        try:
            while True:
                size = struct.unpack(">i", recv_exact(self.request, 4))[0]
                assert 0 < size < 1 << 20, size
                msg = recv_exact(self.request, size)
                key, version, correlation, id_len = struct.unpack(">hhih", msg[:10])
                assert id_len > 0, "client id must not be null"
                body = msg[10 + id_len :]
                answer = self.dispatch(key, version, body)
                if answer is None:
                    return  # a broker drops the connection
                reply = struct.pack(">i", correlation) + answer
                self.request.sendall(struct.pack(">i", len(reply)) + reply)
        except (ConnectionError, ssl.SSLError, AssertionError, struct.error) as e:
            if not isinstance(e, ConnectionError):
                print(f"kafka peer: {e!r}", file=sys.stderr, flush=True)

    def dispatch(self, key, version, body):
        if key == API_VERSIONS:
            assert version == 0, f"ApiVersions v{version}"
            entries = b"".join(struct.pack(">hhh", k, lo, hi) for k, (lo, hi) in SUPPORTED.items())
            return struct.pack(">hi", 0, len(SUPPORTED)) + entries
        if key == SASL_HANDSHAKE and self.sasl:
            assert version == 1, f"SaslHandshake v{version}"
            n = struct.unpack(">h", body[:2])[0]
            mechanism = body[2 : 2 + n].decode()
            listed = struct.pack(">i", len(MECHANISMS)) + b"".join(string(m) for m in MECHANISMS)
            if mechanism not in MECHANISMS:
                return struct.pack(">h", 33) + listed
            self.mechanism = mechanism
            return struct.pack(">h", 0) + listed
        if key == SASL_AUTHENTICATE and self.sasl and self.mechanism:
            assert version == 0, f"SaslAuthenticate v{version}"
            n = struct.unpack(">i", body[:4])[0]
            return self.authenticate(body[4 : 4 + n])
        if not self.authenticated:
            return None
        if key == METADATA:
            assert version == 1, f"Metadata v{version}"
            count = struct.unpack(">i", body[:4])[0]
            names, rest = [], body[4:]
            for _ in range(max(count, 0)):
                n = struct.unpack(">h", rest[:2])[0]
                names.append(rest[2 : 2 + n].decode())
                rest = rest[2 + n :]
            brokers = struct.pack(">i", 1) + struct.pack(">i", 1) + string("127.0.0.1") + struct.pack(">i", self.port) + string(None)
            topics = struct.pack(">i", len(names))
            for name in names:
                code = {"orders": 0, "private": 29}.get(name, 3)
                topics += struct.pack(">h", code) + string(name) + b"\x00" + struct.pack(">i", 0)
            return brokers + struct.pack(">i", 1) + topics
        return None

    def failed(self, message):
        return struct.pack(">h", 58) + string(message) + struct.pack(">i", -1)

    def ok(self, payload):
        return struct.pack(">h", 0) + string(None) + struct.pack(">i", len(payload)) + payload

    def authenticate(self, token):
        if self.mechanism == "PLAIN":
            parts = token.split(b"\x00")
            assert len(parts) == 3 and parts[0] == b"", "PLAIN token is \\0user\\0password"
            user, password = parts[1].decode(), parts[2].decode()
            if USERS.get(user) != password:
                return self.failed(f"Authentication failed: Invalid username or password")
            self.authenticated = True
            return self.ok(b"")
        try:
            if self.scram is None:
                mechanism = ScramMechanism(self.mechanism)
                self.scram = mechanism.make_server(lambda user: AUTH_INFO[(self.mechanism, user)])
                self.scram.set_client_first(token.decode())
                return self.ok(self.scram.get_server_first().encode())
            self.scram.set_client_final(token.decode())
            self.authenticated = True
            return self.ok(self.scram.get_server_final().encode())
        except (ScramException, KeyError):
            return self.failed(f"Authentication failed during authentication due to invalid credentials with SASL mechanism {self.mechanism}")


def listener(port, sasl, pki=None, cert="localhost"):
    serve(port, type("Handler", (Broker,), {"sasl": sasl, "port": port}), pki, cert=cert)


if __name__ == "__main__":
    # BASE PKI [EXPIRED_PORT UNKNOWNCA_PORT]: SASL_SSL listeners presenting bad certificates.
    base, pki = int(sys.argv[1]), sys.argv[2]
    listener(base, True)
    listener(base + 1, True, pki)
    listener(base + 2, False)
    for port, cert in zip(sys.argv[3:5], ("expired", "unknownca")):
        listener(int(port), True, pki, cert)
    threading.Event().wait()

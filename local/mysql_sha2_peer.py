"""A MySQL 8 look-alike for `caching_sha2_password`, which MariaDB (the MySQL server the registries
ship) does not have. It runs the server side as MySQL documents it, and checks what the client
sends exactly:

- HandshakeV10 greeting naming caching_sha2_password, a fresh 20-byte nonce, no TLS offered;
- HandshakeResponse41: protocol 4.1, plugin auth with length-encoded data, user, database, plugin;
- fast path: the scramble must be SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce), checked as
  the server does (SHA256(scramble XOR SHA256(stored + nonce)) == stored, stored = SHA256(SHA256(pw)));
  it is accepted only once the user's hash is cached (after one full authentication), as in MySQL;
- full path without TLS: AuthMoreData 0x04, the client asks for the public key (0x02), gets the
  PEM, and must send (password + NUL) XOR nonce, RSA-OAEP (SHA-1) encrypted; or, holding the key
  already (pinned), sends that at once;
- user sha2pinned (same password) is never cached, so it always takes the full path;
- ERR 1045 for a wrong password or unknown user, 1049 for an unknown database; COM_QUIT ends.

Usage: mysql_sha2_peer.py PORT [PUBLIC_KEY_PEM_OUT]   (user sha2user, password probe-pass-1,
database appdb); the server's public key is written to PUBLIC_KEY_PEM_OUT, for clients that pin it.
"""

import hashlib
import os
import socketserver
import struct
import sys
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from peer_io import recv_exact, serve

USER, PASSWORD, DATABASE = b"sha2user", b"probe-pass-1", b"appdb"
PINNED_USER = b"sha2pinned"
STORED = hashlib.sha256(hashlib.sha256(PASSWORD).digest()).digest()
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
CACHED = set()
LOCK = threading.Lock()

CLIENT_PROTOCOL_41 = 0x200
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_PLUGIN_AUTH_LENENC = 0x200000
CLIENT_CONNECT_WITH_DB = 0x8


def xor(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data))


class Conversation(socketserver.BaseRequestHandler):
    def send(self, seq: int, payload: bytes) -> None:
        self.request.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)

    def read(self) -> tuple[int, bytes]:
        head = recv_exact(self.request, 4)
        length = head[0] | head[1] << 8 | head[2] << 16
        return head[3], recv_exact(self.request, length)

    def error(self, seq: int, code: int, text: str) -> None:
        self.send(seq, b"\xff" + struct.pack("<H", code) + b"#28000" + text.encode())

    def handle(self) -> None:
        try:
            self.converse()
        except (ConnectionError, AssertionError, struct.error) as e:
            print(f"peer: {e!r}", file=sys.stderr, flush=True)

    def converse(self) -> None:
        nonce = bytes(b % 94 + 33 for b in os.urandom(20))  # printable, no NUL, as MySQL's
        caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC | CLIENT_CONNECT_WITH_DB
        greeting = (
            b"\x0a" + b"8.0.40-lookalike\x00" + struct.pack("<I", 1) + nonce[:8] + b"\x00"
            + struct.pack("<H", caps & 0xFFFF) + b"\xff" + struct.pack("<H", 2) + struct.pack("<H", caps >> 16)
            + bytes([21]) + b"\x00" * 10 + nonce[8:] + b"\x00" + b"caching_sha2_password\x00"
        )
        self.send(0, greeting)
        seq, p = self.read()
        assert seq == 1, f"HandshakeResponse41 must be packet 1, got {seq}"
        flags = struct.unpack("<I", p[:4])[0]
        assert flags & CLIENT_PROTOCOL_41 and flags & CLIENT_PLUGIN_AUTH and flags & CLIENT_PLUGIN_AUTH_LENENC, hex(flags)
        assert p[8] == 45 and p[9:32] == b"\x00" * 23, "charset utf8mb4 and 23 zero bytes"
        rest = p[32:]
        user, rest = rest.split(b"\x00", 1)
        n = rest[0]
        auth, rest = rest[1 : 1 + n], rest[1 + n :]
        db, rest = rest.split(b"\x00", 1) if flags & CLIENT_CONNECT_WITH_DB else (b"", rest)
        plugin = rest.split(b"\x00", 1)[0]
        assert plugin == b"caching_sha2_password", plugin
        if user not in (USER, PINNED_USER):
            return self.error(2, 1045, f"Access denied for user '{user.decode()}'@'localhost'")
        fast_ok = len(auth) == 32 and hashlib.sha256(xor(auth, hashlib.sha256(STORED + nonce).digest())).digest() == STORED
        with LOCK:
            cached = user in CACHED
        if fast_ok and cached:
            self.send(2, b"\x01\x03")
            seq = 3
        else:
            # Full authentication: no TLS here, so the client must ask for the key.
            self.send(2, b"\x01\x04")
            seq, p = self.read()
            if p == b"\x02":  # the client asks for the key; one that pinned it sends at once
                self.send(seq + 1, b"\x01" + PEM)
                seq, p = self.read()
            clear = KEY.decrypt(p, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
            if xor(clear, nonce) != PASSWORD + b"\x00":
                return self.error(seq + 1, 1045, f"Access denied for user '{user.decode()}'@'localhost'")
            if user != PINNED_USER:
                with LOCK:
                    CACHED.add(user)
            seq += 1
        if db != DATABASE:
            return self.error(seq, 1049, f"Unknown database '{db.decode()}'")
        self.send(seq, b"\x00\x00\x00\x02\x00\x00\x00")
        seq, p = self.read()
        assert p == b"\x01", f"expected COM_QUIT, got {p!r}"


if __name__ == "__main__":
    if len(sys.argv) > 2:
        with open(sys.argv[2], "wb") as out:
            out.write(PEM)
    serve(int(sys.argv[1]), Conversation, background=False)

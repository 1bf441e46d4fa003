"""A MongoDB look-alike for the login probes (no MongoDB server ships in the reachable
registries). It speaks OP_MSG (opcode 2013, one body section) with BSON, and checks each command
as MongoDB documents it: `hello` (with `saslSupportedMechs: "<authSource>.<user>"`), `saslStart`
(mechanism, binary payload, `$db` = authSource) and `saslContinue` (the conversation id it gave)
with the real SCRAM server side from `scramp`, then `listCollections` with `nameOnly`. Commands
other than hello before authentication are refused with code 13 (Unauthorized), as mongod does.

Users (authSource admin): app / probe-pass-1 (SCRAM-SHA-256 and SCRAM-SHA-1), old / probe-pass-1
(SCRAM-SHA-1 only). Databases: appdb (readable by both), secretdb (code 13 for everyone).
Wrong credentials: code 18 AuthenticationFailed.

Listeners: BASE plain, BASE+1 TLS (certificate `localhost` from the tests' PKI).
Usage: mongo_peer.py BASE_PORT PKI_DIR
"""

import hashlib
import socketserver
import ssl
import struct
import sys
import threading

from peer_io import recv_exact, serve
from scramp import ScramException, ScramMechanism

PASSWORD = "probe-pass-1"
USERS = {"app": ["SCRAM-SHA-256", "SCRAM-SHA-1"], "old": ["SCRAM-SHA-1"]}


def mongo_sha1_password(user, password):
    """MongoDB's SCRAM-SHA-1 input: hex MD5 of `user:mongo:password`."""
    return hashlib.md5(f"{user}:mongo:{password}".encode()).hexdigest()


AUTH_INFO = {}
for user, mechanisms in USERS.items():
    for m in mechanisms:
        secret = mongo_sha1_password(user, PASSWORD) if m == "SCRAM-SHA-1" else PASSWORD
        AUTH_INFO[(m, user)] = ScramMechanism(m).make_auth_info(secret, iteration_count=4096 if m == "SCRAM-SHA-1" else 15000)


# ---- the BSON this conversation uses
def encode(doc):
    out = b""
    for key, value in doc.items():
        k = key.encode() + b"\x00"
        if isinstance(value, bool):
            out += b"\x08" + k + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            out += b"\x10" + k + struct.pack("<i", value)
        elif isinstance(value, float):
            out += b"\x01" + k + struct.pack("<d", value)
        elif isinstance(value, str):
            v = value.encode() + b"\x00"
            out += b"\x02" + k + struct.pack("<i", len(v)) + v
        elif isinstance(value, bytes):
            out += b"\x05" + k + struct.pack("<i", len(value)) + b"\x00" + value
        elif isinstance(value, dict):
            out += b"\x03" + k + encode(value)
        elif isinstance(value, list):
            out += b"\x04" + k + encode({str(i): v for i, v in enumerate(value)})
        else:
            raise TypeError(type(value))
    return struct.pack("<i", len(out) + 5) + out + b"\x00"


def decode(data):
    length = struct.unpack("<i", data[:4])[0]
    body, doc, i = data[4 : length - 1], {}, 0
    while i < len(body):
        kind = body[i]
        end = body.index(b"\x00", i + 1)
        key = body[i + 1 : end].decode()
        i = end + 1
        if kind == 0x01:
            doc[key] = struct.unpack("<d", body[i : i + 8])[0]
            i += 8
        elif kind == 0x02:
            n = struct.unpack("<i", body[i : i + 4])[0]
            doc[key] = body[i + 4 : i + 3 + n].decode()
            i += 4 + n
        elif kind in (0x03, 0x04):
            n = struct.unpack("<i", body[i : i + 4])[0]
            inner = decode(body[i : i + n])
            doc[key] = inner if kind == 0x03 else list(inner.values())
            i += n
        elif kind == 0x05:
            n = struct.unpack("<i", body[i : i + 4])[0]
            assert body[i + 4] == 0, "binary subtype 0 (generic)"
            doc[key] = body[i + 5 : i + 5 + n]
            i += 5 + n
        elif kind == 0x08:
            doc[key] = body[i] == 1
            i += 1
        elif kind == 0x10:
            doc[key] = struct.unpack("<i", body[i : i + 4])[0]
            i += 4
        elif kind == 0x12:
            doc[key] = struct.unpack("<q", body[i : i + 8])[0]
            i += 8
        else:
            raise ValueError(f"BSON type {kind:#x}")
    return doc


class Mongod(socketserver.BaseRequestHandler):
    def setup(self):
        self.user = None
        self.conversations = {}

    def handle(self):
        try:
            while True:
                head = recv_exact(self.request, 16)
                length, request_id, _, opcode = struct.unpack("<iiii", head)
                assert opcode == 2013, f"OP_MSG only, got {opcode}"
                msg = recv_exact(self.request, length - 16)
                flags = struct.unpack("<I", msg[:4])[0]
                assert flags == 0 and msg[4] == 0, "flag bits 0 and one body section"
                reply = self.run(decode(msg[5:]))
                body = struct.pack("<I", 0) + b"\x00" + encode(reply)
                self.request.sendall(struct.pack("<iiii", 16 + len(body), request_id + 1000, request_id, 2013) + body)
        except (ConnectionError, ssl.SSLError, AssertionError, ValueError, struct.error) as e:
            if not isinstance(e, ConnectionError):
                print(f"mongo peer: {e!r}", file=sys.stderr, flush=True)

    @staticmethod
    def error(code, name, message):
        return {"ok": 0.0, "errmsg": message, "code": code, "codeName": name}

    def run(self, cmd):
        name = next(iter(cmd))
        assert "$db" in cmd, "every command names its database"
        if name == "hello":
            reply = {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}
            if "saslSupportedMechs" in cmd:
                source, _, user = cmd["saslSupportedMechs"].partition(".")
                if source == "admin" and user in USERS:
                    reply["saslSupportedMechs"] = USERS[user]
            return reply
        if name == "saslStart":
            mechanism = cmd["mechanism"]
            assert isinstance(cmd["payload"], bytes), "payload is binary"
            assert cmd["$db"] == "admin", "authSource admin"
            seen = {}

            def auth_info(user):
                seen["user"] = user
                return AUTH_INFO[(mechanism, user)]

            scram = ScramMechanism(mechanism).make_server(auth_info)
            try:
                scram.set_client_first(cmd["payload"].decode())
                first = scram.get_server_first()
            except (ScramException, KeyError):
                return self.error(18, "AuthenticationFailed", "Authentication failed.")
            conversation = len(self.conversations) + 1
            self.conversations[conversation] = (scram, seen.get("user"))
            return {"conversationId": conversation, "done": False, "payload": first.encode(), "ok": 1.0}
        if name == "saslContinue":
            scram, user = self.conversations.get(cmd["conversationId"], (None, None))
            assert scram is not None, "saslContinue names the conversation saslStart opened"
            try:
                scram.set_client_final(cmd["payload"].decode())
            except ScramException:
                return self.error(18, "AuthenticationFailed", "Authentication failed.")
            self.user = user
            return {"conversationId": cmd["conversationId"], "done": True, "payload": scram.get_server_final().encode(), "ok": 1.0}
        if self.user is None:
            return self.error(13, "Unauthorized", f"command {name} requires authentication")
        if name == "listCollections":
            assert cmd.get("nameOnly") is True, "nameOnly"
            if cmd["$db"] == "secretdb":
                return self.error(13, "Unauthorized", f"not authorized on secretdb to execute command {{ listCollections: 1 }}")
            batch = [{"name": "orders", "type": "collection"}] if cmd["$db"] == "appdb" else []
            return {"cursor": {"id": 0, "ns": f"{cmd['$db']}.$cmd.listCollections", "firstBatch": batch}, "ok": 1.0}
        return self.error(59, "CommandNotFound", f"no such command: '{name}'")


if __name__ == "__main__":
    base, pki = int(sys.argv[1]), sys.argv[2]
    serve(base, Mongod)
    serve(base + 1, Mongod, pki)
    # The same server behind the tests' SSH bastion (the probes' guard admits 127.0.0.1 only).
    serve(base, Mongod, host="127.0.0.3")
    # [EXPIRED_PORT UNKNOWNCA_PORT]: TLS listeners presenting bad certificates.
    for port, cert in zip(sys.argv[3:5], ("expired", "unknownca")):
        serve(int(port), Mongod, pki, cert=cert)
    threading.Event().wait()

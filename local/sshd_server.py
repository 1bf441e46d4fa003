"""A real, throwaway OpenSSH server (Debian's `openssh-server`, installed by .ci/run) on 127.0.0.1
(and 127.0.0.3, behind the tests' bastion: bastion_server.py) for the SFTP login probes. sshd checks passwords and runs privilege separation as root, so this
needs root (CI and the developers' machines run as root); it says so otherwise.

What it sets up:
  user      sftpprobe, password probe-pass-1, home DIR/home with data/ (readable) and
            locked/ (mode 000, so a stat inside it is permission denied)
  keys      client keys in DIR/keys: ed25519 and ecdsa without passphrase, rsa with the
            passphrase key-pass; all three authorized; the host key is ed25519
  sftp      the internal-sftp subsystem

Usage: sshd_server.py start DIR PORT   (prints SSH_TEST_PORT, SSH_TEST_FINGERPRINT, SSH_TEST_KEYS)
       sshd_server.py stop DIR
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

USER, PASSWORD = "sftpprobe", "probe-pass-1"
SSHD = "/usr/sbin/sshd"


def keygen(path: Path, kind: str, passphrase: str = "", bits: list[str] | None = None) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *(bits or []), "-N", passphrase, "-C", f"{kind}@connectors-api-tests", "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL)


def ensure_user(user: str, password: str, home: Path) -> None:
    """A login-less system user with this home and password (made, or updated if it exists)."""
    try:
        pwd.getpwnam(user)
        subprocess.run(["usermod", "-d", str(home), user], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "-d", str(home), "-s", "/usr/sbin/nologin", user], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)


def run_sshd(base: Path, port: int, listen: list[str], authorized: Path, user: str, extra: str) -> str:
    """Writes base/sshd_config (host key base/host_ed25519, `extra` lines added), checks it,
    starts sshd and waits for its pid file; the host key's SHA-256 fingerprint."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\n" + "".join(f"ListenAddress {a}\n" for a in listen)
        + f"HostKey {base / 'host_ed25519'}\nPidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
        f"PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nPermitRootLogin no\nAllowUsers {user}\n"
        "LogLevel ERROR\nMaxStartups 50:30:100\n" + extra
    )
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
    subprocess.Popen([SSHD, "-f", str(config), "-E", str(base / "sshd.log")], start_new_session=True).wait()
    for _ in range(100):
        if (base / "sshd.pid").exists():
            break
        time.sleep(0.05)
    return subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(base / "host_ed25519.pub")],
                          check=True, capture_output=True, text=True).stdout.split()[1]


def start(base: Path, port: int) -> None:
    if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
        sys.exit("OpenSSH is missing (/usr/sbin/sshd, ssh-keygen): install it with `apt-get install openssh-server` (.ci/run does, as root)")
    if os.getuid() != 0:
        sys.exit("sshd_server.py needs root: sshd checks passwords and separates privileges as root")
    if base.exists():
        stop(base)
        shutil.rmtree(base)
    home, keys = base / "home", base / "keys"
    for d in (home / "data", home / "locked", keys):
        d.mkdir(parents=True)
    (home / "data" / "report.csv").write_text("a,b\n")
    (home / "locked" / "secret.txt").write_text("x\n")
    ensure_user(USER, PASSWORD, home)
    entry = pwd.getpwnam(USER)
    for p in [home, *home.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid)
    os.chmod(home / "locked", 0)
    keygen(base / "host_ed25519", "ed25519")
    keygen(keys / "id_ed25519", "ed25519")
    keygen(keys / "id_ecdsa", "ecdsa", bits=["-b", "256"])
    keygen(keys / "id_rsa", "rsa", "key-pass", bits=["-b", "2048"])
    authorized = "".join((keys / f"id_{k}.pub").read_text() for k in ("ed25519", "ecdsa", "rsa"))
    (base / "authorized_keys").write_text(authorized)
    fingerprint = run_sshd(base, port, ["127.0.0.1", "127.0.0.3"], base / "authorized_keys", USER,
                           "Subsystem sftp internal-sftp\n")
    print(f"SSH_TEST_PORT={port}")
    print(f"SSH_TEST_FINGERPRINT={fingerprint}")
    print(f"SSH_TEST_KEYS={keys}")


def stop(base: Path) -> None:
    stop_pid_file(base / "sshd.pid")


if __name__ == "__main__":
    sys.exit(command_line(__doc__, start, stop))

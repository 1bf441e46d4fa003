"""What the throwaway server scripts (mariadb_server.py, sshd_server.py, azurite_server.py,
aws_iam_emulator.py) share: stopping a server from its pid file, and their `start DIR PORT […]` /
`stop DIR` command line."""

import os
import signal
import sys
import time
from pathlib import Path


def stop_pid_file(pid_file: Path, group: bool = False, wait: bool = False) -> None:
    """SIGTERM to the pid (or its process group) in `pid_file`; with `wait`, until it has exited
    (10 s at most). A missing file or a gone process is already stopped."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
        if group:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
        for _ in range(100 if wait else 0):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (ValueError, ProcessLookupError, PermissionError):
        pass


def command_line(doc: str, start, stop, start_args=()) -> int:
    """`start DIR PORT [extra paths…]` calls start(dir, port, *paths); `stop DIR` calls stop(dir).
    `start_args` names the extra path arguments start takes (for the count)."""
    argv = sys.argv
    if len(argv) == 4 + len(start_args) and argv[1] == "start":
        extra = [Path(a).resolve() for a in argv[4:]]
        start(Path(argv[2]).resolve(), int(argv[3]), *extra)
    elif len(argv) == 3 and argv[1] == "stop":
        stop(Path(argv[2]).resolve())
    else:
        sys.exit(doc)
    return 0

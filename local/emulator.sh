#!/usr/bin/env bash
# Starts the AWS emulator (moto, see emulator.py) on 127.0.0.1:$1 in the background,
# writes its pid to $2 and waits until it answers. Fails loudly when it does not come up.
set -euo pipefail
port=${1:?port}
pidfile=${2:?pidfile}
root=$(cd "$(dirname "$0")/.." && pwd)
log="${pidfile%.pid}.log"
mkdir -p "$(dirname "$pidfile")"
if python3 - "$port" <<'PY'
import socket, sys
s = socket.socket()
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
then
  echo "port $port is already in use: stop what runs there or choose another port" >&2
  exit 1
fi
"$root/.venv/bin/python" "$root/local/emulator.py" "$port" >"$log" 2>&1 &
echo $! >"$pidfile"
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "the AWS emulator exited; its log ($log):" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "the AWS emulator did not answer on port $port within 20 s; its log ($log):" >&2
cat "$log" >&2
exit 1

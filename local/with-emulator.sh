#!/usr/bin/env bash
# Runs a command with a fresh AWS emulator on 127.0.0.1:$TEST_EMULATOR_PORT, stopped afterwards
# whatever the command's result; the command's exit code is returned.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${TEST_EMULATOR_PORT:-4567}
pidfile="$root/.local/test-emulator-$port.pid"
"$root/local/emulator.sh" "$port" "$pidfile"
# TERM, then KILL after 5 s: a moto busy in a request can ignore TERM and would keep the port.
stop_emulator() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}
trap stop_emulator EXIT
AWS_EMULATOR_PORT=$port AWS_ENDPOINT_URL="http://127.0.0.1:$port" "$@"

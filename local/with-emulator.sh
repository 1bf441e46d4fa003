#!/usr/bin/env bash
# Runs a command with a fresh AWS emulator on 127.0.0.1:$TEST_EMULATOR_PORT, stopped afterwards
# whatever the command's result; the command's exit code is returned.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${TEST_EMULATOR_PORT:-4567}
pidfile="$root/.local/test-emulator-$port.pid"
"$root/local/emulator.sh" "$port" "$pidfile"
trap 'kill "$(cat "$pidfile")" 2>/dev/null || true' EXIT
AWS_EMULATOR_PORT=$port AWS_ENDPOINT_URL="http://127.0.0.1:$port" "$@"

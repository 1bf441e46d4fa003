#!/usr/bin/env bash
# Runs a command with a real PostgreSQL on 127.0.0.1 (TLS on $PG_TEST_PORT, none on the port after;
# see postgres_server.py), stopped afterwards whatever the command's result. Exports PG_TEST_* and
# PROBE_EXTRA_CA_FILE (the servers' own CA) to the command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${PG_TEST_PORT:-15433}
dir="$root/.local/pg-test-$port"
settings=$("$root/.venv/bin/python" "$root/local/postgres_server.py" start "$dir" "$port")
trap '"$root/.venv/bin/python" "$root/local/postgres_server.py" stop "$dir"' EXIT
while IFS='=' read -r key value; do
  export "$key=$value"
done <<<"$settings"
# The tests' PKI (local/test_pki.py): its CA is trusted by the probes.
export PROBE_EXTRA_CA_FILE="$PG_TEST_CA_FILE"
"$@"

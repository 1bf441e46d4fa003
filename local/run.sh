#!/usr/bin/env bash
# `make local`: the AWS emulator, the table and key, and the API served through the real function
# binaries by `cargo lambda watch` (its router maps method + path to functions, see Cargo.toml).
# Runs in the foreground; Ctrl-C stops every child process.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
port=${PORT:-3000}
emulator_port=${AWS_EMULATOR_PORT:-4566}
table=${TABLE_NAME:-connectors-local}
state="$root/.local"
mkdir -p "$state"

cleanup() {
  trap - EXIT INT TERM
  [ -f "$state/emulator.pid" ] && kill "$(cat "$state/emulator.pid")" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

local/emulator.sh "$emulator_port" "$state/emulator.pid"
env_file="$state/env"
python3=".venv/bin/python"
"$python3" local/aws_setup.py "http://127.0.0.1:$emulator_port" "$table" >"$env_file"
{
  echo "JWT_SECRET=${JWT_SECRET:?JWT_SECRET must be set (the Makefile sets a local default)}"
  echo "JWT_ISSUER=${JWT_ISSUER:-connectors-api-local}"
  echo "JWT_AUDIENCE=${JWT_AUDIENCE:-connectors-api}"
  echo "RUST_LOG=${RUST_LOG:-info}"
  # Empty by default: probes may not reach private or loopback addresses. For local targets,
  # e.g. `make local PROBE_ALLOW_CIDRS=127.0.0.1`.
  echo "PROBE_ALLOW_CIDRS=${PROBE_ALLOW_CIDRS:-}"
  for name in PROBE_CONNECT_TIMEOUT_MS PROBE_TIMEOUT_MS PROBE_DNS_SERVER TEST_RATE_LIMIT TEST_RATE_WINDOW_SECONDS SWEEP_INTERVAL_SECONDS SWEEP_CONCURRENCY; do
    [ -n "${!name:-}" ] && echo "$name=${!name}"
  done
} >>"$env_file"

# Build before serving so the first request does not wait for a compile.
cargo build --quiet -p list -p create -p update -p delete -p test

url="http://127.0.0.1:$port/api/v1/connectors"
cat <<MSG

  connectors-api is starting at $url
  AWS emulator: http://127.0.0.1:$emulator_port   table: $table   env: .local/env

  Try:
    TOKEN=\$(make -s token TENANT=my-tenant ROLE=admin)
    curl -s -X POST $url \\
      -H "Content-Type: application/json" -H "Authorization: Bearer \$TOKEN" -H "X-Tenant-Id: my-tenant" \\
      -d '{"name": "Customer Data Warehouse", "type": "snowflake",
           "config": {"account": "xy12345.us-east-1", "warehouse": "COMPUTE_WH", "database": "ANALYTICS"},
           "authMethod": "access_key", "authConfig": {"username": "svc_kaireon", "password": "secret"}}'
    curl -s $url -H "Authorization: Bearer \$TOKEN"

  Ctrl-C stops everything.

MSG
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$env_file" --timeout 30 &
wait $!

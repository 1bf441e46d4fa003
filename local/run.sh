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
# State per instance (keyed by the API port), so two stacks on other ports never share a pid file.
state="$root/.local/stack-$port"
mkdir -p "$state"

cleanup() {
  trap - EXIT INT TERM
  [ -f "$state/emulator.pid" ] && kill "$(cat "$state/emulator.pid")" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$state/emulator.pid"
}
trap cleanup EXIT INT TERM

local/emulator.sh "$emulator_port" "$state/emulator.pid"
env_file="$state/env"
python3=".venv/bin/python"
"$python3" local/aws_setup.py "http://127.0.0.1:$emulator_port" "$table" --stream >"$env_file"
{
  echo "JWT_SECRET=${JWT_SECRET:?JWT_SECRET must be set (the Makefile sets a local default)}"
  echo "JWT_ISSUER=${JWT_ISSUER:-connectors-api-local}"
  echo "JWT_AUDIENCE=${JWT_AUDIENCE:-connectors-api}"
  echo "RUST_LOG=${RUST_LOG:-info}"
  # One env file serves every function here: the longest template Timeout (the test function's).
  echo "FUNCTION_TIMEOUT_SECONDS=${FUNCTION_TIMEOUT_SECONDS:-15}"
  # Empty by default: probes may not reach private or loopback addresses. For local targets,
  # e.g. `make local PROBE_ALLOW_CIDRS=127.0.0.1`.
  echo "PROBE_ALLOW_CIDRS=${PROBE_ALLOW_CIDRS:-}"
  for name in METRICS_NAMESPACE PROBE_CONNECT_TIMEOUT_MS PROBE_TIMEOUT_MS PROBE_DNS_SERVER PROBE_RESOLVE PROBE_EXTRA_CA_FILE PROBE_CERT_WARN_DAYS TEST_RATE_LIMIT TEST_RATE_WINDOW_SECONDS SWEEP_INTERVAL_SECONDS SWEEP_CONCURRENCY; do
    [ -n "${!name:-}" ] && echo "$name=${!name}"
  done
} >>"$env_file"

# Build before serving so the first request does not wait for a compile.
cargo build --quiet -p list -p create -p update -p delete -p test

url="http://127.0.0.1:$port/api/v1/connectors"
cat <<MSG

  connectors-api is starting at $url
  AWS emulator: http://127.0.0.1:$emulator_port   table: $table   env: ${env_file#"$root/"}

  Try:
    TOKEN=\$(make -s token TENANT=my-tenant ROLE=admin)
    curl -s -X POST $url \\
      -H "Content-Type: application/json" -H "Authorization: Bearer \$TOKEN" -H "X-Tenant-Id: my-tenant" \\
      -d '{"name": "Customer Data Warehouse", "type": "snowflake",
           "config": {"account": "xy12345.us-east-1", "warehouse": "COMPUTE_WH", "database": "ANALYTICS"},
           "authMethod": "access_key", "authConfig": {"username": "svc_kaireon", "password": "secret"}}'
    curl -s $url -H "Authorization: Bearer \$TOKEN"

  History and events: the table's stream is read here and handed to the publisher (the test
  function's stream event kind), a second or so behind each write:
    curl -s $url/<id>/tests -H "Authorization: Bearer \$TOKEN"
    .venv/bin/python -c "import boto3; print(boto3.client('sqs', endpoint_url='http://127.0.0.1:$emulator_port',
      region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').receive_message(
      QueueUrl='$(grep EVENTS_QUEUE_URL "$env_file" | cut -d= -f2-)', MaxNumberOfMessages=10).get('Messages'))"

  Ctrl-C stops everything.

MSG
# No --timeout: cargo-lambda 1.9 applies it to the functions' long-poll for their next event too,
# answering that poll 408 without a request id after the timeout, and lambda_runtime 1.5 panics on
# it, so every idle function died after 30 s. Each function bounds its own work instead
# (FUNCTION_TIMEOUT_SECONDS above). Only sources trigger a rebuild: see .cargolambdaignore.
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$env_file" &
watch_pid=$!
# The stream → the publisher, as Lambda's event source mapping does in AWS (local/stream_reader.py).
"$python3" local/stream_reader.py "http://127.0.0.1:$emulator_port" "$table" \
  "http://127.0.0.1:$port/2015-03-31/functions/test/invocations" &
wait $watch_pid

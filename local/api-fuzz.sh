#!/usr/bin/env bash
# schemathesis against the local stack: every operation of openapi.yaml, with a valid token, sent
# to the real function binaries under `cargo lambda watch` on the AWS emulator at $1.
# Checks: no 5xx, and status codes, content types, headers and bodies conform to the contract.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
emulator=${1:?emulator URL}
export PATH="$root/.venv/bin:$PATH"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env_file="$root/.local/api-fuzz.env"
mkdir -p "$root/.local"
secret=api-fuzz-secret
.venv/bin/python local/aws_setup.py "$emulator" connectors-api-fuzz >"$env_file"
# Limits high enough that schemathesis explores the endpoint rather than the 429/503 answers
# (those have tests of their own).
printf 'JWT_SECRET=%s\nRUST_LOG=warn\nTEST_RATE_LIMIT=100000\nBREAKER_FAILURE_THRESHOLD=1000000\nPROBE_TIMEOUT_MS=2000\nPROBE_CONNECT_TIMEOUT_MS=500\n' "$secret" >>"$env_file"

cargo build --quiet -p list -p create -p update -p delete -p test
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$env_file" --ignore-changes >"$root/.local/api-fuzz-watch.log" 2>&1 &
watch_pid=$!
trap 'kill $watch_pid 2>/dev/null || true; wait $watch_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
  sleep 0.2
done

token=$(JWT_SECRET=$secret python3 local/mint_token.py api-fuzz admin)
schemathesis run openapi.yaml \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${API_FUZZ_EXAMPLES:-30}" \
  --seed 20261126 \
  --mode positive \
  --workers 1 \
  --request-timeout 30

#!/usr/bin/env bash
# Runs a command with the real database servers the login probes are tested against, on
# 127.0.0.1, stopped afterwards whatever the command's result:
#   PostgreSQL with TLS on $PG_TEST_PORT (15433) and without on the port after (postgres_server.py),
#   MariaDB with TLS on PG_TEST_PORT+2 (mariadb_server.py),
#   the caching_sha2_password look-alike on PG_TEST_PORT+3 (mysql_sha2_peer.py),
#   the Kafka look-alike on PG_TEST_PORT+4 (SASL_PLAINTEXT), +5 (SASL_SSL), +6 (PLAINTEXT) (kafka_peer.py),
#   the MongoDB look-alike on PG_TEST_PORT+7 (plain) and +8 (TLS) (mongo_peer.py),
#   OpenSSH (sftp) on PG_TEST_PORT+9 (sshd_server.py),
#   and for the tls_failed reasons, servers presenting an expired certificate / one from an unknown
#   CA: PostgreSQL +10/+11, MariaDB +12/+13, Kafka (SASL_SSL) +14/+15, MongoDB (TLS) +16/+17,
#   an OpenSSH bastion on +21 (bastion_server.py) that forwards to the same servers on 127.0.0.3
#   (PostgreSQL, MariaDB, the MongoDB look-alike's plain port, OpenSSH), which the tests' guard
#   refuses to reach directly,
#   the HTTPS look-alikes of HubSpot, Salesforce, Databricks, Snowflake and Google on +18
#   (saas_peer.py), Azurite (the Azure Storage emulator, HTTPS) on +19 (azurite_server.py), and
#   an AWS emulator that enforces IAM on +20 (aws_iam_emulator.py).
# All TLS comes from the tests' PKI (test_pki.py), whose CA is exported as PROBE_EXTRA_CA_FILE.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
port=${PG_TEST_PORT:-15433}
dir="$root/.local/db-test-$port"
peer_pid=
kafka_pid=
mongo_pid=
saas_pid=
cleanup() {
  [ -n "$saas_pid" ] && kill "$saas_pid" 2>/dev/null || true
  [ -n "$mongo_pid" ] && kill "$mongo_pid" 2>/dev/null || true
  [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null || true
  [ -n "$kafka_pid" ] && kill "$kafka_pid" 2>/dev/null || true
  "$py" "$root/local/azurite_server.py" stop "$dir/azurite" || true
  "$py" "$root/local/aws_iam_emulator.py" stop "$dir/aws-iam" || true
  "$py" "$root/local/bastion_server.py" stop "$dir/bastion" || true
  "$py" "$root/local/sshd_server.py" stop "$dir/sshd" || true
  "$py" "$root/local/mariadb_server.py" stop "$dir/mariadb" || true
  "$py" "$root/local/postgres_server.py" stop "$dir/postgres" || true
}
trap cleanup EXIT
# Exports the KEY=VALUE lines a server script printed (and nothing else it may have said).
export_settings() {
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] && export "$key=$value"
  done <<<"$1"
}
settings=$("$py" "$root/local/postgres_server.py" start "$dir/postgres" "$port")
export_settings "$settings"
export PROBE_EXTRA_CA_FILE="$PG_TEST_CA_FILE"
export MYSQL_TEST_PORT=$((port + 2)) MYSQL_SHA2_TEST_PORT=$((port + 3))
# MariaDB's bad-certificate servers land on MYSQL_TEST_PORT+10/+11 = PG_TEST_PORT+12/+13.
settings=$("$py" "$root/local/mariadb_server.py" start "$dir/mariadb" "$MYSQL_TEST_PORT" "$TEST_PKI_DIR")
export_settings "$settings"
export MYSQL_SHA2_PUBLIC_KEY_FILE="$dir/sha2-public.pem"
rm -f "$MYSQL_SHA2_PUBLIC_KEY_FILE"
"$py" "$root/local/mysql_sha2_peer.py" "$MYSQL_SHA2_TEST_PORT" "$MYSQL_SHA2_PUBLIC_KEY_FILE" 2>"$dir/sha2-peer.log" &
peer_pid=$!
export KAFKA_TEST_PORT=$((port + 4))
export KAFKA_EXPIRED_TEST_PORT=$((port + 14)) KAFKA_UNKNOWNCA_TEST_PORT=$((port + 15))
"$py" "$root/local/kafka_peer.py" "$KAFKA_TEST_PORT" "$TEST_PKI_DIR" "$KAFKA_EXPIRED_TEST_PORT" "$KAFKA_UNKNOWNCA_TEST_PORT" 2>"$dir/kafka-peer.log" &
kafka_pid=$!
settings=$("$py" "$root/local/sshd_server.py" start "$dir/sshd" $((port + 9)))
export_settings "$settings"
settings=$("$py" "$root/local/bastion_server.py" start "$dir/bastion" $((port + 21)))
export_settings "$settings"
export MONGO_TEST_PORT=$((port + 7))
export MONGO_EXPIRED_TEST_PORT=$((port + 16)) MONGO_UNKNOWNCA_TEST_PORT=$((port + 17))
"$py" "$root/local/mongo_peer.py" "$MONGO_TEST_PORT" "$TEST_PKI_DIR" "$MONGO_EXPIRED_TEST_PORT" "$MONGO_UNKNOWNCA_TEST_PORT" 2>"$dir/mongo-peer.log" &
mongo_pid=$!
export SAAS_TEST_PORT=$((port + 18))
"$py" "$root/local/saas_peer.py" "$SAAS_TEST_PORT" "$TEST_PKI_DIR" 2>"$dir/saas-peer.log" &
saas_pid=$!
settings=$("$py" "$root/local/azurite_server.py" start "$dir/azurite" $((port + 19)) "$TEST_PKI_DIR")
export_settings "$settings"
settings=$("$py" "$root/local/aws_iam_emulator.py" start "$dir/aws-iam" $((port + 20)))
export_settings "$settings"
# The look-alikes listen within a moment; wait until they accept.
for p in "$MYSQL_SHA2_TEST_PORT" "$KAFKA_TEST_PORT" $((KAFKA_TEST_PORT + 2)) "$KAFKA_UNKNOWNCA_TEST_PORT" \
  "$MONGO_TEST_PORT" $((MONGO_TEST_PORT + 1)) "$MONGO_UNKNOWNCA_TEST_PORT" "$SAAS_TEST_PORT"; do
  for _ in $(seq 1 50); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $p)))" && break
    sleep 0.1
  done
done
"$@"

# connectors-api: `make local` serves the API on emulated AWS, `make test` runs everything CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PORT ?= 3000
AWS_EMULATOR_PORT ?= 4566
TEST_EMULATOR_PORT ?= 4567
# Local development only: the secret the local stack and `make token` share. Never used in AWS.
JWT_SECRET ?= local-development-secret
JWT_ISSUER ?= connectors-api-local
JWT_AUDIENCE ?= connectors-api
TENANT ?= my-tenant
TENANTS ?= $(TENANT)
ROLE ?= admin
export PORT AWS_EMULATOR_PORT TEST_EMULATOR_PORT JWT_SECRET JWT_ISSUER JWT_AUDIENCE

.PHONY: help venv npm-tools local local-test fuzz-short token fake-postgres postgres test fmt lint unit integration contract template release release-x86_64 replay api-fuzz bench bench-check fuzz

help:
	@echo "make local                      serve the API at http://127.0.0.1:$(PORT)/api/v1/connectors on emulated AWS"
	@echo "make -s token TENANT=acme ROLE=admin   print a bearer token the local stack accepts (TENANTS=a,b for several)"
	@echo "make fake-postgres              a Postgres look-alike on 127.0.0.1:15432 (with make local PROBE_ALLOW_CIDRS=127.0.0.1)"
	@echo "make postgres                   a real PostgreSQL on 127.0.0.1:15463 (TLS) and :15464 to test logins against"
	@echo "make test                       formatting, clippy, unit, integration, contract, replay and fuzz (what CI runs)"
	@echo "make bench                      cold start, memory, latency, AWS round trips, sizes, sweep rate (bench/results.json)"
	@echo "make bench-check                compare bench/results.json with bench/budgets.json; fails on a missed budget"
	@echo "make fuzz [FUZZ_SECONDS=60]     run every cargo-fuzz target for a bounded time"

# The project-local Python environment: the AWS emulator, cargo-lambda and cfn-lint.
$(VENV)/.installed: local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r local/requirements.txt
	touch $@

venv: $(VENV)/.installed

# The project-local npm tools (Azurite), pinned by local/npm/package-lock.json.
NPM_TOOLS := local/npm/node_modules/.installed
$(NPM_TOOLS): local/npm/package.json local/npm/package-lock.json
	npm ci --prefix local/npm --no-audit --no-fund --silent
	touch $@

npm-tools: $(NPM_TOOLS)

local: venv
	local/run.sh

token:
	@python3 local/mint_token.py "$(TENANTS)" "$(ROLE)"

# A Postgres look-alike on 127.0.0.1:$(FAKE_PG_PORT) to try the test endpoint against
# (below the ephemeral port range, so no outgoing connection holds the port).
FAKE_PG_PORT ?= 15432
fake-postgres:
	python3 local/fake_postgres.py $(FAKE_PG_PORT)

# A real PostgreSQL (Debian's server) with TLS on 127.0.0.1:$(PG_PORT) and without on the port after,
# users app / md5user / clearuser / trustuser / nogrant, databases appdb / lockeddb; Ctrl-C stops it.
# (and MariaDB on the port +2, the caching_sha2 look-alike on +3; see local/with-databases.sh).
# Try it with: make local PROBE_ALLOW_CIDRS=127.0.0.1 PROBE_EXTRA_CA_FILE=$(CURDIR)/.local/db-test-$(PG_PORT)/postgres/pki/ca.pem
PG_PORT ?= 15463
postgres: venv npm-tools
	PG_TEST_PORT=$(PG_PORT) local/with-databases.sh bash -c 'echo "PostgreSQL on 127.0.0.1:$$PG_TEST_PORT (TLS) and :$$PG_TEST_PLAIN_PORT (no TLS); user app, password $$PG_TEST_PASSWORD, database appdb; MariaDB on :$$MYSQL_TEST_PORT (user app, database appdb); caching_sha2 look-alike on :$$MYSQL_SHA2_TEST_PORT (user sha2user); SaaS look-alikes on :$$SAAS_TEST_PORT, Azurite on :$$AZURE_TEST_PORT, IAM-enforcing AWS emulator on :$$AWS_IAM_TEST_PORT; SSH bastion on :$$BASTION_TEST_PORT (user $$BASTION_TEST_USER; append your tenant key to $$BASTION_AUTHORIZED_KEYS) forwarding to them all on 127.0.0.3; CA $$PG_TEST_CA_FILE. Ctrl-C stops them."; sleep infinity' || true

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace --lib --bins

# The integration tests against the AWS emulator and a real PostgreSQL (login probes).
integration: venv npm-tools
	local/with-emulator.sh local/with-databases.sh cargo test -p integration-tests --test integration

# `make local` through its own start script: idle past the old runtime timeout, a tool writing into
# the checkout, two stacks at once (waits about a minute of real time).
local-test: venv
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/local

contract: venv
	$(VENV)/bin/openapi-spec-validator openapi.yaml

# The SAM template: cfn-lint, SAM's own lint, then what the SAM translator generates (no AWS account needed).
template: venv
	$(VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/template

# schemathesis: every operation of openapi.yaml against the local stack, with a valid token.
api-fuzz: venv
	local/with-emulator.sh local/api-fuzz.sh "http://127.0.0.1:$(TEST_EMULATOR_PORT)"

# The release binaries (LTO, size-optimized, stripped) that `sam build` ships: arm64 (as
# template.yaml deploys), cross-linked by cargo-lambda with Zig, in target/lambda-arm64/<function>/bootstrap.
release: venv
	rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --lambda-dir target/lambda-arm64

# The same binaries for this machine (x86_64), in target/lambda/<function>/bootstrap: what the bench times.
release-x86_64: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release

# Every sample event through the arm64 release binaries (under qemu-user on x86_64) over the Runtime API.
replay: release
	local/with-emulator.sh $(VENV)/bin/python local/replay.py "http://127.0.0.1:$(TEST_EMULATOR_PORT)"

# Benchmarks of the x86_64 release binaries against the emulator and a Python/boto3 peer, with the
# arm64 sizes beside them (see bench/). Not part of `make test`: see the README's Performance section.
bench: release-x86_64 release
	local/with-emulator.sh $(VENV)/bin/python bench/run.py

bench-check:
	python3 bench/check.py

# cargo-fuzz (installed into .local/cargo on first use); libFuzzer targets in fuzz/, run for
# FUZZ_SECONDS each. Stable toolchain: RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := request_body ssrf masking cursor
CARGO_FUZZ := .local/cargo/bin/cargo-fuzz
$(CARGO_FUZZ):
	cargo install --quiet cargo-fuzz --locked --version ^0.13 --root .local/cargo

fuzz: $(CARGO_FUZZ)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) fuzz run --fuzz-dir fuzz --sanitizer none $$t fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS); \
	done

# The same, each target's libFuzzer output kept in .local/fuzz-<target>.log: one summary line per
# target (runs, coverage, corpus), and the log's end only when a target fails (what CI runs).
fuzz-short: $(CARGO_FUZZ)
	@set -e; mkdir -p .local; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  log=.local/fuzz-$$t.log; \
	  if RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) fuzz run --fuzz-dir fuzz --sanitizer none $$t fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=20 >$$log 2>&1; then \
	    echo "fuzz $$t: $$(grep -E '^#[0-9]+[[:space:]]+DONE' $$log | tail -1 | sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/\1 runs, /')"; \
	  else \
	    echo "fuzz $$t FAILED (log: $$log):"; tail -60 $$log; exit 1; \
	  fi; \
	done

# Every stage in order, each timed into .local/stage-times.txt (printed at the end of .ci/run).
TEST_STAGES := fmt lint contract template unit integration local-test api-fuzz replay fuzz-short
test: venv
	local/stages.sh $(TEST_STAGES)


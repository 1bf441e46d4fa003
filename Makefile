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

.PHONY: help venv local token fake-postgres test fmt lint unit integration contract template replay api-fuzz

help:
	@echo "make local                      serve the API at http://127.0.0.1:$(PORT)/api/v1/connectors on emulated AWS"
	@echo "make -s token TENANT=acme ROLE=admin   print a bearer token the local stack accepts (TENANTS=a,b for several)"
	@echo "make fake-postgres              a Postgres look-alike on 127.0.0.1:15432 (with make local PROBE_ALLOW_CIDRS=127.0.0.1)"
	@echo "make test                       formatting, clippy, unit and integration tests (what CI runs)"

# The project-local Python environment: the AWS emulator, cargo-lambda and cfn-lint.
$(VENV)/.installed: local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r local/requirements.txt
	touch $@

venv: $(VENV)/.installed

local: venv
	local/run.sh

token:
	@python3 local/mint_token.py "$(TENANTS)" "$(ROLE)"

# A Postgres look-alike on 127.0.0.1:$(FAKE_PG_PORT) to try the test endpoint against
# (below the ephemeral port range, so no outgoing connection holds the port).
FAKE_PG_PORT ?= 15432
fake-postgres:
	python3 local/fake_postgres.py $(FAKE_PG_PORT)

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace --lib --bins

integration: venv
	local/with-emulator.sh cargo test -p integration-tests --test integration

contract: venv
	$(VENV)/bin/openapi-spec-validator openapi.yaml

# The SAM template: cfn-lint, then SAM's own translation and lint (no AWS account needed).
template: venv
	$(VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint

# schemathesis: every operation of openapi.yaml against the local stack, with a valid token.
api-fuzz: venv
	local/with-emulator.sh local/api-fuzz.sh "http://127.0.0.1:$(TEST_EMULATOR_PORT)"

# Every sample event through the release binaries (cargo lambda build) over the Runtime API.
replay: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release
	local/with-emulator.sh $(VENV)/bin/python local/replay.py "http://127.0.0.1:$(TEST_EMULATOR_PORT)"

test: venv fmt lint contract template unit integration api-fuzz replay

# Vendo. `make run` starts everything on the embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# The dev targets run in DEBUG; production sets its environment itself (see .env.example).
DEV_ENV := DEBUG=true PATH="$(CURDIR)/$(BIN):$$PATH"
# `make run` shortens the money's clock so a demo shows it all: a payout lands within two
# minutes of a completed job.
RUN_ENV := $(DEV_ENV) DISPUTE_WINDOW_SECONDS=60 PAYOUT_INTERVAL_SECONDS=30 PAYOUT_MINIMUM=0.1 \
	FAILED_REFUND_DELAY_SECONDS=30 LEDGER_CHECK_INTERVAL=60
# Bumped when migrations are rewritten from scratch: an older dev database is set aside.
SCHEMA := 3

.PHONY: install run test bench drills contracts lint clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	# `npm install`, not `npm ci`: the lock names only the platform binaries the registry serves here.
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## Rebuild payments/contracts/*.json from contracts/*.sol with the pinned solc.
contracts: node_modules/.installed
	npm run --silent compile-contracts

## Set up everything (venv, npm, database, dev chain, token, demo data) and start
## the dev chain, web, worker and beat. Ctrl-C stops them all.
run: install
	mkdir -p var
	@# The dev chain's history belongs to the database's books: set both aside together.
	@if [ -f var/db.sqlite3 ] && [ "$$(cat var/.schema 2>/dev/null)" != "$(SCHEMA)" ]; then \
	  mv var/db.sqlite3 var/db.sqlite3.schema-before-$(SCHEMA); \
	  rm -rf var/anvil.schema-before-$(SCHEMA); [ -d var/anvil ] && mv var/anvil var/anvil.schema-before-$(SCHEMA); \
	  rm -f var/devchain.json; \
	  echo "  Your dev database and chain predate schema $(SCHEMA): moved aside (var/*.schema-before-$(SCHEMA))."; \
	fi; echo $(SCHEMA) > var/.schema
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py devchain_setup
	$(DEV_ENV) $(PY) manage.py seed_demo
	@echo
	@echo "  Vendo is starting on http://127.0.0.1:8000/"
	@echo "  Admin: http://127.0.0.1:8000/admin/"
	@echo "    operator / vendo-operator   (sees everything)"
	@echo "    ada      / vendo-provider   (provider: Quill, Ledger)"
	@echo "    grace    / vendo-provider   (provider: Compiler)"
	@echo "  Ctrl-C stops everything."
	@echo
	$(RUN_ENV) $(BIN)/honcho -f Procfile.dev start

## Install, then run the whole suite (PostgreSQL and Redis when reachable, else embedded).
test: install
	@scripts/ensure_chromium.sh
	@eval "$$(scripts/services_env.sh)"; $(DEV_ENV) $(BIN)/pytest

## Benchmarks on the real stack (never part of `make test`).
bench: install
	@eval "$$(scripts/services_env.sh)"; $(DEV_ENV) $(PY) -m bench

## Fault drills: workers killed and Redis restarted while paid jobs run.
drills: install
	@eval "$$(scripts/services_env.sh)"; $(DEV_ENV) $(PY) -m bench.drills

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf var/broker var/db.sqlite3 var/anvil var/devchain.json var/celerybeat-schedule*

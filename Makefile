# The two commands: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CP_DATABASE_URL ?= sqlite:///var/control-plane.db
export CP_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test test-sqlite test-postgres coverage peers lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@mkdir -p var
	$(BIN)/cpctl db upgrade
	$(BIN)/cpctl seed demo
	@echo "Portal: http://127.0.0.1:$${CP_PORT:-8000}/  (Ctrl-C stops)"
	CP_COOKIE_SECURE=$${CP_COOKIE_SECURE:-false} exec $(BIN)/cpctl serve

# The whole suite on SQLite and on PostgreSQL, both at once (one core each; every peer
# a suite starts takes its own ports, directories and databases). Each run's output is
# printed whole when it ends.
test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

# SQLITE_ARGS: extra pytest arguments for the SQLite run (CI adds coverage there only).
test-sqlite: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --db=sqlite $(SQLITE_ARGS)

test-postgres: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --db=postgres

# Branch coverage of the SQLite run (reported, not gated; about twice the run's time).
coverage: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --db=sqlite --cov --cov-report=term:skip-covered

# Real test peers: Debian Chromium (portal e2e), the OpenID provider (SSO), the sushy-tools
# Redfish emulator and Slurm from Debian packages (tenancy drivers), llama-cpp-python and
# SmolLM2's GGUF (inference endpoints; Triton itself comes with the Python dependencies).
peers: $(STAMP)
	bash tests/fixtures/peers/install.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench.api --quick --databases sqlite --json var/bench-api.json

clean:
	rm -rf var/control-plane.db* var/test-* .pytest_cache .mypy_cache .ruff_cache

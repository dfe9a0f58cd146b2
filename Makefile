# The two commands of the README: `make run` (set up + whole pipeline) and `make test` (set up + test suite).
# Set-up is idempotent: the venv is (re)installed only when pyproject.toml, requirements.lock or this file change.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?= smollm2
UV_VERSION := 0.13.9
# The CPU torch wheel lies on disk; pip's config knows where, uv does not read pip's config.
FIND_LINKS := $(or $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null),/opt/wheels)
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint lock doctor clean-state deploy

install: $(STAMP)

# --compile-bytecode: the .pyc files are written once here. With PYTHONDONTWRITEBYTECODE=1 (set on these machines)
# every process would otherwise compile vllm, torch and transformers from source at import: ~30 s for each of
# vLLM's three processes, and for every CLI, server and test subprocess.
$(STAMP): pyproject.toml requirements.lock Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --compile-bytecode --python $(BIN)/python --find-links $(FIND_LINKS) requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m lmforge.doctor
	touch $(STAMP)

run: install
	$(BIN)/lmforge pipeline --profile $(PROFILE)

test: install system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src flows tests benchmarks

doctor: install
	$(BIN)/python -m lmforge.doctor

# Register prefect.yaml's deployments and schedules on a running Prefect server (infra/prefect-server.sh).
deploy: install
	bash infra/prefect-deploy.sh

# Debian packages the registry's integration tests use (PostgreSQL, Chromium + chromedriver); only what is missing.
.PHONY: system-deps
system-deps:
	bash infra/system-deps.sh

# Re-resolve the pinned set (needs the registries); commit requirements.lock afterwards.
lock:
	$(PYTHON) -m pip install -q uv==$(UV_VERSION)
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--find-links $(FIND_LINKS) -o requirements.lock

clean-state:
	-$(BIN)/lmforge serve stop
	rm -rf .state runs

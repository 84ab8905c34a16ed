# The two commands: `make demo` runs the hub on embedded defaults; `make test` runs every check.
# Both create .venv on first use and install the pinned dependencies (requirements.lock).

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit install lock bench clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "CTM Hub needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hub workers tests migrations
	$(BIN)/ruff format --check hub workers tests migrations

typecheck: $(STAMP)
	$(BIN)/mypy hub workers

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# Benchmarks print figures and ratios against floors measured in the same run (not tests).
bench: $(STAMP)
	$(BIN)/python -m tests.perf.bench_crypto
	$(BIN)/python -m tests.perf.bench_parser
	$(BIN)/python -m tests.perf.bench_sync
	$(BIN)/python -m tests.perf.bench_webhooks

# Re-pin the whole dependency tree after changing pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[dev]'
	.lock-venv/bin/pip install --quiet setuptools==80.9.0
	.lock-venv/bin/pip freeze --all --exclude ctm-hub --exclude pip | sort -f > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

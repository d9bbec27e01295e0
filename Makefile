# csp-escalation — every target installs what it needs into .venv first.
# The distribution's optimized interpreter when it is new enough (see scripts/pick-python).
PYTHON ?= $(shell bash scripts/pick-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := $(VENV)/.tools
PYTEST := $(BIN)/python -m pytest
# Tests are isolated (own database, topic prefix and ports; a broker and template per worker),
# so they run in parallel; much of an end-to-end test is waiting on its services. Work stealing:
# xdist's default hands each worker a long run of tests up front, which put every end-to-end
# and fault test on two workers while the others, done with the rest, stood idle.
WORKERS ?= 6

.PHONY: run test test-sqlite test-unit test-integration test-e2e faults bench fuzz lint format typecheck check clean install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# kcat, Chromium and the AsyncAPI parser, which tests drive from outside Python.
$(TOOLS): scripts/system-tools $(STAMP)
	bash scripts/system-tools $(VENV)
	touch $(TOOLS)

install: $(STAMP) $(TOOLS)

## The embedded stack: Tansu broker + SQLite + intake, classifier, notifier on loopback.
run: $(STAMP)
	ESCALATION_LOG_JSON=$${ESCALATION_LOG_JSON:-false} $(BIN)/escalation dev

## The whole suite: against the default database (a local PostgreSQL when one answers),
## then the broker and database tiers again on SQLite (but for tests whose subject is not the
## database: the topic tools, the ops page in Chromium, telemetry).
test: $(STAMP) $(TOOLS) lint typecheck
	bash scripts/pytest-ok $(PYTEST) -q -n $(WORKERS) --dist worksteal -m "not serial"
	bash scripts/pytest-ok $(PYTEST) -q -m serial
	DATABASE_URL=sqlite bash scripts/pytest-ok $(PYTEST) -q -n $(WORKERS) --dist worksteal -m "(integration or e2e) and not single_db"

test-sqlite: $(STAMP) $(TOOLS)
	DATABASE_URL=sqlite bash scripts/pytest-ok $(PYTEST) -q

test-unit: $(STAMP)
	bash scripts/pytest-ok $(PYTEST) -q -m unit

test-integration: $(STAMP) $(TOOLS)
	bash scripts/pytest-ok $(PYTEST) -q -m integration

test-e2e: $(STAMP) $(TOOLS)
	bash scripts/pytest-ok $(PYTEST) -q -m e2e

## The fault suite in full: longer load, a 30 s broker outage; the summary table is printed and
## written to bench/results/faults*.md. (`make test` runs the short form.)
faults: $(STAMP) $(TOOLS)
	FAULTS_FULL=1 FAULTS_SUMMARY=bench/results/faults.md bash scripts/pytest-ok $(PYTEST) -q -n 2 -m "faults and not serial"
	FAULTS_FULL=1 FAULTS_SUMMARY=bench/results/faults-postgres.md bash scripts/pytest-ok $(PYTEST) -q -m "faults and serial"

## The benchmark: baselines A and B, the intake under wrk, the pipeline at 200/s, 1,000/s and 1,200/s, on
## PostgreSQL and SQLite; a table on stdout and bench/results/latest.json.
bench: $(STAMP) $(TOOLS)
	$(BIN)/python -m bench

# schemathesis with many more generated requests per operation than the bounded run in `make test`.
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-300} $(PYTEST) -q tests/e2e/test_api_schema.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

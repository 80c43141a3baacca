# OrderHub - `make run` (the demo pipeline) and `make test` (the suite) set
# everything up themselves: a .venv with pinned packages, the embedded
# PostgreSQL, the Airflow metadata DB and dbt's manifest.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup run test test-chaos test-bench test-fast lint docs clean chromium redis bench airflow

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install pinned dependencies
	$(BIN)/orderhub db start

run: setup ## run the demo: warehouse + sandbox + 2 min of pushes + DAG runs for 2026-11-11 00:00-03:00
	$(BIN)/orderhub demo --fresh --live 120 --end 2026-11-11T03:00:00+08:00

airflow: setup ## Airflow's UI (http://127.0.0.1:8080), scheduler, DAG processor, triggerer; the last demo's sandbox
	$(BIN)/orderhub airflow --sandbox $(if $(PORT),--port $(PORT))

# Debian's packages the tests use: headless Chromium renders the run report;
# a Redis server stands in for the compose file's, under a Celery worker.
chromium: ## install Debian's chromium if it is missing (the report test renders with it)
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@chromium --version

redis: ## install Debian's redis-server if it is missing (the compose test's Celery broker)
	@command -v redis-server >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
	@redis-server --version

test: setup chromium redis ## lint, then the whole test suite (unit, integration, DAG runs)
	$(BIN)/ruff check plugins tools dags expectations tests
	$(BIN)/pytest

test-chaos: setup ## the DAG-level chaos suite on two seeds (make test runs one)
	ORDERHUB_CHAOS_SEEDS=11,23 $(BIN)/pytest tests/test_chaos.py

test-bench: setup ## smoke every benchmark scenario at a tiny scale (make test smokes 1, 2, 3, 5a, 6)
	ORDERHUB_BENCH_SMOKE=1,2,3,4,5a,5b,6,push,oversell $(BIN)/pytest tests/test_bench.py

test-fast: setup ## the tests that need no Airflow DAG run
	$(BIN)/pytest -m "not airflow"

lint: setup ## ruff
	$(BIN)/ruff check plugins tools dags expectations tests

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

bench: setup $(VENV)/.bench-installed ## benchmarks -> docs/benchmarks.md and .json (SCALE=1)
	$(BIN)/orderhub bench --scale $(or $(SCALE),1)

docs: setup ## dbt docs and the GX Data Docs (prints where they are)
	$(BIN)/orderhub docs

clean: ## stop the embedded warehouse and remove local state
	-$(BIN)/orderhub db stop
	rm -rf .orderhub dbt_project/target dbt_project/logs

# report-pipeline: every target installs what it needs first (apt packages, venv, local servers).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
PY ?= python3
VENV := .venv
ENV := source scripts/env.sh
DEMO_DATE ?= 2026-11-26
PYTEST_ARGS ?=

include scripts/airflow.mk

.PHONY: help demo test unit bench lint services services-stop airflow-db venv system-packages clean

help: ## this list: every target with one line
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

system-packages:
	bash scripts/services.sh install

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml | system-packages
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed ## the virtual environment .venv with the package installed

services: venv ## start the local MariaDB and SeaweedFS (S3) servers
	bash scripts/services.sh start

services-stop: ## stop what make demo / make test started
	bash scripts/services.sh stop

# Airflow's metadata DB for `airflow dags test` / dag.test(): SQLite under .local/airflow, plus the pools.
airflow-db: venv ## the SQLite metadata DB and pools for airflow dags test
	$(ENV)
	mkdir -p "$$AIRFLOW_HOME"
	$(VENV)/bin/airflow db migrate > "$$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -n 40 "$$AIRFLOW_HOME/db-migrate.log"; exit 1; }
	# The dags-folder bundle row: dag.test() and tests that register DAGs need it in a fresh DB.
	$(VENV)/bin/python -c "from airflow.dag_processing.bundles.manager import DagBundlesManager; DagBundlesManager().sync_bundles_to_db()"
	$(VENV)/bin/airflow pools set reports_source 4 "connections to the source (production) MySQL" > /dev/null
	$(VENV)/bin/airflow pools set reports_target 4 "connections to the target (reporting) MySQL" > /dev/null

demo: services airflow-db ## demo data, one DAG run end to end, and what it moved per company and table
	$(ENV)
	export PATH="$$PWD/$(VENV)/bin:$$PATH"
	report-pipeline demo-setup
	echo "== airflow dags test populate_report_databases $(DEMO_DATE)"
	airflow dags test populate_report_databases $(DEMO_DATE) > "$$AIRFLOW_HOME/demo-run.log" 2>&1 \
	  || { grep -E "ERROR|Traceback|Error" "$$AIRFLOW_HOME/demo-run.log" | tail -n 40; exit 1; }
	grep -E "dag_run.*(success|failed)|DagRun Finished" "$$AIRFLOW_HOME/demo-run.log" | tail -n 1 || true
	report-pipeline report --date $(DEMO_DATE)

test: services airflow-db ## the whole suite on the real local servers and Airflow stacks
	$(ENV)
	export PATH="$$PWD/$(VENV)/bin:$$PATH"
	$(VENV)/bin/python -m pytest -m "not airflow_real" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-airflow
	$(MAKE) --no-print-directory test-load

bench: services ## the transfer benchmark beside the baselines (BENCH_ARGS=... e.g. --no-peers-big)
	$(ENV)
	$(VENV)/bin/python scripts/bench.py $(BENCH_ARGS)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check include dags tests scripts
	$(VENV)/bin/mypy

unit: venv ## the tests that need no server (seconds)
	$(VENV)/bin/python -m pytest tests/unit -q $(PYTEST_ARGS)

clean: airflow-down services-stop ## stop everything and remove .local
	rm -rf .local

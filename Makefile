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

.PHONY: help demo test unit bench lint settings-table services services-stop airflow-db venv system-packages clean dist constraints test-package

help: ## this list: every target with one line
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

system-packages:
	bash scripts/services.sh install

# Airflow, the providers and their dependencies at the versions of constraints-3.11.txt, the same file
# a deployment installs the package with (see README "Install into your Airflow").
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml constraints-3.11.txt | system-packages
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt -c constraints-3.11.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

# The package's wheel in dist/: what `pip install` takes into any Airflow 3.3 (README "Install into
# your Airflow"). pip builds it in an isolated environment from pyproject.toml.
dist: venv ## the wheel in dist/ (what pip install takes into any Airflow 3.3)
	rm -rf dist
	$(VENV)/bin/pip wheel -q --no-deps --wheel-dir dist .
	ls dist

# Regenerate constraints-3.11.txt after changing a pin in requirements.txt (scripts/constraints.sh).
constraints: ## regenerate constraints-3.11.txt (scripts/constraints.sh)
	bash scripts/constraints.sh

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

# Only our summary is printed: the set-up's and Airflow's own log lines go to .local/demo.log, named
# on the first line (and its tail is shown if a step fails).
demo: ## demo data, one DAG run end to end, and what it moved per company and table
	@log=.local/demo.log
	mkdir -p .local
	echo "make demo: services, Airflow DB, demo data and one DAG run for $(DEMO_DATE); their log: $$log"
	fail() { tail -n 40 "$$log" >&2; echo "make demo: $$1 failed; the whole log is $$log" >&2; exit 1; }
	$(MAKE) --no-print-directory services airflow-db > "$$log" 2>&1 || fail "the set-up"
	$(ENV)
	export PATH="$$PWD/$(VENV)/bin:$$PATH"
	report-pipeline demo-setup >> "$$log" 2>&1 || fail "report-pipeline demo-setup"
	airflow dags test populate_report_databases $(DEMO_DATE) >> "$$log" 2>&1 \
	  || fail "airflow dags test populate_report_databases $(DEMO_DATE)"
	# Its own warnings (e.g. Airflow's secrets masker) go to the log too; the table goes to stdout.
	report-pipeline report --date $(DEMO_DATE) 2>> "$$log"

test: services airflow-db ## the whole suite on the real local servers and Airflow stacks
	$(ENV)
	export PATH="$$PWD/$(VENV)/bin:$$PATH"
	$(VENV)/bin/python -m pytest -m "not airflow_real" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-airflow EXECUTOR=local
	$(MAKE) --no-print-directory test-celery
	$(MAKE) --no-print-directory test-load

# The installed-package test alone (tests/package; make test runs it with the rest).
test-package: venv ## the installed-package test alone
	$(VENV)/bin/python -m pytest -m package tests/package $(PYTEST_ARGS)

bench: services ## the transfer benchmark beside the baselines (BENCH_ARGS=... e.g. --no-peers-big)
	$(ENV)
	$(VENV)/bin/python scripts/bench.py $(BENCH_ARGS)

lint: venv ## ruff (lint and format), mypy, and README's settings table equal to settings.py's declarations
	$(VENV)/bin/ruff check include dags tests scripts
	$(VENV)/bin/ruff format --check include dags tests scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m report_pipeline.settingsdoc --check README.md

settings-table: venv ## rewrite README's settings table from include/report_pipeline/settings.py
	$(VENV)/bin/python -m report_pipeline.settingsdoc --write README.md

unit: venv ## the tests that need no server (seconds)
	$(VENV)/bin/python -m pytest tests/unit -q $(PYTEST_ARGS)

clean: airflow-down services-stop ## stop everything and remove .local
	# The PostgreSQL clusters live outside the repository (see scripts/airflow_local.sh): remove what the
	# .local/postgres* links point to as well.
	for link in .local/postgres*; do [ ! -L "$$link" ] || rm -rf -- "$$(readlink "$$link")"; done
	# ... and the link MariaDB sees .local through in a path with spaces (scripts/services.sh).
	find /var/tmp -maxdepth 1 -name 'report-pipeline-*' -lname "$$PWD/.local" -delete 2>/dev/null || true
	rm -rf .local

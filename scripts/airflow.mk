# Real local Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor on PostgreSQL).
# Owned by scripts/airflow_local.sh: UI and REST API on http://127.0.0.1:8080 (login admin / admin),
# PostgreSQL on 127.0.0.1:5433, state in .local/airflow-real and .local/postgres.
# EXECUTOR=celery: the CeleryExecutor instead, with Redis (REPORTS_REDIS_PORT, default 6379) and two
# Celery workers (rp-worker-1, rp-worker-2) that share no local disk.
#
#   make airflow-up [EXECUTOR=celery]   the services, then the whole stack; a no-op when it already runs
#   make airflow-down     stop it (idempotent; workers and Redis too); `make services-stop` stops MariaDB and S3
#   make airflow-status
#   make test-airflow     airflow-up, then tests/airflow_real against the running processes; the
#                         stack stays up afterwards (look at the UI; stop it with make airflow-down).
#                         With EXECUTOR=celery it also runs tests/airflow_real/test_celery.py.
#   make test-celery      the Celery tests on a stack of their own: stops the stack above, starts it with
#                         EXECUTOR=celery and a 20 s task heartbeat timeout (a killed worker's task is
#                         retried within about half a minute), runs tests/airflow_real/test_celery.py,
#                         stops the stack again
#   make test-load        issue 7's load test on a SECOND, independent stack (UI/REST 127.0.0.1:8090,
#                         PostgreSQL 5434, state .local/airflow-load + .local/postgres-load; the stack
#                         above is left alone): scripts/load_data.py puts LOAD_COMPANIES (50) x 5 tables
#                         x LOAD_ROWS (10000) rows into load_admin/load_source (targets ld_<alias>,
#                         buckets rp-load-<alias>), the stack starts with parallelism 8 and a 4-slot
#                         reports_source pool, tests/airflow_load runs one DAG run, then the stack stops
#                         and the load schemas and buckets are dropped (LOAD_KEEP=1 keeps them).
#                         Figures: test-output/load-report.txt. EXECUTOR=celery runs it on Celery workers.
#                         Its ports: AIRFLOW_LOAD_PORT (8090), AIRFLOW_LOAD_PG_PORT (5434) and, with
#                         Celery, AIRFLOW_LOAD_REDIS_PORT (6380): set them when several checkouts share a machine.

#   make bench-fleet      issue 21's fleet benchmark on the same second stack as test-load (its ports and
#                         state; the stack above is left alone): FLEET_COMPANIES (20) x FLEET_TABLES (5) x
#                         FLEET_ROWS (5000) load data, then per executor in FLEET_EXECUTORS (local celery)
#                         a fresh stack, FLEET_RUNS (1) DAG runs measured by scripts/bench_fleet.py, the
#                         stack stopped; then one table of figures (test-output/bench-fleet-*.json).
#                         FLEET_BEFORE=dir prints an earlier run's files of the same names beside them.

# This file is included before the Makefile's own targets: keep its default goal.
_AIRFLOW_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: airflow-up airflow-down airflow-status test-airflow test-celery test-load test-load-down bench-fleet

# local or celery; passed to scripts/airflow_local.sh through the environment.
EXECUTOR ?= local
export EXECUTOR
# The Celery tests kill a worker: its task is retried once the scheduler misses its heartbeats this long.
CELERY_TEST_HEARTBEAT_TIMEOUT ?= 20
AIRFLOW_LOAD_PORT ?= 8090
AIRFLOW_LOAD_PG_PORT ?= 5434
AIRFLOW_LOAD_REDIS_PORT ?= 6380

# The second stack's overrides (see scripts/airflow_local.sh). LOAD_SOURCE_SLOTS is also what the test
# expects the reports_source pool to have (e.g. `make test-load LOAD_SOURCE_SLOTS=1` must fail: no parallelism).
LOAD_SOURCE_SLOTS ?= 4
LOAD_STACK_ENV := AIRFLOW_REAL_HOME=.local/airflow-load AIRFLOW_REAL_PG_DIR=.local/postgres-load \
  AIRFLOW_REAL_PORT=$(AIRFLOW_LOAD_PORT) AIRFLOW_REAL_PG_PORT=$(AIRFLOW_LOAD_PG_PORT) \
  AIRFLOW_REAL_REDIS_PORT=$(AIRFLOW_LOAD_REDIS_PORT) AIRFLOW_REAL_DEMO=0 AIRFLOW_REAL_PARALLELISM=8 \
  AIRFLOW_REAL_SOURCE_SLOTS=$(LOAD_SOURCE_SLOTS) AIRFLOW_REAL_TARGET_SLOTS=4 LOAD_SOURCE_SLOTS=$(LOAD_SOURCE_SLOTS)

airflow-up: services ## start a real local Airflow (UI 127.0.0.1:8080, admin/admin)
	bash scripts/airflow_local.sh up

airflow-down: ## stop the real local Airflow
	bash scripts/airflow_local.sh down

airflow-status: ## what the real local Airflow runs
	bash scripts/airflow_local.sh status

# The Celery tests need a Celery stack: on a LocalExecutor one they are left out (make test-celery runs them).
TEST_AIRFLOW_MARKS := $(if $(filter celery CeleryExecutor,$(EXECUTOR)),airflow_real or airflow_celery,airflow_real)

test-airflow: airflow-up ## the tests against the real local Airflow
	bash scripts/airflow_local.sh ui-deps
	$(ENV)
	$(VENV)/bin/python -m pytest -m "$(TEST_AIRFLOW_MARKS)" tests/airflow_real $(PYTEST_ARGS)

test-celery: services ## the Celery tests on a real Celery stack (two workers)
	$(ENV)
	t0=$$SECONDS
	# Same state directories and ports as airflow-up: whatever runs there (test-airflow's LocalExecutor
	# stack) is stopped first, and the Celery stack is stopped afterwards.
	bash scripts/airflow_local.sh down
	# No schedule: only the tests' own runs write to the targets (no scheduled run to wait for first).
	export EXECUTOR=celery AIRFLOW_REAL_TI_HEARTBEAT_TIMEOUT=$(CELERY_TEST_HEARTBEAT_TIMEOUT) REPORTS_SCHEDULE=none
	rc=0
	{ bash scripts/airflow_local.sh up && \
	  $(VENV)/bin/python -m pytest -rA -m airflow_celery tests/airflow_real/test_celery.py $(PYTEST_ARGS); } || rc=$$?
	bash scripts/airflow_local.sh down || { [ $$rc != 0 ] || rc=1; }
	echo "== test-celery: exit $$rc after $$((SECONDS - t0)) s"
	exit $$rc

test-load: services ## the load test on a second real Airflow stack
	$(ENV)
	export $(LOAD_STACK_ENV)
	eval "$$($(VENV)/bin/python scripts/load_data.py env)"
	t0=$$SECONDS
	# A fresh second stack every time: leftovers of an interrupted run are stopped and wiped.
	bash scripts/airflow_local.sh down
	rm -rf .local/airflow-load .local/postgres-load test-output/load-report.txt
	$(VENV)/bin/python scripts/load_data.py setup
	rc=0
	{ bash scripts/airflow_local.sh up && \
	  $(VENV)/bin/python -m pytest -m airflow_real tests/airflow_load $(PYTEST_ARGS); } || rc=$$?
	bash scripts/airflow_local.sh down || { [ $$rc != 0 ] || rc=1; }
	if [ "$${LOAD_KEEP:-0}" = 1 ]; then echo "LOAD_KEEP=1: load schemas and buckets kept"; \
	else $(VENV)/bin/python scripts/load_data.py drop || { [ $$rc != 0 ] || rc=1; }; fi
	echo "== test-load: exit $$rc after $$((SECONDS - t0)) s (logs: .local/airflow-load)"
	cat test-output/load-report.txt 2>/dev/null || true
	exit $$rc

FLEET_COMPANIES ?= 20
FLEET_TABLES ?= 5
FLEET_ROWS ?= 5000
FLEET_EXECUTORS ?= local celery
FLEET_BEFORE ?=

bench-fleet: services ## the fleet benchmark: N companies x M tables on LocalExecutor and Celery
	$(ENV)
	export $(LOAD_STACK_ENV) LOAD_COMPANIES=$(FLEET_COMPANIES) LOAD_TABLES=$(FLEET_TABLES) LOAD_ROWS=$(FLEET_ROWS)
	eval "$$($(VENV)/bin/python scripts/load_data.py env)"
	t0=$$SECONDS
	rc=0
	for executor in $(FLEET_EXECUTORS); do
	  # Fresh data (empty targets: the first run of a date loads every row) and a fresh stack (and
	  # metadata DB) per executor, as test-load does.
	  bash scripts/airflow_local.sh down
	  $(VENV)/bin/python scripts/load_data.py setup
	  rm -rf .local/airflow-load .local/postgres-load test-output/bench-fleet-$$executor.json
	  { EXECUTOR=$$executor bash scripts/airflow_local.sh up && \
	    $(VENV)/bin/python scripts/bench_fleet.py measure --executor $$executor \
	      --out test-output/bench-fleet-$$executor.json; } || rc=$$?
	  bash scripts/airflow_local.sh down || { [ $$rc != 0 ] || rc=1; }
	done
	$(VENV)/bin/python scripts/load_data.py drop || { [ $$rc != 0 ] || rc=1; }
	echo "== bench-fleet: $(FLEET_COMPANIES) companies x $(FLEET_TABLES) tables x $(FLEET_ROWS) rows, exit $$rc after $$((SECONDS - t0)) s"
	$(VENV)/bin/python scripts/bench_fleet.py report test-output/bench-fleet-*.json $(if $(FLEET_BEFORE),--before $(FLEET_BEFORE))
	exit $$rc

# Stops the second stack if a test-load run was interrupted.
test-load-down: ## stop the load test stack if a run was interrupted
	$(ENV)
	export $(LOAD_STACK_ENV)
	bash scripts/airflow_local.sh down

.DEFAULT_GOAL := $(_AIRFLOW_MK_DEFAULT_GOAL)

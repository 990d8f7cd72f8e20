# Real local Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor on PostgreSQL).
# Owned by scripts/airflow_local.sh: UI and REST API on http://127.0.0.1:8080 (login admin / admin),
# PostgreSQL on 127.0.0.1:5433, state in .local/airflow-real and .local/postgres.
#
#   make airflow-up       the services, then the whole stack; a no-op when it already runs
#   make airflow-down     stop it (idempotent); `make services-stop` stops MariaDB and S3
#   make airflow-status
#   make test-airflow     airflow-up, then tests/airflow_real against the running processes; the
#                         stack stays up afterwards (look at the UI; stop it with make airflow-down)

# This file is included before the Makefile's own targets: keep its default goal.
_AIRFLOW_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: airflow-up airflow-down airflow-status test-airflow

airflow-up: services
	bash scripts/airflow_local.sh up

airflow-down:
	bash scripts/airflow_local.sh down

airflow-status:
	bash scripts/airflow_local.sh status

test-airflow: airflow-up
	bash scripts/airflow_local.sh ui-deps
	$(ENV)
	$(VENV)/bin/python -m pytest -m airflow_real tests/airflow_real $(PYTEST_ARGS)

.DEFAULT_GOAL := $(_AIRFLOW_MK_DEFAULT_GOAL)

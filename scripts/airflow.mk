# Real local Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor on PostgreSQL).
# Owned by scripts/airflow_local.sh; see README "Run it in a real Airflow".
.PHONY: airflow-up airflow-down test-airflow
airflow-up:
	@echo "airflow-up: not written yet"; exit 1
airflow-down:
	@true
test-airflow:
	@true

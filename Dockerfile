# The report-pipeline Airflow image: official Airflow plus the report-pipeline package, installed with
# pip and constraints-3.11.txt like any Airflow deployment installs it (README "Install into your
# Airflow"). docker-compose.yaml builds and runs it (`docker compose build`); push the same image to
# your registry for Celery or Kubernetes workers.
#
# Keep the tag equal to apache-airflow in requirements.txt and to the image tag in
# docker-compose.yaml; tests/unit/test_docker_compose.py checks both.
FROM apache/airflow:3.3.2-python3.11

# Airflow's own version named as well, so pip fails instead of replacing Airflow if requirements.txt
# ever pins another one; the constraints make every other package the version CI tested.
COPY --chown=airflow:root requirements.txt constraints-3.11.txt /tmp/report-pipeline/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/report-pipeline/requirements.txt -c /tmp/report-pipeline/constraints-3.11.txt

# The package itself, built into a wheel and installed (not on PYTHONPATH): `report-pipeline` on PATH,
# the admin schema SQL as package data, `import report_pipeline` from site-packages.
COPY --chown=airflow:root pyproject.toml README.md /tmp/report-pipeline/src/
COPY --chown=airflow:root include/ /tmp/report-pipeline/src/include/
RUN pip install --no-cache-dir /tmp/report-pipeline/src -c /tmp/report-pipeline/constraints-3.11.txt \
    && rm -rf /tmp/report-pipeline

# The DAG files (3 lines each), so the image works without bind mounts (Kubernetes, remote Celery
# workers); the compose stack mounts ./dags over them.
COPY --chown=airflow:root dags/ /opt/airflow/dags/

# Every container checks its REPORTS_* settings before Airflow starts (scripts/compose/entrypoint.sh).
COPY --chown=airflow:root --chmod=0755 scripts/compose/entrypoint.sh /opt/report-pipeline/entrypoint.sh
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/report-pipeline/entrypoint.sh"]

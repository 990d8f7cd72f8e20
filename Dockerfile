# The report-pipeline Airflow image: official Airflow plus this project's pinned requirements and the
# report_pipeline package. docker-compose.yaml builds and runs it (`docker compose build`); push the
# same image to your registry for Celery or Kubernetes workers.
#
# Keep the tag equal to apache-airflow in requirements.txt and to the image tag in
# docker-compose.yaml; tests/unit/test_docker_compose.py checks both.
FROM apache/airflow:3.3.2-python3.11

# No constraints file: requirements.txt pins Airflow and the providers itself. Naming the base
# image's own AIRFLOW_VERSION as well makes pip fail, instead of replacing Airflow, if the pin in
# requirements.txt ever disagrees with the tag above.
COPY --chown=airflow:root requirements.txt /tmp/report-pipeline-requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/report-pipeline-requirements.txt

# The code, so the image works without bind mounts (Kubernetes, remote Celery workers). In the
# compose stack ./include and ./dags are mounted over these copies for development.
COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root dags/ /opt/airflow/dags/
ENV PYTHONPATH=/opt/airflow/include

"""Airflow's local settings for the stack of scripts/airflow_local.sh (on its components' PYTHONPATH).

Airflow imports this module in every process at start-up. It preloads the libraries our tasks use
(README "Running many companies"), so each task process, forked from a worker that has them, skips
their import.
"""

from report_pipeline.airflow.preload import preload

preload()

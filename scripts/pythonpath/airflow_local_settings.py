"""Airflow's local settings for the stack of scripts/airflow_local.sh (on its components' PYTHONPATH).

Airflow imports this module in every process at start-up. In the processes tasks are forked from (the
scheduler, whose LocalExecutor workers fork from it, and the Celery workers) it preloads the libraries
our tasks use (README "Per-task cost"); the other components and the CLI calls of `up` skip it.
"""

import sys

if {"scheduler", "worker"} & set(sys.argv[1:3]):
    from report_pipeline.airflow.preload import preload

    preload()

"""The load test (issue 7) runs only when asked for by path (``make test-load`` runs
``pytest -m airflow_real tests/airflow_load``) or with ``-m airflow_load``: it needs the second Airflow
deployment and the load data that ``make test-load`` creates, so a plain ``pytest``, ``-m "not
airflow_real"`` or ``make test-airflow`` (``-m airflow_real tests/airflow_real``) deselects it (never
skips it). Once selected it fails when that deployment is not up.

Note: tests/airflow_real/conftest.py deselects every ``airflow_real`` item unless ``-m`` names
``airflow_real``, so this directory is run with ``-m airflow_real`` as well.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import asked_for

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if asked_for(config, "airflow_load", HERE):
        return
    mine = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]

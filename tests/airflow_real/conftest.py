"""The real-Airflow tests run only when asked for: ``-m airflow_real`` (``make test-airflow``) or a path
inside tests/airflow_real. A plain ``pytest`` / ``make test`` does not start the Airflow stack, so
there they are deselected (not skipped); once selected they fail when the stack is not up."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import asked_for

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if asked_for(config, "airflow_real", HERE):
        return
    real = [item for item in items if item.get_closest_marker("airflow_real")]
    if real:
        config.hook.pytest_deselected(items=real)
        items[:] = [item for item in items if not item.get_closest_marker("airflow_real")]

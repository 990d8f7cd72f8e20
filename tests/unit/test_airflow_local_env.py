"""The local Airflow stack's configuration (scripts/airflow_local.sh env), without starting it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stack_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """What ``scripts/airflow_local.sh env`` exports, for a stack whose state would live in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_REAL_", "AIRFLOW__"))}
    env.update(AIRFLOW_REAL_HOME=str(tmp_path / "airflow"), **overrides)
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "airflow_local.sh"), "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = {}
    for line in out.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found[name] = value
    return found


@pytest.mark.parametrize(("overrides", "wanted"), [({}, "0.1"), ({"AIRFLOW_REAL_SCHEDULER_IDLE_SLEEP": "1"}, "1")])
def test_the_local_scheduler_sleeps_a_tenth_of_a_second_when_idle(
    tmp_path: Path, overrides: dict[str, str], wanted: str
) -> None:
    # Airflow's 1 s idle sleep was most of the gap between an extract's end and its load's queueing
    # (README "Per-task cost"); AIRFLOW_REAL_SCHEDULER_IDLE_SLEEP sets it back.
    assert stack_env(tmp_path, **overrides)["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == wanted

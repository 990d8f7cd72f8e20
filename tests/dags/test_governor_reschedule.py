"""Issue 24.3 through Airflow itself: a busy source reschedules the extract task instead of holding it.

A scratch DAG built by the same factory as ``populate_report_databases`` runs with ``dag.test()``
while 20 sessions run ``SELECT SLEEP(n)`` on the source and REPORTS_SOURCE_MAX_THREADS_RUNNING is
the server's idle figure. The extract task must go UP_FOR_RESCHEDULE (``task_reschedule`` rows, the
same try number: a reschedule is not a retry) holding no ``reports_source`` pool slot while it waits,
start its last run only after every session ended, and load the source's rows exactly.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect
from tests.dags.test_reset_watermark import _rows
from tests.dags.test_reset_watermark import scratch as reset_scratch
from tests.integration.test_source_governor import BusySessions, _threads_running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600, method="thread")]
scratch = reset_scratch  # scratch admin/source/target schemas, bucket and DAG id, shared
DAY = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
COLUMNS = "id, company, amount, note, updated_at"


def _reschedules(dag_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(TaskReschedule)
                .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
                .where(TaskInstance.dag_id == dag_id)
            )
            or 0
        )


def _waiting_extract(dag_id: str) -> tuple[str, int] | None:
    """While the extract is up for reschedule: its pool and how many of the pool's slots are taken."""
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.operator == "ReportMySqlToS3Operator"
            )
        )
        if ti is None or ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
            return None
        pool = session.scalar(select(Pool).where(Pool.pool == ti.pool))
        return ti.pool, -1 if pool is None else pool.occupied_slots(session=session)


def _end_after_reschedules(dag_id: str, busy: BusySessions, count: int, seen: dict[str, Any]) -> None:
    """Keep the sessions busy until the extract rescheduled ``count`` times and was seen waiting."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        try:
            waiting = _waiting_extract(dag_id)
            if waiting is not None:
                seen["pool"], seen["occupied"] = waiting
            if "pool" in seen and _reschedules(dag_id) >= count:
                break
        except Exception:  # noqa: BLE001 - the metadata DB (SQLite) may be locked by the run a moment
            pass
        time.sleep(0.2)
    busy.stop()


def test_a_busy_source_reschedules_the_extract_until_it_is_calm(scratch: dict[str, str], monkeypatch):
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    # The scratch admin row is an incremental table; here a plain upsert of the whole query.
    execute(mysql_connect(scratch["admin"]), "UPDATE `tables` SET load_mode = 'upsert', cursor_column = NULL")
    control = mysql_connect()
    base = _threads_running(control)
    monkeypatch.setenv("REPORTS_SOURCE_MAX_THREADS_RUNNING", str(base))
    monkeypatch.setenv("REPORTS_GOVERNOR_MAX_WAIT", "300")
    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    assert bag.import_errors == {}
    dag = bag.dags[scratch["dag"]]
    sync_bag_to_db(bag, "dags-folder", None)

    # The sessions stay busy until the extract has given its slot back twice (however long the run
    # takes to reach it on a loaded machine); then they end, and the extract may run.
    busy = BusySessions(20, 600)
    seen: dict[str, Any] = {}
    peak = busy.start(control, base)
    watcher = threading.Thread(target=_end_after_reschedules, args=(dag.dag_id, busy, 2, seen), daemon=True)
    watcher.start()
    try:
        run = dag.test(logical_date=DAY)
    finally:
        busy.stop()
        busy.join()
    assert run.state == DagRunState.SUCCESS
    assert not busy.errors and len(busy.ended) == 20
    assert _reschedules(dag.dag_id) >= 2

    with create_session() as session:
        tis: list[Any] = list(
            session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
            )
        )
        extract = next(ti for ti in tis if ti.operator == "ReportMySqlToS3Operator")
        reschedules = list(session.scalars(select(TaskReschedule).where(TaskReschedule.ti_id == extract.id)))
    assert reschedules, "the extract never gave its slot back"
    # Seen while it waited: up for reschedule, and its pool (reports_source) had no slot taken.
    assert seen == {"pool": "reports_source", "occupied": 0}, seen
    assert extract.try_number == 1, "a reschedule must not use up a retry"
    assert extract.start_date > max(busy.ended), "the extract ran while the sessions were still busy"
    print(f"\nThreads_running base {base}, peak {peak}; {len(reschedules)} reschedule(s) of {extract.task_id}")
    alias, source = scratch["alias"], scratch["source"]
    expected = _rows(f"SELECT {COLUMNS} FROM {source}.orders WHERE company = 7 ORDER BY id")
    assert _rows(f"SELECT {COLUMNS} FROM {alias}.orders ORDER BY id") == expected and len(expected) == 240

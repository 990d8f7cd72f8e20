"""Issue 4 in the real Airflow stack: the ``reports_source`` pool bounds how many connections query the
source database at once.

The pool is set to 2 slots through the REST API. While the run goes, the source's ``orders`` table is
write-locked, so every ``orders`` extract that starts blocks inside the server and stays visible in
``information_schema.PROCESSLIST``: three companies want one each, and only two may ever be seen. A
thread samples the process list every 50 ms for the whole run. The lock is released as soon as the
pool shows a third source task waiting for a slot (or after at most two minutes), then the run must
finish successfully. The pool goes back to its 4 slots afterwards.

Run with ``make test-airflow`` (the stack from ``make airflow-up``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import pytest
from tests.airflow_real.conftest import source_table_locked
from tests.airflow_real.test_real_airflow import (
    API,
    COMPANIES,
    DAG_ID,
    RUN_TIMEOUT,
    Api,
    iso,
    log_tails,
    lookback_days,
    source_db,
    wait_for,
)
from tests.conftest import mysql_connect

pytestmark = pytest.mark.airflow_real

POOL = "reports_source"
SLOTS = 2
RESTORED_SLOTS = 4
# A date no other test runs, so the orders queries of this run are recognisable by their bounds.
RUN_DATE = dt.datetime(2026, 10, 7, tzinfo=dt.UTC)
LOCK_AT_MOST_SECONDS = 120


class _ProcessListSampler(threading.Thread):
    """Counts, every 50 ms, the source sessions running this run's ``orders`` extract."""

    def __init__(self, markers: set[str]) -> None:
        super().__init__(name="processlist-sampler", daemon=True)
        self.markers = markers
        self.stop = threading.Event()
        self.samples: list[int] = []
        self.errors: list[str] = []

    def run(self) -> None:
        conn = mysql_connect()
        conn.autocommit(True)
        cursor = conn.cursor()
        try:
            while not self.stop.is_set():
                try:
                    cursor.execute(
                        "SELECT INFO FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID() "
                        "AND INFO LIKE %s",
                        (source_db(), "%FROM orders WHERE company%"),
                    )
                    infos = [str(r[0]) for r in cursor.fetchall()]
                    self.samples.append(sum(1 for info in infos if any(m in info for m in self.markers)))
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self.stop.wait(0.05)
        finally:
            conn.close()


def _set_slots(api: Api, slots: int) -> dict[str, Any]:
    pool = api.request(
        "PATCH",
        f"/pools/{POOL}",
        params={"update_mask": ["slots"]},
        json={"pool": POOL, "slots": slots, "include_deferred": False},
    )
    assert pool["slots"] == slots
    return pool


def _no_active_run(api: Api) -> bool:
    return not api.runs(state=["running", "queued"])


@pytest.fixture
def api() -> Api:
    wait_for(f"the Airflow API at {API} (start it with make airflow-up)", _reachable, timeout=60)
    return Api(API)


def _reachable() -> bool:
    import requests

    try:
        return requests.get(f"{API}/api/v2/monitor/health", timeout=5).ok
    except requests.RequestException:
        return False


def _run_with_orders_locked(api: Api, sampler: _ProcessListSampler) -> tuple[str, dict[str, Any]]:
    """Trigger the run with ``orders`` locked; unlock once the pool is saturated. Returns run id and pool."""
    # max_active_runs=1: another test's run would hold the pool (and block on the lock) instead.
    wait_for("no other run of the DAG to be active", lambda: _no_active_run(api), RUN_TIMEOUT)
    with source_table_locked("orders"):
        sampler.start()
        run_id = f"pool_bound__{uuid.uuid4().hex[:8]}"
        api.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": iso(RUN_DATE)})

        def saturated() -> dict[str, Any] | None:
            pool = api.get(f"/pools/{POOL}")
            waiting = pool["scheduled_slots"] + pool["queued_slots"]
            return pool if sampler.samples and sampler.samples[-1] == SLOTS and waiting >= 1 else None

        # Two orders extracts blocked on the lock hold both slots; the third company's waits for one.
        pool = wait_for("two blocked orders extracts and a source task waiting", saturated, LOCK_AT_MOST_SECONDS, 0.2)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # more samples while the pool is saturated
            time.sleep(0.05)
        return run_id, pool


def test_the_source_pool_bounds_concurrent_source_queries(api: Api) -> None:
    # The orders query binds "created_at >= <logical date - look-back>": one marker per company.
    markers = {f"'{(RUN_DATE.date() - dt.timedelta(days=lookback_days(a))).isoformat()}'" for a in COMPANIES}
    api.delete_runs(api.runs(logical_date_gte=iso(RUN_DATE), logical_date_lte=iso(RUN_DATE)))
    api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    sampler = _ProcessListSampler(markers)
    try:
        _set_slots(api, SLOTS)
        run_id, pool_at_peak = _run_with_orders_locked(api, sampler)
        run = api.wait_run(run_id)
    finally:
        sampler.stop.set()
        if sampler.is_alive():
            sampler.join(timeout=10)
        _set_slots(api, RESTORED_SLOTS)

    assert run["state"] == "success"
    assert sampler.errors == []
    assert sampler.samples, "the process list was never sampled"
    peak = max(sampler.samples)
    assert peak <= SLOTS, f"{peak} concurrent source queries with a {SLOTS}-slot pool\n{log_tails()}"
    assert peak >= 1
    assert pool_at_peak["running_slots"] <= SLOTS
    print(
        f"\n{len(sampler.samples)} process-list samples, peak {peak} concurrent orders extracts "
        f"(pool {SLOTS} slots; {pool_at_peak['scheduled_slots']} task(s) waiting for a slot at the peak)"
    )

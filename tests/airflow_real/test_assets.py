"""Issue 4 in the real Airflow stack: a load's Asset event reaches ``example_report_consumer``.

A run limited to acme's ``users`` is triggered through the REST API. Its load must record an Asset
event for ``reports.acme.users`` (with what was loaded in its ``extra``), and the scheduler must then
start the example consumer DAG, whose task reads the matching ``report_loads`` row from the target.
The consumer is unpaused for the test (as a user would) and paused again afterwards.

Run with ``make test-airflow`` (the stack from ``make airflow-up``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from tests.airflow_real.test_real_airflow import API, DAG_ID, RUN_TIMEOUT, Api, iso, source_db, wait_for
from tests.conftest import mysql_connect

from report_pipeline.airflow.factory import table_asset

pytestmark = pytest.mark.airflow_real

CONSUMER = "example_report_consumer"
RUN_DATE = dt.datetime(2026, 10, 8, tzinfo=dt.UTC)  # a date no other test runs


def _reachable() -> bool:
    import requests

    try:
        return requests.get(f"{API}/api/v2/monitor/health", timeout=5).ok
    except requests.RequestException:
        return False


@pytest.fixture
def api() -> Api:
    wait_for(f"the Airflow API at {API} (start it with make airflow-up)", _reachable, timeout=60)
    return Api(API)


def _acme_users() -> int:
    conn = mysql_connect()
    cursor = conn.cursor()
    cursor.execute(f"SELECT COUNT(*) FROM `{source_db()}`.users WHERE company = 1")
    count = int(cursor.fetchone()[0])
    conn.close()
    return count


def _consumer_run_of(api: Api, event_id: int) -> dict[str, Any] | None:
    """The consumer run that consumed the event, once it finished."""
    for run in api.get(f"/dags/{CONSUMER}/dagRuns", limit=100, order_by="-run_after")["dag_runs"]:
        if run["run_type"] != "asset_triggered":
            continue
        events = api.get(f"/dags/{CONSUMER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")["asset_events"]
        if any(e["id"] == event_id for e in events):
            return run if run["state"] in ("success", "failed") else None
    return None


def test_a_load_emits_the_asset_event_and_the_example_consumer_runs_on_it(api: Api) -> None:
    asset = table_asset("acme", "users")
    assert api.get(f"/dags/{CONSUMER}")["timetable_summary"] == "Asset"
    api.delete_runs(api.runs(logical_date_gte=iso(RUN_DATE), logical_date_lte=iso(RUN_DATE)))
    api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    was_paused = api.get(f"/dags/{CONSUMER}")["is_paused"]
    api.request("PATCH", f"/dags/{CONSUMER}", json={"is_paused": False})
    try:
        run_id = f"asset_event__{uuid.uuid4().hex[:8]}"
        api.request(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            json={
                "dag_run_id": run_id,
                "logical_date": iso(RUN_DATE),
                "conf": {"companies": ["acme"], "tables": ["users"]},
            },
        )
        api.wait_run(run_id)

        assets = api.get("/assets", name_pattern=asset.name)["assets"]
        asset_id = next(a["id"] for a in assets if a["name"] == asset.name)
        events = api.get("/assets/events", asset_id=asset_id, source_run_id=run_id)["asset_events"]
        assert len(events) == 1, events
        event = events[0]
        assert event["source_dag_id"] == DAG_ID and event["source_task_id"] == "company_acme.users__s3_to_mysql"
        expected = _acme_users()
        assert event["extra"]["rows"] == expected and event["extra"]["schema"] == "acme"
        assert event["extra"]["success_key"].endswith("/users/2026-10-08T000000Z/_SUCCESS")
        # Only acme.users was loaded, so no other table announced new data.
        others = api.get("/assets/events", source_run_id=run_id, limit=100)["asset_events"]
        assert [e["asset_id"] for e in others] == [asset_id]

        consumer_run = wait_for(
            f"{CONSUMER} to run on event {event['id']}", lambda: _consumer_run_of(api, event["id"]), RUN_TIMEOUT
        )
        assert consumer_run["state"] == "success", consumer_run
        xcom = api.get(
            f"/dags/{CONSUMER}/dagRuns/{consumer_run['dag_run_id']}/taskInstances/read_refreshed_table/"
            "xcomEntries/return_value",
            deserialize="true",
        )
        seen = xcom["value"]
        mine = [s for s in seen if s["extra"].get("run_id") == run_id]
        assert len(mine) == 1, seen
        assert mine[0]["report_loads"]["rows_loaded"] == expected
        assert mine[0]["report_loads"]["run_id"] == run_id
        assert mine[0]["report_loads"]["table_name"] == "users"
    finally:
        api.request("PATCH", f"/dags/{CONSUMER}", json={"is_paused": was_paused})

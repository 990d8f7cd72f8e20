"""The "Report freshness" page: a FastAPI app the Airflow API server serves (``plugins/report_freshness.py``).

It reads ``report_loads`` through ``report_pipeline.ledger`` over the ``reports_target_db`` connection,
the plan (companies x tables) from the same snapshot the DAG parses, and, from Airflow's metadata
DB, each load task's duration and the last failure of a table's tasks since its last successful
load. Only users who may read the DAG see the page (Airflow's own auth, the UI's session cookie).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from report_pipeline import freshness
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.shards import dag_ids

log = logging.getLogger(__name__)
URL_PREFIX = "/report-freshness"
DAG_ID = "populate_report_databases"


def _access() -> Any:
    """Airflow's check "may read the DAG" as a FastAPI dependency (no-op outside an API server).

    With REPORTS_DAG_SHARDS the companies are scheduled in several DAGs: the page shows them all, so
    it asks for read access to every one of them.
    """
    try:
        from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
    except ImportError:  # pragma: no cover - only without Airflow's API server package
        return Depends(lambda: None)

    def check(request: Request, user: Any = Depends(get_user)) -> None:  # noqa: B008 - FastAPI's idiom
        for dag_id in dag_ids(Settings.from_env().dag_shards):
            requires_access_dag("GET", param_dag_id=dag_id)(request, user)

    return Depends(check)


app = FastAPI(title="Report freshness", docs_url=None, redoc_url=None, openapi_url=None)


def _task_facts(rows: Sequence[freshness.TableFreshness], base_url: str, dags: Sequence[str] = (DAG_ID,)) -> None:
    """Fill each row's load durations and last failure from Airflow's task instances (best effort).

    ``dags``: the DAG ids the companies are scheduled in (one per shard with REPORTS_DAG_SHARDS).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    by_task = {f"company_{r.company}.{r.table}__s3_to_mysql": r for r in rows}
    prefixes = {f"company_{r.company}.{r.table}__": r for r in rows}
    run_ids = {load.run_id for r in rows for load in r.loads}
    with create_session() as session:
        if run_ids and by_task:
            for task_id, run_id, start, end in session.execute(
                select(TaskInstance.task_id, TaskInstance.run_id, TaskInstance.start_date, TaskInstance.end_date).where(
                    TaskInstance.dag_id.in_(list(dags)),
                    TaskInstance.task_id.in_(list(by_task)),
                    TaskInstance.run_id.in_(list(run_ids)),
                )
            ):
                if start is not None and end is not None:
                    by_task[task_id].durations[run_id] = (end - start).total_seconds()
        failed = session.execute(
            select(
                TaskInstance.dag_id,
                TaskInstance.task_id,
                TaskInstance.run_id,
                TaskInstance.end_date,
                TaskInstance.try_number,
                TaskInstance.map_index,
            )
            .where(TaskInstance.dag_id.in_(list(dags)), TaskInstance.state == TaskInstanceState.FAILED)
            .order_by(TaskInstance.end_date.desc())
            .limit(2000)
        ).all()
    for dag_id, task_id, run_id, end, try_number, map_index in failed:
        # A table's task ids are "<prefix><step>", the step without "__": one look-up, not a scan of
        # every row per failure (20,000 rows x 2,000 failures at fleet size).
        row = prefixes.get(task_id[: task_id.rfind("__") + 2]) if "__" in task_id else None
        if row is None or row.failure is not None:
            continue
        last = row.last
        if last is not None and last.finished_at is not None and end is not None:
            if end.astimezone(dt.UTC).replace(tzinfo=None) <= last.finished_at:
                continue  # a failure a later successful load made good
        url = freshness.log_url(base_url, dag_id, run_id, task_id, map_index, try_number)
        row.failure = freshness.Failure(task_id, run_id, end, try_number, url)


def build_rows(company: str | None) -> tuple[list[freshness.TableFreshness], list[str], Settings, dt.datetime]:
    """The page's rows (one company if given), every active company's alias, the settings, and now."""
    from report_pipeline.airflow.factory import current_plan

    settings = Settings.from_env()
    plan, _ = current_plan(settings)
    now = dt.datetime.now(dt.UTC)
    with opened(HookConnections().target()) as conn:
        cursor = conn.cursor()
        rows = freshness.collect(plan, cursor, schedule=settings.schedule, now=now, company=company or None)
        conn.rollback()
    try:
        from airflow.configuration import conf

        _task_facts(rows, conf.get("api", "base_url", fallback="").rstrip("/"), dag_ids(settings.dag_shards))
    except Exception as exc:  # noqa: BLE001 - the ledger's figures are the page; Airflow's are extras
        log.warning("report freshness: task durations and failures not read: %s: %s", type(exc).__name__, exc)
    return rows, sorted(c.company.alias for c in plan.companies), settings, now


@app.get("/", response_class=HTMLResponse, dependencies=[_access()])
def page(request: Request, company: str | None = Query(default=None)) -> HTMLResponse:
    """The page, filtered to one company with ``?company=alias``."""
    rows, companies, settings, now = build_rows(company)
    base_path = str(request.url.path)
    return HTMLResponse(
        freshness.render_page(
            rows, companies, selected=company, schedule=settings.schedule, now=now, base_path=base_path
        )
    )


@app.get("/data", dependencies=[_access()])
def data(company: str | None = Query(default=None)) -> JSONResponse:
    """The page's rows as JSON, for scripts and monitoring."""
    rows, _, _, _ = build_rows(company)
    return JSONResponse(
        [
            {
                "company": r.company,
                "table": r.table,
                "status": r.status,
                "age_seconds": r.age_seconds,
                "last_finished_at": r.last.finished_at.isoformat() if r.last and r.last.finished_at else None,
                "last_logical_date": r.last.logical_date.isoformat() if r.last else None,
                "rows": r.last.rows_loaded if r.last else None,
                "loads": [
                    {"run_id": x.run_id, "rows": x.rows_loaded, "seconds": r.durations.get(x.run_id)} for x in r.loads
                ],
                "last_failure": None
                if r.failure is None
                else {"task_id": r.failure.task_id, "run_id": r.failure.run_id, "log_url": r.failure.log_url},
            }
            for r in rows
        ]
    )

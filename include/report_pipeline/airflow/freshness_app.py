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

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse

from report_pipeline import asof, freshness
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.shards import dag_ids
from report_pipeline.taskids import group_id, parse_task_id, task_id

log = logging.getLogger(__name__)
URL_PREFIX = "/report-freshness"
DAG_ID = "populate_report_databases"


def _access() -> Any:
    """Airflow's check "may read the DAG" as a FastAPI dependency, failing closed.

    With REPORTS_DAG_SHARDS the companies are scheduled in several DAGs: the page shows them all, so
    it asks for read access to every one of them. When the check cannot run (Airflow's API security
    module missing or failing), every request is refused: the page never shows data unchecked.
    """
    try:
        from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
    except ImportError as exc:
        reason = f"Airflow's access check is not available ({type(exc).__name__}: {exc})"
        log.error("report freshness: %s; every request is refused", reason)

        def refuse() -> None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the access check cannot run: refused")

        return Depends(refuse)

    def check(request: Request, user: Any = Depends(get_user)) -> None:  # noqa: B008 - FastAPI's idiom
        try:
            dags = dag_ids(Settings.from_env().dag_shards)
            if not dags:
                raise RuntimeError("no DAG id to check read access on")
            for dag_id in dags:
                requires_access_dag("GET", param_dag_id=dag_id)(request, user)
        except HTTPException:
            raise
        except Exception as exc:
            log.error("report freshness: the access check failed (%s: %s); refused", type(exc).__name__, exc)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the access check cannot run: refused") from exc

    return Depends(check)


app = FastAPI(title="Report freshness", docs_url=None, redoc_url=None, openapi_url=None)


def _task_facts(rows: Sequence[freshness.TableFreshness], base_url: str, dags: Sequence[str] = (DAG_ID,)) -> None:
    """Fill each row's load durations and last failure from Airflow's task instances (best effort).

    ``dags``: the DAG ids the companies are scheduled in (one per shard with REPORTS_DAG_SHARDS).
    """
    _durations(rows, dags)
    _failures(rows, base_url, dags)


def _durations(rows: Sequence[freshness.TableFreshness], dags: Sequence[str]) -> None:
    """Each row's load-task seconds per run of its loads (the chart's line): for the rows shown only."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    by_task = {task_id(r.company, r.table, "s3_to_mysql"): r for r in rows}
    run_ids = {load.run_id for r in rows for load in r.loads}
    if not run_ids or not by_task:
        return
    with create_session() as session:
        for load_id, run_id, start, end in session.execute(
            select(TaskInstance.task_id, TaskInstance.run_id, TaskInstance.start_date, TaskInstance.end_date).where(
                TaskInstance.dag_id.in_(list(dags)),
                TaskInstance.task_id.in_(list(by_task)),
                TaskInstance.run_id.in_(list(run_ids)),
            )
        ):
            if start is not None and end is not None:
                by_task[load_id].durations[run_id] = (end - start).total_seconds()


def _failures(rows: Sequence[freshness.TableFreshness], base_url: str, dags: Sequence[str]) -> None:
    """Each row's last failed task since its last successful load: for every row, as the page orders and
    counts by it (one query for the whole fleet)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    by_table = {(group_id(r.company), r.table): r for r in rows}
    with create_session() as session:
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
    for dag_id, failed_id, run_id, end, try_number, map_index in failed:
        ref = parse_task_id(failed_id)
        row = by_table.get((ref.group, ref.table)) if ref.step else None
        if row is None or row.failure is not None:
            continue
        last = row.last
        if last is not None and last.finished_at is not None and end is not None:
            if end.astimezone(dt.UTC).replace(tzinfo=None) <= last.finished_at:
                continue  # a failure a later successful load made good
        url = freshness.log_url(base_url, dag_id, run_id, failed_id, map_index, try_number)
        row.failure = freshness.Failure(failed_id, run_id, end, try_number, url)


def _base_url() -> str:
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="")).rstrip("/")


def build_rows(company: str | None) -> tuple[list[freshness.TableFreshness], list[str], Settings, dt.datetime]:
    """Every row with its history (one company if given), every active company's alias, the settings, now:
    the JSON's data."""
    from report_pipeline.airflow.factory import current_plan

    settings = Settings.from_env()
    plan, _ = current_plan(settings)
    now = dt.datetime.now(dt.UTC)
    with opened(HookConnections().target()) as conn:
        cursor = conn.cursor()
        rows = freshness.collect(plan, cursor, schedule=settings.schedule, now=now, company=company or None)
        conn.rollback()
    try:
        _task_facts(rows, _base_url(), dag_ids(settings.dag_shards))
    except Exception as exc:  # noqa: BLE001 - the ledger's figures are the page; Airflow's are extras
        log.warning("report freshness: task durations and failures not read: %s: %s", type(exc).__name__, exc)
    return rows, sorted(c.company.alias for c in plan.companies), settings, now


def build_page(
    company: str | None, status_filter: str | None, number: int, per_page: int
) -> tuple[freshness.Page, list[str], Settings, dt.datetime]:
    """One page of rows worst first (``freshness.page_of``), every active company's alias, the settings, now.

    Every row of the fleet is judged, ordered and counted from its newest load and Airflow's failures;
    only the page's rows read their chart's history and task durations (issue 21: 1,000 x 20 in under 2 s).
    """
    from report_pipeline.airflow.factory import current_plan

    settings = Settings.from_env()
    plan, _ = current_plan(settings)
    now = dt.datetime.now(dt.UTC)
    dags = dag_ids(settings.dag_shards)
    with opened(HookConnections().target()) as conn:
        cursor = conn.cursor()
        rows = freshness.survey(plan, cursor, schedule=settings.schedule, now=now, company=company or None)
        try:
            _failures(rows, _base_url(), dags)
        except Exception as exc:  # noqa: BLE001 - the ledger's figures are the page; Airflow's are extras
            log.warning("report freshness: task failures not read: %s: %s", type(exc).__name__, exc)
        shown = freshness.page_of(rows, status=status_filter, page=number, per_page=per_page)
        freshness.add_history(shown.rows, cursor)
        conn.rollback()
    try:
        _durations(shown.rows, dags)
    except Exception as exc:  # noqa: BLE001 - as above
        log.warning("report freshness: task durations not read: %s: %s", type(exc).__name__, exc)
    return shown, sorted(c.company.alias for c in plan.companies), settings, now


# "" is the form's "every status"; anything else unknown is a 422 (FastAPI's validation of the pattern).
STATUS_PATTERN = f"^({'|'.join(freshness.FILTERS)})?$"


@app.get("/", response_class=HTMLResponse, dependencies=[_access()])
def page(
    request: Request,
    company: str | None = Query(default=None),
    status_filter: str | None = Query(default=None, alias="status", pattern=STATUS_PATTERN),
    number: int = Query(default=1, alias="page", ge=1),
    per_page: int = Query(default=freshness.PER_PAGE, ge=1, le=freshness.MAX_PER_PAGE),
) -> HTMLResponse:
    """The page: every company (or ``?company=alias``) worst first, ``per_page`` rows a page, filtered by
    ``?status=failed|red|amber|green``."""
    shown, companies, settings, now = build_page(company, status_filter, number, per_page)
    return HTMLResponse(
        freshness.render_page(
            shown.rows,
            companies,
            selected=company,
            schedule=settings.schedule,
            now=now,
            base_path=str(request.url.path),
            status=status_filter or None,
            page=shown,
        )
    )


@app.get("/data", dependencies=[_access()])
def data(
    company: str | None = Query(default=None),
    status_filter: str | None = Query(default=None, alias="status", pattern=STATUS_PATTERN),
) -> JSONResponse:
    """The page's rows as JSON, for scripts and monitoring: every table (one company with ``?company=``,
    one status with ``?status=``), in the plan's order, not paged."""
    rows, _, _, _ = build_rows(company)
    # The company rows (table '*') are not list entries of their own: each table's entry carries its company's.
    companies = {r.company: r.as_of for r in rows if r.table == asof.COMPANY_ROW}
    return JSONResponse(
        [
            {
                "company": r.company,
                "table": r.table,
                "status": r.status,
                "age_seconds": r.age_seconds,
                "data_as_of": _iso(r.as_of.data_as_of if r.as_of else None),
                "company_data_as_of": _iso(getattr(companies.get(r.company), "data_as_of", None)),
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
            if r.table != asof.COMPANY_ROW and freshness.matches(r, status_filter)
        ]
    )


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat() + "Z"

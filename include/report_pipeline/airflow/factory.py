"""The DAG factory: settings -> plan (from the parse-time snapshot) -> DAG with a group per company.

Load config -> validate -> build -> register, as dag-factory does, except that a bad admin row is
never skipped silently: it becomes a task that fails with the row's problem, and the rest build.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, Asset, Param, TaskGroup, get_parsing_context

from report_pipeline.admin import read_admin_rows
from report_pipeline.airflow.operators import (
    ChunkPlanOperator,
    ConfigErrorOperator,
    MySqlToS3Operator,
    S3ToMySqlOperator,
)
from report_pipeline.airflow.params import skip_unless_selected
from report_pipeline.airflow.retry import retry_arguments
from report_pipeline.config import AdminRows, CompanyPlan, Plan
from report_pipeline.modes import LOAD_MODES
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.snapshot import PlanSource, expire_snapshot, load_plan

log = logging.getLogger(__name__)

DAG_ID = "populate_report_databases"
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OWNER = "report-pipeline"


def table_asset(alias: str, table: str) -> Asset:
    """The Asset a successful load of one company's table updates, e.g. ``reports.acme.users``."""
    # The scheme makes the first Asset of a process discover every provider's URI handlers (which
    # imports the Amazon S3 hook and boto3, ~0.16 s CPU of each parse). An "x-" scheme would skip that,
    # but it changes the Assets' identity: Airflow keeps a deployment's existing reports:// Assets
    # active under these names, and tasks with the new ones then fail as "inactive assets".
    return Asset(name=f"reports.{alias}.{table}", uri=f"reports://{alias}/{table}", group="report-pipeline")


def group_id(alias: str) -> str:
    """The task group id of a company."""
    return f"company_{alias}"


def _fetch_admin_rows(settings: Settings) -> AdminRows:
    # Imported only when the snapshot is refreshed: a parse within its TTL needs no MySQL hook.
    from report_pipeline.airflow.connections import HookConnections

    with opened(HookConnections(settings.admin_timeout_seconds).admin()) as conn:
        return read_admin_rows(conn)


def plan_has_task(plan: Plan, task_id: str) -> bool:
    """Whether the DAG built from ``plan`` has a task ``task_id`` (checked without building the DAG)."""
    group, _, task = task_id.partition(".")
    table = task.split("__", 1)[0]
    for company_plan in plan.companies:
        if group_id(company_plan.company.alias) == group:
            return any(t.name == table for t in company_plan.tables) or any(
                b.name == table for b in company_plan.broken
            )
    return any(b.key == group for b in plan.broken_companies)


def current_plan(settings: Settings) -> tuple[Plan, PlanSource]:
    """The plan for this parse; a worker parsing to run one task prefers any snapshot it has.

    Only when that snapshot lacks the worker's task (a worker whose disk missed a refresh, after a
    company was onboarded) is the admin DB read once more, instead of failing with "task not found".
    """
    task_id = get_parsing_context().task_id
    fetch = lambda: _fetch_admin_rows(settings)  # noqa: E731 - passed twice below
    plan, source = load_plan(settings, fetch, prefer_snapshot=task_id is not None)
    if task_id is not None and source.origin == "snapshot" and not plan_has_task(plan, task_id):
        log.info("the snapshot has no task %s; refreshing it from the admin database", task_id)
        expire_snapshot(settings.snapshot_path)
        plan, source = load_plan(settings, fetch)
    log.info(
        "report plan from %s (age %.0f s, %d admin queries): %d companies, %d problems",
        source.origin,
        source.age_seconds,
        source.admin_queries,
        len(plan.companies),
        len(plan.problems),
    )
    return plan, source


def _params(plan: Plan) -> dict[str, Param]:
    aliases = sorted(c.company.alias for c in plan.companies)
    tables = sorted({t.name for c in plan.companies for t in c.tables})
    return {
        "companies": Param(
            [],
            type="array",
            items={"type": "string", "enum": aliases} if aliases else {"type": "string"},
            title="Companies",
            description="Run only these companies (empty: all).",
        ),
        "tables": Param(
            [],
            type="array",
            items={"type": "string", "enum": tables} if tables else {"type": "string"},
            title="Tables",
            description="Run only these tables (empty: all).",
        ),
        "load_mode": Param(
            "default",
            type="string",
            enum=["default", *LOAD_MODES],
            title="Load mode",
            description="Override every table's load_mode for this run.",
        ),
        "lookback_days": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Look-back days",
            description="Override each company's 'date Y-M-D' look-back for this run.",
        ),
    }


def _skip_unless_selected(alias: str | None, table: str | None) -> Any:
    """A pre-execute hook: a config-error task of a company or table left out of this run is skipped.

    Without it, a run limited to one company would still fail on another company's bad row.
    """
    return lambda context: skip_unless_selected(context, alias, table)


def _company_group(company_plan: CompanyPlan, settings: Settings) -> None:
    company = company_plan.company
    retry = retry_arguments()
    with TaskGroup(group_id(company.alias), tooltip=f"company_id={company.company_id} alias={company.alias}"):
        for spec in company_plan.tables:
            # owner here rather than in the DAG's default_args: every operator deep-copies default_args
            # once per __init__ level, which cost ~10 % of a 200 x 10 parse.
            common: dict[str, Any] = {
                "company": company,
                "spec": spec,
                "settings": settings,
                "owner": OWNER,
                **retry,
            }
            extract: Any
            if spec.chunk_column is not None:
                chunks = ChunkPlanOperator(task_id=f"{spec.name}__plan_chunks", pool=settings.source_pool, **common)
                extract = MySqlToS3Operator.partial(
                    task_id=f"{spec.name}__mysql_to_s3",
                    pool=settings.source_pool,
                    map_index_template="{{ chunk_label }}",
                    **common,
                ).expand(chunk=chunks.output)
            else:
                extract = MySqlToS3Operator(task_id=f"{spec.name}__mysql_to_s3", pool=settings.source_pool, **common)
            S3ToMySqlOperator(
                task_id=f"{spec.name}__s3_to_mysql",
                extracted=extract.output,
                pool=settings.target_pool,
                outlets=[table_asset(company.alias, spec.name)],
                **common,
            )
        for broken in company_plan.broken:
            ConfigErrorOperator(
                task_id=f"{broken.name}__invalid_config",
                owner=OWNER,
                message=str(broken.problem),
                pre_execute=_skip_unless_selected(company.alias, broken.name),
            )


def build_dag(plan: Plan, settings: Settings, dag_id: str = DAG_ID, only_group: str | None = None) -> DAG:
    """The DAG for a plan: one task group per active company, in admin row order.

    ``only_group`` builds just that company's group: what a worker needs to run one of its tasks
    (Airflow's parsing-context optimisation), instead of every company's operators.
    """
    with DAG(
        dag_id=dag_id,
        schedule=settings.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["report-pipeline"],
        doc_md=(
            "Copies each active company's report tables: source MySQL -> S3 (CSV) -> target MySQL. "
            # No build time here: it changes at every snapshot refresh, and any change to the
            # serialized DAG makes Airflow store a new DAG version (every TTL, with nothing changed).
            f"{len(plan.companies)} companies, {len(plan.problems)} config problems."
        ),
    ) as dag:
        for company_plan in plan.companies:
            if only_group in (None, group_id(company_plan.company.alias)):
                _company_group(company_plan, settings)
        for broken in plan.broken_companies:
            if only_group not in (None, broken.key):
                continue
            with TaskGroup(broken.key):
                ConfigErrorOperator(
                    task_id="invalid_company",
                    owner=OWNER,
                    message=str(broken.problem),
                    pre_execute=_skip_unless_selected(None, None),
                )
    # Params are set only now, after the tasks: every operator created while the DAG has params
    # deep-copies them (three times, once per __init__ level), which with a 200-alias enum made parsing
    # 200 companies x 10 tables take seconds. Tasks need no copy: at run time Airflow merges the DAG's
    # params with the run's conf (process_params), and the serialized DAG carries them once.
    dag.params = _params(plan)  # type: ignore[assignment]  # the attrs converter makes it a ParamsDict
    return dag


def dag_from_admin(settings: Settings | None = None) -> DAG:
    """What ``dags/populate_report_databases.py`` calls: settings from env, plan from the snapshot."""
    settings = settings or Settings.from_env()
    plan, _ = current_plan(settings)
    context = get_parsing_context()
    only_group = None
    if context.dag_id == DAG_ID and context.task_id and "." in context.task_id:
        only_group = context.task_id.split(".", 1)[0]
    return build_dag(plan, settings, only_group=only_group)

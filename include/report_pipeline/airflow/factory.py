"""The DAG factory: settings -> plan (from the parse-time snapshot) -> DAG with a group per company.

Load config -> validate -> build -> register, as dag-factory does, except that a bad admin row is
never skipped silently: it becomes a task that fails with the row's problem, and the rest build.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from airflow.sdk import DAG, Asset, TaskGroup, get_parsing_context

from report_pipeline.airflow import alerts
from report_pipeline.airflow.operators import (
    ConfigErrorOperator,
    ReportChunkPlanOperator,
    ReportMySqlToS3Operator,
    ReportReconcileOperator,
    ReportS3ToMySqlOperator,
)
from report_pipeline.airflow.params import form_params, run_options, skip_unless_selected
from report_pipeline.airflow.publisher import ReportPublishOperator
from report_pipeline.airflow.retry import retry_arguments
from report_pipeline.config import AdminRows, CompanyPlan, Plan, TableSpec
from report_pipeline.errors import ConfigError
from report_pipeline.publication import joins
from report_pipeline.settings import Settings
from report_pipeline.shards import DAG_ID, check_shard, missing_shard_files, shard_dag_id, shard_of, shard_plan
from report_pipeline.snapshot import PlanSource, expire_snapshot, load_plan
from report_pipeline.taskids import INVALID_COMPANY, PUBLISH_TASK_ID, group_id, parse_task_id, table_task

log = logging.getLogger(__name__)

START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def table_asset(alias: str, table: str) -> Asset:
    """The Asset a successful load of one company's table updates, e.g. ``reports.acme.users``."""
    return Asset(name=f"reports.{alias}.{table}", uri=f"reports://{alias}/{table}", group="report-pipeline")


def _load_outlet(alias: str, table: str) -> Asset:
    """``table_asset(alias, table)``, built without Airflow's URI normalisation.

    The first ``Asset()`` with a scheme Airflow does not know asks every provider for a normaliser,
    which imports the Amazon provider's S3 hook and boto3 (0.1-0.2 s of each parse, for a scheme no
    provider handles), and each one re-parses its URI. Ours is normal already: alias and table are
    checked identifiers (lower-case scheme, no user info, query, fragment or trailing slash).
    tests/dags/test_shard_dags.py checks that the result equals ``table_asset`` field by field.
    """
    values = {
        "name": f"reports.{alias}.{table}",
        "uri": f"reports://{alias}/{table}",
        "group": "report-pipeline",
        "extra": {},
        "watchers": [],
    }
    asset = Asset.__new__(Asset)
    for field in attrs.fields(Asset):
        if field.name in values:
            value = values[field.name]
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]  # attrs' typing of Factory
            value = field.default.factory(asset) if field.default.takes_self else field.default.factory()
        else:
            value = field.default
        object.__setattr__(asset, field.name, value)
    return asset


def _fetch_admin_rows(settings: Settings) -> AdminRows:
    # Imported here: only a parse that refreshes the snapshot (once per TTL) needs the MySQL hook.
    from report_pipeline.admin import read_admin_rows
    from report_pipeline.airflow.connections import HookConnections
    from report_pipeline.session import opened

    with opened(HookConnections(settings).admin()) as conn:
        return read_admin_rows(conn)


def plan_has_task(plan: Plan, task_id: str) -> bool:
    """Whether the DAG built from ``plan`` has a task ``task_id`` (checked without building the DAG)."""
    ref = parse_task_id(task_id)
    group, table = ref.group, ref.table
    for company_plan in plan.companies:
        if group_id(company_plan.company.alias) == group:
            if ref.name == PUBLISH_TASK_ID:
                return bool(publishing_tables(company_plan))
            return any(t.name == table for t in company_plan.tables) or any(
                b.name == table for b in company_plan.broken
            )
    return any(b.key == group for b in plan.broken_companies)


def current_plan(settings: Settings, keep: Callable[[str], bool] | None = None) -> tuple[Plan, PlanSource]:
    """The plan for this parse, under the snapshot's TTL whoever parses: DAG processor or worker.

    A worker parsing to run one task follows the TTL like the DAG processor (issue 21), so an admin edit
    reaches every worker within REPORTS_SNAPSHOT_TTL; an older snapshot serves only while the admin DB
    cannot be read, with a warning. When a snapshot within its TTL lacks the worker's task (a company
    onboarded since), the admin DB is read once more instead of failing with "task not found".
    ``keep`` (a shard's test on a company alias or broken row key) leaves the other companies out of the
    plan read from the snapshot, so a shard file does not rebuild every company's specs.
    """
    task_id = get_parsing_context().task_id
    fetch = lambda: _fetch_admin_rows(settings)  # noqa: E731 - passed twice below
    plan, source = load_plan(settings, fetch, keep=keep)
    if task_id is not None and source.origin == "snapshot" and not plan_has_task(plan, task_id):
        log.info("the snapshot has no task %s; refreshing it from the admin database", task_id)
        expire_snapshot(settings.snapshot_path)
        plan, source = load_plan(settings, fetch, keep=keep)
    log.info(
        "report plan from %s (age %.0f s, %d admin queries): %d companies, %d problems",
        source.origin,
        source.age_seconds,
        source.admin_queries,
        len(plan.companies),
        len(plan.problems),
    )
    return plan, source


def _skip_unless_selected(alias: str | None, table: str | None) -> Any:
    """A pre-execute hook: a config-error task of a company or table left out of this run is skipped.

    Without it, a run limited to one company would still fail on another company's bad row.
    """
    return lambda context: skip_unless_selected(run_options(context), alias, table)


def _feed(load: Any, extract: Any) -> None:
    """``load.extracted = extract.output`` and ``extract >> load``: the load reads what the extract returned.

    What ``extracted=extract.output`` at construction would do, without Airflow's generic path for it
    (an XComArg in a template field -> ``set_upstream``), which checks both tasks are in one DAG by
    hashing the DAG, and a DAG's hash covers the ids of all its tasks: each pair cost time in proportion
    to the tasks built so far, quadratic in the DAG's size (15 % of a 6,000-task shard's parse).
    The XComArg is the same object, rendered by the same template field at run time.
    """
    object.__setattr__(load, "extracted", extract.output)
    extract.downstream_task_ids.add(load.node_id)
    load.upstream_task_ids.add(extract.node_id)


def publishing_tables(company_plan: CompanyPlan) -> tuple[TableSpec, ...]:
    """The tables whose loads the company's publish task makes live together (none unless it publishes together)."""
    if not company_plan.company.publish_together:
        return ()
    return tuple(t for t in company_plan.tables if joins(t.load_mode))


def _company_group(company_plan: CompanyPlan, settings: Settings) -> None:
    company = company_plan.company
    retry = retry_arguments(settings)
    company_tables = tuple(sorted({t.target.table for t in company_plan.tables}))
    joining = publishing_tables(company_plan)
    loads: list[Any] = []
    with TaskGroup(group_id(company.alias), tooltip=f"company_id={company.company_id} alias={company.alias}"):
        for spec in company_plan.tables:
            common: dict[str, Any] = {"company": company, "spec": spec, "settings": settings, **retry}
            extract: Any
            if spec.chunk_column is not None:
                chunks = ReportChunkPlanOperator(
                    task_id=table_task(spec.name, "plan_chunks"), pool=settings.source_pool, **common
                )
                extract = ReportMySqlToS3Operator.partial(
                    task_id=table_task(spec.name, "mysql_to_s3"),
                    pool=settings.source_pool,
                    map_index_template="{{ chunk_label }}",
                    **common,
                ).expand(chunk=chunks.output)
            else:
                extract = ReportMySqlToS3Operator(
                    task_id=table_task(spec.name, "mysql_to_s3"), pool=settings.source_pool, **common
                )
            together = spec in joining
            load = ReportS3ToMySqlOperator(
                task_id=table_task(spec.name, "s3_to_mysql"),
                company_tables=company_tables,
                pool=settings.target_pool,
                # A table published with its company's day is refreshed when the publish makes it live.
                outlets=[] if together else [_load_outlet(company.alias, spec.name)],
                **common,
            )
            _feed(load, extract)
            if spec.reconcile_every_days:
                reconcile = ReportReconcileOperator(
                    task_id=table_task(spec.name, "reconcile"), pool=settings.source_pool, **common
                )
                # As _feed links the load: without Airflow's generic set_upstream (hashes the DAG).
                load.downstream_task_ids.add(reconcile.node_id)
                reconcile.upstream_task_ids.add(load.node_id)
            if together:
                loads.append(load)
        if joining:
            publish = ReportPublishOperator(
                task_id=PUBLISH_TASK_ID,
                company=company,
                specs=joining,
                settings=settings,
                group=group_id(company.alias),
                company_tables=company_tables,
                pool=settings.target_pool,
                trigger_rule="all_done",
                outlets=[_load_outlet(company.alias, spec.name) for spec in joining],
                **retry,
            )
            for load in loads:  # load >> publish, without the generic path's cost (see _feed)
                load.downstream_task_ids.add(publish.node_id)
                publish.upstream_task_ids.add(load.node_id)
        for broken in company_plan.broken:
            ConfigErrorOperator(
                task_id=table_task(broken.name, "invalid_config"),
                message=str(broken.problem),
                pre_execute=_skip_unless_selected(company.alias, broken.name),
            )


def build_dag(
    plan: Plan,
    settings: Settings,
    dag_id: str = DAG_ID,
    only_group: str | None = None,
    shard: tuple[int, int] | None = None,
) -> DAG:
    """The DAG for a plan: one task group per active company, in admin row order.

    ``only_group`` builds just that company's group: what a worker needs to run one of its tasks
    (Airflow's parsing-context optimisation), instead of every company's operators. ``shard`` (k, N)
    only labels the DAG; the plan given is already that shard's.
    """
    part = f"Shard {shard[0]} of {shard[1]} (REPORTS_DAG_SHARDS): " if shard else ""
    with DAG(
        dag_id=dag_id,
        schedule=settings.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        # A run that outlives this is failed, so one stuck run never queues every later run behind it
        # (max_active_runs=1); each task is bounded by its execution_timeout below as well.
        dagrun_timeout=dt.timedelta(seconds=settings.dagrun_timeout_seconds),
        tags=["report-pipeline", *([f"shard {shard[0]:02d} of {shard[1]:02d}"] if shard else [])],
        doc_md=(
            f"{part}Copies each active company's report tables: source MySQL -> S3 (CSV) -> target MySQL. "
            # No build time here: it changes at every snapshot refresh, and any change to the
            # serialized DAG makes Airflow store a new DAG version (every TTL, with nothing changed).
            f"{len(plan.companies)} companies, {len(plan.problems)} config problems."
        ),
        # Alerts only when REPORTS_ALERT_NOTIFIERS names a notifier: without one, the DAG is unchanged.
        default_args={
            "owner": "report-pipeline",
            # Every task, config-error tasks included: a task that hangs past this fails (and retries).
            "execution_timeout": dt.timedelta(seconds=settings.task_timeout_seconds),
            **alerts.callbacks(settings),
        },
        on_failure_callback=alerts.dag_callback(settings),
    ) as dag:
        for company_plan in plan.companies:
            if only_group in (None, group_id(company_plan.company.alias)):
                _company_group(company_plan, settings)
        for broken in plan.broken_companies:
            if only_group not in (None, broken.key):
                continue
            with TaskGroup(broken.key):
                ConfigErrorOperator(
                    task_id=INVALID_COMPANY,
                    message=str(broken.problem),
                    pre_execute=_skip_unless_selected(None, None),
                )
    # Params are set only now, after the tasks: every operator created while the DAG has params
    # deep-copies them (three times, once per __init__ level), which with a 200-alias enum made parsing
    # 200 companies x 10 tables take seconds. Tasks need no copy: at run time Airflow merges the DAG's
    # params with the run's conf (process_params), and the serialized DAG carries them once.
    dag.params = form_params(plan)  # type: ignore[assignment]  # the attrs converter makes it a ParamsDict
    return dag


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the DAG is built, and resume it after.

    Building 4,000 operators allocates some 300,000 objects, none of them garbage, and every
    collection of the oldest generation walks all of Airflow's as well: measured, 0.3 of 1.0 s of a
    warm parse at 200 companies x 10 tables. (Airflow's DAG processor freezes its own objects before
    it forks a parse for the same reason.)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_shard_files_beside(dag_file: str | None, count: int) -> None:
    """Refuse to build nothing when the shard files that should build the DAGs are not there.

    With REPORTS_DAG_SHARDS set but ``write-dag-shards`` never run, the plain file would build no DAG
    and no shard file would build one: every company would silently stop being scheduled.
    """
    if not dag_file or Path(dag_file).name != f"{DAG_ID}.py":
        return  # not called from the DAG file (a test, a script): nothing to look beside
    missing = missing_shard_files(Path(dag_file).parent, count)
    if missing:
        raise ConfigError(
            f"REPORTS_DAG_SHARDS={count}, so {DAG_ID} builds no DAG, but {Path(dag_file).parent} lacks "
            f"{', '.join(missing)}: run `report-pipeline write-dag-shards --dags-folder {Path(dag_file).parent}`, "
            "or set REPORTS_DAG_SHARDS=1"
        )


def dag_from_admin(
    settings: Settings | None = None, *, shard: int | None = None, shards: int | None = None
) -> DAG | None:
    """What the DAG files call: settings from env, plan from the snapshot.

    ``dags/populate_report_databases.py`` calls it without a shard and gets the one DAG, or None when
    ``REPORTS_DAG_SHARDS`` > 1 (the shard files schedule every company then; none is scheduled twice).
    A shard file (``report-pipeline write-dag-shards``) passes its shard and the count it was written
    for, which must equal the setting.
    """
    settings = settings or Settings.from_env()
    if shard is None:
        if settings.dag_shards > 1:
            _check_shard_files_beside(sys._getframe(1).f_globals.get("__file__"), settings.dag_shards)
            log.info(
                "REPORTS_DAG_SHARDS=%d: the companies are in %s .. %s; %s builds no DAG",
                settings.dag_shards,
                shard_dag_id(1),
                shard_dag_id(settings.dag_shards),
                DAG_ID,
            )
            return None
        dag_id, keep, label = DAG_ID, None, None
    else:
        total = shards if shards is not None else settings.dag_shards
        check_shard(shard, total, settings.dag_shards)
        dag_id, label = shard_dag_id(shard), (shard, total)
        keep = lambda key: shard_of(key, total) == shard  # noqa: E731 - one use, below
    context = get_parsing_context()
    only_group = None
    if context.dag_id == dag_id and context.task_id:
        only_group = parse_task_id(context.task_id).group or None
    with _collection_paused():
        plan, _ = current_plan(settings, keep)
        if label is not None:
            plan = shard_plan(plan, *label)
        return build_dag(plan, settings, dag_id=dag_id, only_group=only_group, shard=label)

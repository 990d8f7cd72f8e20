"""Operators: thin wrappers that read the run's context and call ``report_pipeline.tasks``.

Shaped like the providers' transfers (``SqlToS3Operator``): keyword-only arguments, connection ids
with the contract's defaults listed in ``template_fields``, the query in the UI's rendered-template
view, and ``get_openlineage_facets_on_complete`` for the OpenLineage provider. Named
``Report...Operator`` so they are never confused with the providers' own ``S3ToMySqlOperator``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from report_pipeline import reconciliation, tasks
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.airflow.gate import governed
from report_pipeline.airflow.handoff import extract_result, extracted_items, load_event_extra, manifest_refs
from report_pipeline.airflow.lineage import extract_lineage, load_lineage, safe_lineage
from report_pipeline.airflow.metrics import TableMetrics
from report_pipeline.airflow.params import run_options, skip_unless_selected
from report_pipeline.airflow.retry import terminal_errors_fail_at_once
from report_pipeline.config import Company, TableSpec
from report_pipeline.manifest import Manifest, table_prefix
from report_pipeline.runoptions import RunOptions
from report_pipeline.settings import S3_CONN_ID, SOURCE_CONN_ID, TARGET_CONN_ID, Settings
from report_pipeline.vocabulary import Chunk


def logical_date_of(context: Mapping[str, Any]) -> dt.datetime:
    """The run's logical date, timezone-aware in UTC.

    Airflow 3 runs triggered without a logical date have none in their context (the key is absent),
    so they use the moment the run was asked to run after; every task of one run reads the same
    DagRun, so extract and load still agree on the date, its window and its S3 keys.
    """
    logical = context.get("logical_date")
    if logical is None:
        logical = context["dag_run"].run_after
    moment = dt.datetime.fromisoformat(logical.isoformat())
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _selected(options: RunOptions, company: Company, spec: TableSpec) -> None:
    """Skip this task if a manual run's options limit the run to other companies or tables."""
    skip_unless_selected(options, company.alias, spec.name)


def chunk_label(column: str | None, chunk: Chunk) -> str:
    """The name of one mapped extract in the UI (its ``map_index_template``), e.g. ``id [250, 500)``."""
    return chunk.label(column)


def shown_sql(query: str) -> str:
    """The query as a template field: shown verbatim in the UI's rendered view, never run through Jinja.

    Jinja would read ``{{``, ``{%`` or ``{#`` inside a query (a LIKE pattern, a comment) as template
    syntax and fail the task before it starts; such a query is wrapped in a raw block instead.
    """
    if any(mark in query for mark in ("{{", "{%", "{#")) and "{% endraw %}" not in query:
        return "{% raw %}" + query + "{% endraw %}"
    return query


# Skips: the target already holds newer data than this load brings.
_OLDER = {
    "older-window": "already holds a newer full refresh",
    "older-extract": "already holds rows from a newer incremental extract",
}


class _TableOperator(BaseOperator):
    """One company table's task; ``sql`` is the table's query, for the UI (the run uses the spec's).

    The only ``__init__`` of the three table operators, with the arguments of all of them (``chunk``
    for the extract, ``extracted`` and ``company_tables`` for the load): Airflow wraps every
    ``__init__`` of an operator class in its default-args machinery, so one level instead of two
    saves that work for each of the thousands of tasks a parse builds.
    """

    ui_color = "#e8f4fd"
    template_fields_renderers = {"sql": "sql"}
    # Set by __init__ (with object.__setattr__, see there).
    company: Company
    spec: TableSpec
    settings: Settings
    sql: str
    source_conn_id: str
    target_conn_id: str
    s3_conn_id: str

    def __init__(
        self,
        *,
        company: Company,
        spec: TableSpec,
        settings: Settings,
        source_conn_id: str = SOURCE_CONN_ID,
        target_conn_id: str = TARGET_CONN_ID,
        s3_conn_id: str = S3_CONN_ID,
        chunk: Any = None,
        extracted: Any = None,
        company_tables: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        values: dict[str, Any] = {
            "company": company,
            "spec": spec,
            "settings": settings,
            "sql": shown_sql(spec.query_select),
            "source_conn_id": source_conn_id,
            "target_conn_id": target_conn_id,
            "s3_conn_id": s3_conn_id,
        }
        if "chunk" in self.template_fields:
            values["chunk"] = chunk
        if "extracted" in self.template_fields:
            values.update(extracted=extracted, company_tables=tuple(company_tables))
        # Stored past BaseOperator.__setattr__, whose per-attribute bookkeeping (a converter lookup,
        # init kwargs, XComArg links of fields set after __init__) none of these need during __init__:
        # Airflow links the template fields' XComArgs when __init__ returns, reading the attributes.
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def connections(self) -> HookConnections:
        """The connections by this task's (rendered) connection ids; one provider per task try, so the
        load and its verify share the looked-up connections and the S3 client."""
        found: HookConnections | None = self.__dict__.get("_hook_connections")
        if found is None:
            found = HookConnections(
                self.settings,
                source_conn_id=self.source_conn_id,
                target_conn_id=self.target_conn_id,
                s3_conn_id=self.s3_conn_id,
            )
            object.__setattr__(self, "_hook_connections", found)
        return found


class ReportChunkPlanOperator(_TableOperator):
    """Splits a chunked table's rows for this run into chunks, one mapped extract each.

    Returns the chunks as JSON (``Chunk.to_json``: ``None`` bounds are open ends, ``nulls`` marks the
    chunk of NULLs); each carries its index and the plan's size, which the load checks.
    """

    template_fields: Sequence[str] = ("sql", "source_conn_id")

    @terminal_errors_fail_at_once
    def execute(self, context: Context) -> list[dict[str, Any]]:
        options = run_options(context)
        _selected(options, self.company, self.spec)
        with governed(self.settings, self.company, self.spec, context, self.log) as gate:
            chunks = tasks.plan_table_chunks(
                self.connections(),
                self.company,
                self.spec,
                logical_date_of(context),
                options.lookback_days,
                settings=self.settings,
                reset_watermark=options.reset_watermark,
                gate=gate,
            )
        self.log.info(
            "%s.%s: %d chunk(s): %s",
            self.company.alias,
            self.spec.name,
            len(chunks),
            ", ".join(c.label(self.spec.chunk_column) for c in chunks),
        )
        return [c.to_json() for c in chunks]


class ReportMySqlToS3Operator(_TableOperator):
    """The seed's "MySql To S3 Files": the table's query -> CSV parts + manifest in the company bucket.

    Returns the manifest's location (the seed's ``$.guid``) with the extract id and the manifest's
    sha256, which the load checks before it reads anything else.
    """

    template_fields: Sequence[str] = ("chunk", "sql", "source_conn_id", "s3_conn_id")
    chunk: Any  # set by __init__, or by the mapped task's expand
    # Set by execute, for the lineage facets after it.
    _manifest: Manifest | None = None
    _logical_date: dt.datetime | None = None

    @terminal_errors_fail_at_once
    def execute(self, context: Context) -> dict[str, Any]:
        chunk = Chunk.from_json(self.chunk) if self.chunk is not None else None
        if chunk is not None:
            # The task runner renders map_index_template ("{{ chunk_label }}") from this same context
            # after execute returns or raises, so set it first: a skipped or failed chunk is named too.
            context["chunk_label"] = chunk_label(self.spec.chunk_column, chunk)  # type: ignore[typeddict-unknown-key]
        options = run_options(context)
        _selected(options, self.company, self.spec)
        self._logical_date = logical_date_of(context)
        with governed(self.settings, self.company, self.spec, context, self.log) as gate:
            manifest = tasks.extract_table(
                self.connections(),
                self.settings,
                self.company,
                self.spec,
                logical_date_of(context),
                context["run_id"],
                lookback_days=options.lookback_days,
                chunk=chunk,
                reset_watermark=options.reset_watermark,
                gate=gate,
            )
        self.log.info(
            "extracted %d rows, %d CSV bytes (%d stored) into s3://%s/%s",
            manifest.rows,
            manifest.csv_bytes,
            manifest.stored_bytes,
            manifest.bucket,
            manifest.key,
        )
        self._manifest = manifest
        seconds = dt.datetime.fromisoformat(manifest.finished_at) - dt.datetime.fromisoformat(manifest.started_at)
        TableMetrics(self.company.alias, self.spec.name, self.log).extracted(
            manifest.rows, manifest.csv_bytes, manifest.stored_bytes, seconds.total_seconds()
        )
        return extract_result(manifest, chunk)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Source tables the query reads -> this run's S3 folder of the table, with schema and rows."""
        manifest, logical_date = self._manifest, self._logical_date

        def build() -> Any:
            assert manifest is not None and logical_date is not None, "the extract did not finish"
            return extract_lineage(
                query=self.spec.query_select,
                source_conn_id=self.source_conn_id,
                bucket=manifest.bucket,
                folder=table_prefix(self.spec.name, logical_date),
                columns=[(c.name, c.source_type) for c in manifest.columns],
                rows=manifest.rows,
                csv_bytes=manifest.csv_bytes,
            )

        return safe_lineage(self, build)


class ReportS3ToMySqlOperator(_TableOperator):
    """The seed's "S3 Data To Mysql": loads exactly the manifest(s) its extract returned.

    Each XCom item must name a manifest under this company's bucket and this table's folder for the
    run's date, with the extract id and sha256 its extract reported; the load verifies them.
    """

    # No "sql": the load never runs the query (its extract's Rendered Template view shows it), and
    # Airflow stores every template field of every task try (up to [core]
    # max_num_rendered_ti_fields_per_task tries per task): the query would be stored twice per table.
    template_fields: Sequence[str] = ("extracted", "target_conn_id", "s3_conn_id")
    extracted: Any  # the extract's XComArg (factory._feed)
    company_tables: tuple[str, ...]
    # Set by execute, for the lineage facets after it.
    _loaded: tuple[Any, dt.datetime] | None = None

    @terminal_errors_fail_at_once
    def execute(self, context: Context) -> dict[str, Any]:
        options = run_options(context)
        _selected(options, self.company, self.spec)
        logical_date = logical_date_of(context)
        refs = manifest_refs(extracted_items(self.extracted), self.company, self.spec, logical_date)
        result = tasks.load_table(
            self.connections(),
            self.settings,
            self.company,
            self.spec,
            refs,
            logical_date,
            context["run_id"],
            load_mode=options.load_mode,
            allow_shrink=options.allow_shrink,
            company_tables=self.company_tables,
            hold=self.company.publish_together,
        )
        if result.skip_reason in _OLDER:
            # Nothing changed in the target, so no "refreshed" Asset event either.
            raise AirflowSkipException(
                f"{self.company.schema}.{self.spec.target.table}: {_OLDER[result.skip_reason]}; "
                f"the data of {logical_date.date()} was not loaded"
            )
        tasks.verify_after_load(self.connections(), self.company, self.spec, logical_date, result)
        self._describe_asset_events(context, result, logical_date)
        self.log.info(
            "%s %d rows into %s.%s in %.2f s",
            "already loaded:" if result.skipped else "loaded (for the company's publish)" if result.held else "loaded",
            result.rows,
            self.company.schema,
            self.spec.target.table,
            result.seconds,
        )
        self._loaded = (result, logical_date)
        if not result.skipped:
            TableMetrics(self.company.alias, self.spec.name, self.log).loaded(
                result.rows, result.csv_bytes, result.seconds, logical_date
            )
        return {"rows": result.rows, "skipped": result.skipped, "load_key": result.load_key, "held": result.held}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """This run's S3 folder of the table -> the company's target table, with rows loaded."""
        loaded = self._loaded

        def build() -> Any:
            assert loaded is not None, "the load did not finish"
            result, logical_date = loaded
            return load_lineage(
                bucket=self.company.bucket,
                folder=table_prefix(self.spec.name, logical_date),
                target_conn_id=self.target_conn_id,
                schema=self.company.schema,
                table=self.spec.target.table,
                columns=[(name, None) for name in self.spec.target.columns],
                rows=result.rows,
            )

        return safe_lineage(self, build)

    def _describe_asset_events(self, context: Any, result: Any, logical_date: dt.datetime) -> None:
        """Attach what was loaded to the outlet Asset events, so consumers need not query the target."""
        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        extra = load_event_extra(self.company, self.spec, result, logical_date, context["run_id"])
        for outlet in self.outlets or ():
            outlet_events[outlet].extra.update(extra)


class ReportReconcileOperator(_TableOperator):
    """A table's scheduled reconcile (``tables.reconcile_every_days``): on the days it is due, compares the
    source with the target by key and repairs what differs (``report_pipeline.reconciliation``); skips
    on the other days. Runs after the table's load, in the source pool (it reads the source as extracts do).
    """

    template_fields: Sequence[str] = ("sql", "source_conn_id", "target_conn_id", "s3_conn_id")

    @terminal_errors_fail_at_once
    def execute(self, context: Context) -> dict[str, Any]:
        options = run_options(context)
        _selected(options, self.company, self.spec)
        logical_date = logical_date_of(context)
        not_due = reconciliation.due(self.connections(), self.company, self.spec, logical_date)
        if not_due:
            raise AirflowSkipException(f"{self.company.alias}.{self.spec.name}: reconcile not due: {not_due}")
        result = reconciliation.reconcile_table(
            self.connections(),
            self.settings,
            self.company,
            self.spec,
            logical_date,
            context["run_id"],
            repair=True,
            lookback_days=options.lookback_days,
        )
        self.log.info("%s", result.summary())
        headers, rows = result.kinds()
        for row in rows:
            self.log.info("%s", "  ".join(f"{h} {v}" for h, v in zip(headers, row, strict=True)))
        return {"outcome": result.outcome, "record_id": result.record_id, "rows_copied": result.rows_copied}


class ConfigErrorOperator(BaseOperator):
    """Stands in for a table or company whose admin row is unusable: fails at once with the reason."""

    ui_color = "#fde8e8"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Context) -> None:
        raise AirflowFailException(self.message)

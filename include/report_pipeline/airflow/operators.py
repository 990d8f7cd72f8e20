"""Operators: thin wrappers that read the run's context and call ``report_pipeline.tasks``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from report_pipeline.airflow.params import skip_unless_selected
from report_pipeline.config import Company, TableSpec
from report_pipeline.manifest import SUCCESS_NAME, table_prefix
from report_pipeline.settings import Settings


def _work() -> tuple[Any, Any]:
    """The task functions and a connections provider, imported when a task runs, not when the DAG parses.

    Every parse (the DAG processor's, and each worker's before its task) would otherwise import the
    MySQL provider's hook and the whole transfer engine for nothing.
    """
    from report_pipeline import tasks
    from report_pipeline.airflow.connections import HookConnections

    return tasks, HookConnections()


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


def _selected(context: Mapping[str, Any], company: Company, spec: TableSpec) -> None:
    """Skip this task if a manual run's params limit the run to other companies or tables."""
    skip_unless_selected(context, company.alias, spec.name)


def chunk_label(column: str | None, chunk: Sequence[int]) -> str:
    """The name of one mapped extract in the UI (its ``map_index_template``), e.g. ``id [0, 250)``."""
    return f"{column} [{chunk[0]}, {chunk[1]})"


def _lookback_override(context: Mapping[str, Any]) -> int | None:
    value: Any = (context.get("params") or {}).get("lookback_days")
    return None if value in (None, "") else int(value)


class _TableOperator(BaseOperator):
    """One table's task. No ``__init__`` of its own: Airflow wraps every level of ``__init__`` (each
    merging and copying default args), which made building 4000 tasks at parse time ~10 % slower."""

    ui_color = "#e8f4fd"
    company: Company
    spec: TableSpec
    settings: Settings

    def _table(self, company: Company, spec: TableSpec, settings: Settings) -> None:
        self.company = company
        self.spec = spec
        self.settings = settings


class ChunkPlanOperator(_TableOperator):
    """Splits a chunked table's rows for this run into ranges, one mapped extract each."""

    def __init__(self, *, company: Company, spec: TableSpec, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._table(company, spec, settings)

    def execute(self, context: Any) -> list[list[int]]:
        _selected(context, self.company, self.spec)
        tasks, connections = _work()
        ranges = tasks.plan_table_chunks(
            connections,
            self.company,
            self.spec,
            logical_date_of(context),
            _lookback_override(context),
        )
        self.log.info(
            "%s.%s: %d chunk(s) on %s", self.company.alias, self.spec.name, len(ranges), self.spec.chunk_column
        )
        return [list(r) for r in ranges]


class MySqlToS3Operator(_TableOperator):
    """The seed's "MySql To S3 Files": the table's query -> CSV parts + manifest in the company bucket.

    Returns the manifest's location (the seed's ``$.guid``), which the load reads.
    """

    template_fields: Sequence[str] = ("chunk",)

    def __init__(
        self, *, company: Company, spec: TableSpec, settings: Settings, chunk: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._table(company, spec, settings)
        self.chunk = chunk

    def execute(self, context: Any) -> dict[str, Any]:
        chunk = tuple(self.chunk) if self.chunk else None
        if chunk is not None:
            # The task runner renders map_index_template ("{{ chunk_label }}") from this same context
            # after execute returns or raises, so set it first: a skipped or failed chunk is named too.
            context["chunk_label"] = chunk_label(self.spec.chunk_column, chunk)
        _selected(context, self.company, self.spec)
        map_index = context["ti"].map_index
        tasks, connections = _work()
        manifest = tasks.extract_table(
            connections,
            self.settings,
            self.company,
            self.spec,
            logical_date_of(context),
            context["run_id"],
            lookback_days=_lookback_override(context),
            chunk=chunk,  # type: ignore[arg-type]
            chunk_index=map_index if chunk is not None and map_index is not None and map_index >= 0 else None,
        )
        self.log.info(
            "extracted %d rows, %d CSV bytes (%d stored) into s3://%s/%s",
            manifest.rows,
            manifest.csv_bytes,
            manifest.stored_bytes,
            manifest.bucket,
            manifest.key,
        )
        return {"bucket": manifest.bucket, "manifest_key": manifest.key, "rows": manifest.rows}


class S3ToMySqlOperator(_TableOperator):
    """The seed's "S3 Data To Mysql": loads exactly the manifest(s) its extract returned."""

    template_fields: Sequence[str] = ("extracted",)

    def __init__(
        self, *, company: Company, spec: TableSpec, settings: Settings, extracted: Any, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._table(company, spec, settings)
        self.extracted = extracted

    def execute(self, context: Any) -> dict[str, Any]:
        _selected(context, self.company, self.spec)
        extracted = self._extracted_items()
        if not extracted:
            raise AirflowFailException(f"{self.company.alias}.{self.spec.name}: the extract returned no manifest")
        logical_date = logical_date_of(context)
        # Only this company's bucket and this table's prefix for this run's date: an XCom from another
        # table, company or date (a mis-wired or hand-edited value) must never be loaded here.
        prefix = table_prefix(self.spec.name, logical_date) + "/"
        for item in extracted:
            if item["bucket"] != self.company.bucket or not str(item["manifest_key"]).startswith(prefix):
                raise AirflowFailException(
                    f"refusing to load s3://{item['bucket']}/{item['manifest_key']}: not under "
                    f"s3://{self.company.bucket}/{prefix} (company {self.company.alias!r}, table "
                    f"{self.spec.name!r}, this run's logical date)"
                )
        load_mode = (context.get("params") or {}).get("load_mode")
        tasks, connections = _work()
        result = tasks.load_table(
            connections,
            self.settings,
            self.company,
            self.spec,
            [item["manifest_key"] for item in extracted],
            logical_date,
            context["run_id"],
            load_mode=load_mode,
        )
        if result.skip_reason == "older-window":
            # Nothing changed in the target, so no "refreshed" Asset event either.
            raise AirflowSkipException(
                f"{self.company.schema}.{self.spec.target.table} already holds a newer full refresh; "
                f"the window of {logical_date.date()} was not swapped in"
            )
        self._describe_asset_events(context, result, logical_date)
        self.log.info(
            "%s %d rows into %s.%s in %.2f s",
            "already loaded:" if result.skipped else "loaded",
            result.rows,
            self.company.schema,
            self.spec.target.table,
            result.seconds,
        )
        return {"rows": result.rows, "skipped": result.skipped, "load_key": result.load_key}

    def _extracted_items(self) -> list[Mapping[str, Any]]:
        """The extract's return value, or every mapped chunk's, as a list.

        A mapped extract arrives as a lazy XCom sequence; indexing up to its length reads exactly the
        chunks that ran, where plain iteration probes one offset past the end (a logged 404).
        """
        value = self.extracted
        if isinstance(value, Mapping):
            return [value]
        if value is None:
            return []
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            return [value[i] for i in range(len(value))]
        return list(value)

    def _describe_asset_events(self, context: Any, result: Any, logical_date: dt.datetime) -> None:
        """Attach what was loaded to the outlet Asset events, so consumers need not query the target."""
        outlet_events = context.get("outlet_events")
        if outlet_events is None:
            return
        extra = {
            "company": self.company.alias,
            "table": self.spec.name,
            "schema": self.company.schema,
            "target_table": self.spec.target.table,
            "rows": result.rows,
            "skipped": result.skipped,
            "load_key": result.load_key,
            "logical_date": logical_date.isoformat(),
            "run_id": context["run_id"],
            "success_key": f"s3://{self.company.bucket}/{table_prefix(self.spec.name, logical_date)}/{SUCCESS_NAME}",
        }
        for outlet in self.outlets or ():
            outlet_events[outlet].extra.update(extra)


class ConfigErrorOperator(BaseOperator):
    """Stands in for a table or company whose admin row is unusable: fails at once with the reason."""

    ui_color = "#fde8e8"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise AirflowFailException(self.message)

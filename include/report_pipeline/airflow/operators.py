"""Operators: thin wrappers that read the run's context and call ``report_pipeline.tasks``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from report_pipeline import tasks
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.config import Company, TableSpec
from report_pipeline.settings import Settings


def logical_date_of(context: Mapping[str, Any]) -> dt.datetime:
    """The run's logical date; manual runs without one use the time the run was asked to run after."""
    logical = context.get("logical_date")
    if logical is None:
        logical = context["dag_run"].run_after
    return dt.datetime.fromisoformat(logical.isoformat())


def _selected(context: Mapping[str, Any], company: Company, spec: TableSpec) -> None:
    """Skip this task if a manual run's params limit the run to other companies or tables."""
    params = context.get("params") or {}
    companies = params.get("companies") or []
    tables = params.get("tables") or []
    if companies and company.alias not in companies:
        raise AirflowSkipException(f"this run is limited to companies {companies}")
    if tables and spec.name not in tables:
        raise AirflowSkipException(f"this run is limited to tables {tables}")


def _lookback_override(context: Mapping[str, Any]) -> int | None:
    value: Any = (context.get("params") or {}).get("lookback_days")
    return None if value in (None, "") else int(value)


class _TableOperator(BaseOperator):
    ui_color = "#e8f4fd"

    def __init__(self, *, company: Company, spec: TableSpec, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.company = company
        self.spec = spec
        self.settings = settings


class ChunkPlanOperator(_TableOperator):
    """Splits a chunked table's rows for this run into ranges, one mapped extract each."""

    def execute(self, context: Any) -> list[list[int]]:
        _selected(context, self.company, self.spec)
        ranges = tasks.plan_table_chunks(
            HookConnections(),
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

    def __init__(self, *, chunk: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunk = chunk

    def execute(self, context: Any) -> dict[str, Any]:
        _selected(context, self.company, self.spec)
        chunk = tuple(self.chunk) if self.chunk else None
        if chunk is not None:
            context["chunk_label"] = f"{self.spec.chunk_column} [{chunk[0]}, {chunk[1]})"
        map_index = context["ti"].map_index
        manifest = tasks.extract_table(
            HookConnections(),
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

    def __init__(self, *, extracted: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extracted = extracted

    def execute(self, context: Any) -> dict[str, Any]:
        _selected(context, self.company, self.spec)
        extracted = [self.extracted] if isinstance(self.extracted, Mapping) else list(self.extracted or [])
        for item in extracted:
            if item["bucket"] != self.company.bucket:
                raise AirflowFailException(
                    f"refusing to load s3://{item['bucket']}/{item['manifest_key']}: not company "
                    f"{self.company.alias!r}'s bucket {self.company.bucket!r}"
                )
        load_mode = (context.get("params") or {}).get("load_mode")
        result = tasks.load_table(
            HookConnections(),
            self.settings,
            self.company,
            self.spec,
            [item["manifest_key"] for item in extracted],
            logical_date_of(context),
            context["run_id"],
            load_mode=load_mode,
        )
        self.log.info(
            "%s %d rows into %s.%s in %.2f s",
            "already loaded:" if result.skipped else "loaded",
            result.rows,
            self.company.schema,
            self.spec.target.table,
            result.seconds,
        )
        return {"rows": result.rows, "skipped": result.skipped, "load_key": result.load_key}


class ConfigErrorOperator(BaseOperator):
    """Stands in for a table or company whose admin row is unusable: fails at once with the reason."""

    ui_color = "#fde8e8"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise AirflowFailException(self.message)

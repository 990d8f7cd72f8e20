"""The units of work the DAG's tasks and the CLI both run: plan chunks, extract, load.

Each takes the typed config, the run's logical date and a ``Connections`` provider, and opens and
closes its own connections, so the Airflow operators and ``report-pipeline run`` share one code path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from report_pipeline import extract as extract_module
from report_pipeline import load as load_module
from report_pipeline.chunks import plan_chunks
from report_pipeline.config import Company, TableSpec, bind_parameters, window_for, with_overrides
from report_pipeline.manifest import SUCCESS_NAME, Manifest, extract_prefix, table_prefix
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget


class Connections(Protocol):
    """Opens connections; in Airflow through the providers' hooks."""

    def source(self) -> Any:
        """A mysqlclient connection to the source DB."""

    def target(self) -> Any:
        """A mysqlclient connection to the target DB with LOAD DATA LOCAL allowed."""

    def s3(self) -> Any:
        """A boto3 S3 client."""


def company_bucket(connections: Connections, settings: Settings, company: Company) -> Bucket:
    """The company's own bucket, written with the configured server-side encryption."""
    return Bucket(connections.s3(), company.bucket, settings.sse, settings.sse_kms_key_id)


def _parameters(
    spec: TableSpec, company: Company, logical_date: dt.datetime, lookback_days: int | None
) -> tuple[Any, ...] | dict[str, Any]:
    days = company.lookback_days if lookback_days is None else lookback_days
    return bind_parameters(spec, company, window_for(logical_date, days))


def plan_table_chunks(
    connections: Connections,
    company: Company,
    spec: TableSpec,
    logical_date: dt.datetime,
    lookback_days: int | None = None,
) -> list[tuple[int, int]]:
    """The chunk ranges of a chunked table for this run (one range covering all rows if unchunked)."""
    if spec.chunk_column is None or spec.chunk_rows is None:
        raise ValueError(f"table {spec.name!r} is not chunked")
    parameters = _parameters(spec, company, logical_date, lookback_days)
    with opened(connections.source()) as conn:
        return plan_chunks(conn, spec.query_select, parameters, spec.chunk_column, spec.chunk_rows)


def extract_table(
    connections: Connections,
    settings: Settings,
    company: Company,
    spec: TableSpec,
    logical_date: dt.datetime,
    run_id: str,
    *,
    lookback_days: int | None = None,
    chunk: tuple[int, int] | None = None,
    chunk_index: int | None = None,
) -> Manifest:
    """Extract one table (or one chunk of it) for one run into the company's bucket."""
    request = extract_module.ExtractRequest(
        company=company.alias,
        table=spec.name,
        bucket=company_bucket(connections, settings, company),
        prefix=extract_prefix(spec.name, logical_date, chunk_index),
        query=spec.query_select,
        parameters=_parameters(spec, company, logical_date, lookback_days),
        logical_date=logical_date.isoformat(),
        run_id=run_id,
        compress=settings.compress,
        part_bytes=settings.part_bytes,
        chunk_column=spec.chunk_column if chunk is not None else None,
        chunk=chunk,
    )
    with opened(connections.source()) as conn:
        return extract_module.extract(conn, request)


def load_table(
    connections: Connections,
    settings: Settings,
    company: Company,
    spec: TableSpec,
    manifest_keys: Sequence[str],
    logical_date: dt.datetime,
    run_id: str,
    *,
    load_mode: str | None = None,
) -> load_module.LoadResult:
    """Load the manifests an extract (or its chunks) wrote into the company's target schema."""
    spec = with_overrides(spec, load_mode)
    request = load_module.LoadRequest(
        company=company.alias,
        schema=company.schema,
        target=spec.target,
        load_mode=spec.load_mode,
        bucket=company_bucket(connections, settings, company),
        manifest_keys=tuple(manifest_keys),
        success_key=f"{table_prefix(spec.name, logical_date)}/{SUCCESS_NAME}",
        logical_date=logical_date,
        run_id=run_id,
        parallelism=settings.load_parallelism,
        defer_indexes=settings.swap_defer_indexes,
    )
    with opened(connections.target()) as conn:
        # The opener lets a swap open its extra sessions the same way (same hook, same options).
        return load_module.load(MySqlTarget(conn, opener=connections.target), request)

"""The units of work the DAG's tasks and the CLI both run: plan chunks, extract, load.

Each takes the typed config, the run's logical date and a ``Connections`` provider, and opens and
closes its own connections, so the Airflow operators and ``report-pipeline run`` share one code path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from report_pipeline import extract as extract_module
from report_pipeline import load as load_module
from report_pipeline.chunks import plan_chunks
from report_pipeline.config import Company, TableSpec, bind_parameters, window_for, with_overrides
from report_pipeline.manifest import SUCCESS_NAME, Manifest, extract_prefix, table_prefix
from report_pipeline.session import bound_note, bound_source_session, opened
from report_pipeline.settings import Settings
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget

log = logging.getLogger(__name__)


@contextlib.contextmanager
def bounds_named(settings: Settings, *, source: bool) -> Iterator[None]:
    """Add to a timeout's error which setting bounded the wait, so the failed task's log says so."""
    try:
        yield
    except Exception as exc:
        note = bound_note(
            exc,
            net_timeout=settings.net_timeout_seconds,
            query_timeout=settings.query_timeout_seconds if source else None,
            lock_wait=None if source else settings.target_lock_wait_seconds,
        )
        if note:
            exc.add_note(note)
            log.error("%s (%s: %s)", note, type(exc).__name__, exc)
        raise


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
    return Bucket(connections.s3(), company.bucket, settings.sse, settings.sse_kms_key_id, settings.s3_expected_owner)


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
    settings: Settings | None = None,
) -> list[tuple[int, int]]:
    """The chunk ranges of a chunked table for this run (one range covering all rows if unchunked)."""
    if spec.chunk_column is None or spec.chunk_rows is None:
        raise ValueError(f"table {spec.name!r} is not chunked")
    settings = settings or Settings.from_env()
    parameters = _parameters(spec, company, logical_date, lookback_days)
    with bounds_named(settings, source=True), opened(connections.source()) as conn:
        bound_source_session(conn, settings.query_timeout_seconds, settings.source_stream_timeout_seconds)
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
    with bounds_named(settings, source=True), opened(connections.source()) as conn:
        bound_source_session(conn, settings.query_timeout_seconds, settings.source_stream_timeout_seconds)
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
    )
    with bounds_named(settings, source=False), opened(connections.target()) as conn:
        return load_module.load(MySqlTarget(conn, settings), request)

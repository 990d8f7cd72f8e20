"""The units of work the DAG's tasks and the CLI both run: plan chunks, extract, load.

Each takes the typed config, the run's logical date and a ``Connections`` provider, and opens and
closes its own connections, so the Airflow operators and ``report-pipeline run`` share one code path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from report_pipeline import extract as extract_module
from report_pipeline import load as load_module
from report_pipeline.chunks import Chunk, plan_chunks
from report_pipeline.config import Company, TableSpec, bind_parameters, window_for, with_overrides
from report_pipeline.errors import ConfigError
from report_pipeline.manifest import SUCCESS_NAME, Manifest, ManifestRef, extract_prefix, new_extract_id, table_prefix
from report_pipeline.modes import SwapGuard
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

    def protected_schemas(self) -> dict[str, str]:
        """Schemas on the target's server that belong to something else (admin, source), lower case."""


def table_label(company: Company, spec: TableSpec) -> str:
    """How refusals name a table: ``company 'acme' table 'orders' (tables row id=2)``."""
    return f"company {company.alias!r} table {spec.name!r} (tables row id={spec.id})"


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
) -> list[Chunk]:
    """The chunks of a chunked table for this run: open-ended ranges plus the NULL chunk, never none.

    ConfigError, naming the company, table and admin row, when the chunk column is not an
    integer-typed column of the query's result.
    """
    if spec.chunk_column is None or spec.chunk_rows is None:
        raise ValueError(f"table {spec.name!r} is not chunked")
    settings = settings or Settings.from_env()
    parameters = _parameters(spec, company, logical_date, lookback_days)
    with bounds_named(settings, source=True), opened(connections.source()) as conn:
        bound_source_session(conn, settings.query_timeout_seconds, settings.source_stream_timeout_seconds)
        try:
            return plan_chunks(conn, spec.query_select, parameters, spec.chunk_column, spec.chunk_rows)
        except ConfigError as exc:
            raise ConfigError(f"{table_label(company, spec)}: {exc}") from exc


def extract_table(
    connections: Connections,
    settings: Settings,
    company: Company,
    spec: TableSpec,
    logical_date: dt.datetime,
    run_id: str,
    *,
    lookback_days: int | None = None,
    chunk: Chunk | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Extract one table (or one chunk of it) for one run into a new folder of the company's bucket.

    Each call is a new attempt with a new extract id and a folder of its own, so it never touches
    what another attempt or run of the same date wrote; its ``Manifest.ref`` is what the load checks.
    ``progress`` is told (rows, CSV bytes) so far after each fetched batch (the CLI's progress line).
    """
    extract_id = new_extract_id(run_id)
    request = extract_module.ExtractRequest(
        company=company.alias,
        table=spec.name,
        bucket=company_bucket(connections, settings, company),
        prefix=extract_prefix(spec.name, logical_date, extract_id, chunk.index if chunk else None),
        query=spec.query_select,
        parameters=_parameters(spec, company, logical_date, lookback_days),
        logical_date=logical_date.isoformat(),
        run_id=run_id,
        compress=settings.compress,
        part_bytes=settings.part_bytes,
        chunk_column=spec.chunk_column if chunk is not None else None,
        chunk=chunk,
        extract_id=extract_id,
        progress=progress,
    )
    with bounds_named(settings, source=True), opened(connections.source()) as conn:
        bound_source_session(conn, settings.query_timeout_seconds, settings.source_stream_timeout_seconds)
        return extract_module.extract(conn, request)


def load_table(
    connections: Connections,
    settings: Settings,
    company: Company,
    spec: TableSpec,
    manifests: Sequence[ManifestRef],
    logical_date: dt.datetime,
    run_id: str,
    *,
    load_mode: str | None = None,
    allow_shrink: bool = False,
    company_tables: Sequence[str] | None = None,
) -> load_module.LoadResult:
    """Load exactly the manifests an extract (or every chunk of it) reported into the company's schema.

    Each manifest must still have the extract id and sha256 its extract reported, and chunked ones
    must be every chunk of one plan; otherwise the load refuses and the target is left as it was.
    ``allow_shrink`` (a manual run's choice) lifts the swap guard; ``company_tables`` are the company's
    report tables, which tell a seed-era company schema from somebody else's.
    """
    where = table_label(company, spec)
    spec = with_overrides(spec, load_mode)
    guard = SwapGuard(
        allow_empty=allow_shrink or spec.allow_empty_swap,
        max_shrink_percent=100
        if allow_shrink
        else (settings.swap_max_shrink_percent if spec.max_shrink_percent is None else spec.max_shrink_percent),
    )
    request = load_module.LoadRequest(
        company=company.alias,
        schema=company.schema,
        target=spec.target,
        load_mode=spec.load_mode,
        bucket=company_bucket(connections, settings, company),
        manifest_keys=tuple(m.key for m in manifests),
        success_key=f"{table_prefix(spec.name, logical_date)}/{SUCCESS_NAME}",
        logical_date=logical_date,
        run_id=run_id,
        expected=tuple(manifests),
        where=where,
        attempt_max_age=dt.timedelta(hours=settings.attempt_max_age_hours),
        company_tables=None if company_tables is None else tuple(company_tables),
        protected_schemas=connections.protected_schemas(),
        guard=guard,
        lock_timeout_seconds=settings.table_lock_timeout_seconds,
        parallelism=settings.load_parallelism,
        defer_indexes=settings.swap_defer_indexes,
    )
    with bounds_named(settings, source=False), opened(connections.target()) as conn:
        # The opener lets a swap open its extra sessions the same way (same provider, same options).
        return load_module.load(MySqlTarget(conn, settings, opener=connections.target), request)

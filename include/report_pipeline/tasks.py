"""The units of work the DAG's tasks and the CLI both run: plan chunks, extract, load.

Each takes the typed config, the run's logical date and a ``Connections`` provider, and opens and
closes its own connections, so the Airflow operators and ``report-pipeline run`` share one code path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from report_pipeline import extract as extract_module
from report_pipeline import governor, publication
from report_pipeline import load as load_module
from report_pipeline import verify as verify_module
from report_pipeline.chunks import plan_chunks
from report_pipeline.config import Company, TableSpec, table_label
from report_pipeline.connections import Connections, bounds_named, company_bucket, source_session
from report_pipeline.errors import ConfigError, MismatchError
from report_pipeline.guards import SwapGuard
from report_pipeline.incremental.cursor import narrowed, planning_horizon
from report_pipeline.incremental.horizon import UNGUARDED_NOTE
from report_pipeline.incremental.request import cursor_request, delete_key
from report_pipeline.manifest import (
    SUCCESS_NAME,
    Manifest,
    ManifestRef,
    extract_prefix,
    new_extract_id,
    spec_digest,
    table_prefix,
)
from report_pipeline.publication import DayTable, Publication, joins
from report_pipeline.runs import bind_parameters, window_for, with_overrides
from report_pipeline.session import Parameters, opened, probe_columns
from report_pipeline.settings import Settings
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.vocabulary import Chunk, Horizon

log = logging.getLogger(__name__)


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
    *,
    reset_watermark: bool = False,
    gate: governor.Gate | None = None,
) -> list[Chunk]:
    """The chunks of a chunked table for this run: open-ended ranges plus the NULL chunk, never none.

    An incremental table is split by the rows its extracts will read (those after the watermark); the
    plan's open first and last ranges still take a row inserted after planning, outside the planned
    span, which would otherwise be skipped while the watermark moved past it for good.
    ConfigError, naming the company, table and admin row, when the chunk column is not an
    integer-typed column of the query's result. The plan reads the source, so the governor's ``gate``
    admits it first (by default an in-process wait, see ``report_pipeline.governor``).
    """
    if spec.chunk_column is None or spec.chunk_rows is None:
        raise ValueError(f"table {spec.name!r} is not chunked")
    settings = settings or Settings.from_env()
    label = table_label(company.alias, spec.name, spec.id)
    (gate or governor.Gate(governor.limits_of(settings), label)).admit(connections.source)
    query: str = spec.query_select
    parameters: Parameters = _parameters(spec, company, logical_date, lookback_days)
    cursor = cursor_request(connections, company, spec, reset_watermark=reset_watermark)
    with source_session(connections, settings) as conn:
        try:
            found: Horizon | None = None
            if cursor is not None:
                query, parameters, kind, _ = narrowed(conn, query, parameters, cursor)
                found = planning_horizon(conn, query, parameters, cursor, kind)
                if not found.guarded:
                    log.warning("%s: %s", table_label(company.alias, spec.name, spec.id), UNGUARDED_NOTE)
            chunks = plan_chunks(conn, query, parameters, spec.chunk_column, spec.chunk_rows)
            return [dataclasses.replace(c, horizon=found) for c in chunks]
        except ConfigError as exc:
            raise ConfigError(f"{table_label(company.alias, spec.name, spec.id)}: {exc}") from exc


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
    reset_watermark: bool = False,
    gate: governor.Gate | None = None,
) -> Manifest:
    """Extract one table (or one chunk of it) for one run into a new folder of the company's bucket.

    Each call is a new attempt with a new extract id and a folder of its own, so it never touches
    what another attempt or run of the same date wrote; its ``Manifest.ref`` is what the load checks.
    ``progress`` is told (rows, CSV bytes) so far after each fetched batch (the CLI's progress line).
    An incremental table's extract reads only the rows at or after its watermark (less the overlap),
    or every row on its first run or when ``reset_watermark`` is asked for.
    The governor's ``gate`` admits the extract once the source is calm and pauses it between parts
    while the source is busy (by default in-process; ``gate.waited`` adds up the seconds waited).
    """
    gate = gate or governor.Gate(governor.limits_of(settings), table_label(company.alias, spec.name, spec.id))
    gate.admit(connections.source)
    # A pause holds the open query: below the server's patience with a silent reader and its query bound.
    pacer = gate.pacer(
        connections.source,
        part_bytes=settings.part_bytes,
        max_pause=min(settings.source_stream_timeout_seconds, settings.query_timeout_seconds) / 4,
        then=progress,
    )
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
        progress=progress if pacer is None else pacer,
        cursor=cursor_request(connections, company, spec, reset_watermark=reset_watermark),
        key_columns=delete_key(connections, company, spec),
        spec_digest=spec_digest(spec),
    )
    try:
        with source_session(connections, settings) as conn:
            return extract_module.extract(conn, request)
    finally:
        if pacer is not None:
            pacer.close()
            gate.waited += pacer.waited


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
    hold: bool = False,
) -> load_module.LoadResult:
    """Load exactly the manifests an extract (or every chunk of it) reported into the company's schema.

    Each manifest must still have the extract id and sha256 its extract reported, and chunked ones
    must be every chunk of one plan; otherwise the load refuses and the target is left as it was.
    ``allow_shrink`` (a manual run's choice) lifts the swap guard; ``company_tables`` are the company's
    report tables, which tell a seed-era company schema from somebody else's. ``hold`` (the company
    publishes its day together): a swap leaves its shadow ready for the publish (``publication``).
    """
    where = table_label(company.alias, spec.name, spec.id)
    digest = spec_digest(spec)  # of the spec as the admin row has it, before this run's overrides
    spec = with_overrides(spec, load_mode)
    guard = swap_guard(settings, spec, allow_shrink)
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
        schema_evolution=spec.schema_evolution,
        window_end=window_end(spec, logical_date),
        hold=hold and joins(spec.load_mode),
        spec_digest=digest,
    )
    with bounds_named(settings, source=False), opened(connections.target()) as conn:
        # The opener lets a swap open its extra sessions the same way (same provider, same options).
        return load_module.load(MySqlTarget(conn, settings, opener=connections.target), request)


def swap_guard(settings: Settings, spec: TableSpec, allow_shrink: bool) -> SwapGuard:
    """How much a swap of this table may take away; ``allow_shrink`` (a manual run's choice) lifts the guard."""
    if allow_shrink:
        return SwapGuard(allow_empty=True, max_shrink_percent=100)
    shrink = settings.swap_max_shrink_percent if spec.max_shrink_percent is None else spec.max_shrink_percent
    return SwapGuard(allow_empty=spec.allow_empty_swap, max_shrink_percent=shrink)


def window_end(spec: TableSpec, logical_date: dt.datetime) -> dt.datetime | None:
    """Where the query's rows end, when it is bounded by the run's window (``%(date_to)s``): the start of the
    logical date's day, UTC. None for a query that reads up to its snapshot."""
    if "date_to" not in spec.named_parameters:
        return None
    day = window_for(logical_date, 0).date_to
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def publish_day(
    connections: Connections,
    settings: Settings,
    company: Company,
    day: Sequence[DayTable],
    *,
    partial: bool,
    company_tables: Sequence[str] | None = None,
) -> Publication:
    """Publish the company's day: every ready table at once, or none (``publication.publish``)."""
    label = f"company {company.alias!r} (companies row id={company.id})"
    with bounds_named(settings, source=False), opened(connections.target()) as conn:
        target = MySqlTarget(conn, settings)
        return publication.publish(
            target,
            company.schema,
            label,
            day,
            partial=partial,
            lock_timeout_seconds=settings.table_lock_timeout_seconds,
            company_tables=company_tables,
        )


def verify_table(
    connections: Connections,
    company: Company,
    spec: TableSpec,
    logical_date: dt.datetime,
    *,
    lookback_days: int | None = None,
    settings: Settings | None = None,
) -> verify_module.Verdict:
    """Compare the table's source query (bound for this run) with its target table, on the servers.

    The whole target table is compared, so a table that accumulates look-back windows (``upsert``
    with a date window) matches only with a look-back covering its history.
    """
    parameters = _parameters(spec, company, logical_date, lookback_days)
    settings = settings or Settings.from_env()
    with source_session(connections, settings) as source, opened(connections.target()) as target_conn:
        target = MySqlTarget(target_conn, settings)
        unique = [k[0] for k in target.unique_keys(company.schema, spec.target.table) if len(k) == 1]
        keys = [k for k in (spec.chunk_column, *unique) if k]
        return verify_module.verify(
            source,
            spec.query_select,
            parameters,
            target_conn,
            company.schema,
            spec.target.table,
            compared_columns(source, spec, parameters),
            keys,
        )


def compared_columns(source: Any, spec: TableSpec, parameters: Parameters) -> Sequence[str]:
    """The columns verify and reconcile compare: query_insert's, or for an ``evolve`` table every column
    the query returns (evolution keeps them all in the target, added ones too)."""
    if spec.schema_evolution == "evolve":
        return [str(d[0]) for d in probe_columns(source, spec.query_select, parameters)]
    return spec.target.columns


def verify_after_load(
    connections: Connections,
    company: Company,
    spec: TableSpec,
    logical_date: dt.datetime,
    result: load_module.LoadResult,
) -> None:
    """When the table's row asks for it (``verify_after_load``), verify a load that loaded something.

    MismatchError names the first differing key range; the loaded rows stay (they committed).
    """
    if not spec.verify_after_load or result.skipped:
        return
    verdict = verify_table(connections, company, spec, logical_date)
    if not verdict.matches:
        label = table_label(company.alias, spec.name, spec.id)
        raise MismatchError(f"{label}: verify after load: {verdict.describe()}")

"""CSV parts in S3 -> the company's target schema, all or nothing.

Parts are streamed from S3 to local files exactly as the manifests list them (checksums verified)
while earlier parts load: one after another, or for a swap over several target sessions at once.
How the rows become visible is the load mode's business (``report_pipeline.modes``): ``upsert``
loads every part and the ledger row in one transaction; ``swap`` loads a shadow table and swaps it
in with one RENAME. The target is reached only through the ``Target``
interface (``report_pipeline.target``). What is checked before the target is touched: ``intake`` (manifests,
the engine's abilities) and ``columnmatch`` (columns); parts reach local files through ``partfiles``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from report_pipeline import asof, ownership
from report_pipeline.attempts import DEFAULT_MAX_AGE, ThisLoad, previously_loaded, remove_stale_attempts
from report_pipeline.columnmatch import (
    column_problems,
    evolution_of,
    load_columns,
    name_problem,
    repeated_problem,
)
from report_pipeline.config import table_label
from report_pipeline.csvformat import merge_encodings
from report_pipeline.errors import RefusedError, ReportPipelineError
from report_pipeline.evolution import refusal_message
from report_pipeline.firstload import FirstLoadDeclined, by_shadow
from report_pipeline.guards import SwapGuard
from report_pipeline.incremental.cursor import merge_ranges
from report_pipeline.incremental.deletes import merge_keys
from report_pipeline.intake import capability_problem, load_key_of, oldest_snapshot, read_manifests, spec_problem
from report_pipeline.job import LoadJob
from report_pipeline.manifest import SUCCESS_NAME, Manifest, ManifestRef
from report_pipeline.modes import LoadStrategy
from report_pipeline.partfiles import key_parts, local_parts
from report_pipeline.publication import HeldSwap, held
from report_pipeline.storage import Bucket
from report_pipeline.strategies import strategy_for
from report_pipeline.target import Catalogue, Target
from report_pipeline.validation import InsertTarget
from report_pipeline.vocabulary import DEFAULT_SCHEMA_EVOLUTION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadRequest:
    """One load: which manifests, into which schema and table, how."""

    company: str
    schema: str
    target: InsertTarget
    load_mode: str
    bucket: Bucket
    manifest_keys: tuple[str, ...]
    success_key: str
    logical_date: dt.datetime
    run_id: str
    # What the extracts reported (manifest key, extract id, sha256), checked against what is read.
    expected: tuple[ManifestRef, ...] = ()
    # How messages name the load, e.g. "company 'acme' table 'orders' (tables row id=2)".
    where: str = ""
    attempt_max_age: dt.timedelta = DEFAULT_MAX_AGE
    # The company's report tables (every active spec's target), to tell its schema from a foreign one;
    # None (a caller outside the plan, e.g. a test) skips that check, not the name rules.
    company_tables: tuple[str, ...] | None = None
    # Schemas on the target's server that belong to something else (ownership.foreign_schema_problem).
    protected_schemas: Mapping[str, str] = field(default_factory=dict)
    guard: SwapGuard = field(default_factory=SwapGuard)
    lock_timeout_seconds: int = 1800
    # tables.schema_evolution: "fail" (columns as query_insert names them) or "evolve" (evolution.py).
    schema_evolution: str = DEFAULT_SCHEMA_EVOLUTION
    # ``manifest.spec_digest`` of the table spec this load runs; a manifest made under another is refused.
    spec_digest: str | None = None

    @property
    def label(self) -> str:
        """How refusals name this load: company, table and admin row when known."""
        return self.where or table_label(self.company, self.target.table)

    # Target sessions a swap loads its shadow over (REPORTS_LOAD_PARALLELISM); needs a target that forks.
    parallelism: int = 1
    # Swap: build the shadow's plain secondary indexes after the rows (REPORTS_SWAP_DEFER_INDEXES).
    defer_indexes: bool = False
    # Who loads the rows instead of ``load_mode``'s strategy (a reconcile's repair, ``report_pipeline.repair``).
    strategy: Callable[[LoadJob], LoadStrategy] | None = None
    # The end of the run's window when the query is bounded by it (``%(date_to)s``): caps the as-of.
    window_end: dt.datetime | None = None
    # Swap: leave the shadow loaded and checked for the company's publish (``publication``), not swapped in.
    hold: bool = False


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    rows: int
    parts: int
    csv_bytes: int
    seconds: float
    load_key: str
    skipped: bool = False
    # Why nothing was loaded: "already-loaded" (a retry of a load that committed), "older-window"
    # (a swap of an older logical date than the one already swapped in) or "older-extract" (an
    # incremental extract older than the one already loaded).
    skip_reason: str | None = None
    # The rows wait in a shadow for the company's publish (``publication``): not live yet.
    held: bool = False


def schema_problem(target: Catalogue, request: LoadRequest) -> str | None:
    """Why the request's target schema is not the company's to write (ownership), or None."""
    problem = ownership.foreign_schema_problem(request.schema, request.protected_schemas)
    if problem:
        return problem
    if not target.schema_exists(request.schema):
        return f"target schema {request.schema!r} does not exist; create it with `report-pipeline onboard`"
    if request.company_tables is None:
        return None
    return ownership.adoption_problem(request.schema, target.tables(request.schema), request.company_tables)


def load(target: Target, request: LoadRequest) -> LoadResult:
    """Load the request's manifests into the target; the target is unchanged unless it all succeeds.

    Loads of one target table run one at a time (the target's writer lock, held until the success
    marker is written). A load whose manifests were already loaded (same extract ids, recorded in
    ``report_loads``) is skipped, so a retry after a lost acknowledgement never loads twice; it still
    writes the ``_SUCCESS`` marker, which the attempt that loaded may have died before writing. A
    failure is logged with its reason and re-raised, its message naming the company, table and admin
    row; local part files are removed.
    """
    started = time.monotonic()
    try:
        return _load(target, request, started)
    except ReportPipelineError as exc:
        _log_failure(request, started, exc)
        if request.where and not str(exc).startswith(request.where):
            raise type(exc)(f"{request.where}: {exc}") from exc
        raise
    except BaseException as exc:
        _log_failure(request, started, exc)
        raise


def _log_failure(request: LoadRequest, started: float, exc: BaseException) -> None:
    log.error(
        "load of %s.%s (%s) from s3://%s failed after %.2f s: %s: %s",
        request.schema,
        request.target.table,
        request.load_mode,
        request.bucket.name,
        time.monotonic() - started,
        type(exc).__name__,
        exc,
    )


def _load(target: Target, request: LoadRequest, started: float) -> LoadResult:
    manifests = read_manifests(request.bucket, request.manifest_keys, request.expected, request.label)
    for manifest in manifests:
        problem = spec_problem(manifest, request.label, request.bucket.name, request.spec_digest)
        if problem:
            raise RefusedError(problem)
    result_columns = [c.name for c in manifests[0].columns]
    if request.schema_evolution == "evolve":
        mismatch = repeated_problem(result_columns)  # the rest is the evolution's to judge, under the lock
    else:
        mismatch = name_problem(result_columns, request.target)
    if mismatch:
        raise RefusedError(mismatch)
    problem = schema_problem(target, request)
    if problem:
        raise RefusedError(problem)
    # A repair (request.strategy) rewrites chosen rows of the live table: it swaps nothing, whatever the mode.
    mode = None if request.strategy is not None else request.load_mode
    deletes = any(m.keys is not None for m in manifests)
    problem = capability_problem(target.capabilities(), request.label, mode, request.hold, deletes)
    if problem:
        raise RefusedError(problem)
    schema, table = request.schema, request.target.table
    with target.writer_lock(schema, table, request.lock_timeout_seconds):
        return _load_locked(target, request, manifests, result_columns, started)


def _load_locked(
    target: Target, request: LoadRequest, manifests: Sequence[Manifest], result_columns: Sequence[str], started: float
) -> LoadResult:
    schema, table = request.schema, request.target.table
    load_key = load_key_of(manifests)
    target.ensure_ledger(schema)
    target.ensure_as_of(schema)
    done = target.find_load(schema, load_key)
    if done is not None:
        log.info("%s.%s: these extracts were already loaded (%s rows); nothing to do", schema, table, done.rows_loaded)
        _mark_success(request, manifests, done.rows_loaded, load_key)
        return LoadResult(
            done.rows_loaded, 0, 0, time.monotonic() - started, load_key, skipped=True, skip_reason="already-loaded"
        )
    evolution = None
    if request.schema_evolution == "evolve":
        # Planned under the writer lock, so no other load alters the table between this look and the ALTER.
        columns = [(c.name, c.sql_type) for c in manifests[0].columns]
        evolution = evolution_of(target, schema, request.target, columns)
    job = LoadJob(
        target=target,
        schema=schema,
        table=table,
        columns=load_columns(result_columns, request.target),
        encodings=tuple(merge_encodings([[c.encoding for c in m.columns] for m in manifests])),
        duplicates=request.target.mode,
        expected_rows=sum(m.rows for m in manifests),
        logical_date=request.logical_date,
        run_id=request.run_id,
        load_key=load_key,
        manifest_keys=request.manifest_keys,
        guard=request.guard,
        cursor=merge_ranges([m.cursor for m in manifests]),
        keys=merge_keys([m.keys for m in manifests]),
        # More sessions than parts would only cost connections (most company tables are one part).
        parallelism=max(1, min(request.parallelism, sum(1 for m in manifests for p in m.parts if p.rows))),
        defer_indexes=request.defer_indexes,
        changes=evolution.changes if evolution is not None else (),
        snapshot_at=oldest_snapshot(manifests),
        collations=tuple(c.collation for c in manifests[0].columns),
        as_of=asof.of_manifests(manifests, table, request.logical_date, request.run_id, load_key, request.window_end),
        company_tables=request.company_tables,
    )
    strategy = (request.strategy or strategy_for(request.load_mode))(job)
    skip_reason = strategy.refusal()
    if skip_reason is not None:
        return LoadResult(0, 0, 0, time.monotonic() - started, load_key, skipped=True, skip_reason=skip_reason)
    if evolution is not None:
        if evolution.refusals:
            raise RefusedError(refusal_message(f"{schema}.{table}", evolution))
    else:
        problems = column_problems(target, schema, request.target, result_columns)
        if problems:
            raise RefusedError("; ".join(problems))
    # A reconcile's repair (request.strategy) is no first load: it rewrites chosen rows of a live table.
    chosen = held(strategy) if request.hold else strategy
    chosen = chosen if request.strategy is not None else by_shadow(chosen)
    try:
        loaded = _run(chosen, request.bucket, manifests)
    except FirstLoadDeclined as exc:
        log.info("%s.%s: %s; loading it as %s in one transaction", schema, table, exc, request.load_mode)
        loaded = _run(type(strategy)(replace(strategy.job, changes=())), request.bucket, manifests)  # evolved already
    _mark_success(request, manifests, loaded, load_key)
    seconds = time.monotonic() - started
    log.info("loaded %s.%s: %d rows in %.2f s (%s)", schema, table, loaded, seconds, request.load_mode)
    csv_bytes = sum(m.csv_bytes for m in manifests)
    parts = sum(len(m.parts) for m in manifests)
    return LoadResult(loaded, parts, csv_bytes, seconds, load_key, held=isinstance(chosen, HeldSwap))


def _run(strategy: LoadStrategy, bucket: Bucket, manifests: Sequence[Manifest]) -> int:
    """Prepare, load the parts (and key parts), finish; on any failure the strategy undoes what it did."""
    try:
        strategy.prepare()
        with tempfile.TemporaryDirectory(prefix="rp-load-") as directory:
            # Closed before the directory goes, so no download writes into it afterwards.
            with contextlib.closing(local_parts(bucket, manifests, directory, strategy.sessions)) as parts:
                loaded = strategy.load_parts(parts)
            with contextlib.closing(local_parts(bucket, manifests, directory, 1, key_parts)) as keys:
                strategy.delete_missing(keys)
        strategy.finish(loaded)
    except BaseException:
        strategy.abort()
        raise
    return loaded


def _mark_success(request: LoadRequest, manifests: Sequence[Manifest], rows: int, load_key: str) -> None:
    """Remove what older extract attempts of this table and date left, then write ``_SUCCESS``."""
    this = ThisLoad(
        folder=request.success_key.rsplit("/", 1)[0],
        run_id=request.run_id,
        manifests=manifests,
        loaded_before=previously_loaded(request.bucket, request.success_key),
        max_age=request.attempt_max_age,
    )
    remove_stale_attempts(request.bucket, this)
    body = {
        "company": request.company,
        "table": request.target.table,
        "schema": request.schema,
        "rows": rows,
        "load_key": load_key,
        "manifests": list(request.manifest_keys),
        "run_id": request.run_id,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    request.bucket.put(request.success_key, json.dumps(body, indent=1).encode(), "application/json")


__all__ = ["SUCCESS_NAME", "LoadRequest", "LoadResult", "column_problems", "load", "read_manifests"]

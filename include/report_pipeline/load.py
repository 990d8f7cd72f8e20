"""CSV parts in S3 -> the company's target schema, all or nothing.

Parts are streamed from S3 to local files exactly as the manifests list them (checksums verified)
while earlier parts load: one after another, or for a swap over several target sessions at once.
How the rows become visible is the load mode's business (``report_pipeline.modes``): ``upsert``
loads every part and the ledger row in one transaction; ``swap`` loads a shadow table and swaps it
in with one RENAME. The target is reached only through the ``Target``
interface (``report_pipeline.target``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from report_pipeline.csvformat import merge_encodings
from report_pipeline.errors import TransferError
from report_pipeline.manifest import SUCCESS_NAME, Manifest, Part
from report_pipeline.modes import LoadJob, strategy_for
from report_pipeline.sql import InsertTarget
from report_pipeline.storage import Bucket
from report_pipeline.target import Target

log = logging.getLogger(__name__)

_INFLATE_STEP = 4 * 1024 * 1024


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
    # Target sessions a swap loads its shadow over (REPORTS_LOAD_PARALLELISM); needs a target that forks.
    parallelism: int = 1
    # Swap: build the shadow's plain secondary indexes after the rows (REPORTS_SWAP_DEFER_INDEXES).
    defer_indexes: bool = False


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    rows: int
    parts: int
    csv_bytes: int
    seconds: float
    load_key: str
    skipped: bool = False
    # Why nothing was loaded: "already-loaded" (a retry of a load that committed) or "older-window"
    # (a swap of an older logical date than the one already swapped in).
    skip_reason: str | None = None


def read_manifests(bucket: Bucket, keys: Sequence[str]) -> list[Manifest]:
    """Read the manifests a load was given; every one must exist and describe the same columns."""
    if not keys:
        raise TransferError("the load was given no manifest to read")
    manifests = [Manifest.from_json(bucket.get(k)) for k in keys]
    columns = [(c.name, c.encoding) for c in manifests[0].columns]
    for m in manifests[1:]:
        other = [(c.name, c.encoding) for c in m.columns]
        # An all-NULL column has no values to tell its encoding; names must still agree.
        if [n for n, _ in other] != [n for n, _ in columns]:
            raise TransferError(f"manifest {m.key} has columns {other}, expected {columns}")
    return manifests


def column_problems(target: Target, schema: str, insert: InsertTarget, width: int) -> list[str]:
    """What keeps ``width`` CSV columns from loading into the insert target; empty when they fit.

    One rule for the load (which refuses to start) and ``report-pipeline validate`` (which lists it).
    """
    existing = {c.lower() for c in target.columns(schema, insert.table)}
    if not existing:
        return [f"target table {schema}.{insert.table} does not exist"]
    problems = []
    missing = [c for c in insert.columns if c.lower() not in existing]
    if missing:
        problems.append(f"target table {schema}.{insert.table} has no column(s) {missing}")
    if width != len(insert.columns):
        problems.append(
            f"query_select returns {width} column(s) but query_insert names {len(insert.columns)} "
            f"for {schema}.{insert.table}"
        )
    return problems


def _fetch_part(bucket: Bucket, part: Part, compressed: bool, directory: str) -> str:
    """Stream one part to a local file, uncompressed, for the bulk load; verified against the manifest.

    Memory stays at one download piece plus at most ``_INFLATE_STEP`` of inflated output, however
    large the part or well it compresses.
    """
    path = os.path.join(directory, hashlib.sha1(part.key.encode()).hexdigest() + ".csv")
    with open(path, "wb") as out:
        if compressed:
            inflater = zlib.decompressobj(31)

            def write(piece: bytes) -> None:
                data = piece
                while data:
                    out.write(inflater.decompress(data, _INFLATE_STEP))
                    data = inflater.unconsumed_tail

            bucket.download_checked(part.key, part.sha256, write)
            out.write(inflater.flush())
        else:
            bucket.download_checked(part.key, part.sha256, out.write)
    if os.path.getsize(path) != part.csv_bytes:
        raise TransferError(f"{part.key}: {os.path.getsize(path)} CSV bytes, manifest says {part.csv_bytes}")
    return path


def _local_parts(
    bucket: Bucket, manifests: Sequence[Manifest], directory: str, ahead: int = 1
) -> Generator[tuple[Part, str], None, None]:
    """Each non-empty part as a verified local file, in manifest order, ``ahead`` downloading meanwhile.

    The consumer owns a file once it is handed over and removes it when loaded, so at most
    ``ahead`` + (files being loaded) are on disk. Closing the generator cancels downloads not started
    and waits for the running ones, so nothing writes into ``directory`` after it returns.
    """
    work = [(p, m.compression == "gzip") for m in manifests for p in m.parts if p.rows]
    pool = ThreadPoolExecutor(max(1, ahead), thread_name_prefix="rp-fetch")
    pending: deque[tuple[Part, Future[str]]] = deque()
    following = iter(work)
    try:

        def top_up() -> None:
            while len(pending) < max(1, ahead):
                item = next(following, None)
                if item is None:
                    return
                pending.append((item[0], pool.submit(_fetch_part, bucket, item[0], item[1], directory)))

        top_up()
        while pending:
            part, future = pending.popleft()
            path = future.result()
            top_up()
            yield part, path
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def load_key_of(manifests: Sequence[Manifest]) -> str:
    """The identity of a load: the set of extracts it loads, whatever their order."""
    return hashlib.sha256(",".join(sorted(m.extract_id for m in manifests)).encode()).hexdigest()


def load(target: Target, request: LoadRequest) -> LoadResult:
    """Load the request's manifests into the target; the target is unchanged unless it all succeeds.

    A load whose manifests were already loaded (same extract ids, recorded in ``report_loads``) is
    skipped, so a retry after a lost acknowledgement never loads twice; it still writes the
    ``_SUCCESS`` marker, which the attempt that loaded may have died before writing. A failure is
    logged with its reason and re-raised for the caller's retries; local part files are removed.
    """
    started = time.monotonic()
    try:
        return _load(target, request, started)
    except BaseException as exc:
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
        raise


def _load(target: Target, request: LoadRequest, started: float) -> LoadResult:
    manifests = read_manifests(request.bucket, request.manifest_keys)
    load_key = load_key_of(manifests)
    schema, table = request.schema, request.target.table
    target.ensure_ledger(schema)
    done = target.find_load(schema, load_key)
    if done is not None:
        log.info("%s.%s: these extracts were already loaded (%s rows); nothing to do", schema, table, done.rows_loaded)
        _mark_success(request, manifests, done.rows_loaded, load_key)
        return LoadResult(
            done.rows_loaded, 0, 0, time.monotonic() - started, load_key, skipped=True, skip_reason="already-loaded"
        )
    job = LoadJob(
        target=target,
        schema=schema,
        table=table,
        columns=request.target.columns,
        encodings=tuple(merge_encodings([[c.encoding for c in m.columns] for m in manifests])),
        duplicates=request.target.mode,
        expected_rows=sum(m.rows for m in manifests),
        logical_date=request.logical_date,
        run_id=request.run_id,
        load_key=load_key,
        manifest_keys=request.manifest_keys,
        # More sessions than parts would only cost connections (most company tables are one part).
        parallelism=max(1, min(request.parallelism, sum(1 for m in manifests for p in m.parts if p.rows))),
        defer_indexes=request.defer_indexes,
    )
    strategy = strategy_for(request.load_mode)(job)
    skip_reason = strategy.refusal()
    if skip_reason is not None:
        return LoadResult(0, 0, 0, time.monotonic() - started, load_key, skipped=True, skip_reason=skip_reason)
    problems = column_problems(target, schema, request.target, len(manifests[0].columns))
    if problems:
        raise TransferError("; ".join(problems))
    try:
        strategy.prepare()
        with tempfile.TemporaryDirectory(prefix="rp-load-") as directory:
            # Closed before the directory goes, so no download writes into it afterwards.
            with contextlib.closing(_local_parts(request.bucket, manifests, directory, strategy.sessions)) as parts:
                loaded = strategy.load_parts(parts)
        strategy.finish(loaded)
    except BaseException:
        strategy.abort()
        raise
    _mark_success(request, manifests, loaded, load_key)
    seconds = time.monotonic() - started
    log.info("loaded %s.%s: %d rows in %.2f s (%s)", schema, table, loaded, seconds, request.load_mode)
    csv_bytes = sum(m.csv_bytes for m in manifests)
    return LoadResult(loaded, sum(len(m.parts) for m in manifests), csv_bytes, seconds, load_key)


def _remove_stale_objects(request: LoadRequest, manifests: Sequence[Manifest]) -> None:
    """Delete what an earlier run of this table and date left that these manifests do not list.

    A re-run with fewer chunks, or unchunked after chunked, would otherwise leave old chunk folders
    beside the new parts; the folder belongs to one table and one logical date only.
    """
    folder = request.success_key.rsplit("/", 1)[0] + "/"
    keep = {request.success_key, *request.manifest_keys, *(p.key for m in manifests for p in m.parts)}
    stale = [k for k in request.bucket.keys(folder) if k not in keep]
    if stale:
        log.info("removing %d stale object(s) under s3://%s/%s", len(stale), request.bucket.name, folder)
        request.bucket.delete(stale)


def _mark_success(request: LoadRequest, manifests: Sequence[Manifest], rows: int, load_key: str) -> None:
    _remove_stale_objects(request, manifests)
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

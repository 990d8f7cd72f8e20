"""CSV parts in S3 -> the company's target MySQL schema, all or nothing.

Parts are read exactly as the manifest lists them (checksums verified) and loaded with
``LOAD DATA LOCAL INFILE``; the next part downloads while the current one loads. Any LOAD DATA
warning (a truncated or converted value) fails the load instead of keeping a changed value.

- ``upsert``: every part and the ``report_loads`` row land in one transaction.
- ``swap``: parts load into a shadow table built like the target; after its row count matches the
  manifest it replaces the target with one atomic ``RENAME TABLE``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from report_pipeline.errors import TransferError
from report_pipeline.extract import prepare_session
from report_pipeline.manifest import LOAD_DATA_FORMAT, SUCCESS_NAME, Manifest, Part
from report_pipeline.storage import Bucket
from report_pipeline.validation import InsertTarget, quote_identifier

log = logging.getLogger(__name__)

REPORT_LOADS = "report_loads"
REPORT_LOADS_DDL = """CREATE TABLE IF NOT EXISTS {schema}.`report_loads` (
  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `table_name` VARCHAR(64) NOT NULL,
  `logical_date` DATETIME(6) NOT NULL,
  `run_id` VARCHAR(250) NOT NULL,
  `rows_loaded` BIGINT UNSIGNED NOT NULL,
  `finished_at` DATETIME(6) NOT NULL,
  `load_mode` VARCHAR(16) NOT NULL,
  `load_key` CHAR(64) NOT NULL,
  `manifest_keys` TEXT NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_report_loads_load_key` (`load_key`),
  KEY `ix_report_loads_table_date` (`table_name`, `logical_date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

_DUPLICATE_KEY = 1062
_RECORDS = re.compile(rb"Records:\s*(\d+)")
_SKIPPED = re.compile(rb"Skipped:\s*(\d+)")


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


def _encodings(manifests: Sequence[Manifest]) -> list[str]:
    encodings: list[str] = [c.encoding for c in manifests[0].columns]
    for m in manifests[1:]:
        for i, c in enumerate(m.columns):
            if c.encoding != "text":
                encodings[i] = c.encoding
    return encodings


def _fetch_part(bucket: Bucket, part: Part, compressed: bool, directory: str) -> str:
    """Download one part, verify it, and write it uncompressed to a local file for LOAD DATA."""
    body = bucket.get_checked(part.key, part.sha256)
    path = os.path.join(directory, hashlib.sha1(part.key.encode()).hexdigest() + ".csv")
    with open(path, "wb") as out:
        if compressed:
            inflater = zlib.decompressobj(31)
            view = memoryview(body)
            for start in range(0, len(view), 4 * 1024 * 1024):
                out.write(inflater.decompress(view[start : start + 4 * 1024 * 1024]))
            out.write(inflater.flush())
        else:
            out.write(body)
    del body
    if os.path.getsize(path) != part.csv_bytes:
        raise TransferError(f"{part.key}: {os.path.getsize(path)} CSV bytes, manifest says {part.csv_bytes}")
    return path


def target_column_problems(cursor: Any, schema: str, target: InsertTarget, width: int) -> list[str]:
    """What keeps ``width`` CSV columns from loading into the insert target; empty when they fit.

    One rule for the load (which refuses to start) and ``report-pipeline validate`` (which lists it).
    """
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, target.table),
    )
    existing = {str(r[0]).lower() for r in cursor.fetchall()}
    if not existing:
        return [f"target table {schema}.{target.table} does not exist"]
    problems = []
    missing = [c for c in target.columns if c.lower() not in existing]
    if missing:
        problems.append(f"target table {schema}.{target.table} has no column(s) {missing}")
    if width != len(target.columns):
        problems.append(
            f"query_select returns {width} column(s) but query_insert names {len(target.columns)} "
            f"for {schema}.{target.table}"
        )
    return problems


def load_statement(schema: str, table: str, target: InsertTarget, encodings: Sequence[str], mode: str) -> str:
    """The LOAD DATA statement for one part (the file name is a bound parameter)."""
    columns: list[str] = []
    assignments: list[str] = []
    for i, (name, encoding) in enumerate(zip(target.columns, encodings, strict=False)):
        column = quote_identifier(name)
        if encoding == "text":
            columns.append(column)
            continue
        columns.append(f"@_rp_c{i}")
        expression = f"UNHEX(@_rp_c{i})" if encoding == "hex" else f"CAST(@_rp_c{i} AS UNSIGNED)"
        assignments.append(f"{column} = {expression}")
    duplicates = {"replace": "REPLACE ", "ignore": "IGNORE "}.get(mode, "")
    statement = (
        f"LOAD DATA LOCAL INFILE %s {duplicates}INTO TABLE {quote_identifier(schema)}.{quote_identifier(table)} "
        f"{LOAD_DATA_FORMAT} ({', '.join(columns)})"
    )
    if assignments:
        statement += " SET " + ", ".join(assignments)
    return statement


def _load_parts(
    conn: Any,
    request: LoadRequest,
    manifests: Sequence[Manifest],
    statement: str,
    allowed_warnings: frozenset[int],
) -> tuple[int, int]:
    """Run LOAD DATA for every part in manifest order, fetching the next part meanwhile."""
    import MySQLdb

    work = [(p, m.compression == "gzip") for m in manifests for p in m.parts if p.rows]
    loaded = 0
    csv_bytes = 0
    cursor = conn.cursor()
    with tempfile.TemporaryDirectory(prefix="rp-load-") as directory, ThreadPoolExecutor(1) as pool:
        pending: Future[str] | None = None
        if work:
            pending = pool.submit(_fetch_part, request.bucket, work[0][0], work[0][1], directory)
        for index, (part, _) in enumerate(work):
            assert pending is not None
            path = pending.result()
            if index + 1 < len(work):
                following, compressed = work[index + 1]
                pending = pool.submit(_fetch_part, request.bucket, following, compressed, directory)
            try:
                cursor.execute(statement, (path,))
            except (MySQLdb.DataError, MySQLdb.IntegrityError) as exc:
                # Strict mode turns what would be a warning into an error; the verdict is the same.
                raise TransferError(f"loading {part.key} would change values, so nothing was loaded: {exc}") from exc
            # Read the statement's info line before anything else runs on the connection.
            raw_info = conn.info() or b""
            info = raw_info if isinstance(raw_info, bytes) else raw_info.encode()
            match = _RECORDS.search(info)
            records = int(match.group(1)) if match else -1
            skipped = _SKIPPED.search(info)
            _raise_on_warnings(conn, cursor, part.key, allowed_warnings, int(skipped.group(1)) if skipped else 0)
            if records != part.rows:
                raise TransferError(f"{part.key}: LOAD DATA read {records} rows, the manifest says {part.rows}")
            loaded += records
            csv_bytes += part.csv_bytes
            os.remove(path)
    cursor.close()
    return loaded, csv_bytes


def _raise_on_warnings(conn: Any, cursor: Any, key: str, allowed: frozenset[int], skipped: int) -> None:
    """Fail on any warning but the allowed ones (duplicate keys under INSERT IGNORE).

    The server keeps only the first warnings, so allowed duplicates are also counted: each skipped
    row is one duplicate-key warning, and any warning beyond them is a changed value.
    """
    count = conn.warning_count()
    if not count:
        return
    cursor.execute("SHOW WARNINGS LIMIT 20")
    listed = cursor.fetchall()
    warnings = [w for w in listed if int(w[1]) not in allowed]
    if warnings or (allowed and count > skipped):
        shown = "; ".join(f"{w[0]} {w[1]}: {w[2]}" for w in (warnings or listed)[:5])
        raise TransferError(
            f"loading {key} would change values, so nothing was loaded ({count} warnings, "
            f"{skipped} duplicate rows skipped): {shown}"
        )


def _load_key(manifests: Sequence[Manifest]) -> str:
    return hashlib.sha256(",".join(sorted(m.extract_id for m in manifests)).encode()).hexdigest()


def _record(cursor: Any, request: LoadRequest, rows: int, load_key: str, mode: str) -> None:
    cursor.execute(
        f"INSERT INTO {quote_identifier(request.schema)}.`report_loads` "
        "(table_name, logical_date, run_id, rows_loaded, finished_at, load_mode, load_key, manifest_keys) "
        "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s, %s)",
        (
            request.target.table,
            request.logical_date.astimezone(dt.UTC).replace(tzinfo=None),
            request.run_id,
            rows,
            mode,
            load_key,
            json.dumps(list(request.manifest_keys)),
        ),
    )


def shadow_names(table: str) -> tuple[str, str]:
    """The shadow (new copy) and retired (old copy) table names a swap uses for ``table``."""
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"_rp_new_{table[:40]}_{digest}", f"_rp_old_{table[:40]}_{digest}"


def load(conn: Any, request: LoadRequest) -> LoadResult:
    """Load the request's manifests into the target; the target is unchanged unless it all succeeds.

    A load whose manifests were already loaded (same extract ids, recorded in ``report_loads``) is
    skipped, so a retry after a lost acknowledgement never loads twice; it still writes the
    ``_SUCCESS`` marker, which the attempt that loaded may have died before writing. A failure is
    logged with its reason and re-raised for the caller's retries; local part files are removed.
    """
    started = time.monotonic()
    try:
        return _load(conn, request, started)
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


def _load(conn: Any, request: LoadRequest, started: float) -> LoadResult:
    manifests = read_manifests(request.bucket, request.manifest_keys)
    expected = sum(m.rows for m in manifests)
    load_key = _load_key(manifests)
    schema = quote_identifier(request.schema)
    table = request.target.table
    prepare_session(conn)
    conn.autocommit(True)
    cursor = conn.cursor()
    cursor.execute(REPORT_LOADS_DDL.format(schema=schema))
    cursor.execute(f"SELECT rows_loaded FROM {schema}.`report_loads` WHERE load_key = %s", (load_key,))
    done = cursor.fetchone()
    if done is not None:
        log.info("%s.%s: these extracts were already loaded (%s rows); nothing to do", request.schema, table, done[0])
        _mark_success(request, manifests, int(done[0]), load_key)
        return LoadResult(
            int(done[0]), 0, 0, time.monotonic() - started, load_key, skipped=True, skip_reason="already-loaded"
        )
    if request.load_mode == "swap":
        newer = _newer_swap(cursor, request)
        if newer is not None:
            log.warning(
                "%s.%s: not swapping in the window of %s over the newer one of %s already loaded "
                "(a backfill of an older date must not replace a full refresh with older data)",
                request.schema,
                table,
                request.logical_date.date(),
                newer,
            )
            return LoadResult(0, 0, 0, time.monotonic() - started, load_key, skipped=True, skip_reason="older-window")
    problems = target_column_problems(cursor, request.schema, request.target, len(manifests[0].columns))
    if problems:
        raise TransferError("; ".join(problems))
    encodings = _encodings(manifests)
    allowed = frozenset({_DUPLICATE_KEY}) if request.target.mode == "ignore" else frozenset()

    if request.load_mode == "swap":
        loaded, csv_bytes = _swap(conn, cursor, request, manifests, encodings, expected, load_key)
    else:
        statement = load_statement(request.schema, table, request.target, encodings, request.target.mode)
        conn.autocommit(False)
        try:
            loaded, csv_bytes = _load_parts(conn, request, manifests, statement, allowed)
            if loaded != expected:
                raise TransferError(f"loaded {loaded} rows, the manifests list {expected}")
            _record(cursor, request, loaded, load_key, "upsert")
            conn.commit()
        except BaseException:
            _rollback_quietly(conn)
            raise
    cursor.close()
    _mark_success(request, manifests, loaded, load_key)
    seconds = time.monotonic() - started
    log.info("loaded %s.%s: %d rows in %.2f s (%s)", request.schema, table, loaded, seconds, request.load_mode)
    return LoadResult(loaded, sum(len(m.parts) for m in manifests), csv_bytes, seconds, load_key)


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _newer_swap(cursor: Any, request: LoadRequest) -> dt.datetime | None:
    """The logical date of a newer full refresh of this table, if one was already swapped in."""
    cursor.execute(
        f"SELECT MAX(logical_date) FROM {quote_identifier(request.schema)}.`report_loads` "
        "WHERE table_name = %s AND load_mode = 'swap' AND logical_date > %s",
        (request.target.table, _utc_naive(request.logical_date)),
    )
    row = cursor.fetchone()
    return row[0] if row and row[0] is not None else None


def _swap(
    conn: Any,
    cursor: Any,
    request: LoadRequest,
    manifests: Sequence[Manifest],
    encodings: Sequence[str],
    expected: int,
    load_key: str,
) -> tuple[int, int]:
    schema = quote_identifier(request.schema)
    live = quote_identifier(request.target.table)
    shadow_name, retired_name = shadow_names(request.target.table)
    shadow, retired = quote_identifier(shadow_name), quote_identifier(retired_name)
    cursor.execute(f"DROP TABLE IF EXISTS {schema}.{shadow}, {schema}.{retired}")
    cursor.execute(f"CREATE TABLE {schema}.{shadow} LIKE {schema}.{live}")
    try:
        statement = load_statement(request.schema, shadow_name, request.target, encodings, "replace")
        conn.autocommit(False)
        loaded, csv_bytes = _load_parts(conn, request, manifests, statement, frozenset())
        conn.commit()
        conn.autocommit(True)
        cursor.execute(f"SELECT COUNT(*) FROM {schema}.{shadow}")
        counted = int(cursor.fetchone()[0])
        if counted != expected:
            raise TransferError(f"shadow table holds {counted} rows, the manifests list {expected}")
        # A BI session holding a transaction open on the live table would make RENAME wait (and queue
        # every new reader behind it) for lock_wait_timeout, a year by default: fail and retry instead.
        cursor.execute("SET SESSION lock_wait_timeout = 60")
        # One statement renames both, so readers see the old table or the new one, never neither.
        cursor.execute(f"RENAME TABLE {schema}.{live} TO {schema}.{retired}, {schema}.{shadow} TO {schema}.{live}")
    except BaseException:
        _rollback_quietly(conn)
        try:
            conn.autocommit(True)
            cursor.execute(f"DROP TABLE IF EXISTS {schema}.{shadow}")
        except Exception:  # noqa: BLE001 - the server may be gone; a retry drops it first thing
            log.warning("could not drop shadow table %s.%s", request.schema, shadow_name, exc_info=True)
        raise
    cursor.execute(f"DROP TABLE IF EXISTS {schema}.{retired}")
    conn.autocommit(False)
    _record(cursor, request, loaded, load_key, "swap")
    conn.commit()
    return loaded, csv_bytes


def _rollback_quietly(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - already failing; the server rolls back a dropped session itself
        log.debug("rollback failed", exc_info=True)


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


__all__ = ["SUCCESS_NAME", "LoadRequest", "LoadResult", "load", "load_statement", "read_manifests", "shadow_names"]

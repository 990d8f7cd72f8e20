"""Source MySQL -> CSV parts in S3, streamed: cursor -> part -> S3 while the query still runs.

Rows are fetched from a server-side cursor as MySQL's own text form (raw bytes, no Python Decimal or
datetime objects), which is both the fastest path and the one that loads back exactly. A background
thread compresses and uploads finished parts, so fetching, compressing and uploading overlap, and at
most a few compressed parts are held in memory. The manifest is written last.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from report_pipeline.chunks import bind_chunk
from report_pipeline.csvformat import (
    BIT,
    FLOAT,
    GEOMETRY,
    EncodingTracker,
    Hex,
    raw_converters,
    rows_formatter,
    type_name,
)
from report_pipeline.errors import TransferError
from report_pipeline.incremental.cursor import CursorRequest, MaxTracker, check_cursor, narrowed
from report_pipeline.incremental.horizon import UNGUARDED_NOTE, Writers, decide, read_server, start_snapshot
from report_pipeline.manifest import Column, KeySet, Manifest
from report_pipeline.parts import BLOCK_BYTES, PartCutter, PartUploader
from report_pipeline.session import close_quietly, prepare_session, probe_collations, probe_columns, probe_types
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql_errors import DUPLICATE_COLUMN
from report_pipeline.validation import backtick
from report_pipeline.vocabulary import Chunk, CursorKind, CursorRange, Horizon

log = logging.getLogger(__name__)

FETCH_ROWS = 10_000
# Fetches start at one row and at most double: the first rows' width is unknown, and 500 rows of
# 1 MB values (the old first fetch) held ~400 MB before the size rule below could apply.
FIRST_FETCH_ROWS = 1


@dataclass(frozen=True)
class ExtractRequest:
    """One extract: what to run, where to write, and what to call it.

    ``prefix`` is this attempt's own folder (``manifest.extract_prefix``), named after ``extract_id``;
    without an id the extract makes up a random one.
    """

    company: str
    table: str
    bucket: Bucket
    prefix: str
    query: str
    parameters: tuple[Any, ...] | Mapping[str, Any]
    logical_date: str
    run_id: str
    compress: bool = True
    part_bytes: int = 8 * 1024 * 1024
    chunk_column: str | None = None
    chunk: Chunk | None = None
    extract_id: str | None = None
    # Told (rows, CSV bytes) so far after each fetched batch, e.g. the CLI's progress line; it must be
    # cheap (the CLI throttles its printing) and never raise.
    progress: Callable[[int, int], None] | None = None
    # An incremental table's cursor and where to start reading it; None copies the query's rows as is.
    cursor: CursorRequest | None = None
    # Delete detection: also store these key columns of every row the query returns (not only of the
    # rows after the watermark), so the load can delete the target rows the source no longer has.
    key_columns: tuple[str, ...] = ()
    # ``manifest.spec_digest`` of the table spec this extract runs, recorded in its manifest.
    spec_digest: str | None = None


def _part_namer(request: ExtractRequest) -> Callable[[int], str]:
    suffix = ".csv.gz" if request.compress else ".csv"
    return lambda index: f"{request.prefix}/part-{index:05d}{suffix}"


def _exact_floats(
    conn: Any, query: str, parameters: tuple[Any, ...] | Mapping[str, Any]
) -> tuple[str, list[str] | None, list[str | None] | None]:
    """Rewrite the query so FLOAT columns arrive as DOUBLE text, which carries every float32 exactly.

    MySQL's text protocol prints FLOAT with about 6 significant digits (1000001 -> 1000000), so the
    raw text form would lose FLOAT values; CAST(col AS DOUBLE) prints the same float32 in full, and
    LOAD DATA rounds it back to the identical FLOAT. A zero-row probe finds the result's column types.
    Returns the query to run, the source type names when it was rewritten, and the result's SQL types
    (the same probe tells them; schema evolution creates columns with them).
    """
    import MySQLdb

    try:
        description, sql_types = probe_types(conn, query, parameters)
    except MySQLdb.OperationalError as exc:
        if exc.args and exc.args[0] == DUPLICATE_COLUMN:
            # Duplicate result names cannot go through a derived table; run the query as written.
            log.warning("cannot check the query's columns for FLOAT (%s); FLOAT values may be rounded", exc)
            return query, None, None
        raise
    if not any(d[1] == FLOAT for d in description):
        return query, None, sql_types
    # Result column names come from the server, not the admin row; any of them is quoted as is.
    columns = ", ".join(
        f"CAST(_rp_f.{backtick(d[0])} AS DOUBLE) AS {backtick(d[0])}" if d[1] == FLOAT else f"_rp_f.{backtick(d[0])}"
        for d in description
    )
    return f"SELECT {columns} FROM ({query}) AS _rp_f", [type_name(d[1]) for d in description], sql_types


def _extract_keys(conn: Any, request: ExtractRequest, query: str, parameters: Any) -> KeySet:
    """Stream the key columns of every row of ``query`` into ``keys-NNNNN`` parts (keys only: an index scan)."""
    import MySQLdb.cursors

    suffix = ".csv.gz" if request.compress else ".csv"
    uploader = PartUploader(request.bucket, request.compress)
    cutter = PartCutter(request.part_bytes, lambda index: f"{request.prefix}/keys-{index:05d}{suffix}")
    columns = ", ".join(f"_rp_keys.{backtick(c)}" for c in request.key_columns)
    cursor = MySQLdb.cursors.SSCursor(conn)
    try:
        cursor.execute(f"SELECT {columns} FROM ({query}) AS _rp_keys", parameters)
        description = cursor.description or ()
        type_codes = [d[1] for d in description]
        format_rows, tracker = rows_formatter(type_codes), EncodingTracker(type_codes)
        # Only text forms the target prints alike (numbers, text) make a usable checksum; hex does not.
        checksum: int | None = 0 if all(t not in (BIT, GEOMETRY) for t in type_codes) else None
        while rows := cursor.fetchmany(FETCH_ROWS):
            tracker.see(rows)
            if checksum is not None:
                if any(isinstance(v, Hex) or not isinstance(v, bytes) for r in rows for v in r):
                    checksum = None
                else:
                    checksum += sum(zlib.crc32(b"#".join(r)) for r in rows)
            for item in cutter.add(format_rows(rows)):
                uploader.send(item)
        for item in cutter.finish():
            uploader.send(item)
        parts = uploader.finish()
        cursor.close()
    except BaseException:
        uploader.abandon()
        raise
    return KeySet(
        columns=tuple(Column(d[0], type_name(d[1]), tracker.encodings[i]) for i, d in enumerate(description)),
        parts=tuple(parts),
        checksum=checksum,
    )


def _horizon(
    request: ExtractRequest, kind: CursorKind, seen: str | None, before: Writers | None, after: int | None
) -> Horizon:
    """What this extract lets the watermark become: the chunk plan's horizon, or its own snapshot's."""
    assert request.cursor is not None
    if request.chunk is not None and request.chunk.horizon is not None:
        horizon = request.chunk.horizon
    else:
        horizon = decide(kind, seen, before, after, request.cursor.pending, request.cursor.pending_writers)
    if not horizon.guarded:
        log.warning("%s.%s: %s", request.company, request.table, UNGUARDED_NOTE)
    return horizon


def extract(conn: Any, request: ExtractRequest) -> Manifest:
    """Run the request's query on ``conn`` (a mysqlclient connection) and store it as CSV parts + manifest.

    The source session is read-only, in one consistent snapshot, with UTC time zone and utf8mb4 text.
    The prefix is this attempt's own folder: nothing else writes there, so the extract never removes
    anything (what earlier attempts left is the load's cleanup, ``report_pipeline.attempts``). A failure
    is logged with its reason and re-raised for the caller's retries.
    """
    started = dt.datetime.now(dt.UTC)
    try:
        return _extract(conn, request, started)
    except BaseException as exc:
        log.error(
            "extract of %s.%s into s3://%s/%s failed after %.2f s: %s: %s",
            request.company,
            request.table,
            request.bucket.name,
            request.prefix,
            time.time() - started.timestamp(),
            type(exc).__name__,
            exc,
        )
        raise


def _extract(conn: Any, request: ExtractRequest, started: dt.datetime) -> Manifest:
    request.bucket.ensure()
    import MySQLdb.cursors

    prepare_session(conn)
    # Raw text values for this extract only; the caller's connection gets its converters back.
    caller_converters = conn.converter
    conn.converter = raw_converters()
    # Incremental: which server, the write transactions open just before the snapshot begins and the
    # transaction id counter just after (report_pipeline.incremental.horizon), so the watermark never
    # passes a row still being written. A chunk takes its plan's horizon instead.
    server = cursor_kind = None
    guarded = False
    if request.cursor is not None:
        server = read_server(conn)
        cursor_kind = check_cursor(probe_columns(conn, request.query, request.parameters), request.cursor.column)
        own = request.chunk is None or request.chunk.horizon is None
        guarded = own and not server.replica
    setup = conn.cursor()
    try:
        before, after = start_snapshot(conn, setup, cursor_kind, guarded)
        # The source's own clock at the snapshot: what orders incremental loads (no worker clock skew).
        setup.execute("SELECT UTC_TIMESTAMP(6)")
        clock = setup.fetchone()[0]
        snapshot_at = clock.decode() if isinstance(clock, bytes) else str(clock)
    finally:
        setup.close()
    query, parameters = request.query, request.parameters
    cursor_since = None
    if request.cursor is not None:
        query, parameters, cursor_kind, cursor_since = narrowed(conn, query, parameters, request.cursor, cursor_kind)
    key_query, key_parameters = request.query, request.parameters
    if request.chunk is not None:
        if request.chunk_column is None:
            raise TransferError("a chunked extract needs its chunk column")
        query, parameters = bind_chunk(request.chunk, query, request.chunk_column, parameters)
        key_query, key_parameters = bind_chunk(request.chunk, key_query, request.chunk_column, key_parameters)
    query, source_types, sql_types = _exact_floats(conn, query, parameters)
    # What a target key must tell apart (report_pipeline.collations); a duplicate-named result has none.
    collations = probe_collations(conn, query, parameters) if sql_types is not None else None

    uploader = PartUploader(request.bucket, request.compress)
    cutter = PartCutter(request.part_bytes, _part_namer(request))
    cursor = MySQLdb.cursors.SSCursor(conn)
    try:
        cursor.execute(query, parameters)
        description = cursor.description or ()
        type_codes = [d[1] for d in description]
        format_rows = rows_formatter(type_codes)
        tracker = EncodingTracker(type_codes)
        highest = None
        if request.cursor is not None and cursor_kind is not None:
            names = [str(d[0]).lower() for d in description]
            highest = MaxTracker(cursor_kind, names.index(request.cursor.column.lower()))
        fetch_rows = FIRST_FETCH_ROWS
        seen_rows = seen_bytes = 0
        while True:
            rows = cursor.fetchmany(fetch_rows)
            if not rows:
                break
            tracker.see(rows)
            if highest is not None:
                highest.see(rows)
            lines = format_rows(rows)
            for item in cutter.add(lines):
                uploader.send(item)
            # Size the next fetch so a block stays near BLOCK_BYTES: the queue holds a bounded number
            # of blocks, so this bounds memory even for very wide rows.
            batch_bytes = sum(map(len, lines)) + len(lines)
            by_size = BLOCK_BYTES * len(lines) // max(batch_bytes, 1)
            fetch_rows = max(1, min(FETCH_ROWS, 2 * len(lines), by_size))
            if request.progress is not None:
                seen_rows += len(lines)
                seen_bytes += batch_bytes
                request.progress(seen_rows, seen_bytes)
        for item in cutter.finish():
            uploader.send(item)
        parts = uploader.finish()
        cursor.close()
        # The keys come from the same snapshot as the rows, so a row is either in both or in neither.
        keys = _extract_keys(conn, request, key_query, key_parameters) if request.key_columns else None
        conn.rollback()
        conn.converter = caller_converters
    except BaseException:
        uploader.abandon()
        # Closing an unbuffered cursor would read the rest of the result first; drop the session.
        close_quietly(conn)
        raise

    horizon = None
    if request.cursor is not None and cursor_kind is not None and highest is not None:
        horizon = _horizon(request, cursor_kind, highest.value, before, after)
    manifest = Manifest(
        bucket=request.bucket.name,
        prefix=request.prefix,
        extract_id=request.extract_id or uuid.uuid4().hex,
        company=request.company,
        table=request.table,
        logical_date=request.logical_date,
        run_id=request.run_id,
        columns=tuple(
            Column(
                d[0],
                source_types[i] if source_types else type_name(d[1]),
                tracker.encodings[i],
                sql_types[i] if sql_types and len(sql_types) == len(description) else None,
                collations[i] if collations and len(collations) == len(description) else None,
            )
            for i, d in enumerate(description)
        ),
        parts=tuple(parts),
        compression="gzip" if request.compress else "none",
        started_at=started.isoformat(),
        finished_at=dt.datetime.now(dt.UTC).isoformat(),
        chunk=request.chunk,
        keys=keys,
        snapshot_at=snapshot_at,
        spec_digest=request.spec_digest,
        cursor=None
        if request.cursor is None or cursor_kind is None or highest is None or horizon is None
        else CursorRange(
            column=request.cursor.column,
            kind=cursor_kind,
            since=cursor_since,
            max_seen=highest.value,
            snapshot_at=snapshot_at,
            reset=request.cursor.reset,
            ceiling=horizon.ceiling,
            pending=horizon.pending,
            writers=horizon.writers,
            guarded=horizon.guarded,
            server=server.identity if server is not None else None,
            position=server.position if server is not None else None,
        ),
    )
    request.bucket.put(manifest.key, manifest.to_json(), "application/json")
    log.info(
        "extracted %s.%s: %d rows, %d CSV bytes in %d part(s), %.2f s",
        request.company,
        request.table,
        manifest.rows,
        manifest.csv_bytes,
        len(parts),
        time.time() - started.timestamp(),
    )
    return manifest

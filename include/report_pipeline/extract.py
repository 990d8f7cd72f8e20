"""Source MySQL -> CSV parts in S3, streamed: cursor -> part -> S3 while the query still runs.

Rows are fetched from a server-side cursor as MySQL's own text form (raw bytes, no Python Decimal or
datetime objects), which is both the fastest path and the one that loads back exactly. A background
thread compresses and uploads finished parts, so fetching, compressing and uploading overlap, and at
most a few compressed parts are held in memory. The manifest is written last.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import logging
import math
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from report_pipeline.errors import TransferError
from report_pipeline.manifest import MANIFEST_NAME, SUCCESS_NAME, Column, Encoding, Manifest, Part
from report_pipeline.storage import Bucket
from report_pipeline.validation import quote_identifier

log = logging.getLogger(__name__)

FETCH_ROWS = 10_000
FIRST_FETCH_ROWS = 500
BLOCK_BYTES = 2 * 1024 * 1024
MAX_CHUNKS = 256

# MySQL field type codes (MySQLdb.constants.FIELD_TYPE), spelled out so this module imports without it.
_TYPE_NAMES = {
    0: "DECIMAL",
    1: "TINY",
    2: "SHORT",
    3: "LONG",
    4: "FLOAT",
    5: "DOUBLE",
    6: "NULL",
    7: "TIMESTAMP",
    8: "LONGLONG",
    9: "INT24",
    10: "DATE",
    11: "TIME",
    12: "DATETIME",
    13: "YEAR",
    14: "NEWDATE",
    15: "VARCHAR",
    16: "BIT",
    245: "JSON",
    246: "NEWDECIMAL",
    247: "ENUM",
    248: "SET",
    249: "TINY_BLOB",
    250: "MEDIUM_BLOB",
    251: "LONG_BLOB",
    252: "BLOB",
    253: "VAR_STRING",
    254: "STRING",
    255: "GEOMETRY",
}
_STRING_TYPES = (15, 249, 250, 251, 252, 253, 254)
_BIT = 16
_BINARY_FLAG = 128
# Numbers, dates and times print without quotes, commas or newlines; everything else is quoted.
_UNQUOTED_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 246})


class _Hex(bytes):
    """A binary value rendered as hex; its type tells the manifest which columns are binary."""


def _binary_to_hex(raw: bytes) -> bytes:
    return _Hex(binascii.hexlify(raw))


def _bit_to_int(raw: bytes) -> bytes:
    return str(int.from_bytes(raw, "big")).encode()


def raw_converters() -> dict[int, Any]:
    """A mysqlclient ``conv`` mapping that returns every value as MySQL's text bytes.

    Only binary strings (charset 63, which mysqlclient reports through BINARY_FLAG in converter
    sequences) become hex, and BIT becomes an integer, because neither survives CSV as raw bytes.
    """
    conv: dict[int, Any] = {t: [(_BINARY_FLAG, _binary_to_hex)] for t in _STRING_TYPES}
    conv[_BIT] = _bit_to_int
    conv[255] = _binary_to_hex
    return conv


_NULL = b"NULL"
_QUOTE = b'"'
_TWO_QUOTES = b'""'


def _quote(value: bytes) -> bytes:
    return _QUOTE + value.replace(_QUOTE, _TWO_QUOTES) + _QUOTE


def _row_formatter(type_codes: Sequence[int]) -> Callable[[Sequence[bytes | None]], bytes]:
    quoted = tuple(code not in _UNQUOTED_TYPES for code in type_codes)

    def format_row(row: Sequence[bytes | None]) -> bytes:
        return b",".join(
            [
                _NULL if value is None else (_quote(value) if needs_quotes else value)
                for value, needs_quotes in zip(row, quoted, strict=False)
            ]
        )

    return format_row


@dataclass(frozen=True)
class ExtractRequest:
    """One extract: what to run, where to write, and what to call it."""

    company: str
    table: str
    bucket: Bucket
    prefix: str
    query: str
    parameters: tuple[Any, ...] | Mapping[str, Any]
    logical_date: str
    run_id: str
    compress: bool = True
    part_bytes: int = 32 * 1024 * 1024
    chunk_column: str | None = None
    chunk: tuple[int, int] | None = None


def chunk_query(query: str, column: str, parameters: tuple[Any, ...] | Mapping[str, Any]) -> str:
    """Wrap a query so it returns only ``lo <= column < hi``, with bounds bound like the query's own."""
    col = quote_identifier(column)
    if isinstance(parameters, Mapping):
        bounds = "%(_rp_lo)s AND _rp_chunk." + col + " < %(_rp_hi)s"
    else:
        bounds = "%s AND _rp_chunk." + col + " < %s"
    return f"SELECT * FROM ({query}) AS _rp_chunk WHERE _rp_chunk.{col} >= {bounds}"


def _bind_chunk(
    parameters: tuple[Any, ...] | Mapping[str, Any], chunk: tuple[int, int]
) -> tuple[Any, ...] | dict[str, Any]:
    if isinstance(parameters, Mapping):
        return {**parameters, "_rp_lo": chunk[0], "_rp_hi": chunk[1]}
    return (*parameters, chunk[0], chunk[1])


def prepare_session(conn: Any) -> None:
    """Session settings every extract and load uses: utf8mb4 text, UTC for TIMESTAMP values."""
    conn.set_character_set("utf8mb4")
    cursor = conn.cursor()
    try:
        cursor.execute("SET time_zone = '+00:00'")
    finally:
        cursor.close()


def plan_chunks(
    conn: Any,
    query: str,
    parameters: tuple[Any, ...] | Mapping[str, Any],
    column: str,
    chunk_rows: int,
) -> list[tuple[int, int]]:
    """Split the query's rows into half-open ``[lo, hi)`` ranges of ``column`` of about ``chunk_rows`` rows.

    One MIN/MAX/COUNT over the indexed column sizes the chunks; ranges are equal-width, so a chunk of
    a sparse key range holds fewer rows, never more than the whole. An empty result gives one chunk.
    """
    prepare_session(conn)
    col = quote_identifier(column)
    cursor = conn.cursor()
    try:
        cursor.execute(f"SELECT MIN(_rp_q.{col}), MAX(_rp_q.{col}), COUNT(*) FROM ({query}) AS _rp_q", parameters)
        low, high, count = cursor.fetchone()
    finally:
        cursor.close()
    if low is None or not count:
        return [(0, 1)]
    for bound in (low, high):
        if isinstance(bound, float) or (not isinstance(bound, (int,)) and not str(bound).lstrip("-").isdigit()):
            raise TransferError(f"chunk column {column!r} must be an integer column, got {bound!r}")
    low, high = int(low), int(high)
    chunks = min(MAX_CHUNKS, max(1, math.ceil(int(count) / chunk_rows)))
    width = math.ceil((high - low + 1) / chunks)
    ranges = []
    start = low
    while start <= high:
        ranges.append((start, min(start + width, high + 1)))
        start += width
    return ranges


class _PartUploader:
    """Compresses and uploads parts on background threads, so the fetch loop never waits on S3.

    The fetch loop hands over CSV bytes in blocks; a compressor thread feeds them to zlib (which
    releases the GIL) and, at the end of each part, hands the finished object to an upload pool.
    Queues are bounded, so memory stays at a few compressed parts whatever the table size.
    """

    def __init__(self, request: ExtractRequest) -> None:
        self.request = request
        self.blocks: queue.Queue[bytes | tuple[str, int] | None] = queue.Queue(maxsize=16)
        self.uploads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rp-upload")
        self.in_flight = threading.BoundedSemaphore(3)
        self.futures: list[Future[Part]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rp-compress", daemon=True)
        self.thread.start()

    def _new_compressor(self) -> Any:
        return zlib.compressobj(1, zlib.DEFLATED, 31) if self.request.compress else None

    def _run(self) -> None:
        compressor = self._new_compressor()
        pieces: list[bytes] = []
        size = 0
        try:
            while True:
                item = self.blocks.get()
                if item is None:
                    return
                if isinstance(item, tuple):
                    key, rows = item
                    if compressor is not None:
                        pieces.append(compressor.flush())
                    body = b"".join(pieces)
                    pieces, csv_bytes, size = [], size, 0
                    compressor = self._new_compressor()
                    self.in_flight.acquire()
                    future = self.uploads.submit(self._upload, key, body, rows, csv_bytes)
                    # Released by a callback, not by the upload, so a cancelled upload frees its slot too.
                    future.add_done_callback(lambda _: self.in_flight.release())
                    future.add_done_callback(self._note_failure)
                    self.futures.append(future)
                    continue
                size += len(item)
                pieces.append(compressor.compress(item) if compressor is not None else item)
        except BaseException as exc:  # noqa: BLE001 - handed to the fetch loop, which re-raises it
            if self.error is None:
                self.error = exc
            while self.blocks.get() is not None:  # drain so the producer never blocks forever
                pass

    def _note_failure(self, future: Future[Part]) -> None:
        # A failed upload stops the fetch loop at its next block, instead of after the whole query.
        if self.error is None and not future.cancelled() and future.exception() is not None:
            self.error = future.exception()

    def _upload(self, key: str, body: bytes, rows: int, csv_bytes: int) -> Part:
        self.request.bucket.put(key, body, "application/gzip" if self.request.compress else "text/csv")
        return Part(key, rows, csv_bytes, len(body), hashlib.sha256(body).hexdigest())

    def send(self, item: bytes | tuple[str, int]) -> None:
        if self.error is not None:
            raise self.error
        self.blocks.put(item)

    def finish(self) -> list[Part]:
        self.blocks.put(None)
        self.thread.join()
        try:
            if self.error is not None:
                raise self.error
            return [f.result() for f in self.futures]
        finally:
            self.uploads.shutdown(wait=True)

    def abandon(self) -> None:
        """Stop after a failure: no new uploads start, and every thread has ended when this returns."""
        self.uploads.shutdown(wait=False, cancel_futures=True)
        self.blocks.put(None)
        self.thread.join()
        self.uploads.shutdown(wait=True)


_FLOAT = 4
_DUPLICATE_COLUMN = 1060


def _backtick(name: str) -> str:
    # Result column names come from the server, not the admin row; any of them is quoted as is.
    return "`" + name.replace("`", "``") + "`"


def _exact_floats(
    conn: Any, query: str, parameters: tuple[Any, ...] | Mapping[str, Any]
) -> tuple[str, list[str] | None]:
    """Rewrite the query so FLOAT columns arrive as DOUBLE text, which carries every float32 exactly.

    MySQL's text protocol prints FLOAT with about 6 significant digits (1000001 -> 1000000), so the
    raw text form would lose FLOAT values; CAST(col AS DOUBLE) prints the same float32 in full, and
    LOAD DATA rounds it back to the identical FLOAT. A zero-row probe finds the result's column types.
    Returns the query to run and the source type names when it was rewritten.
    """
    import MySQLdb

    probe = conn.cursor()
    try:
        probe.execute(f"SELECT * FROM ({query}) AS _rp_probe LIMIT 0", parameters)
        description = probe.description or ()
        probe.fetchall()
    except MySQLdb.OperationalError as exc:
        if exc.args and exc.args[0] == _DUPLICATE_COLUMN:
            # Duplicate result names cannot go through a derived table; run the query as written.
            log.warning("cannot check the query's columns for FLOAT (%s); FLOAT values may be rounded", exc)
            return query, None
        raise
    finally:
        probe.close()
    if not any(d[1] == _FLOAT for d in description):
        return query, None
    columns = ", ".join(
        f"CAST(_rp_f.{_backtick(d[0])} AS DOUBLE) AS {_backtick(d[0])}"
        if d[1] == _FLOAT
        else f"_rp_f.{_backtick(d[0])}"
        for d in description
    )
    return f"SELECT {columns} FROM ({query}) AS _rp_f", [_TYPE_NAMES.get(d[1], str(d[1])) for d in description]


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - already failing; the original error is the one to report
        log.debug("closing the source connection failed", exc_info=True)


def extract(conn: Any, request: ExtractRequest) -> Manifest:
    """Run the request's query on ``conn`` (a mysqlclient connection) and store it as CSV parts + manifest.

    The source session is read-only, in one consistent snapshot, with UTC time zone and utf8mb4 text.
    Any earlier manifest and ``_SUCCESS`` marker under the prefix are removed first, so a half-written
    extract is never mistaken for a finished one; parts an earlier, failed attempt left behind are
    overwritten or, once the new manifest is stored, deleted. A failure is logged with its reason and
    re-raised for the caller's retries.
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
    stale = [f"{request.prefix}/{MANIFEST_NAME}", f"{request.prefix}/{SUCCESS_NAME}"]
    request.bucket.delete(stale)
    # Parts are single PUTs, but an older client or a killed worker may have left multipart uploads
    # under this prefix; unfinished ones are invisible and billed, so they go before a new attempt.
    request.bucket.abort_multipart_uploads(f"{request.prefix}/")

    import MySQLdb.cursors

    prepare_session(conn)
    # Raw text values for this extract only; the caller's connection gets its converters back.
    caller_converters = conn.converter
    conn.converter = raw_converters()
    setup = conn.cursor()
    try:
        setup.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    finally:
        setup.close()
    query, parameters = request.query, request.parameters
    if request.chunk is not None:
        if request.chunk_column is None:
            raise TransferError("a chunked extract needs its chunk column")
        query = chunk_query(query, request.chunk_column, parameters)
        parameters = _bind_chunk(parameters, request.chunk)
    query, source_types = _exact_floats(conn, query, parameters)

    suffix = ".csv.gz" if request.compress else ".csv"
    uploader = _PartUploader(request)
    cursor = MySQLdb.cursors.SSCursor(conn)
    try:
        cursor.execute(query, parameters)
        description = cursor.description or ()
        type_codes = [d[1] for d in description]
        format_row = _row_formatter(type_codes)
        encodings: list[Encoding] = ["bit" if code == _BIT else "text" for code in type_codes]
        undecided = {i for i, code in enumerate(type_codes) if code in _STRING_TYPES or code == 255}
        part_index, part_rows, part_bytes = 0, 0, 0
        fetch_rows = FIRST_FETCH_ROWS
        while True:
            rows = cursor.fetchmany(fetch_rows)
            if not rows:
                break
            if undecided:
                for i in list(undecided):
                    value = next((r[i] for r in rows if r[i] is not None), None)
                    if value is not None:
                        encodings[i] = "hex" if isinstance(value, _Hex) else "text"
                        undecided.discard(i)
            lines = [format_row(r) for r in rows]
            batch_bytes = sum(map(len, lines)) + len(lines)
            # Size the next fetch so a block stays near BLOCK_BYTES: the queue holds a bounded number
            # of blocks, so this bounds memory even for very wide rows.
            fetch_rows = max(1, min(FETCH_ROWS, BLOCK_BYTES * len(lines) // max(batch_bytes, 1)))
            if part_bytes + batch_bytes < request.part_bytes:
                uploader.send(b"\n".join(lines) + b"\n")
                part_rows += len(lines)
                part_bytes += batch_bytes
                continue
            start = 0
            while start < len(lines):
                # Cut the batch where the part fills up, so parts end on row boundaries near part_bytes.
                end, size = start, 0
                room = request.part_bytes - part_bytes
                while end < len(lines) and size < room:
                    size += len(lines[end]) + 1
                    end += 1
                uploader.send(b"\n".join(lines[start:end]) + b"\n")
                part_rows += end - start
                part_bytes += size
                start = end
                if part_bytes >= request.part_bytes:
                    uploader.send((f"{request.prefix}/part-{part_index:05d}{suffix}", part_rows))
                    part_index, part_rows, part_bytes = part_index + 1, 0, 0
        if part_rows or part_index == 0:
            uploader.send((f"{request.prefix}/part-{part_index:05d}{suffix}", part_rows))
        parts = uploader.finish()
        cursor.close()
        conn.rollback()
        conn.converter = caller_converters
    except BaseException:
        uploader.abandon()
        # Closing an unbuffered cursor would read the rest of the result first; drop the session.
        _close_quietly(conn)
        raise

    manifest = Manifest(
        bucket=request.bucket.name,
        prefix=request.prefix,
        extract_id=uuid.uuid4().hex,
        company=request.company,
        table=request.table,
        logical_date=request.logical_date,
        run_id=request.run_id,
        columns=tuple(
            Column(d[0], source_types[i] if source_types else _TYPE_NAMES.get(d[1], str(d[1])), encodings[i])
            for i, d in enumerate(description)
        ),
        parts=tuple(parts),
        compression="gzip" if request.compress else "none",
        started_at=started.isoformat(),
        finished_at=dt.datetime.now(dt.UTC).isoformat(),
        chunk=request.chunk,
    )
    request.bucket.put(manifest.key, manifest.to_json(), "application/json")
    keep = {p.key for p in parts} | {manifest.key}
    leftovers = [k for k in request.bucket.keys(f"{request.prefix}/part-") if k not in keep]
    if leftovers:
        # A re-run of the same date that produced fewer parts: the manifest no longer names these.
        request.bucket.delete(leftovers)
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

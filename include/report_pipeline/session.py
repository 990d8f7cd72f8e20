"""MySQL sessions: the settings every session uses, opening and quiet closing, the column probe.

The one home for what the pipeline does to a mysqlclient connection before and after its work, so the
extract, the load, the CLI and the Airflow adapter set sessions up and tear them down alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from report_pipeline.target.mysql_errors import LOCK_WAIT, QUERY_TIMEOUTS, SILENT_PEER

log = logging.getLogger(__name__)

# Every session reads and writes TIMESTAMP values in UTC, so they never move with a server's time zone.
# Also sent by airflow.connections right after each connection's LOCAL INFILE guard is installed
# (never as init_command, which leaves before the guard could be).
UTC_SESSION = "SET time_zone = '+00:00'"

Parameters = tuple[Any, ...] | Mapping[str, Any]


def prepare_session(conn: Any) -> None:
    """Session settings every extract and load uses: utf8mb4 text, UTC for TIMESTAMP values."""
    conn.set_character_set("utf8mb4")
    cursor = conn.cursor()
    try:
        cursor.execute(UTC_SESSION)
    finally:
        cursor.close()


def is_mariadb(conn: Any) -> bool:
    """Whether the server is MariaDB (which names some session variables differently from MySQL)."""
    cached = getattr(conn, "_rp_mariadb", None)
    if cached is None:
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT VERSION()")
            version = cursor.fetchone()[0]
        finally:
            cursor.close()
        cached = "mariadb" in (version.decode() if isinstance(version, bytes) else str(version)).lower()
        conn._rp_mariadb = cached
    return bool(cached)


def bound_source_session(conn: Any, query_timeout_seconds: int, stream_timeout_seconds: int) -> None:
    """Bound how long the source server runs a query, and how long it waits on a slow reader.

    ``query_timeout_seconds`` becomes MySQL/Aurora's ``max_execution_time`` (milliseconds, SELECT
    only) or MariaDB's ``max_statement_time`` (seconds): a runaway query (a cross join in an admin row)
    is killed by the server, and its snapshot released. ``net_write_timeout`` is how long the server
    waits while the extract is not reading (its S3 uploads are slow): sized by the caller so that
    back-pressure never gets a healthy stream killed. Values are whole numbers from the settings.
    """
    if is_mariadb(conn):
        limit = f"SET SESSION max_statement_time = {int(query_timeout_seconds)}"
    else:
        limit = f"SET SESSION max_execution_time = {int(query_timeout_seconds) * 1000}"
    stream = int(stream_timeout_seconds)
    cursor = conn.cursor()
    try:
        cursor.execute(limit)
        cursor.execute(f"SET SESSION net_write_timeout = {stream}, net_read_timeout = {stream}")
    finally:
        cursor.close()


# S3 client errors that mean a bound tripped (MySQL's: target.mysql_errors).
_S3_TIMEOUTS = ("ReadTimeoutError", "ConnectTimeoutError")


def bound_note(
    exc: BaseException, *, net_timeout: int, query_timeout: int | None = None, lock_wait: int | None = None
) -> str | None:
    """Which bounded wait an error comes from, named by its setting; None for other errors."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in QUERY_TIMEOUTS and query_timeout is not None:
        return f"bound tripped: the source query ran longer than REPORTS_QUERY_TIMEOUT={query_timeout} s"
    if code == LOCK_WAIT and lock_wait is not None:
        return f"bound tripped: a lock wait on the target exceeded REPORTS_TARGET_LOCK_WAIT={lock_wait} s"
    if code in SILENT_PEER:
        return (
            f"bound tripped (or the connection was lost): the MySQL server did not answer within "
            f"REPORTS_NET_TIMEOUT={net_timeout} s"
        )
    if type(exc).__name__ in _S3_TIMEOUTS:
        return f"bound tripped: S3 did not answer within REPORTS_NET_TIMEOUT={net_timeout} s"
    return None


def close_quietly(conn: Any) -> None:
    """Close a connection; a close that fails (server gone, already failing) is not an error."""
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - already failing, or the server is gone; nothing left to release
        log.debug("closing a connection failed", exc_info=True)


def rollback_quietly(conn: Any) -> None:
    """Roll back; when the server is gone it has rolled the session back itself."""
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - already failing; the server rolls back a dropped session itself
        log.debug("rollback failed", exc_info=True)


@contextlib.contextmanager
def opened(conn: Any) -> Iterator[Any]:
    """Use a connection and close it afterwards, quietly."""
    try:
        yield conn
    finally:
        close_quietly(conn)


def probe_columns(conn: Any, query: str, parameters: Parameters) -> tuple[tuple[Any, ...], ...]:
    """The result description of ``query`` (name, type code, ...) from a zero-row run on the server.

    The query runs as a derived table with ``LIMIT 0``, so the server plans it but reads no rows. One query:
    callers needing the columns' SQL types too (the extract, validate) use ``probe_types``.
    """
    cursor = conn.cursor()
    try:
        return _describe(cursor, query, parameters)[0]
    finally:
        cursor.close()


def _describe(cursor: Any, query: str, parameters: Parameters) -> tuple[tuple[tuple[Any, ...], ...], tuple[int, ...]]:
    cursor.execute(f"SELECT * FROM ({query}) AS _rp_probe LIMIT 0", parameters)
    description = tuple(cursor.description or ())
    flags = tuple(getattr(cursor, "description_flags", None) or (0,) * len(description))
    cursor.fetchall()
    return description, flags


def probe_types(conn: Any, query: str, parameters: Parameters) -> tuple[tuple[tuple[Any, ...], ...], list[str | None]]:
    """``probe_columns``' description, and each result column's SQL type (``evolution.result_type``).

    The metadata's BINARY flag marks byte strings and text with a binary collation alike; only for such
    columns, a second zero-row query asks the server for their character sets (``binary`` for bytes).
    """
    from report_pipeline.evolution import needs_charset, result_type
    from report_pipeline.validation import backtick

    cursor = conn.cursor()
    try:
        description, flags = _describe(cursor, query, parameters)
        asked = [i for i, d in enumerate(description) if needs_charset(d[1], flags[i])]
        charsets: dict[int, str] = {}
        if asked:
            # One row of NULLs typed as the query's columns: CHARSET() reads the type, not the value.
            listed = ", ".join(f"CHARSET(_rp_probe.{backtick(str(description[i][0]))})" for i in asked)
            cursor.execute(
                f"SELECT {listed} FROM (SELECT 1) AS _rp_one LEFT JOIN "
                f"(SELECT * FROM ({query}) AS _rp_inner LIMIT 0) AS _rp_probe ON 1",
                parameters,
            )
            row = cursor.fetchone()
            charsets = {i: v.decode() if isinstance(v, bytes) else str(v) for i, v in zip(asked, row, strict=True)}
        types = [result_type(d[1], d[3], d[5], flags[i], charsets.get(i)) for i, d in enumerate(description)]
        return description, types
    finally:
        cursor.close()


# Character result columns (VARCHAR, CHAR, the TEXT/BLOB family, ENUM, SET): the ones a collation applies to.
_TEXT_TYPES = frozenset({15, 247, 248, 249, 250, 251, 252, 253, 254})


def probe_collations(conn: Any, query: str, parameters: Parameters) -> list[str | None]:
    """The collation of each character column of the query's result (``binary`` for bytes); None for others.

    One zero-row query: COLLATION() reads the column's type, not a value (as ``probe_types`` reads CHARSET()).
    """
    from report_pipeline.validation import backtick

    cursor = conn.cursor()
    try:
        description, _ = _describe(cursor, query, parameters)
        asked = [i for i, d in enumerate(description) if d[1] in _TEXT_TYPES]
        if not asked:
            return [None] * len(description)
        listed = ", ".join(f"COLLATION(_rp_probe.{backtick(str(description[i][0]))})" for i in asked)
        cursor.execute(
            f"SELECT {listed} FROM (SELECT 1) AS _rp_one LEFT JOIN "
            f"(SELECT * FROM ({query}) AS _rp_inner LIMIT 0) AS _rp_probe ON 1",
            parameters,
        )
        row = cursor.fetchone()
    finally:
        cursor.close()
    found: list[str | None] = [None] * len(description)
    for i, value in zip(asked, row, strict=True):
        found[i] = value.decode() if isinstance(value, bytes) else str(value)
    return found

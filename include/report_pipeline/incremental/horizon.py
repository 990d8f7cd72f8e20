"""The commit horizon: how far an incremental watermark may move without passing a row still being written.

A consistent snapshot sees only committed rows. A transaction open on the source when the snapshot
began may still commit rows whose cursor value is below the highest value the snapshot saw (a time
stamped when the row was written, minutes before the commit; an AUTO_INCREMENT id taken before a
later id committed). A watermark set to the highest value seen would skip those rows for good, so it
is capped by what the open write transactions could still commit:

- **time cursor**: every row such a transaction writes is stamped at or after its ``trx_started``, so
  the cap is the oldest open write transaction's start (and the server clock when they were read),
  read just before the snapshot begins. A transaction that begins later stamps later values.
- **integer cursor**: nothing tells which ids an open transaction holds, so the highest value seen
  becomes the watermark only once every write transaction open at the snapshot has ended. Every such
  transaction took its transaction id before the snapshot began, so below InnoDB's transaction id
  counter read just after it: the value is kept as *pending* with that bound (``<N``), and the next
  extract promotes it when, just before its own snapshot, no write transaction below the bound is open
  any more (its rows are then visible to that snapshot, which still reads from the old watermark).
  The value counts at once only when no write transaction was open just before the snapshot and the
  counter did not move between that reading and the snapshot (no transaction began writing or
  committed in between).

Open transactions are read from ``information_schema.INNODB_TRX`` and the counter from ``SHOW ENGINE
INNODB STATUS``; both need the PROCESS privilege (MySQL, Aurora MySQL, MariaDB). Without it, or on a
replica (whose primary's transactions it cannot see), the horizon is *unguarded*: the watermark is the
highest value seen, as before, and only ``cursor_overlap`` protects late rows; ``validate``, ``plan``
and the task log say so.

``INNODB_TRX`` is not live: InnoDB refills the cache behind it at most every 100 ms, so a reading may
show the server up to that long before (a transaction that has just committed still listed, one that
has just begun missing). Hence the time cap sits ``STALE_MARGIN`` before the reading's clock, and an
integer reading is taken more than ``CACHE_AGE`` after the counter it is compared with: it then shows
the server at or after that counter was read. The counter itself is read live.

The one assumption left: the cursor column is stamped by the writer at write time (``NOW()`` or
``CURRENT_TIMESTAMP`` on write, AUTO_INCREMENT or a sequence taken on insert).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from report_pipeline.target.mysql_errors import ACCESS_DENIED, UNKNOWN_TABLE
from report_pipeline.vocabulary import CursorKind, Horizon

log = logging.getLogger(__name__)

# Access denied (PROCESS missing) on MySQL and MariaDB; "unknown table" on a server without InnoDB's views.
_NO_PROCESS = ACCESS_DENIED | {UNKNOWN_TABLE}

# How old a reading of INNODB_TRX may be (InnoDB's CACHE_MIN_REFRESH_TIME_US, MySQL and MariaDB alike),
# and the margin a time cap keeps below a reading's clock (that age, plus the time a refill takes).
CACHE_AGE = dt.timedelta(milliseconds=100)
STALE_MARGIN = dt.timedelta(milliseconds=200)

_COUNTER = re.compile(r"^Trx id counter (\d+)", re.MULTILINE)

UNGUARDED_NOTE = (
    "the source connection cannot read open transactions (information_schema.INNODB_TRX needs the PROCESS "
    "privilege, and a replica cannot see its primary's), so rows committed late are protected only by "
    "cursor_overlap; GRANT PROCESS ON *.* to the source user and extract from the primary for commit-safe "
    "watermarks"
)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def later(kind: CursorKind, first: str | None, second: str | None) -> str | None:
    """The later of two cursor values (either may be None); a watermark never moves backwards."""
    if first is None or second is None:
        return second if first is None else first
    if kind == "integer":
        return first if int(first) >= int(second) else second
    return first if _time(first) >= _time(second) else second


def earlier(kind: CursorKind, first: str | None, second: str | None) -> str | None:
    """The earlier of two cursor values; None only when both are None."""
    if first is None or second is None:
        return second if first is None else first
    return second if later(kind, first, second) == first else first


@dataclass(frozen=True)
class Writers:
    """The write transactions open on the source at one moment (read with PROCESS).

    ``clock`` is the server's UTC clock at the read; ``oldest`` the earliest ``trx_started`` among them
    (UTC) and ``ids`` their transaction ids. ``counter``: InnoDB's transaction id counter read before
    the list (``read_writers(counted=True)``), which then shows the server at or after that moment.
    """

    clock: str
    oldest: str | None
    ids: tuple[str, ...]
    counter: int | None = None


def read_counter(conn: Any) -> int | None:
    """InnoDB's transaction id counter now, read live; None when it cannot be read (see module doc).

    It moves whenever a transaction begins writing or commits: every write transaction open now holds
    an id below it.
    """
    import MySQLdb

    cursor = conn.cursor()
    try:
        cursor.execute("SHOW ENGINE INNODB STATUS")
        row = cursor.fetchone()
    except MySQLdb.Error as exc:
        if exc.args and exc.args[0] in _NO_PROCESS:
            return None
        raise
    finally:
        cursor.close()
    found = _COUNTER.search(_text(row[-1])) if row else None
    return int(found.group(1)) if found else None


def read_writers(conn: Any, counted: bool = False) -> Writers | None:
    """The write transactions open on the source now; None when they cannot be read (see module doc).

    ``counted`` (integer cursors): read the transaction id counter first, and the list more than
    ``CACHE_AGE`` later, so that the list shows the server at or after the counter's moment.
    ``trx_started`` is printed in the server's system time zone whatever the session's (MariaDB), so
    each start is turned into UTC by its age on the clock it was printed with. The session is left in UTC.
    """
    import MySQLdb

    counter = None
    if counted:
        counter = read_counter(conn)
        if counter is None:
            return None
        time.sleep(CACHE_AGE.total_seconds() * 1.1)
    cursor = conn.cursor()
    try:
        cursor.execute("SET time_zone = 'SYSTEM'")
        cursor.execute("SELECT NOW(6), UTC_TIMESTAMP(6)")
        local_now, utc_now = (_moment(v) for v in cursor.fetchone())
        try:
            cursor.execute(
                "SELECT trx_id, trx_started FROM information_schema.INNODB_TRX "
                "WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_rows_modified > 0"
            )
        except MySQLdb.Error as exc:
            if exc.args and exc.args[0] in _NO_PROCESS:
                return None
            raise
        rows = cursor.fetchall()
    finally:
        cursor.execute("SET time_zone = '+00:00'")
        cursor.close()
    starts = [utc_now - (local_now - _moment(r[1])) for r in rows]
    return Writers(
        utc_now.isoformat(sep=" "),
        min(starts).isoformat(sep=" ") if starts else None,
        tuple(sorted(_text(r[0]) for r in rows)),
        counter,
    )


def start_snapshot(conn: Any, cursor: Any, kind: CursorKind | None, guarded: bool) -> tuple[Writers | None, int | None]:
    """Begin the consistent, read-only snapshot on ``cursor``; with ``guarded``, also the write transactions
    open just before it (counted for an integer cursor) and the transaction id counter just after: the
    ``before`` and ``after`` that ``decide`` takes (None where not read)."""
    before = read_writers(conn, counted=kind == "integer") if guarded else None
    cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    after = read_counter(conn) if before is not None and before.counter is not None else None
    return before, after


def _moment(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else _time(_text(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class SourceServer:
    """Which server an extract read, and how far its data had got.

    ``identity`` names the server (``@@server_uuid`` on MySQL, ``@@server_id`` with host and port on
    MariaDB). ``position`` is its GTID position read just before the snapshot (MariaDB
    ``@@gtid_current_pos``, MySQL ``@@gtid_executed``): a lower bound of what the snapshot holds, and
    comparable across a primary and its replicas. ``replica`` marks a server that applies another's changes.
    """

    identity: str
    position: str | None
    replica: bool


def read_server(conn: Any) -> SourceServer:
    """The source server's identity, GTID position and replica role (no privilege needed)."""
    from report_pipeline.session import is_mariadb

    cursor = conn.cursor()
    try:
        if is_mariadb(conn):
            cursor.execute(
                "SELECT @@server_id, @@hostname, @@port, @@gtid_current_pos, @@gtid_slave_pos, @@global.read_only"
            )
            server_id, host, port, position, replica_pos, read_only = (_text(v) for v in cursor.fetchone())
            identity = f"mariadb:{server_id}@{host}:{port}"
            replica = bool(replica_pos) or read_only == "1"
        else:
            cursor.execute("SELECT @@server_uuid, @@gtid_executed, @@global.read_only, @@global.innodb_read_only")
            uuid, position, read_only, innodb_read_only = (_text(v) for v in cursor.fetchone())
            identity = f"mysql:{uuid}"
            replica = "1" in (read_only, innodb_read_only)
    finally:
        cursor.close()
    return SourceServer(identity, position.replace("\n", "") or None, replica)


def _positions(position: str) -> dict[str, int]:
    """A GTID position as the highest sequence number per stream (MariaDB domain, MySQL source uuid)."""
    found: dict[str, int] = {}
    for item in (p.strip() for p in position.split(",") if p.strip()):
        if ":" in item:  # MySQL: uuid:1-5:7-9
            uuid, *ranges = item.split(":")
            top = max(int(r.split("-")[-1]) for r in ranges)
            found[uuid.lower()] = max(found.get(uuid.lower(), 0), top)
        else:  # MariaDB: domain-server-seq
            domain, _, seq = item.split("-")
            found[domain] = max(found.get(domain, 0), int(seq))
    return found


def behind(position: str, reference: str) -> bool:
    """Whether data at GTID ``position`` lacks transactions that data at ``reference`` holds."""
    mine, theirs = _positions(position), _positions(reference)
    return any(mine.get(stream, 0) < seq for stream, seq in theirs.items())


def compare_sources(stored: Any, server: str | None, position: str | None) -> str:
    """How an extract's server and GTID position compare with those behind a stored watermark.

    ``same`` (one server, or unknown on either side: its snapshot clock orders it), ``older`` (it lacks
    transactions the stored rows hold), ``newer`` (another server at a position not behind), or
    ``unknown`` (another server, and no GTID positions to compare).
    """
    if stored.source_server is None or server is None or stored.source_server == server:
        return "same"
    if stored.source_position is None or position is None:
        return "unknown"
    return "older" if behind(position, stored.source_position) else "newer"


def switch_refusal(stored: Any, server: str | None) -> str:
    """The refusal of an extract from another server whose data cannot be ordered against the stored rows."""
    return (
        f"not loading rows read from source server {server}: the rows loaded so far came from "
        f"{stored.source_server}, and without GTID positions on both there is no telling which holds newer data; "
        "the target was not changed. If the source moved on purpose (failover, a new replica endpoint), run "
        "`report-pipeline run --company ... --table ... --reset-watermark` once against the new server"
    )


def _floor(kind: CursorKind, cap: str, seen: str) -> str:
    """The cap rounded down to what the column can hold: a stamp of 12:00:00.7 may be stored as 12:00:00."""
    moment = _time(cap).replace(microsecond=0)
    if len(seen) == 10:  # a DATE cursor: a row stamped today reads as today's midnight
        moment = moment.replace(hour=0, minute=0, second=0)
    return moment.isoformat(sep=" ")


def _ended(pending_writers: str, before: Writers) -> bool:
    """Whether the writers a pending value waits for have all ended by the reading ``before``.

    ``<N``: every write transaction below id N; otherwise (watermarks stored before the bound) a
    comma-separated list of transaction ids.
    """
    if pending_writers.startswith("<"):
        bound = int(pending_writers[1:])
        return not any(int(w) < bound for w in before.ids if w.isdigit())
    return not {w for w in pending_writers.split(",") if w} & set(before.ids)


def decide(
    kind: CursorKind,
    seen: str | None,
    before: Writers | None,
    after: int | None,
    pending: str | None = None,
    pending_writers: str = "",
) -> Horizon:
    """The horizon of a snapshot that saw ``seen`` as its highest cursor value.

    ``before``: the open write transactions read just before the snapshot began (None: not readable;
    for an integer cursor read with ``counted=True``); ``after``: the transaction id counter read just
    after it began (integer cursors; None: not readable). ``pending``/``pending_writers``: what the
    stored watermark keeps pending from the previous extract (integer cursors).
    """
    if before is None or (kind == "integer" and (after is None or before.counter is None)):
        return Horizon(ceiling=seen, guarded=False)
    if kind == "time":
        clock = (_time(before.clock) - STALE_MARGIN).isoformat(sep=" ")
        cap = clock if before.oldest is None else earlier("time", clock, before.oldest)
        return Horizon(ceiling=None if seen is None else earlier("time", seen, _floor(kind, str(cap), seen)))
    promoted = pending if pending is not None and _ended(pending_writers, before) else None
    if not before.ids and after == before.counter:
        return Horizon(ceiling=later(kind, promoted, seen))
    return Horizon(ceiling=promoted, pending=seen, writers=f"<{after}")

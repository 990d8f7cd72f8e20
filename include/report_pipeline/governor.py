"""The source governor: an extract starts only while the server it reads is calm enough.

Pools bound how many extracts run at once, not how busy the source server is. Before an extract
(or a chunk plan) runs, the governor reads the server's ``Threads_running`` (``SHOW GLOBAL STATUS``)
and, on a replica, its lag (``SHOW REPLICA STATUS``; ``SHOW SLAVE STATUS`` where the server predates
that name). Above a threshold it waits with backoff, up to ``REPORTS_GOVERNOR_MAX_WAIT`` seconds in
all, then runs, or fails with ``SourceBusyError`` naming the figure. Each threshold is off at 0.

How the wait happens is the caller's: the CLI sleeps in-process (``wait_until_calm``); an Airflow
task gives its worker and pool slot back and is rescheduled (``report_pipeline.airflow.gate``). A
long extract also looks between its parts (``Pacer``): there it can only pause in-process, holding
its open query, so each pause is bounded and the extract goes on after it instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from report_pipeline.errors import ConfigError, TransferError
from report_pipeline.session import close_quietly
from report_pipeline.settings import Settings
from report_pipeline.target.mysql_errors import ACCESS_DENIED, PARSE_ERROR

log = logging.getLogger(__name__)

# Backoff between looks: 2 s, doubling, at most a minute.
FIRST_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 60.0
# A long extract looks again at its next part boundary, but no sooner than this after its last look.
PACER_INTERVAL_SECONDS = 5.0

# PARSE_ERROR: the server does not know SHOW REPLICA STATUS (MariaDB < 10.5.1, MySQL < 8.0.22).
# Replica status spellings: MySQL >= 8.0.22 says Source, MariaDB and older MySQL say Master.
_LAG_COLUMNS = ("Seconds_Behind_Source", "Seconds_Behind_Master")


@dataclass(frozen=True)
class Limits:
    """The governor's thresholds (0 = that check is off) and its total wait bound, from Settings."""

    max_threads_running: int = 0
    max_lag_seconds: int = 0
    max_wait_seconds: int = 3600

    @property
    def enabled(self) -> bool:
        """Whether any check is on: with both off the governor never touches the server."""
        return self.max_threads_running > 0 or self.max_lag_seconds > 0


@dataclass(frozen=True)
class SourceLoad:
    """What the source server reported at one look."""

    threads_running: int
    # None when the server is no replica, or the lag check is off.
    lag_seconds: int | None = None
    # Whether the server reported replica status, and under which statement and column name.
    replica: bool = False
    lag_figure: str = "Seconds_Behind_Master"
    lag_statement: str = ""


class SourceBusyError(TransferError):
    """The source stayed above a governor threshold for longer than REPORTS_GOVERNOR_MAX_WAIT.

    Nothing was extracted; the target is as it was. ``waited`` is the seconds spent waiting.
    """

    def __init__(self, message: str, waited: float) -> None:
        super().__init__(message)
        self.waited = waited


def backoff_seconds(looks: int) -> float:
    """How long to wait after the ``looks``-th busy look (0-based): 2, 4, 8 ... at most 60 s."""
    return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** min(looks, 16))


def read_load(conn: Any, limits: Limits) -> SourceLoad:
    """One look at the server behind ``conn``: Threads_running, and the replica lag when that check is on.

    ``Threads_running`` is the server's own count, which includes the session asking (and, between
    parts, the extract's own query). A multi-channel replica reports its largest lag; a channel whose
    replication is not running makes the lag unknown (None with ``replica=True``).
    ConfigError when the lag check is on and the source user may not read the replica status.
    """
    cursor = conn.cursor()
    try:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Threads_running'")
        row = cursor.fetchone()
        threads = int(_text(row[1])) if row else 0
        if limits.max_lag_seconds <= 0:
            return SourceLoad(threads)
        return _with_lag(cursor, threads, limits)
    finally:
        cursor.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _with_lag(cursor: Any, threads: int, limits: Limits) -> SourceLoad:
    import MySQLdb

    statement = "SHOW REPLICA STATUS"
    try:
        try:
            cursor.execute(statement)
        except MySQLdb.ProgrammingError as exc:
            if not exc.args or exc.args[0] != PARSE_ERROR:
                raise
            statement = "SHOW SLAVE STATUS"
            cursor.execute(statement)
    except (MySQLdb.OperationalError, MySQLdb.ProgrammingError) as exc:
        if exc.args and exc.args[0] in ACCESS_DENIED:
            raise ConfigError(
                f"REPORTS_SOURCE_MAX_LAG_SECONDS={limits.max_lag_seconds} needs the source user to read "
                f"{statement} ({exc.args[1]}): grant it REPLICATION CLIENT (MySQL; MariaDB: REPLICA MONITOR "
                "or SLAVE MONITOR), or set REPORTS_SOURCE_MAX_LAG_SECONDS=0"
            ) from exc
        raise
    names = [d[0] for d in cursor.description or ()]
    rows = cursor.fetchall()
    column = next((c for c in _LAG_COLUMNS if c in names), None)
    if not rows or column is None:
        return SourceLoad(threads, lag_statement=statement)  # not a replica
    lags = [r[names.index(column)] for r in rows]
    lag = None if any(v is None for v in lags) else max(int(_text(v)) for v in lags)
    return SourceLoad(threads, lag, replica=True, lag_figure=column, lag_statement=statement)


def over_limits(load: SourceLoad, limits: Limits) -> str | None:
    """Which figure is above its threshold, named with its setting; None when the source is calm."""
    if limits.max_threads_running > 0 and load.threads_running > limits.max_threads_running:
        return (
            f"Threads_running={load.threads_running} is above "
            f"REPORTS_SOURCE_MAX_THREADS_RUNNING={limits.max_threads_running}"
        )
    if limits.max_lag_seconds > 0 and load.replica:
        if load.lag_seconds is None:
            return (
                f"the replica's replication is not running ({load.lag_figure} is NULL in {load.lag_statement}), "
                f"so its lag is unknown and may be above REPORTS_SOURCE_MAX_LAG_SECONDS={limits.max_lag_seconds}"
            )
        if load.lag_seconds > limits.max_lag_seconds:
            return (
                f"the replica lags: {load.lag_figure}={load.lag_seconds} is above "
                f"REPORTS_SOURCE_MAX_LAG_SECONDS={limits.max_lag_seconds}"
            )
    return None


def busy_message(where: str, reason: str, waited: float, limits: Limits) -> str:
    """The refusal when the wait bound ran out: the table, the figure, the settings and what to do."""
    return (
        f"{where}: the source is too busy to extract from: {reason} after waiting {waited:.0f} s "
        f"(REPORTS_GOVERNOR_MAX_WAIT={limits.max_wait_seconds}); nothing was extracted or loaded, the target is "
        "as it was. Run the table again when the source is quieter, or raise the threshold or "
        "REPORTS_GOVERNOR_MAX_WAIT (a threshold of 0 turns its check off)"
    )


def limits_of(settings: Settings) -> Limits:
    """The governor's limits from the deployment's settings."""
    return Limits(
        settings.source_max_threads_running, settings.source_max_lag_seconds, settings.governor_max_wait_seconds
    )


def look(connect: Callable[[], Any], limits: Limits) -> str | None:
    """One look through a new connection, closed afterwards: the figure above its threshold, or None."""
    conn = connect()
    try:
        return over_limits(read_load(conn, limits), limits)
    finally:
        close_quietly(conn)


def wait_until_calm(
    connect: Callable[[], Any],
    limits: Limits,
    where: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Wait in-process until the source is under every threshold; the seconds waited (0 if calm at once).

    Looks again after 2, 4, 8 ... s (at most 60 s apart); SourceBusyError, naming the figure, when the
    next look would come later than ``max_wait_seconds`` after the first.
    """
    if not limits.enabled:
        return 0.0
    started = clock()
    looks = 0
    while True:
        reason = look(connect, limits)
        waited = clock() - started
        if reason is None:
            if looks:
                log.info("%s: the source is calm again after %.1f s; extracting", where, waited)
            return waited
        delay = backoff_seconds(looks)
        if waited + delay > limits.max_wait_seconds:
            raise SourceBusyError(busy_message(where, reason, waited, limits), waited)
        log.warning(
            "%s: %s; waiting %.0f s before looking again (waited %.0f s of REPORTS_GOVERNOR_MAX_WAIT=%d)",
            where,
            reason,
            delay,
            waited,
            limits.max_wait_seconds,
        )
        sleep(delay)
        looks += 1


class Pacer:
    """Pauses a long extract between its parts while the source is above a threshold (bounded).

    Given to the extract as its progress callback (rows, CSV bytes so far): at each ``part_bytes``
    boundary, at most every ``PACER_INTERVAL_SECONDS``, it looks at the source through a connection of
    its own (the extract's is busy streaming) and, while busy, stops reading for up to ``max_pause``
    seconds per pause, and all pauses and the wait before the extract (``already``) at most
    ``max_wait_seconds``; then the extract goes on whatever the figure. It never raises: a look that
    fails is logged and the extract goes on. ``waited`` is the seconds spent paused. ``close`` ends its
    connection.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        limits: Limits,
        where: str,
        *,
        part_bytes: int,
        max_pause: float,
        then: Callable[[int, int], None] | None = None,
        already: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect, self.limits, self.where = connect, limits, where
        self.part_bytes, self.max_pause, self.then = max(1, part_bytes), max_pause, then
        self.sleep, self.clock = sleep, clock
        self.waited = 0.0
        self.already = already  # waited before the extract started: counts towards the same bound
        self._conn: Any = None
        self._part = 0
        self._last_look = clock()

    def __call__(self, rows: int, csv_bytes: int) -> None:
        if self.then is not None:
            self.then(rows, csv_bytes)
        part = csv_bytes // self.part_bytes
        if part == self._part or self.clock() - self._last_look < PACER_INTERVAL_SECONDS:
            return
        self._part = part
        try:
            self._pause_while_busy()
        except Exception as exc:  # noqa: BLE001 - a failed look must not fail an extract that is running
            log.warning("%s: could not look at the source between parts (%s); going on", self.where, exc)
            close_quietly(self._conn)
            self._conn = None
        self._last_look = self.clock()

    def _pause_while_busy(self) -> None:
        budget = min(self.max_pause, self.limits.max_wait_seconds - self.already - self.waited)
        started, looks = self.clock(), 0
        while True:
            if self._conn is None:
                self._conn = self.connect()
            reason = over_limits(read_load(self._conn, self.limits), self.limits)
            paused = self.clock() - started
            if reason is None:
                break
            delay = min(backoff_seconds(looks), budget - paused)
            if delay <= 0:
                log.warning(
                    "%s: %s; paused %.0f s between parts (the most allowed); going on", self.where, reason, paused
                )
                break
            log.warning("%s: %s; pausing the extract %.0f s between parts", self.where, reason, delay)
            self.sleep(delay)
            looks += 1
        self.waited += self.clock() - started

    def close(self) -> None:
        """Close the pacer's own connection."""
        if self._conn is not None:
            close_quietly(self._conn)
            self._conn = None


class Gate:
    """The governor of one extract (or chunk plan): ``admit`` before it, ``pacer`` between its parts.

    This one waits in-process (the CLI); the Airflow adapter's gate reschedules the task instead.
    ``waited`` adds up the seconds this extract spent waiting, for the wait metric.
    """

    def __init__(self, limits: Limits, where: str) -> None:
        self.limits = limits
        self.where = where
        self.waited = 0.0

    def admit(self, connect: Callable[[], Any]) -> None:
        """Return once the source is calm; SourceBusyError when it stayed busy past the bound."""
        try:
            self.waited += wait_until_calm(connect, self.limits, self.where)
        except SourceBusyError as exc:
            self.waited += exc.waited
            raise

    def pacer(
        self, connect: Callable[[], Any], *, part_bytes: int, max_pause: float, then: Callable[[int, int], None] | None
    ) -> Pacer | None:
        """The progress callback that pauses between parts, or None when the governor is off."""
        if not self.limits.enabled:
            return None
        return Pacer(
            connect, self.limits, self.where, part_bytes=part_bytes, max_pause=max_pause, then=then, already=self.waited
        )

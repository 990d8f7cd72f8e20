"""Issue 24.3: the source governor holds an extract back while the source is busy or its replica lags.

On the real servers: 20 sessions running ``SELECT SLEEP(n)`` on the local source (Threads_running is
checked to rise by 20), and the real local replica made to lag by a table lock its SQL thread needs
while the primary writes. The extract must start only after they ended (server-side end times against
the extract's own start), and load exactly the source's rows; a bound that runs out fails with the
figure named and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import MySQLdb
import pytest
from tests.conftest import REPLICATED_DB, LocalConnections, Replica, execute, mysql_connect

from report_pipeline import governor, tasks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600, method="thread")]

DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
SESSIONS = 20
_INTERRUPTED = 1317  # KILL QUERY
_UNKNOWN_THREAD = 1094


def _spec(table: str) -> TableSpec:
    return build_table(
        {
            "id": 24,
            "name": table,
            "status": 1,
            "query_select": f"SELECT id, v FROM `{table}`",
            "params_select": "",
            "all_companies": 1,
            "query_insert": f"REPLACE INTO `{table}` (id, v) VALUES",
        }
    )


def _rows(conn: Any, table: str) -> list[tuple[Any, ...]]:
    cursor = conn.cursor()
    cursor.execute(f"SELECT id, v FROM `{table}` ORDER BY id")
    rows = list(cursor.fetchall())
    conn.commit()
    cursor.close()
    return rows


def _threads_running(conn: Any) -> int:
    cursor = conn.cursor()
    cursor.execute("SHOW GLOBAL STATUS LIKE 'Threads_running'")
    value = int(cursor.fetchone()[1])
    cursor.close()
    return value


def _utc(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


class BusySessions:
    """``count`` sessions each running ``SELECT SLEEP(seconds)``; ``ended`` are their server-side end times."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.seconds = count, seconds
        self.ended: list[dt.datetime] = []
        self.errors: list[BaseException] = []
        self.ids: list[int] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        try:
            conn = mysql_connect()
            self.ids.append(conn.thread_id())
            cursor = conn.cursor()
            cursor.execute("SET time_zone = '+00:00'")
            try:
                # SYSDATE() is read when it is evaluated, after the SLEEP to its left: the session's own end.
                cursor.execute("SELECT SLEEP(%s), SYSDATE(6)", (self.seconds,))
                end = cursor.fetchone()[1]
            except MySQLdb.OperationalError as exc:
                if exc.args[0] != _INTERRUPTED:
                    raise
                cursor.execute("SELECT SYSDATE(6)")  # ended by stop(): a moment after the end, never before
                end = cursor.fetchone()[0]
            self.ended.append(end.replace(tzinfo=dt.UTC))
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def start(self, control: Any, base: int) -> int:
        """Start them and wait until the server counts all of them running; the peak Threads_running seen."""
        for thread in self.threads:
            thread.start()
        deadline, peak = time.monotonic() + 120, 0
        while peak < base + self.count and time.monotonic() < deadline:
            peak = max(peak, _threads_running(control))
            time.sleep(0.05)
        assert peak >= base + self.count, f"Threads_running rose only to {peak} (base {base})"
        return peak

    def stop(self) -> None:
        """End every session's query now (KILL QUERY), e.g. once a test saw what it waits for."""
        conn = mysql_connect()
        cursor = conn.cursor()
        for thread_id in self.ids:
            try:
                cursor.execute(f"KILL QUERY {int(thread_id)}")
            except MySQLdb.OperationalError as exc:
                if exc.args[0] != _UNKNOWN_THREAD:  # ended already
                    raise
        conn.close()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=300)


@pytest.fixture
def source(scratch_db: str) -> Iterator[dict[str, Any]]:
    """A source table ``g`` of 500 rows and an empty target copy, one company writing there."""
    target = f"{scratch_db}_t"
    ddl = "CREATE TABLE {} (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)"
    execute(
        mysql_connect(scratch_db),
        ddl.format("g"),
        "INSERT INTO g SELECT seq, CONCAT('row ', seq, ' é') FROM seq_1_to_500",
        f"CREATE DATABASE `{target}`",
        ddl.format(f"`{target}`.g"),
        f"INSERT INTO `{target}`.g VALUES (7, 'the target as it was')",
    )
    yield {"db": scratch_db, "target": target}
    execute(mysql_connect(), f"DROP DATABASE IF EXISTS `{target}`")


def _company(bucket: str, schema: str) -> Company:
    return Company(1, 1, 1, "gov", bucket, schema, 1, "default")


def test_twenty_busy_sessions_hold_the_extract_back_until_they_end(source, bucket_name):
    control = mysql_connect()
    base = _threads_running(control)  # the server's own threads and this session
    # Wait while anything beyond that runs: every sleeper must have ended before the extract starts.
    settings = Settings(source_max_threads_running=base, governor_max_wait_seconds=300)
    busy = BusySessions(SESSIONS, 8)
    peak = busy.start(control, base)
    company, spec = _company(bucket_name, source["target"]), _spec("g")
    conns = LocalConnections(source["db"])
    gate = governor.Gate(governor.limits_of(settings), tasks.table_label(company, spec))
    manifest = tasks.extract_table(conns, settings, company, spec, DATE, "run-gov", gate=gate)
    busy.join()
    assert not busy.errors and len(busy.ended) == SESSIONS
    started = _utc(manifest.started_at)
    assert started > max(busy.ended), f"the extract started at {started}, before the last session ended"
    assert gate.waited > 0
    print(f"\nThreads_running: base {base}, peak {peak}; the extract waited {gate.waited:.1f} s")
    tasks.load_table(conns, settings, company, spec, [manifest.ref], DATE, "run-gov")
    assert _rows(mysql_connect(source["target"]), "g") == _rows(mysql_connect(source["db"]), "g")


def test_a_source_busy_past_the_bound_fails_naming_the_figure_and_writes_nothing(source, bucket_name, s3):
    control = mysql_connect()
    base = _threads_running(control)
    settings = Settings(source_max_threads_running=base, governor_max_wait_seconds=3)
    busy = BusySessions(3, 300)
    busy.start(control, base)
    company, spec = _company(bucket_name, source["target"]), _spec("g")
    try:
        with pytest.raises(governor.SourceBusyError) as refused:
            tasks.extract_table(LocalConnections(source["db"]), settings, company, spec, DATE, "run-gov")
    finally:
        busy.stop()
        busy.join()
    message = str(refused.value)
    assert message.startswith(
        "company 'gov' table 'g' (tables row id=24): the source is too busy to extract from: Threads_running="
    )
    assert f"is above REPORTS_SOURCE_MAX_THREADS_RUNNING={base} after waiting " in message
    assert "(REPORTS_GOVERNOR_MAX_WAIT=3); nothing was extracted or loaded, the target is as it was." in message
    print(f"\n{message}")
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.list_objects_v2(Bucket=bucket_name)  # not even the bucket: the governor comes first
    assert _rows(mysql_connect(source["target"]), "g") == [(7, "the target as it was")]


class ReplicaConnections(LocalConnections):
    """The extract reads the real replica; the target and S3 are the local ones."""

    def __init__(self, replica: Replica) -> None:
        super().__init__(REPLICATED_DB)
        self.replica = replica

    def source(self) -> Any:
        return self.replica.connect()


def _lag(replica: Replica) -> int | None:
    value = replica.status().get("Seconds_Behind_Master")
    return None if value is None else int(value)


def test_a_lagging_replica_holds_the_extract_back_until_it_caught_up(replica, bucket_name, source):
    table = f"g_{uuid.uuid4().hex[:10]}"
    primary = replica.primary()
    execute(
        primary,
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)",
        f"INSERT INTO `{table}` SELECT seq, CONCAT('first ', seq) FROM seq_1_to_300",
    )
    target = source["target"]
    execute(mysql_connect(target), f"CREATE TABLE `{table}` (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
    replica.wait_caught_up()
    holder = replica.connect()
    outcome: dict[str, Any] = {}
    try:
        # The replica's SQL thread needs a write lock on the table: a READ lock held here stops it.
        execute(holder, f"LOCK TABLES `{table}` READ")
        execute(primary, f"INSERT INTO `{table}` SELECT seq, CONCAT('late ', seq) FROM seq_301_to_420")
        execute(primary, f"UPDATE `{table}` SET v = CONCAT(v, ' changed') WHERE id <= 10")
        deadline = time.monotonic() + 120
        while (_lag(replica) or 0) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        lag_before = _lag(replica)
        assert lag_before is not None and lag_before >= 4, replica.status()

        settings = Settings(source_max_lag_seconds=2, governor_max_wait_seconds=300)
        company, spec = _company(bucket_name, target), _spec(table)
        gate = governor.Gate(governor.limits_of(settings), tasks.table_label(company, spec))

        def run() -> None:
            try:
                outcome["manifest"] = tasks.extract_table(
                    ReplicaConnections(replica), settings, company, spec, DATE, "run-lag", gate=gate
                )
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                outcome["error"] = exc

        extract = threading.Thread(target=run, daemon=True)
        extract.start()
        # Still held back while the replica lags more and more.
        while (_lag(replica) or 0) < lag_before + 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        lag_held = _lag(replica)
        assert extract.is_alive() and not outcome, outcome
        released = dt.datetime.now(dt.UTC)
        execute(holder, "UNLOCK TABLES")
        extract.join(timeout=300)
    finally:
        holder.close()
    assert "error" not in outcome, outcome.get("error")
    manifest = outcome["manifest"]
    assert _utc(manifest.started_at) > released
    assert gate.waited > 0
    print(
        f"\nSeconds_Behind_Master: {lag_before} s when the extract was asked, {lag_held} s while it waited; "
        f"the extract waited {gate.waited:.1f} s"
    )
    tasks.load_table(LocalConnections(target), settings, company, spec, [manifest.ref], DATE, "run-lag")
    loaded = _rows(mysql_connect(target), table)
    assert loaded == _rows(primary, table)  # every late row and change: read after the replica caught up
    assert len(loaded) == 420 and loaded[0] == (1, "first 1 changed")
    execute(primary, f"DROP TABLE IF EXISTS `{table}`")
    primary.close()


def test_the_lag_check_reads_the_replica_status_under_the_servers_own_names(replica):
    conn = replica.connect()
    try:
        load = governor.read_load(conn, governor.Limits(max_lag_seconds=30))
        assert load.replica and load.lag_seconds is not None and load.threads_running >= 1
        # MariaDB answers SHOW REPLICA STATUS (10.5.1+) with the old column name; MySQL 8.0.22+ says Source.
        assert (load.lag_statement, load.lag_figure) == ("SHOW REPLICA STATUS", "Seconds_Behind_Master")
    finally:
        conn.close()
    primary = mysql_connect()
    try:
        assert not governor.read_load(primary, governor.Limits(max_lag_seconds=30)).replica
    finally:
        primary.close()


def test_a_long_extract_pauses_between_its_parts_while_the_source_is_busy(source, bucket_name, monkeypatch):
    execute(mysql_connect(source["db"]), "INSERT INTO g SELECT seq, REPEAT('x', 36) FROM seq_501_to_200000")
    monkeypatch.setattr(governor, "PACER_INTERVAL_SECONDS", 0.0)  # look at every part boundary
    control = mysql_connect()
    base = _threads_running(control)
    # Calm, mid-stream: the extract's own query runs too.
    settings = Settings(source_max_threads_running=base + 1, governor_max_wait_seconds=300, part_bytes=1 << 20)
    busy = BusySessions(SESSIONS, 6)
    calls: list[tuple[float, int]] = []

    def progress(rows: int, csv_bytes: int) -> None:
        calls.append((time.time(), csv_bytes))
        if csv_bytes >= 2 << 20 and not busy.ids:
            busy.start(mysql_connect(), base)  # the next part boundary's look sees them

    company, spec = _company(bucket_name, source["target"]), _spec("g")
    conns = LocalConnections(source["db"])
    gate = governor.Gate(governor.limits_of(settings), tasks.table_label(company, spec))
    manifest = tasks.extract_table(conns, settings, company, spec, DATE, "run-pace", progress=progress, gate=gate)
    busy.join()
    assert not busy.errors and len(busy.ended) == SESSIONS
    started = next(i for i, (_, size) in enumerate(calls) if size >= 2 << 20)
    # The first batch read after the sessions started came only after every one of them ended.
    resumed = dt.datetime.fromtimestamp(calls[started + 1][0], dt.UTC)
    assert resumed > max(busy.ended), f"the extract read on at {resumed} while sessions ran"
    assert gate.waited > 0
    print(f"\nthe extract paused {gate.waited:.1f} s between parts")
    tasks.load_table(conns, settings, company, spec, [manifest.ref], DATE, "run-pace")
    assert _rows(mysql_connect(source["target"]), "g") == _rows(mysql_connect(source["db"]), "g")

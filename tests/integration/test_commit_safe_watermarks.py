"""Issue 20 items 1-6: green means exact across time, with writes interleaved on the real servers.

Each test makes the interleaving happen (a writer's transaction held open on a connection of its own,
a row changed between two chunk extracts, a replica whose SQL thread is stopped), checks that it did,
and compares every target row with the source's.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import REPLICATED_DB, Replica, execute, mysql_connect, s3_client

from report_pipeline import tasks, watermarks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.errors import ConfigError, RefusedError
from report_pipeline.load import LoadResult
from report_pipeline.manifest import Manifest
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


class Conns:
    """``connections.Connections`` whose source can be switched between servers and users."""

    def __init__(self, source_db: str, source: Any = None) -> None:
        self.source_db = source_db
        self.opener = source or (lambda: mysql_connect(source_db))

    def source(self) -> Any:
        return self.opener()

    def target(self) -> Any:
        return mysql_connect()

    def s3(self) -> Any:
        return s3_client()

    def protected_schemas(self) -> dict[str, str]:
        return {}


def _spec(query: str, columns: str, cursor: str, overlap: int | None, **row: Any) -> TableSpec:
    return build_table(
        {
            "id": 20,
            "name": "events",
            "status": 1,
            "query_select": query,
            "params_select": "",
            "all_companies": 1,
            "query_insert": f"INSERT INTO events ({columns}) VALUES",
            "load_mode": "incremental",
            "cursor_column": cursor,
            "cursor_overlap": overlap,
            **row,
        }
    )


class Table:
    """One incremental table ``events`` of one company, run the way the tasks run it."""

    def __init__(self, conns: Conns, target_db: str, bucket: str, spec: TableSpec, columns: str) -> None:
        self.conns, self.spec, self.columns, self.target_db = conns, spec, columns, target_db
        self.company = Company(1, 1, 1, "wm", bucket, target_db, 1, "default")
        self.settings = Settings()

    def extract(self, day: int, **kw: Any) -> list[Manifest]:
        when = DAY + dt.timedelta(days=day)
        if self.spec.chunk_column:
            chunks = tasks.plan_table_chunks(self.conns, self.company, self.spec, when)
            return [
                tasks.extract_table(self.conns, self.settings, self.company, self.spec, when, f"r{day}", chunk=c)
                for c in chunks
            ]
        return [tasks.extract_table(self.conns, self.settings, self.company, self.spec, when, f"r{day}", **kw)]

    def load(self, day: int, manifests: list[Manifest], **kw: Any) -> LoadResult:
        when = DAY + dt.timedelta(days=day)
        refs = [m.ref for m in manifests]
        return tasks.load_table(self.conns, self.settings, self.company, self.spec, refs, when, f"r{day}", **kw)

    def run(self, day: int, **kw: Any) -> LoadResult:
        return self.load(day, self.extract(day, **kw))

    def target_rows(self) -> list[tuple[Any, ...]]:
        return _rows(mysql_connect(self.target_db), f"SELECT {self.columns} FROM events ORDER BY id")

    def watermark(self) -> watermarks.Watermark | None:
        conn = mysql_connect()
        try:
            return watermarks.read(conn.cursor(), self.target_db, "events")
        finally:
            conn.close()


def _rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        conn.close()


@pytest.fixture
def target_db(mysql_root: Any) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    execute(mysql_root, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield name
    # A test that failed half-way may leave a session on the schema (its frame keeps the connection).
    cursor = mysql_root.cursor()
    cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()", (name,))
    for (session,) in cursor.fetchall():
        cursor.execute(f"KILL {int(session)}")
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{name}`")


INT_DDL = "CREATE TABLE events (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20) NOT NULL)"
TIME_DDL = (
    "CREATE TABLE events (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20) NOT NULL, "
    "updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
)


def _int_table(source_db: str, target_db: str, bucket: str, conns: Conns | None = None) -> Table:
    for db in (source_db, target_db):
        execute(mysql_connect(db), INT_DDL)
    spec = _spec("SELECT id, note FROM events", "id, note", "id", 0)
    return Table(conns or Conns(source_db), target_db, bucket, spec, "id, note")


def _time_table(source_db: str, target_db: str, bucket: str, overlap: int = 1, **row: Any) -> Table:
    for db in (source_db, target_db):
        execute(mysql_connect(db), TIME_DDL)
    spec = _spec("SELECT id, note, updated_at FROM events", "id, note, updated_at", "updated_at", overlap, **row)
    return Table(Conns(source_db), target_db, bucket, spec, "id, note, updated_at")


def _source_rows(db: str, columns: str) -> list[tuple[Any, ...]]:
    return _rows(mysql_connect(db), f"SELECT {columns} FROM events ORDER BY id")


# --- 1. No late row is lost, whatever the overlap --------------------------------------------------------


@pytest.fixture
def no_other_writers(mysql_root: Any) -> None:
    """Wait until no write transaction of an earlier test is still open on the server (a stalled client's
    session lingers until the server's own net timeout): an open writer anywhere keeps an integer
    watermark pending, which is right, but this test must see only the writer it opens itself."""
    cursor = mysql_root.cursor()
    deadline = time.monotonic() + 180
    while True:
        cursor.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_rows_modified > 0")
        if cursor.fetchone()[0] == 0:
            return
        assert time.monotonic() < deadline, "write transactions of earlier tests are still open on the server"
        time.sleep(1)


def test_an_integer_cursor_never_passes_an_id_whose_transaction_commits_after_a_higher_one(
    scratch_db: str, target_db: str, bucket_name: str, no_other_writers: None
):
    table = _int_table(scratch_db, target_db, bucket_name)
    execute(mysql_connect(scratch_db), "INSERT INTO events (note) SELECT CONCAT('n', seq) FROM seq_1_to_50")
    table.run(0)
    assert table.target_rows() == _source_rows(scratch_db, "id, note")

    slow = mysql_connect(scratch_db)  # a writer that takes an id and commits after a higher one
    try:
        cursor = slow.cursor()
        cursor.execute("INSERT INTO events (note) VALUES ('late')")
        cursor.execute("SELECT LAST_INSERT_ID()")
        late = int(cursor.fetchone()[0])
        execute(mysql_connect(scratch_db), "INSERT INTO events (note) VALUES ('quick')")
        manifests = table.extract(1)
        table.load(1, manifests)
        # The interleaving happened: the extract saw the higher id, not the lower one, whose writer was open.
        quick = max(r[0] for r in _source_rows(scratch_db, "id, note"))
        assert late < quick and manifests[0].cursor is not None and manifests[0].cursor.max_seen == str(quick)
        assert (late, "late") not in table.target_rows()
        slow.commit()
    finally:
        slow.close()

    table.run(2)
    assert (late, "late") in table.target_rows()
    assert table.target_rows() == _source_rows(scratch_db, "id, note")
    assert manifests[0].cursor.writers  # run 1 kept its highest id pending on the open writer
    mark = table.watermark()
    assert mark is not None and mark.cursor_value == str(quick)  # it moved on once the writer had ended


def test_a_writer_hidden_by_the_cached_transaction_list_still_holds_the_integer_watermark(
    scratch_db: str, target_db: str, bucket_name: str, mysql_root: Any, no_other_writers: None
):
    """``INNODB_TRX`` is a cache InnoDB refills at most every 100 ms: a writer begun just after another
    session's reading is missing from every reading in the next 100 ms. An extract starting then must
    still keep its highest id pending (horizon: the counter, and a list read more than 100 ms after it)."""
    table = _int_table(scratch_db, target_db, bucket_name)
    execute(mysql_connect(scratch_db), "INSERT INTO events (note) SELECT CONCAT('n', seq) FROM seq_1_to_50")
    table.run(0)

    probe = mysql_root.cursor()
    slow = mysql_connect(scratch_db)
    try:
        for _ in range(20):  # until the interleaving happens on this (noisy) machine
            probe.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX")  # the cache is refilled now
            probe.fetchall()
            slow.cursor().execute("INSERT INTO events (note) VALUES ('late')")  # a writer begun after it
            execute(mysql_connect(scratch_db), "INSERT INTO events (note) VALUES ('quick')")
            probe.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_rows_modified > 0")
            if probe.fetchone()[0] == 0:  # the open writer is hidden from the list as the extract begins
                break
            slow.rollback()
        else:
            pytest.fail("could not start an extract while the cached transaction list hid an open writer")
        manifests = table.extract(1)
        table.load(1, manifests)
        quick = max(r[0] for r in _source_rows(scratch_db, "id, note"))
        assert manifests[0].cursor is not None and manifests[0].cursor.max_seen == str(quick)
        assert manifests[0].cursor.writers  # held pending, not counted at once
        assert "late" not in [r[1] for r in table.target_rows()]
        slow.commit()
    finally:
        slow.close()

    table.run(2)
    assert "late" in [r[1] for r in table.target_rows()]
    assert table.target_rows() == _source_rows(scratch_db, "id, note")


def test_a_time_cursor_never_passes_a_row_whose_transaction_is_longer_than_the_overlap(
    scratch_db: str, target_db: str, bucket_name: str
):
    table = _time_table(scratch_db, target_db, bucket_name, overlap=1)
    execute(mysql_connect(scratch_db), "INSERT INTO events (note) SELECT CONCAT('n', seq) FROM seq_1_to_20")
    table.run(0)

    slow = mysql_connect(scratch_db)  # stamps its row now, commits after the next extract
    try:
        slow.cursor().execute("INSERT INTO events (note) VALUES ('late')")
        time.sleep(1.5)  # the transaction outlives the 1 s overlap
        execute(mysql_connect(scratch_db), "INSERT INTO events (note) VALUES ('quick')")
        manifests = table.extract(1)
        table.load(1, manifests)
        assert "late" not in [r[1] for r in table.target_rows()] and "quick" in [r[1] for r in table.target_rows()]
        slow.commit()
    finally:
        slow.close()
    late = _rows(mysql_connect(scratch_db), "SELECT updated_at FROM events WHERE note IN ('late', 'quick') ORDER BY id")
    assert late[1][0] - late[0][0] > dt.timedelta(seconds=1)  # stamped more than the overlap before 'quick'

    table.run(2)
    assert table.target_rows() == _source_rows(scratch_db, "id, note, updated_at")


def test_without_the_process_privilege_the_watermark_falls_back_to_the_overlap_and_says_so(
    scratch_db: str, target_db: str, bucket_name: str, mysql_root: Any, caplog: pytest.LogCaptureFixture
):
    user = f"np{uuid.uuid4().hex[:8]}"
    execute(
        mysql_root,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
        f"GRANT SELECT ON `{scratch_db}`.* TO '{user}'@'%'",
    )
    try:
        import os

        import MySQLdb

        def opener() -> Any:
            return MySQLdb.connect(
                host="127.0.0.1", port=int(os.environ["REPORTS_MYSQL_PORT"]), user=user, passwd="pw", db=scratch_db
            )

        table = _int_table(scratch_db, target_db, bucket_name, Conns(scratch_db, opener))
        execute(mysql_connect(scratch_db), "INSERT INTO events (note) VALUES ('a'), ('b')")
        with caplog.at_level(logging.WARNING):
            manifests = table.extract(0)
        assert manifests[0].cursor is not None and manifests[0].cursor.guarded is False
        assert "needs the PROCESS privilege" in caplog.text
        table.load(0, manifests)
        assert table.watermark().cursor_value == "2"  # type: ignore[union-attr]
        # `plan` and `validate` print the same note (checks.commit_safety_note); with PROCESS, none.
        from report_pipeline import checks
        from report_pipeline.config import CompanyPlan, Plan

        plan = Plan(companies=(CompanyPlan(table.company, (table.spec,), ()),), broken_companies=())
        note = checks.commit_safety_note(plan, Settings.from_env({}), table.conns)
        assert note is not None and "protected only by cursor_overlap" in note
        assert checks.commit_safety_note(plan, Settings.from_env({}), Conns(scratch_db)) is None
    finally:
        execute(mysql_root, f"DROP USER '{user}'@'%'")


# --- 2. Chunks cannot outrun each other -----------------------------------------------------------------


def test_a_change_in_chunk_0_between_chunk_extracts_is_read_by_the_next_run(
    scratch_db: str, target_db: str, bucket_name: str
):
    table = _time_table(scratch_db, target_db, bucket_name, overlap=0, chunk_column="id", chunk_rows=25)
    execute(
        mysql_connect(scratch_db),
        "INSERT INTO events (note, updated_at) SELECT CONCAT('n', seq), '2026-11-01' + INTERVAL seq MINUTE "
        "FROM seq_1_to_100",
    )
    chunks = tasks.plan_table_chunks(table.conns, table.company, table.spec, DAY)
    assert len(chunks) > 2

    def extract(chunk: Any) -> Manifest:
        return tasks.extract_table(table.conns, table.settings, table.company, table.spec, DAY, "r0", chunk=chunk)

    first = extract(chunks[0])
    # Stamped now by ON UPDATE: the chunk-0 change is older than the last chunk's.
    execute(mysql_connect(scratch_db), "UPDATE events SET note = 'chunk 0 changed' WHERE id = 1")
    execute(mysql_connect(scratch_db), "UPDATE events SET note = 'last changed' WHERE id = 100")
    rest = [extract(c) for c in chunks[1:]]
    table.load(0, [first, *rest])
    notes = dict((r[0], r[1]) for r in table.target_rows())
    assert notes[1] == "n1" and notes[100] == "last changed"  # the interleaving: chunk 0 was read before

    table.run(1)
    assert table.target_rows() == _source_rows(scratch_db, "id, note, updated_at")


# --- 3. One ordering for every way a table is loaded -----------------------------------------------------


def test_an_upsert_override_of_an_incremental_table_racing_a_scheduled_run_is_refused(
    scratch_db: str, target_db: str, bucket_name: str
):
    # The seed's REPLACE: an upsert override would replace rows by key, newer ones with older ones.
    columns = "id, note, updated_at"
    table = _time_table(scratch_db, target_db, bucket_name, 60, query_insert=f"REPLACE INTO events ({columns}) VALUES")
    execute(mysql_connect(scratch_db), "INSERT INTO events (note) VALUES ('a'), ('b')")
    table.run(0)
    manual = table.extract(5)  # a manual run of another date with --load-mode upsert extracts first ...
    execute(mysql_connect(scratch_db), "UPDATE events SET note = 'newer' WHERE id = 1")
    table.run(1)  # ... the scheduled run extracts and loads the newer row ...
    with pytest.raises(RefusedError, match="every load of it must keep the incremental ordering"):
        table.load(5, manual, load_mode="upsert")  # ... and the manual load would put the older row back
    assert table.target_rows() == _source_rows(scratch_db, "id, note, updated_at")


# --- 5. Incremental queries have no second window -------------------------------------------------------


def test_a_date_window_on_another_column_of_an_incremental_query_is_refused(scratch_db: str):
    query = "SELECT id, note, updated_at FROM events WHERE created >= %(date_from)s"
    with pytest.raises(ConfigError, match=r"compares the date placeholder %\(date_from\)s with 'created'"):
        _spec(query, "id, note, updated_at", "updated_at", 60)
    legacy = "SELECT id, note, updated_at FROM events WHERE company = %s AND created >= %s"
    with pytest.raises(ConfigError, match="not with the cursor column 'updated_at'"):
        build_table(
            {
                "id": 20,
                "name": "events",
                "status": 1,
                "query_select": legacy,
                "params_select": "company[1],date",
                "query_insert": "INSERT INTO events (id, note, updated_at) VALUES",
                "load_mode": "incremental",
                "cursor_column": "updated_at",
            }
        )
    # Bounding the cursor column itself narrows only what the watermark narrows already.
    _spec("SELECT id, note, updated_at FROM events WHERE updated_at >= %(date_from)s", "id", "updated_at", 60)


# --- 6. Collations never merge rows silently --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["upsert", "incremental"])
def test_a_case_folding_target_key_is_refused_before_loading(
    scratch_db: str, target_db: str, bucket_name: str, mode: str
):
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE events (code VARCHAR(10) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, id INT NOT NULL)",
        "INSERT INTO events VALUES ('abc', 1), ('ABC', 2), ('x', 3)",
    )
    execute(
        mysql_connect(target_db),
        "CREATE TABLE events (code VARCHAR(10) COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, id INT NOT NULL)",
    )
    row: dict[str, Any] = {"load_mode": mode}
    if mode == "upsert":  # the seed's REPLACE: a later row of an equal key replaces the earlier one
        row.update(cursor_column=None, query_insert="REPLACE INTO events (code, id) VALUES")
    spec = _spec("SELECT code, id FROM events", "code, id", "id", 0, **row)
    table = Table(Conns(scratch_db), target_db, bucket_name, spec, "code, id")
    manifests = table.extract(0)
    assert sum(m.rows for m in manifests) == 3
    with pytest.raises(RefusedError, match=r"code \(utf8mb4_bin in the source, utf8mb4_general_ci in the target\)"):
        table.load(0, manifests)
    assert _rows(mysql_connect(target_db), "SELECT code, id FROM events") == []
    assert _rows(mysql_connect(target_db), "SHOW TABLES LIKE 'report_loads'") == [] or not _rows(
        mysql_connect(target_db), "SELECT * FROM report_loads"
    )

    # With the source's collation the three rows arrive as three.
    execute(mysql_connect(target_db), "ALTER TABLE events MODIFY code VARCHAR(10) COLLATE utf8mb4_bin NOT NULL")
    assert table.load(0, manifests).rows == 3
    assert sorted(_rows(mysql_connect(target_db), "SELECT code, id FROM events")) == [("ABC", 2), ("abc", 1), ("x", 3)]


# --- 4. One source of truth per table: a primary and its replica ----------------------------------------


@pytest.fixture
def replicated(replica: Replica) -> Iterator[tuple[Replica, str]]:
    name = f"ev_{uuid.uuid4().hex[:8]}"
    yield replica, name
    execute(replica.primary(), f"DROP TABLE IF EXISTS `{name}`")


def test_rows_from_a_lagging_replica_never_replace_newer_rows_from_the_primary_and_failover_is_a_plain_run(
    replicated: tuple[Replica, str], target_db: str, bucket_name: str
):
    replica, name = replicated
    execute(replica.primary(), INT_DDL.replace("events", f"`{name}`"))
    execute(replica.primary(), f"INSERT INTO `{name}` (note) VALUES ('a'), ('b'), ('c')")
    execute(mysql_connect(target_db), INT_DDL)
    conns = Conns(REPLICATED_DB)
    # Loaded by `id`, overlap 3: every run re-reads the last rows, so changes to them are picked up.
    spec = _spec(f"SELECT id, note FROM `{name}`", "id, note", "id", 3)
    table = Table(conns, target_db, bucket_name, spec, "id, note")
    replica.wait_caught_up()

    table.run(0)  # from the primary
    execute(replica.connect(), "STOP SLAVE SQL_THREAD")
    try:
        execute(replica.primary(), f"UPDATE `{name}` SET note = 'newer' WHERE id = 3")
        table.run(1)  # the primary's newer row is loaded
        assert ("3", "newer") in [(str(i), n) for i, n in table.target_rows()]

        conns.opener = replica.connect  # a process whose source is the lagging replica
        stale = table.extract(2)
        assert ("3", "c") in [(str(i), n) for i, n in _rows(replica.connect(), f"SELECT id, note FROM `{name}`")]
        result = table.load(2, stale)
        assert result.skipped and result.skip_reason == "older-extract"
        assert ("3", "newer") in [(str(i), n) for i, n in table.target_rows()]
    finally:
        execute(replica.connect(), "START SLAVE SQL_THREAD")
    replica.wait_caught_up()

    # Failover: the primary is gone and the replica, caught up, serves the source; its rows load.
    execute(replica.primary(), f"INSERT INTO `{name}` (note) VALUES ('d')")
    replica.wait_caught_up()
    result = table.run(3)
    assert not result.skipped
    assert table.target_rows() == _rows(replica.connect(), f"SELECT id, note FROM `{name}` ORDER BY id")
    mark = table.watermark()
    assert mark is not None and mark.source_server is not None and f":{replica.port}" in mark.source_server


def test_a_switch_to_a_server_whose_data_cannot_be_ordered_is_refused_until_a_reset_run_adopts_it(
    scratch_db: str, target_db: str, bucket_name: str
):
    table = _int_table(scratch_db, target_db, bucket_name)
    execute(mysql_connect(scratch_db), "INSERT INTO events (note) VALUES ('a'), ('b')")
    table.run(0)
    # The rows loaded so far came from another server, one without GTID positions (an old primary).
    execute(
        mysql_connect(target_db),
        "UPDATE report_watermarks SET source_server = 'mariadb:9@old-primary:3306', source_position = NULL",
    )
    execute(mysql_connect(scratch_db), "UPDATE events SET note = 'changed' WHERE id = 2")
    with pytest.raises(RefusedError, match="came from mariadb:9@old-primary:3306, and without GTID positions"):
        table.run(1)
    assert ("2", "b") in [(str(i), n) for i, n in table.target_rows()]  # unchanged

    # The documented failover path: one reset run against the new server.
    table.run(2, reset_watermark=True)
    assert table.target_rows() == _source_rows(scratch_db, "id, note")
    mark = table.watermark()
    assert mark is not None and mark.source_server != "mariadb:9@old-primary:3306"
    table.run(3)  # and from now on it is the table's source
    assert table.target_rows() == _source_rows(scratch_db, "id, note")

"""Issue 12 item 4: schema evolution (``tables.schema_evolution``), on the real MariaDB and SeaweedFS servers.

Each test loads a table, changes the SOURCE table's shape the way an application release does, runs the
same units of work the DAG's tasks run, and compares every target row and column with the source's
(NULL-safe: Python tuples, None for NULL) and the target's column types with what evolution should make
of them. Each mode is covered: ``swap`` (the shadow gets the new shape), ``upsert`` and ``incremental``
(the ALTER runs before the load's transaction).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import LocalConnections, execute, mysql_connect

from report_pipeline import schemalog, tasks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.errors import RefusedError
from report_pipeline.load import LoadResult
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 11, 1, 12, 0, 0)
LATER = T0 + dt.timedelta(days=5)
BASE = ("id", "company", "label", "qty", "price", "body", "updated_at")
DDL = (
    "CREATE TABLE items (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, label VARCHAR(50) NULL, qty INT NULL, "
    "price DECIMAL(10,2) NULL, body TEXT NULL, updated_at DATETIME(6) NOT NULL, KEY (updated_at)) ENGINE=InnoDB"
)
MODES = ["swap", "upsert", "incremental"]


def _rows(db: str, query: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    try:
        cursor = conn.cursor()
        cursor.execute(query)
        return list(cursor.fetchall())
    finally:
        conn.close()


def change(db: str, *statements: str) -> None:
    execute(mysql_connect(db), *statements)


def column_types(db: str, table: str = "items") -> dict[str, str]:
    """Each column's type, integer display widths dropped (MariaDB prints ``int(11)``, MySQL 8 ``int``)."""
    rows = _rows(
        "information_schema",
        f"SELECT COLUMN_NAME, COLUMN_TYPE FROM COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' "
        "ORDER BY ORDINAL_POSITION",
    )
    return {str(r[0]): re.sub(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)", r"\1", str(r[1])) for r in rows}


def show_create(db: str) -> str:
    return str(_rows(db, "SHOW CREATE TABLE items")[0][1])


class Table:
    """One company's ``items`` table: its source schema, target schema and admin row, run as the tasks run it."""

    def __init__(self, source_db: str, target_db: str, bucket: str, mode: str, evolution: str = "evolve") -> None:
        self.conns = LocalConnections(source_db)
        self.settings = Settings()
        self.source_db, self.target_db, self.mode = source_db, target_db, mode
        self.company = Company(1, 1, 1, "evo", bucket, target_db, 1, "default")
        self.spec = self.make_spec(evolution)

    def make_spec(self, evolution: str) -> TableSpec:
        incremental = self.mode == "incremental"
        return build_table(
            {
                "id": 41,
                "name": "items",
                "status": 1,
                # SELECT *: a column the application adds at the source appears in the result on its own.
                "query_select": "SELECT * FROM items WHERE company = %(company_id)s",
                "params_select": "",
                "query_insert": f"REPLACE INTO items ({', '.join(BASE)}) VALUES ",
                "load_mode": self.mode,
                "cursor_column": "updated_at" if incremental else None,
                "cursor_overlap": 0 if incremental else None,
                "schema_evolution": evolution,
            }
        )

    def run(self, day: int) -> LoadResult:
        when = DAY + dt.timedelta(days=day)
        manifest = tasks.extract_table(self.conns, self.settings, self.company, self.spec, when, f"run{day}")
        return tasks.load_table(self.conns, self.settings, self.company, self.spec, [manifest.ref], when, f"run{day}")

    def source_columns(self) -> list[str]:
        return list(column_types(self.source_db))

    def source_rows(self) -> list[tuple[Any, ...]]:
        return _rows(
            self.source_db, f"SELECT {', '.join(self.source_columns())} FROM items WHERE company = 1 ORDER BY id"
        )

    def target_rows(self) -> list[tuple[Any, ...]]:
        return _rows(self.target_db, f"SELECT {', '.join(self.source_columns())} FROM items ORDER BY id")

    def target_state(self) -> tuple[str, list[tuple[Any, ...]]]:
        return show_create(self.target_db), _rows(self.target_db, "SELECT * FROM items ORDER BY id")

    def logged_changes(self) -> list[tuple[str, str, str | None, str]]:
        conn = mysql_connect()
        try:
            return schemalog.changes(conn.cursor(), self.target_db, "items")
        except Exception:  # noqa: BLE001 - no log table: nothing was recorded
            return []
        finally:
            conn.close()

    def touch(self, where: str) -> str:
        """An UPDATE clause fragment moving the cursor of changed rows (what the application does)."""
        return f"updated_at = '{LATER}' WHERE {where}"


@pytest.fixture
def target_db(mysql_root: Any) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    execute(mysql_root, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    execute(mysql_connect(name), DDL)
    yield name
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def source_db(scratch_db: str) -> str:
    execute(mysql_connect(scratch_db), DDL)
    rows = ", ".join(
        f"({i}, {1 if i % 4 else 2}, {'NULL' if i % 9 == 0 else repr(f'item {i}')}, {i * 3}, {i}.5, "
        f"{'NULL' if i % 5 == 0 else repr('text ' * i)}, '{T0 + dt.timedelta(minutes=i)}')"
        for i in range(1, 61)
    )
    execute(mysql_connect(scratch_db), f"INSERT INTO items VALUES {rows}")
    return scratch_db


def loaded(source_db: str, target_db: str, bucket: str, mode: str, evolution: str = "evolve") -> Table:
    table = Table(source_db, target_db, bucket, mode, evolution)
    result = table.run(0)
    assert result.rows == 45 and table.target_rows() == table.source_rows()
    return table


@pytest.mark.parametrize("mode", MODES)
def test_a_column_added_at_the_source_is_added_to_the_target_with_the_sources_type_and_recorded(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    table = loaded(source_db, target_db, bucket_name, mode)
    change(
        source_db,
        "ALTER TABLE items ADD COLUMN discount DECIMAL(7,3) UNSIGNED NULL, ADD COLUMN code VARBINARY(12) NULL, "
        "ADD COLUMN seen_at DATETIME(3) NULL",
        "UPDATE items SET discount = id / 8, code = UNHEX(LPAD(HEX(id), 6, '0')), "
        f"seen_at = '2026-11-02 01:02:03.456', {table.touch('id % 3 = 0')}",
        f"INSERT INTO items (id, company, label, discount, updated_at) VALUES (100, 1, 'new', 1.5, '{LATER}')",
    )
    table.run(1)

    assert table.target_rows() == table.source_rows()
    types = column_types(target_db)
    assert [types[c] for c in ("discount", "code", "seen_at")] == [
        "decimal(7,3) unsigned",
        "varbinary(12)",
        "datetime(3)",
    ]
    assert list(types)[: len(BASE)] == list(BASE)  # the existing columns are untouched, in their order
    assert table.logged_changes() == [
        ("discount", "add", None, "DECIMAL(7,3) UNSIGNED"),
        ("code", "add", None, "VARBINARY(12)"),
        ("seen_at", "add", None, "DATETIME(3)"),
    ]
    # The next run finds nothing to change and loads as usual.
    change(source_db, f"UPDATE items SET discount = 9.999, {table.touch('id = 4')}")
    table.run(2)
    assert table.target_rows() == table.source_rows() and len(table.logged_changes()) == 3
    # verify compares the added columns too, not only query_insert's.
    assert tasks.verify_table(table.conns, table.company, table.spec, DAY).matches
    change(target_db, "UPDATE items SET code = NULL WHERE id = 6")
    assert not tasks.verify_table(table.conns, table.company, table.spec, DAY).matches


WIDENINGS = [
    # (column, new source definition, a value only the wider type holds, the target's type afterwards)
    ("label", "VARCHAR(200) NULL", "'" + "w" * 180 + "'", "varchar(200)"),
    ("qty", "BIGINT NULL", "5000000000", "bigint"),
    ("price", "DECIMAL(14,2) NULL", "123456789012.34", "decimal(14,2)"),
    ("body", "MEDIUMTEXT NULL", "REPEAT('m', 70000)", "mediumtext"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("column", "definition", "value", "widened"), WIDENINGS, ids=[w[0] for w in WIDENINGS])
def test_a_widened_source_column_is_widened_on_the_target_keeping_its_other_attributes(
    source_db: str, target_db: str, bucket_name: str, mode: str, column: str, definition: str, value: str, widened: str
):
    table = loaded(source_db, target_db, bucket_name, mode)
    # A comment on the target column: MODIFY restates the whole column, and evolution must keep it.
    change(target_db, f"ALTER TABLE items MODIFY {column} {_original(column)} NULL COMMENT 'kept'")
    change(
        source_db,
        f"ALTER TABLE items MODIFY {column} {definition}",
        f"UPDATE items SET {column} = {value}, {table.touch('id IN (1, 2, 3)')}",
    )
    table.run(1)

    assert table.target_rows() == table.source_rows()
    assert column_types(target_db)[column] == widened
    assert "COMMENT 'kept'" in next(line for line in show_create(target_db).splitlines() if f"`{column}`" in line)
    assert [c[:2] for c in table.logged_changes()] == [(column, "widen")]


def _original(column: str) -> str:
    return {"label": "VARCHAR(50)", "qty": "INT", "price": "DECIMAL(10,2)", "body": "TEXT"}[column]


@pytest.mark.parametrize("mode", MODES)
def test_int_to_unsigned_bigint_and_signed_to_unsigned(source_db: str, target_db: str, bucket_name: str, mode: str):
    """INT -> BIGINT UNSIGNED is not a widening (negatives), so it is refused; INT -> BIGINT is."""
    table = loaded(source_db, target_db, bucket_name, mode)
    before = table.target_state()
    change(source_db, "ALTER TABLE items MODIFY qty INT UNSIGNED NULL", f"UPDATE items SET {table.touch('id = 1')}")
    with pytest.raises(RefusedError) as refused:
        table.run(1)
    message = str(refused.value)
    assert "tables row id=41" in message and "'evo'" in message and "qty" in message
    assert "INT UNSIGNED" in message and "int" in message and "not a widening" in message
    assert table.target_state() == before and table.logged_changes() == []


@pytest.mark.parametrize("mode", MODES)
def test_a_column_removed_at_the_source_is_refused_naming_it_and_the_target_is_unchanged(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    table = loaded(source_db, target_db, bucket_name, mode)
    before = table.target_state()
    change(source_db, "ALTER TABLE items DROP COLUMN price", f"UPDATE items SET {table.touch('id = 1')}")
    with pytest.raises(RefusedError) as refused:
        table.run(1)
    message = str(refused.value)
    assert "company 'evo'" in message and "tables row id=41" in message
    assert "schema evolution" in message and "price (decimal(10,2))" in message and "never drops" in message
    assert table.target_state() == before and table.logged_changes() == []


@pytest.mark.parametrize("mode", MODES)
def test_a_column_evolution_added_and_the_source_then_drops_is_refused_as_removed(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    table = loaded(source_db, target_db, bucket_name, mode)
    change(
        source_db, "ALTER TABLE items ADD COLUMN extra INT NULL", f"UPDATE items SET extra = 1, {table.touch('id = 1')}"
    )
    table.run(1)
    assert table.target_rows() == table.source_rows()
    before = table.target_state()
    change(
        source_db, "ALTER TABLE items DROP COLUMN extra", f"UPDATE items SET updated_at = '{LATER}' + INTERVAL 1 DAY"
    )
    with pytest.raises(RefusedError, match=r"column extra \(int(\(11\))?\) is no longer returned"):
        table.run(2)
    assert table.target_state() == before


@pytest.mark.parametrize("mode", MODES)
def test_a_narrowed_source_column_is_refused_naming_both_types_and_the_target_is_unchanged(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    table = loaded(source_db, target_db, bucket_name, mode)
    before = table.target_state()
    change(source_db, "ALTER TABLE items MODIFY label VARCHAR(20) NULL", f"UPDATE items SET {table.touch('id = 1')}")
    with pytest.raises(RefusedError) as refused:
        table.run(1)
    message = str(refused.value)
    assert "company 'evo'" in message and "tables row id=41" in message
    assert "column label" in message and "VARCHAR(20)" in message and "varchar(50)" in message
    assert "never narrows" in message and "MODIFY label VARCHAR(20)" in message
    assert table.target_state() == before and table.logged_changes() == []


@pytest.mark.parametrize("mode", MODES)
def test_the_default_fail_still_refuses_a_column_added_at_the_source_and_changes_nothing(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    table = loaded(source_db, target_db, bucket_name, mode, evolution="fail")
    assert (
        table.spec.schema_evolution == "fail"
        and Table(source_db, target_db, "b", mode, "").spec.schema_evolution == "fail"
    )
    before = table.target_state()
    change(source_db, "ALTER TABLE items ADD COLUMN discount INT NULL", f"UPDATE items SET {table.touch('id = 1')}")
    with pytest.raises(RefusedError, match=r"not in query_insert: \['discount'\]"):
        table.run(1)
    assert table.target_state() == before and table.logged_changes() == []


def test_a_failed_swap_leaves_the_live_table_in_its_old_shape(source_db: str, target_db: str, bucket_name: str):
    """The shadow gets the new shape; a swap refused after loading it (here: the shrink guard) changes nothing."""
    table = loaded(source_db, target_db, bucket_name, "swap")
    before = table.target_state()
    change(source_db, "ALTER TABLE items ADD COLUMN extra INT NULL", "DELETE FROM items WHERE id > 10")
    with pytest.raises(RefusedError, match="fewer"):
        table.run(1)
    assert table.target_state() == before and table.logged_changes() == []
    assert [t for t in _rows(target_db, "SHOW TABLES") if t[0].startswith("_rp_")] == []


class CliConnections(LocalConnections):
    def __init__(self, source_db: str, admin_db: str) -> None:
        super().__init__(source_db)
        self.admin_db = admin_db

    def admin(self) -> Any:
        return mysql_connect(self.admin_db)


def test_validate_says_what_an_evolve_table_would_change_without_changing_it(
    source_db: str, mysql_root: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Any
):
    from report_pipeline import admin, cli

    tag = uuid.uuid4().hex[:8]
    alias, admin_db = f"evo{tag}", f"t_adm_{tag}"
    execute(mysql_root, f"CREATE DATABASE `{admin_db}`", f"CREATE DATABASE `{alias}` CHARACTER SET utf8mb4")
    try:
        execute(mysql_connect(alias), DDL)
        monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "snapshot.json"))
        conn = mysql_connect(admin_db)
        admin.init_admin(conn)  # adds tables.schema_evolution with its default
        cursor = conn.cursor()
        admin.add_company(cursor, 1, alias)
        row = admin.TableRow(
            name="items",
            query_select="SELECT * FROM items WHERE company = %(company_id)s",
            query_insert=f"REPLACE INTO items ({', '.join(BASE)}) VALUES",
            schema_evolution="evolve",
        )
        row_id = admin.add_table(cursor, row)
        conn.commit()
        connect = lambda _settings: CliConnections(source_db, admin_db)  # noqa: E731
        before = show_create(alias)

        change(source_db, "ALTER TABLE items ADD COLUMN note VARCHAR(30) NULL, MODIFY qty BIGINT NULL")
        assert cli.main(["validate"], connect) == 0
        out = capsys.readouterr().out
        assert f"(tables row id={row_id}): schema evolution would widen qty int(11) -> BIGINT, add column note " in out
        assert "VARCHAR(30) on its next load (nothing was changed)" in out
        assert show_create(alias) == before

        change(source_db, "ALTER TABLE items MODIFY label VARCHAR(10) NULL")
        assert cli.main(["validate"], connect) == 1
        out = capsys.readouterr().out
        assert f"company '{alias}' table 'items' (tables row id={row_id}): column label: the query now returns " in out
        assert show_create(alias) == before

        # A widening into TEXT of an indexed column: refused by validate as by the load.
        change(alias, "CREATE INDEX ix_label ON items (label)")
        before = show_create(alias)
        change(source_db, "ALTER TABLE items MODIFY label TEXT NULL")
        assert cli.main(["validate"], connect) == 1
        out = capsys.readouterr().out
        assert f"(tables row id={row_id}): column label: the query now returns TEXT but the target column is " in out
        assert "part of index ix_label" in out and show_create(alias) == before
    finally:
        execute(mysql_root, f"DROP DATABASE `{admin_db}`", f"DROP DATABASE `{alias}`")


@pytest.mark.parametrize("mode", ["upsert", "incremental"])
def test_a_load_failing_after_its_alter_leaves_only_the_added_null_column_and_the_retry_loads(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    """DDL commits on its own, so upsert/incremental alter before the load's transaction: what a failure leaves."""
    table = loaded(source_db, target_db, bucket_name, mode)
    # A target column the load does not fill and that has no default: every LOAD DATA into it fails.
    change(target_db, "ALTER TABLE items ADD COLUMN must CHAR(1) NOT NULL")
    rows_before = _rows(target_db, f"SELECT {', '.join(BASE)} FROM items ORDER BY id")
    change(
        source_db,
        "ALTER TABLE items ADD COLUMN extra INT NULL",
        f"UPDATE items SET extra = id, {table.touch('id < 9')}",
    )
    with pytest.raises(Exception, match="must"):
        table.run(1)
    # The rows and the ledger are as they were; the added column stays, NULL everywhere, and is recorded.
    assert _rows(target_db, f"SELECT {', '.join(BASE)} FROM items ORDER BY id") == rows_before
    assert _rows(target_db, "SELECT COUNT(*) FROM items WHERE extra IS NOT NULL") == [(0,)]
    assert column_types(target_db)["extra"] == "int" and table.logged_changes() == [("extra", "add", None, "INT")]
    assert _rows(target_db, "SELECT COUNT(*) FROM report_loads") == [(1,)]

    change(target_db, "ALTER TABLE items DROP COLUMN must")
    table.run(1)  # the retry: nothing left to change, the rows load
    assert table.target_rows() == table.source_rows() and len(table.logged_changes()) == 1


class LostConnection(Exception):
    """What the load sees when its target session dies between two statements."""


@pytest.mark.parametrize("mode", ["swap", "upsert", "incremental"])
def test_the_log_holds_a_change_whose_load_died_right_after_making_it_live(
    source_db: str, target_db: str, bucket_name: str, mode: str, monkeypatch: pytest.MonkeyPatch
):
    """The ALTER (upsert, incremental) or RENAME (swap) runs, then the session is lost: the change is live, so
    it must be in the log already; the retry (column there, nothing to change) logs nothing more, and a later
    removal of the column at the source is refused as the removal of a column evolution added."""
    from report_pipeline.target.mysql import MySqlTarget

    table = loaded(source_db, target_db, bucket_name, mode)
    live = "replace_table" if mode == "swap" else "alter_columns"
    real = getattr(MySqlTarget, live)
    dying = [True]

    def then_lost(self: MySqlTarget, *args: Any) -> None:
        real(self, *args)
        if dying and (mode == "swap" or args[1] == "items"):
            dying.clear()
            raise LostConnection("lost connection to the target right after the change went live")

    monkeypatch.setattr(MySqlTarget, live, then_lost)
    change(source_db, "ALTER TABLE items ADD COLUMN extra INT NULL", f"UPDATE items SET extra = id, {table.touch('1')}")
    with pytest.raises(LostConnection):
        table.run(1)
    assert column_types(target_db)["extra"] == "int"  # live
    assert table.logged_changes() == [("extra", "add", None, "INT")]

    table.run(1)  # the retry: the column is there, nothing left to change
    assert table.target_rows() == table.source_rows()
    assert table.logged_changes() == [("extra", "add", None, "INT")]
    change(source_db, "ALTER TABLE items DROP COLUMN extra", f"UPDATE items SET {table.touch('1')}")
    with pytest.raises(RefusedError, match=r"column extra \(int(\(11\))?\) is no longer returned"):
        table.run(2)


@pytest.mark.parametrize("mode", ["swap", "upsert"])
def test_a_logged_change_whose_ddl_failed_is_logged_once_and_harmless(
    source_db: str, target_db: str, bucket_name: str, mode: str, monkeypatch: pytest.MonkeyPatch
):
    """Logged first, then the ALTER/RENAME fails: the target keeps its shape, the retry makes the change and
    does not log it a second time; a logged column the target never got is not a removed column."""
    from report_pipeline.target.mysql import MySqlTarget

    table = loaded(source_db, target_db, bucket_name, mode)
    live = "replace_table" if mode == "swap" else "alter_columns"
    real = getattr(MySqlTarget, live)
    failing = [True]

    def fails_once(self: MySqlTarget, *args: Any) -> None:
        if failing:
            failing.clear()
            raise LostConnection("lost connection to the target before the change went live")
        real(self, *args)

    monkeypatch.setattr(MySqlTarget, live, fails_once)
    before = show_create(target_db)
    change(source_db, "ALTER TABLE items ADD COLUMN extra INT NULL", f"UPDATE items SET extra = id, {table.touch('1')}")
    with pytest.raises(LostConnection):
        table.run(1)
    assert show_create(target_db) == before and table.logged_changes() == [("extra", "add", None, "INT")]
    table.run(1)
    assert table.target_rows() == table.source_rows()
    assert table.logged_changes() == [("extra", "add", None, "INT")]


def test_a_logged_column_the_target_does_not_have_is_not_a_removed_column(
    source_db: str, target_db: str, bucket_name: str, monkeypatch: pytest.MonkeyPatch
):
    from report_pipeline.target.mysql import MySqlTarget

    table = loaded(source_db, target_db, bucket_name, "upsert")

    def lost(self: MySqlTarget, *args: Any) -> None:
        raise LostConnection("lost connection to the target before the ALTER")

    with monkeypatch.context() as patched:
        patched.setattr(MySqlTarget, "alter_columns", lost)
        change(source_db, "ALTER TABLE items ADD COLUMN extra INT NULL", f"UPDATE items SET {table.touch('1')}")
        with pytest.raises(LostConnection):
            table.run(1)
    assert table.logged_changes() == [("extra", "add", None, "INT")] and "extra" not in column_types(target_db)
    change(source_db, "ALTER TABLE items DROP COLUMN extra", f"UPDATE items SET {table.touch('1')}")
    table.run(2)  # the logged column never reached the target: nothing to refuse
    assert table.target_rows() == table.source_rows()


def test_probe_columns_is_one_query_and_only_probe_types_asks_for_charsets(source_db: str):
    """verify, chunk planning and cursor checks only need the description: no CHARSET() query for them."""
    from report_pipeline.session import probe_columns, probe_types

    change(
        source_db,
        "CREATE TABLE raw (id INT, hash VARBINARY(20), code VARCHAR(10) COLLATE utf8mb4_bin) CHARACTER SET utf8mb4",
    )
    conn = mysql_connect(source_db)
    try:
        cursor = conn.cursor()

        def questions() -> int:
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            return int(cursor.fetchone()[1])

        def statements(probe: Any) -> int:
            before = questions()
            result = probe(conn, "SELECT * FROM raw WHERE id > %(low)s", {"low": 0})
            return questions() - before - 1, result  # minus the second SHOW itself

        ran, description = statements(probe_columns)
        assert ran == 1 and [d[0] for d in description] == ["id", "hash", "code"]
        ran, (_, types) = statements(probe_types)
        assert ran == 2 and types == ["INT", "VARBINARY(20)", "VARCHAR(10)"]
    finally:
        conn.close()


@pytest.mark.parametrize("mode", MODES)
def test_an_indexed_varchar_widened_to_text_is_refused_and_the_target_is_unchanged(
    source_db: str, target_db: str, bucket_name: str, mode: str
):
    """Both servers refuse a key on a TEXT column without a prefix length (1170): refused before any ALTER."""
    table = loaded(source_db, target_db, bucket_name, mode)
    change(target_db, "CREATE INDEX ix_label ON items (label)")
    before = table.target_state()
    change(source_db, "ALTER TABLE items MODIFY label TEXT NULL", f"UPDATE items SET {table.touch('id < 9')}")
    with pytest.raises(
        RefusedError,
        match=r"column label: the query now returns TEXT but the target column is "
        r"varchar\(50\), and widening it to TEXT cannot be done in place: it is part of index ix_label",
    ):
        table.run(1)
    assert table.target_state() == before and table.logged_changes() == []


def test_a_literal_default_is_refused_into_text_and_a_current_timestamp_default_follows_the_new_precision(
    source_db: str, target_db: str, bucket_name: str
):
    """On the real server's SHOW CREATE TABLE: the literal default is found (MySQL 8 would refuse it on a TEXT),
    and DATETIME -> DATETIME(6) restates DEFAULT/ON UPDATE CURRENT_TIMESTAMP as CURRENT_TIMESTAMP(6) (MariaDB
    takes the old statement too and adjusts the precision itself: this part checks the server accepts the new
    one; the statement's text, which MySQL 8 needs, is checked in tests/unit/test_evolution.py)."""
    table = loaded(source_db, target_db, bucket_name, "upsert")
    change(
        target_db,
        "ALTER TABLE items MODIFY label VARCHAR(50) NULL DEFAULT 'none', "
        "ADD COLUMN stamp DATETIME NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP",
    )
    before = table.target_state()
    change(source_db, "ALTER TABLE items MODIFY label TEXT NULL", f"UPDATE items SET {table.touch('id < 9')}")
    with pytest.raises(RefusedError, match=r"column label: .* it has the literal default 'none'"):
        table.run(1)
    assert table.target_state() == before and table.logged_changes() == []

    change(
        source_db,
        "ALTER TABLE items MODIFY label VARCHAR(50) NULL, ADD COLUMN stamp DATETIME(6) NULL",
        f"UPDATE items SET stamp = '2026-11-02 03:04:05.123456', {table.touch('id < 9')}",
    )
    table.run(1)
    assert table.target_rows() == table.source_rows()
    stamp = next(line for line in show_create(target_db).splitlines() if "`stamp`" in line).lower()
    assert "datetime(6)" in stamp and "default current_timestamp(6) on update current_timestamp(6)" in stamp
    assert table.logged_changes() == [("stamp", "widen", "datetime", "DATETIME(6)")]

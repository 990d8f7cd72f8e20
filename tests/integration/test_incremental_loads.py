"""Issue 12: the ``incremental`` load mode and ``verify``, on the real MariaDB and SeaweedFS servers.

Each test runs the same units of work the DAG's tasks run (``tasks.extract_table``/``load_table``),
changes the source the way production does, and compares every target row with the source's.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline import tasks, watermarks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.errors import ConfigError, MismatchError, RefusedError
from report_pipeline.load import LoadResult
from report_pipeline.manifest import Manifest
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 11, 1, 12, 0, 0)
COLUMNS = "id, company, amount, note, updated_at"
SOURCE_DDL = (
    "CREATE TABLE orders (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, amount DECIMAL(12,2) NOT NULL, "
    "note VARCHAR(40) NULL, updated_at DATETIME(6) NOT NULL, KEY (updated_at)) ENGINE=InnoDB"
)


class Connections:
    """The ``connections.Connections`` of these tests: the source schema, the target server, the local S3."""

    def __init__(self, source_db: str) -> None:
        self.source_db = source_db

    def _mysql(self, db: str, **extra: Any) -> Any:
        return mysql_connect(db, **{"local_infile": 0, "init_command": "SET time_zone = '+00:00'", **extra})

    def source(self) -> Any:
        return self._mysql(self.source_db)

    def target(self) -> Any:
        return self._mysql("", local_infile=1)

    def s3(self) -> Any:
        from tests.conftest import s3_client

        return s3_client()

    def protected_schemas(self) -> dict[str, str]:
        return {}


@pytest.fixture
def target_db(mysql_root: Any) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    execute(mysql_root, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    execute(mysql_connect(name), SOURCE_DDL)
    yield name
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def source_db(scratch_db: str) -> str:
    execute(mysql_connect(scratch_db), SOURCE_DDL)
    rows = ", ".join(
        f"({i}, {1 if i % 5 else 2}, {i}.25, {'NULL' if i % 7 == 0 else repr(f'n{i}')}, "
        f"'{T0 + dt.timedelta(minutes=i)}')"
        for i in range(1, 201)
    )
    execute(mysql_connect(scratch_db), f"INSERT INTO orders VALUES {rows}")
    return scratch_db


def make_spec(query: str | None = None, **row: Any) -> TableSpec:
    return build_table(
        {
            "id": 12,
            "name": "orders",
            "status": 1,
            "query_select": query or f"SELECT {COLUMNS} FROM orders WHERE company = %(company_id)s",
            "params_select": "",
            "query_insert": f"INSERT INTO orders ({COLUMNS}) VALUES ",
            "load_mode": "incremental",
            "cursor_column": "updated_at",
            "cursor_overlap": 60,
            **row,
        }
    )


class Pipeline:
    """One company's table, run as the tasks run it."""

    def __init__(self, source_db: str, target_db: str, bucket: str, spec: TableSpec) -> None:
        self.conns = Connections(source_db)
        self.settings = Settings()
        self.source_db, self.target_db = source_db, target_db
        self.company = Company(1, 1, 1, "inc", bucket, target_db, 1, "default")
        self.spec = spec

    def extract(self, day: int, **kw: Any) -> list[Manifest]:
        when = DAY + dt.timedelta(days=day)
        if self.spec.chunk_column:
            chunks = tasks.plan_table_chunks(self.conns, self.company, self.spec, when, **kw)
            return [
                tasks.extract_table(
                    self.conns, self.settings, self.company, self.spec, when, f"run{day}", chunk=c, **kw
                )
                for c in chunks
            ]
        return [tasks.extract_table(self.conns, self.settings, self.company, self.spec, when, f"run{day}", **kw)]

    def load(self, day: int, manifests: list[Manifest]) -> LoadResult:
        when = DAY + dt.timedelta(days=day)
        return tasks.load_table(
            self.conns, self.settings, self.company, self.spec, [m.ref for m in manifests], when, f"run{day}"
        )

    def run(self, day: int, **kw: Any) -> tuple[list[Manifest], LoadResult]:
        manifests = self.extract(day, **kw)
        return manifests, self.load(day, manifests)

    def source_rows(self, where: str = "company = 1") -> list[tuple[Any, ...]]:
        return _rows(self.source_db, f"SELECT {COLUMNS} FROM orders WHERE {where} ORDER BY id")

    def target_rows(self) -> list[tuple[Any, ...]]:
        return _rows(self.target_db, f"SELECT {COLUMNS} FROM orders ORDER BY id")

    def watermark(self) -> watermarks.Watermark | None:
        conn = mysql_connect()
        try:
            return watermarks.read(conn.cursor(), self.target_db, "orders")
        finally:
            conn.close()


def _rows(db: str, query: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(query)
    rows = list(cursor.fetchall())
    conn.close()
    return rows


def change(db: str, *statements: str) -> None:
    execute(mysql_connect(db), *statements)


@pytest.fixture
def pipeline(source_db: str, target_db: str, bucket_name: str) -> Pipeline:
    return Pipeline(source_db, target_db, bucket_name, make_spec())


def test_first_run_copies_everything_then_only_changed_rows_are_read_and_target_equals_source(pipeline: Pipeline):
    manifests, result = pipeline.run(0)
    assert result.rows == 160 and pipeline.target_rows() == pipeline.source_rows()
    assert manifests[0].cursor is not None and manifests[0].cursor.since is None
    top = T0 + dt.timedelta(minutes=199)
    mark = pipeline.watermark()
    assert mark is not None and mark.cursor_value == f"{top}.000000"

    later = top + dt.timedelta(hours=1)
    change(
        pipeline.source_db,
        f"UPDATE orders SET amount = 999.99, note = NULL, updated_at = '{later}' WHERE id IN (3, 4, 6)",
        f"INSERT INTO orders VALUES (501, 1, 5.5, 'new', '{later}'), (502, 2, 1, 'other company', '{later}')",
    )
    manifests, result = pipeline.run(1)
    # Read: the three changed rows, the new row, and the rows within the 60 s overlap before the mark.
    cursor = manifests[0].cursor
    assert cursor is not None and cursor.since == f"{top - dt.timedelta(seconds=60)}"
    assert result.rows == manifests[0].rows == 4 + 2
    assert pipeline.target_rows() == pipeline.source_rows()
    assert pipeline.watermark().cursor_value == f"{later}.000000"  # type: ignore[union-attr]

    # Nothing changed: only the boundary rows are re-read, and the target still equals the source.
    _, result = pipeline.run(2)
    assert result.rows == 4
    assert pipeline.target_rows() == pipeline.source_rows()


def test_a_row_committed_late_with_an_older_cursor_inside_the_overlap_is_copied(pipeline: Pipeline):
    pipeline.run(0)
    top = T0 + dt.timedelta(minutes=199)
    # A transaction that stamped its row 30 s before the watermark and committed after the extract.
    change(pipeline.source_db, f"INSERT INTO orders VALUES (600, 1, 6, 'late', '{top - dt.timedelta(seconds=30)}')")
    pipeline.run(1)
    assert (600, 1, 6, "late") in [r[:4] for r in pipeline.target_rows()]
    assert pipeline.target_rows() == pipeline.source_rows()


def test_a_crash_between_extract_and_load_loses_nothing_and_the_stale_extract_is_never_loaded(pipeline: Pipeline):
    pipeline.run(0)
    first = pipeline.watermark()
    later = T0 + dt.timedelta(days=1)
    change(pipeline.source_db, f"UPDATE orders SET amount = 1.11, updated_at = '{later}' WHERE id = 8")
    stale = pipeline.extract(1)  # the worker dies here: extracted, never loaded
    assert pipeline.watermark() == first

    even_later = later + dt.timedelta(hours=2)
    change(pipeline.source_db, f"UPDATE orders SET amount = 2.22, updated_at = '{even_later}' WHERE id = 8")
    manifests, _ = pipeline.run(2)
    assert manifests[0].cursor.since == stale[0].cursor.since  # type: ignore[union-attr]  # the old watermark
    assert pipeline.target_rows() == pipeline.source_rows()

    # The dead run's load retried now would put amount 1.11 back over 2.22: it is skipped instead.
    result = pipeline.load(1, stale)
    assert result.skipped and result.skip_reason == "older-extract"
    assert pipeline.target_rows() == pipeline.source_rows()
    assert pipeline.watermark().cursor_value == f"{even_later}.000000"  # type: ignore[union-attr]


def test_a_backfill_of_an_older_date_beside_the_scheduled_run_never_moves_the_watermark_back(
    source_db: str, target_db: str, bucket_name: str
):
    # Rows up to the logical date only, and an overlap of 30 days: a backfill of an older date then
    # reads rows whose cursor is older than the watermark the scheduled run stored.
    query = f"SELECT {COLUMNS} FROM orders WHERE company = %(company_id)s AND updated_at < %(date_to)s"
    pipeline = Pipeline(source_db, target_db, bucket_name, make_spec(query, cursor_overlap=30 * 86400))
    change(source_db, "UPDATE orders SET updated_at = '2026-11-20 00:00:00' + INTERVAL id SECOND WHERE id >= 190")
    pipeline.run(5)
    mark = pipeline.watermark()
    assert mark is not None and mark.cursor_value == "2026-11-20 00:03:19.000000"
    assert pipeline.target_rows() == pipeline.source_rows()

    change(source_db, "UPDATE orders SET note = 'backfilled', updated_at = '2026-11-10 00:00:00' WHERE id = 1")
    next_scheduled = pipeline.extract(6)  # the next scheduled run extracts; its load waits for the lock
    manifests, result = pipeline.run(-5)  # a backfill of DAY - 5: rows before 2026-11-15
    assert not result.skipped and manifests[0].cursor.max_seen == "2026-11-10 00:00:00.000000"  # type: ignore[union-attr]
    assert pipeline.watermark().cursor_value == mark.cursor_value  # type: ignore[union-attr]
    assert pipeline.target_rows() == pipeline.source_rows()

    # The scheduled extract taken before the backfill's is older than what is loaded now: skipped.
    assert pipeline.load(6, next_scheduled).skip_reason == "older-extract"
    assert pipeline.target_rows() == pipeline.source_rows()


def test_reset_watermark_reloads_every_row_and_replaces_the_watermark(pipeline: Pipeline):
    pipeline.run(0)
    # The source was restored from a backup: values and cursors went back in time.
    change(pipeline.source_db, "UPDATE orders SET amount = amount + 1, updated_at = '2020-01-01 00:00:00'")
    pipeline.run(1)
    assert pipeline.target_rows() != pipeline.source_rows()  # an incremental run cannot see that

    _, result = pipeline.run(2, reset_watermark=True)
    assert result.rows == 160
    assert pipeline.target_rows() == pipeline.source_rows()
    assert pipeline.watermark().cursor_value == "2020-01-01 00:00:00.000000"  # type: ignore[union-attr]


def test_a_chunked_incremental_table_loads_in_chunks_first_and_then_only_changes(
    source_db: str, target_db: str, bucket_name: str
):
    pipeline = Pipeline(source_db, target_db, bucket_name, make_spec(chunk_column="id", chunk_rows=50))
    manifests, result = pipeline.run(0)
    assert len(manifests) > 1 and result.rows == 160
    assert pipeline.target_rows() == pipeline.source_rows()
    later = T0 + dt.timedelta(days=3)
    change(
        source_db,
        f"UPDATE orders SET note = 'x', updated_at = '{later}' WHERE id IN (2, 199)",
        f"INSERT INTO orders VALUES (100000, 1, 1, 'far id', '{later}')",
    )
    manifests, result = pipeline.run(1)
    assert pipeline.target_rows() == pipeline.source_rows()
    assert sum(m.rows for m in manifests) == result.rows < 10


def test_a_bad_cursor_column_fails_the_extract_naming_it(source_db: str, target_db: str, bucket_name: str):
    for column, query, message in (
        ("changed", None, "not a column"),
        ("note", None, "VAR_STRING"),
        (
            "maybe",
            f"SELECT {COLUMNS}, IF(id > 3, updated_at, NULL) AS maybe FROM orders WHERE company = %(company_id)s",
            "can be NULL",
        ),
    ):
        pipeline = Pipeline(source_db, target_db, bucket_name, make_spec(query, cursor_column=column))
        with pytest.raises(ConfigError, match=message):
            pipeline.extract(0)
    assert pipeline.target_rows() == []


def test_verify_matches_after_loads_and_names_the_range_of_a_tampered_target_row(pipeline: Pipeline):
    pipeline.run(0)
    verdict = tasks.verify_table(pipeline.conns, pipeline.company, pipeline.spec, DAY)
    assert verdict.matches and verdict.source.rows == 160

    change(pipeline.target_db, "UPDATE orders SET amount = 0.01 WHERE id = 123")
    verdict = tasks.verify_table(pipeline.conns, pipeline.company, pipeline.spec, DAY)
    assert not verdict.matches and verdict.source.rows == verdict.target.rows == 160
    assert verdict.key == "id" and verdict.first_difference is not None
    lo, hi = verdict.first_difference
    assert lo <= 123 <= hi and hi - lo < 16

    # A NULL where the source has '' is a difference too.
    change(pipeline.target_db, "UPDATE orders SET amount = 123.25 WHERE id = 123")
    change(pipeline.source_db, "UPDATE orders SET note = '' WHERE id = 14")
    change(pipeline.target_db, "UPDATE orders SET note = NULL WHERE id = 14")
    verdict = tasks.verify_table(pipeline.conns, pipeline.company, pipeline.spec, DAY)
    assert not verdict.matches and verdict.first_difference[0] <= 14 <= verdict.first_difference[1]  # type: ignore[index]

    # verify_after_load on the row: the next load fails naming the difference (a row the load did not touch).
    from dataclasses import replace

    pipeline.spec = replace(pipeline.spec, verify_after_load=True)
    change(pipeline.source_db, f"UPDATE orders SET note = 'z', updated_at = '{T0 + dt.timedelta(days=9)}' WHERE id = 1")
    _, result = pipeline.run(1)
    with pytest.raises(MismatchError, match=r"first difference in id"):
        tasks.verify_after_load(pipeline.conns, pipeline.company, pipeline.spec, DAY, result)


# --- the operator's commands: `report-pipeline run / verify / validate` (in process, same code) -------


class CliConnections(Connections):
    def __init__(self, source_db: str, admin_db: str) -> None:
        super().__init__(source_db)
        self.admin_db = admin_db

    def admin(self) -> Any:
        return self._mysql(self.admin_db)


@pytest.fixture
def deployment(
    source_db: str, mysql_root: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[dict[str, Any]]:
    """An admin schema with one company and an incremental table, its target schema and the env the CLI reads."""
    from report_pipeline import admin

    tag = uuid.uuid4().hex[:8]
    alias, admin_db = f"inc{tag}", f"t_adm_{tag}"
    execute(mysql_root, f"CREATE DATABASE `{admin_db}`", f"CREATE DATABASE `{alias}` CHARACTER SET utf8mb4")
    execute(mysql_connect(alias), SOURCE_DDL)
    monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "snapshot.json"))
    conn = mysql_connect(admin_db)
    admin.init_admin(conn)
    cursor = conn.cursor()
    admin.add_company(cursor, 1, alias)
    admin.add_table(
        cursor,
        admin.TableRow(
            name="orders",
            query_select=f"SELECT {COLUMNS} FROM orders WHERE company = %(company_id)s",
            query_insert=f"INSERT INTO orders ({COLUMNS}) VALUES",
            load_mode="incremental",
            cursor_column="updated_at",
            cursor_overlap=60,
        ),
    )
    conn.commit()
    yield {"alias": alias, "admin": admin_db, "connect": lambda _settings: CliConnections(source_db, admin_db)}
    execute(mysql_root, f"DROP DATABASE `{admin_db}`", f"DROP DATABASE `{alias}`")
    from tests.conftest import s3_client

    s3 = s3_client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=f"reports-{alias}"):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=f"reports-{alias}", Key=item["Key"])
    s3.delete_bucket(Bucket=f"reports-{alias}")


def test_the_cli_runs_verifies_and_validates_an_incremental_table(deployment: dict[str, Any], source_db: str, capsys):
    from report_pipeline import cli

    alias, connect = deployment["alias"], deployment["connect"]
    table = ("--company", alias, "--table", "orders")
    assert cli.main(["run", *table, "--date", "2026-11-20"], connect) == 0
    assert cli.main(["verify", *table], connect) == 0
    assert "match: source 160 rows" in capsys.readouterr().out
    source = _rows(source_db, f"SELECT {COLUMNS} FROM orders WHERE company = 1 ORDER BY id")
    assert _rows(alias, f"SELECT {COLUMNS} FROM orders ORDER BY id") == source

    change(alias, "DELETE FROM orders WHERE id = 77")
    assert cli.main(["verify", *table], connect) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT: source 160 rows" in out and "target 159 rows" in out and "first difference in id" in out
    lo, hi = (int(v) for v in out.split("first difference in id ")[1].split(" (")[0].split(" to "))
    assert lo <= 77 <= hi

    # `validate` names an unusable cursor column with its row.
    execute(mysql_connect(alias), SOURCE_DDL.replace("orders", "orders2"))
    execute(
        mysql_connect(deployment["admin"]),
        "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert, "
        "load_mode, cursor_column) VALUES (9, 'orders2', 1, 'SELECT id, company, amount, note, updated_at FROM orders "
        "WHERE company = %(company_id)s', '', 'INSERT INTO orders2 (id, company, amount, note, updated_at) VALUES', "
        "'', 'incremental', 'note')",
    )
    assert cli.main(["validate"], connect) == 1
    out = capsys.readouterr().out
    assert "table 'orders2' (tables row id=9): cursor_column 'note' is VAR_STRING" in out


def test_delete_detection_removes_rows_deleted_at_the_source_in_the_loads_transaction(
    source_db: str, target_db: str, bucket_name: str, caplog: pytest.LogCaptureFixture
):
    pipeline = Pipeline(source_db, target_db, bucket_name, make_spec(delete_detection="keys"))
    pipeline.run(0)
    later = T0 + dt.timedelta(days=2)
    change(
        source_db,
        "DELETE FROM orders WHERE id IN (1, 50, 199)",
        f"UPDATE orders SET note = 'kept', updated_at = '{later}' WHERE id = 2",
    )
    manifests, _ = pipeline.run(1)
    assert manifests[0].keys is not None and sum(p.rows for p in manifests[0].keys.parts) == 158
    assert pipeline.target_rows() == pipeline.source_rows()

    # A day without deletes: the key checksums agree, so the key set is not even loaded.
    change(source_db, f"UPDATE orders SET note = 'again', updated_at = '{later + dt.timedelta(hours=1)}' WHERE id = 4")
    with caplog.at_level(logging.INFO, logger="report_pipeline.modes"):
        manifests, _ = pipeline.run(2)
    assert manifests[0].keys.checksum is not None and "key sets agree (158 keys)" in caplog.text  # type: ignore[union-attr]
    assert pipeline.target_rows() == pipeline.source_rows()

    # A source that suddenly returns no rows (maintenance, a wrong filter) deletes nothing: refused.
    change(source_db, "UPDATE orders SET company = 3")
    with pytest.raises(RefusedError, match="not deleting from"):
        pipeline.run(3)
    assert len(pipeline.target_rows()) == 158


def test_delete_detection_of_a_chunked_table_uses_every_chunks_keys(source_db: str, target_db: str, bucket_name: str):
    pipeline = Pipeline(
        source_db, target_db, bucket_name, make_spec(delete_detection="keys", chunk_column="id", chunk_rows=40)
    )
    pipeline.run(0)
    later = T0 + dt.timedelta(days=1)
    change(
        source_db, "DELETE FROM orders WHERE id IN (3, 120)", f"INSERT INTO orders VALUES (900, 1, 9, 'n', '{later}')"
    )
    manifests, _ = pipeline.run(1)
    # One changed range, open at both ends, and the plan's NULL chunk: together their keys are every key.
    assert [(c.low, c.high, c.nulls) for c in (m.chunk for m in manifests) if c] == [
        (None, None, False),
        (None, None, True),
    ]
    assert pipeline.target_rows() == pipeline.source_rows()

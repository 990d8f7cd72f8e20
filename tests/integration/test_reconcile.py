"""Issue 20 item 7: reconcile and repair, on the real MariaDB and SeaweedFS servers.

Each test loads a table the way the tasks do, makes the target drift from the source at random
positions (rows changed, removed, added behind the pipeline's back), reconciles, and compares every
target row with the source's, all columns, NULL-safe (Python tuples: None equals only None).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import LocalConnections, execute, mysql_connect

from report_pipeline import reconciliation, tasks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.errors import RefusedError
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 11, 1, 12, 0, 0)
ROWS = 3000
COLUMNS = "id, company, amount, ratio, note, flag, updated_at"
DDL = (
    "CREATE TABLE {db}.orders (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, amount DECIMAL(12,2) NULL, "
    "ratio FLOAT NULL, note VARCHAR(40) NULL, flag TINYINT NOT NULL, updated_at DATETIME(6) NOT NULL, "
    "KEY (updated_at)) ENGINE=InnoDB"
)


def _rows(sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        cursor.execute(sql, args)
        return list(cursor.fetchall())
    finally:
        conn.close()


def _note(i: int) -> str:
    return "NULL" if i % 7 == 0 else ("''" if i % 11 == 0 else repr(f'n{i}, "q"'))


@pytest.fixture
def dbs(mysql_root: Any) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:10]
    source, target = f"t_src_{tag}", f"t_tgt_{tag}"
    for db in (source, target):
        execute(mysql_root, f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    execute(mysql_root, DDL.format(db=source), DDL.format(db=target))
    values = ", ".join(
        f"({i}, {1 if i % 9 else 2}, {'NULL' if i % 13 == 0 else f'{i}.25'}, {'NULL' if i % 17 == 0 else i / 7}, "
        f"{_note(i)}, {i % 2}, '{T0 + dt.timedelta(minutes=i)}')"
        for i in range(1, ROWS + 1)
    )
    execute(mysql_root, f"INSERT INTO {source}.orders VALUES {values}")
    yield source, target
    for db in (source, target):
        execute(mysql_root, f"DROP DATABASE IF EXISTS `{db}`")


class Table:
    """One company's table, loaded and reconciled as the tasks do it."""

    def __init__(self, source: str, target: str, bucket: str, spec: TableSpec) -> None:
        self.conns = LocalConnections(source)
        self.settings = Settings()
        self.source, self.target = source, target
        self.company = Company(1, 1, 1, "rec", bucket, target, 1, "default")
        self.spec = spec

    def load(self, day: int = 0) -> None:
        when = DAY + dt.timedelta(days=day)
        manifest = tasks.extract_table(self.conns, self.settings, self.company, self.spec, when, f"run{day}")
        tasks.load_table(self.conns, self.settings, self.company, self.spec, [manifest.ref], when, f"run{day}")

    def reconcile(self, repair: bool = False, day: int = 1) -> reconciliation.Reconciliation:
        when = DAY + dt.timedelta(days=day)
        return reconciliation.reconcile_table(
            self.conns, self.settings, self.company, self.spec, when, f"rec{day}", repair=repair
        )

    def source_rows(self, order: str = "id") -> list[tuple[Any, ...]]:
        return _rows(f"SELECT {COLUMNS} FROM {self.source}.orders WHERE company = 1 ORDER BY {order}")

    def target_rows(self, order: str = "id") -> list[tuple[Any, ...]]:
        return _rows(f"SELECT {COLUMNS} FROM {self.target}.orders ORDER BY {order}")


def make_spec(**row: Any) -> TableSpec:
    return build_table(
        {
            "id": 21,
            "name": "orders",
            "status": 1,
            "query_select": f"SELECT {COLUMNS} FROM orders WHERE company = %(company_id)s",
            "params_select": "",
            "query_insert": f"REPLACE INTO orders ({COLUMNS}) VALUES ",
            **row,
        }
    )


def drift(target: str, ids: list[int]) -> tuple[set[int], set[int], set[int]]:
    """Change, remove and add target rows at the given random positions (a third each)."""
    third = len(ids) // 3
    changed, missing, extra = set(ids[:third]), set(ids[third : 2 * third]), {ROWS + i for i in ids[2 * third :]}
    statements = [
        f"UPDATE {target}.orders SET note = CONCAT(IFNULL(note, 'was null'), '!') WHERE id IN "
        f"({', '.join(map(str, sorted(changed)))})",
        f"DELETE FROM {target}.orders WHERE id IN ({', '.join(map(str, sorted(missing)))})",
        f"INSERT INTO {target}.orders SELECT id + {ROWS}, company, amount, ratio, note, flag, updated_at "
        f"FROM {target}.orders WHERE id IN ({', '.join(str(i - ROWS) for i in sorted(extra))})",
    ]
    execute(mysql_connect(), *statements)
    return changed, missing, extra


def test_reconcile_names_random_drift_and_repair_makes_the_target_exact(dbs: tuple[str, str], bucket_name: str):
    source, target = dbs
    table = Table(
        source,
        target,
        bucket_name,
        make_spec(load_mode="incremental", cursor_column="updated_at", delete_detection="keys"),
    )
    table.load()
    assert table.target_rows() == table.source_rows()
    ids = random.Random(20).sample([i for i in range(1, ROWS + 1) if i % 9], 30)
    changed, missing, extra = drift(target, ids)
    before = table.target_rows()

    found = table.reconcile()
    assert found.outcome == "differs" and not found.exact
    assert {k[0] for k in found.drift.changed} == changed
    assert {k[0] for k in found.drift.missing} == missing
    assert {k[0] for k in found.drift.extra} == extra
    assert found.drift.differing_ranges <= 30 < found.drift.ranges
    assert table.target_rows() == before  # compared only

    mended = table.reconcile(repair=True, day=2)
    assert mended.outcome == "repaired" and mended.rounds == 1
    assert (mended.rows_copied, mended.rows_deleted, mended.extra_kept) == (20, 10, 0)
    assert table.target_rows() == table.source_rows()
    assert table.reconcile(day=3).outcome == "match"

    # What was mended is recorded beside the ledger row of the repair's load.
    log = _rows(
        f"SELECT outcome, changed_keys, missing_keys, extra_keys, rows_copied, rows_deleted, first_keys, load_key "
        f"FROM {target}.report_reconciles ORDER BY id"
    )
    assert [r[:6] for r in log] == [
        ("differs", 10, 10, 10, 0, 0),
        ("repaired", 10, 10, 10, 20, 10),
        ("match", 0, 0, 0, 0, 0),
    ]
    assert {k[0] for k in json.loads(log[1][6])["extra"]} == extra
    loads = _rows(f"SELECT load_mode, rows_loaded, load_key FROM {target}.report_loads ORDER BY id")
    assert loads[-1] == ("repair", 20, log[1][7])


PAIRS = (
    "CREATE TABLE {db}.pairs (code VARCHAR(12) NOT NULL, b INT NULL, company INT NOT NULL, v VARCHAR(20) NULL, "
    "UNIQUE KEY uq_pairs (code, b)) ENGINE=InnoDB"
)


def test_a_composite_nullable_key_is_compared_null_safely_and_extra_rows_stay_without_delete_detection(
    dbs: tuple[str, str], bucket_name: str
):
    source, target = dbs
    execute(mysql_connect(), PAIRS.format(db=source), PAIRS.format(db=target))
    values = [f"('c{i}', {'NULL' if i % 10 == 0 else i * 2}, 1, 'v{i}')" for i in range(1, 301)]
    # A UNIQUE key with a NULL does not make rows unique: two rows of key ('c50', NULL), and so on.
    values += [f"('c{i}', NULL, 1, 'twin{i}')" for i in range(50, 301, 50)]
    execute(mysql_connect(), f"INSERT INTO {source}.pairs VALUES {', '.join(values)}")
    columns = "code, b, company, v"
    table = Table(
        source,
        target,
        bucket_name,
        make_spec(
            name="pairs",
            query_select=f"SELECT {columns} FROM pairs WHERE company = %(company_id)s",
            query_insert=f"REPLACE INTO pairs ({columns}) VALUES ",
        ),
    )
    table.load()
    everything = f"SELECT {columns} FROM {{}}.pairs ORDER BY code, b, v"
    assert _rows(everything.format(target)) == _rows(everything.format(source))
    execute(
        mysql_connect(),
        f"UPDATE {target}.pairs SET v = 'drifted' WHERE (code, b) = ('c7', 14)",
        f"UPDATE {target}.pairs SET v = 'drifted' WHERE code = 'c50' AND v = 'twin50'",
        f"DELETE FROM {target}.pairs WHERE code = 'c100' AND v = 'v100'",  # one of a NULL-key pair
        f"DELETE FROM {target}.pairs WHERE code = 'c13'",
        f"INSERT INTO {target}.pairs VALUES ('c999', NULL, 1, 'extra'), ('c998', 5, 1, 'extra')",
    )

    found = table.reconcile()
    assert found.drift.key == ("code", "b") and "hash buckets of (code, b)" in found.drift.split
    assert set(found.drift.changed) == {("c7", 14), ("c50", None), ("c100", None)}
    assert set(found.drift.missing) == {("c13", 26)}
    assert set(found.drift.extra) == {("c999", None), ("c998", 5)}

    mended = table.reconcile(repair=True, day=2)
    assert (mended.outcome, mended.rows_deleted, mended.extra_kept) == ("repaired", 0, 2)
    assert "2 target-only rows kept (delete_detection 'none')" in mended.summary()
    assert ["extra", 2, "kept: delete_detection 'none'"] == mended.kinds()[1][2][:3]
    extras = [("c998", 5, 1, "extra"), ("c999", None, 1, "extra")]
    assert _rows(everything.format(target)) == sorted(
        _rows(everything.format(source)) + extras, key=lambda r: (r[0], r[1] is not None, r[1] or 0, r[3])
    )
    # Kept on purpose: the next reconcile reports them again, and is complete (the table keeps them).
    again = table.reconcile(repair=True, day=3)
    assert set(again.drift.extra) == {("c999", None), ("c998", 5)} and not again.drift.changed + again.drift.missing
    assert again.outcome == "repaired" and again.rows_copied == 0 and again.exact


def _racing_extract(
    monkeypatch: pytest.MonkeyPatch, source: str, writes: list[str], every_time: bool = False
) -> list[int]:
    """Run ``writes`` on the source right after the repair's extract (the first one, or every one): the rows
    it read are then older than the source when the repair rechecks them. Returns the calls made."""
    real = reconciliation._Job._extract
    calls: list[int] = []

    def extract_then_write(self: Any, keys: Any) -> Any:
        manifest = real(self, keys)
        calls.append(manifest.rows)
        if every_time or len(calls) == 1:
            execute(mysql_connect(source), *[w.format(n=len(calls)) for w in writes])
        return manifest

    monkeypatch.setattr(reconciliation._Job, "_extract", extract_then_write)
    return calls


def test_a_source_write_racing_the_repair_is_rechecked_and_the_target_ends_exact_or_unchanged(
    dbs: tuple[str, str], bucket_name: str, monkeypatch: pytest.MonkeyPatch
):
    source, target = dbs
    spec = make_spec(load_mode="incremental", cursor_column="updated_at", delete_detection="keys")
    table = Table(source, target, bucket_name, spec)
    table.load()
    drift(target, [10, 20, 30, 40, 50, 60])
    # After the repair extracted the rows of ids 10 (changed) and 40 (missing), the source changes them again.
    calls = _racing_extract(
        monkeypatch, source, ["UPDATE orders SET note = 'raced {n}', updated_at = NOW(6) WHERE id IN (10, 40)"]
    )
    mended = table.reconcile(repair=True)
    assert len(calls) == 2 and mended.rounds == 2  # the first attempt was rolled back
    assert table.target_rows() == table.source_rows()
    assert ("raced 1",) in _rows(f"SELECT note FROM {target}.orders WHERE id = 10")
    assert _rows(f"SELECT COUNT(*) FROM {target}.report_loads WHERE load_mode = 'repair'") == [(1,)]

    # A source that changes the repaired rows every time: refused after every attempt rolled back.
    monkeypatch.undo()
    drift(target, [11, 22, 31])
    before = table.target_rows()
    calls = _racing_extract(monkeypatch, source, ["UPDATE orders SET note = 'busy {n}' WHERE id = 11"], every_time=True)
    with pytest.raises(RefusedError, match=r"the source kept changing rows being repaired \(1 keys .* id=11\)"):
        table.reconcile(repair=True, day=2)
    assert len(calls) == reconciliation.ROUNDS
    assert table.target_rows() == before
    last = _rows(f"SELECT outcome, message FROM {target}.report_reconciles ORDER BY id DESC LIMIT 1")[0]
    assert last[0] == "refused" and "the target was not changed" in last[1]
    assert _rows(f"SELECT COUNT(*) FROM {target}.report_loads WHERE load_mode = 'repair'") == [(1,)]


def test_an_older_incremental_extract_never_loads_over_repaired_rows(dbs: tuple[str, str], bucket_name: str):
    source, target = dbs
    spec = make_spec(load_mode="incremental", cursor_column="updated_at", cursor_overlap=0)
    table = Table(source, target, bucket_name, spec)
    table.load()
    execute(
        mysql_connect(source),
        f"UPDATE orders SET note = 'new', updated_at = '{T0 + dt.timedelta(days=9)}' WHERE id = 5",
    )
    when = DAY + dt.timedelta(days=1)
    stale = tasks.extract_table(table.conns, table.settings, table.company, table.spec, when, "stale")
    execute(mysql_connect(source), "UPDATE orders SET note = 'newer' WHERE id = 5")  # the cursor does not move
    assert table.reconcile(repair=True, day=1).rows_copied == 1
    result = tasks.load_table(table.conns, table.settings, table.company, table.spec, [stale.ref], when, "stale")
    assert result.skip_reason == "older-extract"
    assert table.target_rows() == table.source_rows()


class _CliConnections(LocalConnections):
    def __init__(self, source_db: str, admin_db: str) -> None:
        super().__init__(source_db)
        self.admin_db = admin_db

    def admin(self) -> Any:
        return mysql_connect(self.admin_db)


def test_the_cli_reconciles_names_the_rows_repairs_them_and_plan_and_validate_show_the_schedule(
    dbs: tuple[str, str], mysql_root: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Any
):
    from report_pipeline import admin, cli

    source, _ = dbs
    tag = uuid.uuid4().hex[:8]
    alias, admin_db = f"rec{tag}", f"t_adm_{tag}"
    execute(mysql_root, f"CREATE DATABASE `{admin_db}`", f"CREATE DATABASE `{alias}` CHARACTER SET utf8mb4")
    execute(mysql_root, DDL.format(db=alias), f"CREATE TABLE {alias}.keyless (id INT, note VARCHAR(40))")
    monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "snapshot.json"))
    conn = mysql_connect(admin_db)
    admin.init_admin(conn)
    cursor = conn.cursor()
    admin.add_company(cursor, 1, alias)
    for name, insert in (
        ("orders", f"REPLACE INTO orders ({COLUMNS}) VALUES"),
        ("keyless", "INSERT INTO keyless (id, note) VALUES"),
    ):
        admin.add_table(
            cursor,
            admin.TableRow(
                name=name,
                query_select=f"SELECT {COLUMNS if name == 'orders' else 'id, note'} FROM orders "
                "WHERE company = %(company_id)s",
                query_insert=insert,
                load_mode="upsert" if name == "orders" else "swap",
                reconcile_every_days=3,
            ),
        )
    conn.commit()
    connect = lambda _settings: _CliConnections(source, admin_db)  # noqa: E731
    table = ("--company", alias, "--table", "orders")
    try:
        assert cli.main(["run", *table, "--date", "2026-11-20"], connect) == 0
        execute(
            mysql_root,
            f"UPDATE {alias}.orders SET amount = NULL WHERE id = 100",
            f"DELETE FROM {alias}.orders WHERE id = 200",
            f"INSERT INTO {alias}.orders SELECT id + 5000, {COLUMNS[4:]} FROM {alias}.orders WHERE id = 1",
        )
        capsys.readouterr()
        assert cli.main(["reconcile", *table, "--date", "2026-11-21"], connect) == 1
        out = capsys.readouterr().out
        assert f"{alias}.orders -> {alias}.orders by key (id): source 2,667 rows, target 2,667" in out
        assert "DIFFERENT (run with --repair to re-copy them)" in out
        lines = [" ".join(line.split()) for line in out.splitlines()]
        assert lines[1:6] == [
            "difference keys mended first keys",
            "---------- ---- ------ ----------",
            "changed 1 - id=100",
            "missing 1 - id=200",
            "extra 1 - id=5001",
        ]
        assert cli.main(["reconcile", *table, "--date", "2026-11-21", "--repair"], connect) == 0
        out = capsys.readouterr().out
        assert "repaired: 2 rows re-copied, 0 target-only rows deleted, 1 target-only rows kept" in out
        assert "extra 1 kept: delete_detection 'none' id=5001" in [" ".join(line.split()) for line in out.splitlines()]
        assert f"recorded in {alias}.report_reconciles (id 2)" in out
        target = _rows(f"SELECT {COLUMNS} FROM {alias}.orders WHERE id < 5000 ORDER BY id")
        assert target == _rows(f"SELECT {COLUMNS} FROM {source}.orders WHERE company = 1 ORDER BY id")

        assert cli.main(["plan"], connect) == 0
        out = capsys.readouterr().out
        assert "reconcile" in out.splitlines()[1].split()  # the column's header
        plan = [line for line in out.splitlines() if line.startswith(alias)]
        assert len(plan) == 2 and all("every 3d" in line for line in plan)
        assert cli.main(["validate"], connect) == 1
        out = capsys.readouterr().out
        assert (
            "table 'keyless' (tables row id=2): reconcile_every_days is set, but reconcile compares rows by key" in out
        )
        assert "table 'orders'" not in out
    finally:
        execute(mysql_root, f"DROP DATABASE `{admin_db}`", f"DROP DATABASE `{alias}`")
        from tests.conftest import s3_client

        s3 = s3_client()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=f"reports-{alias}"):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=f"reports-{alias}", Key=item["Key"])
        s3.delete_bucket(Bucket=f"reports-{alias}")

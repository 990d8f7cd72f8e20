"""``load`` through every strategy without a server: an in-memory target and S3, failures injected.

The real-server tests (tests/integration, tests/faults) prove the MySQL target and S3 do what the load
asks; these prove what the load asks: refusals leave the target as it was, a load that dies at any
statement is all or nothing and its retry exact, the ledger and watermark move only with the rows.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from tests.unit.memstorage import MemoryS3, stage
from tests.unit.memtarget import LostConnection, MemoryServer, MemoryTarget

from report_pipeline.errors import RefusedError, TransferError
from report_pipeline.guards import SwapGuard
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import SUCCESS_NAME, ManifestRef, table_prefix
from report_pipeline.target import Target
from report_pipeline.validation import InsertTarget
from report_pipeline.vocabulary import AS_OF_TABLE, LEDGER_TABLE, SCHEMA_LOG_TABLE, WATERMARK_TABLE, CursorRange

SCHEMA = "acme"
TABLE = "orders"
DAY1 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
COLUMNS = (("id", 3, "INT"), ("name", 253, "VARCHAR(50)"))
WHERE = f"company 'acme' table {TABLE!r} (tables row id=7)"
OLD = [(1, "old-1"), (2, "old-2"), (3, "old-3"), (4, "old-4")]
NEW = [(1, "new-1"), (2, "new-2"), (3, "new-3"), (4, "new-4"), (5, "new-5")]


def text(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows as the target holds them (LOAD DATA's text), sorted."""
    return sorted((tuple(None if v is None else str(v) for v in r) for r in rows), key=repr)


@pytest.fixture
def world() -> SimpleNamespace:
    server = MemoryServer()
    server.create_table(SCHEMA, TABLE, {"id": "int(11)", "name": "varchar(50)"}, keys=[("id",)])
    server.insert(SCHEMA, TABLE, OLD)
    s3 = MemoryS3()
    return SimpleNamespace(server=server, s3=s3, bucket=s3.bucket("reports-acme"))


def run(
    world: SimpleNamespace,
    refs: list[ManifestRef],
    mode: str = "upsert",
    *,
    day: dt.datetime = DAY1,
    run_id: str = "run-1",
    columns: tuple[str, ...] = ("id", "name"),
    **options: Any,
) -> LoadResult:
    request = LoadRequest(
        company="acme",
        schema=SCHEMA,
        target=InsertTarget(TABLE, columns, "replace"),
        load_mode=mode,
        bucket=world.bucket,
        manifest_keys=tuple(r.key for r in refs),
        success_key=f"{table_prefix(TABLE, day)}/{SUCCESS_NAME}",
        logical_date=day,
        run_id=run_id,
        expected=tuple(refs),
        where=WHERE,
        lock_timeout_seconds=0,
        **options,
    )
    session = world.server.session()
    try:
        return load(session, request)
    finally:
        session.close()


def extract(world: SimpleNamespace, rows: list[tuple[Any, ...]], day: dt.datetime = DAY1, **kwargs: Any):
    kwargs.setdefault("run_id", "run-1")
    return stage(world.bucket, TABLE, kwargs.pop("columns", COLUMNS), rows, logical_date=day, **kwargs)


def ledger(world: SimpleNamespace) -> list[dict[str, Any]]:
    found = world.server.schemas[SCHEMA].get(LEDGER_TABLE)
    return list(found.rows) if found else []


def success_written(world: SimpleNamespace, day: dt.datetime = DAY1) -> bool:
    return f"{table_prefix(TABLE, day)}/{SUCCESS_NAME}" in world.s3.buckets["reports-acme"]


# --- the double itself


def test_the_memory_target_has_every_method_of_the_protocol_with_its_parameters():
    # Target is the union of the concerns' protocols: their methods are on its bases.
    methods = [(n, f) for base in Target.__mro__ for n, f in vars(base).items() if inspect.isfunction(f)]
    wanted = {n: f for n, f in methods if not n.startswith("_")}
    assert len(wanted) > 30
    for name, method in wanted.items():
        mine = getattr(MemoryTarget, name, None)
        assert mine is not None, f"MemoryTarget lacks {name}"
        assert list(inspect.signature(mine).parameters) == list(inspect.signature(method).parameters), name


# --- upsert


def test_upsert_loads_every_part_and_its_ledger_row_and_a_retry_loads_nothing_twice(world):
    refs = extract(world, NEW)
    result = run(world, refs)
    assert (result.rows, result.parts, result.skipped) == (5, 3, False)
    assert world.server.rows(SCHEMA, TABLE) == text(NEW)
    [entry] = ledger(world)
    assert (entry["table_name"], entry["rows_loaded"], entry["load_mode"]) == (TABLE, 5, "upsert")
    assert entry["load_key"] == result.load_key and success_written(world)
    assert world.server.implicit_commits == 0
    # One transaction: every part and the ledger row between one begin and one commit.
    ops = [op for _, op, _ in world.server.statements]
    assert ops.count("begin") == 1 and ops.count("commit") == 1
    assert ops.index("begin") < ops.index("bulk_load") < ops.index("record_load") < ops.index("commit")

    again = run(world, refs)
    assert (again.skipped, again.skip_reason, again.rows) == (True, "already-loaded", 5)
    assert len(ledger(world)) == 1 and world.server.rows(SCHEMA, TABLE) == text(NEW)


def test_upsert_into_a_table_without_a_key_is_refused_and_changes_nothing(world):
    world.server.create_table(SCHEMA, TABLE, {"id": "int", "name": "varchar(50)"})
    world.server.insert(SCHEMA, TABLE, OLD)
    before = world.server.state()
    with pytest.raises(RefusedError) as refused:
        run(world, extract(world, NEW))
    message = str(refused.value)
    assert message.startswith(WHERE) and "has no PRIMARY or UNIQUE key" in message and "load_mode 'swap'" in message
    after = world.server.state()
    after[SCHEMA].pop(LEDGER_TABLE)  # created before the checks, empty
    # ... as is the as-of table, holding only the company row, with no date
    assert [(r["table_name"], r["data_as_of"]) for r in after[SCHEMA].pop(AS_OF_TABLE)["rows"]] == [("*", None)]
    assert after == before and not success_written(world)


@pytest.mark.parametrize("op", ["bulk_load", "record_load", "commit"])
def test_upsert_that_dies_mid_load_leaves_the_target_as_it_was_and_its_retry_is_exact(world, op):
    refs = extract(world, NEW)
    world.server.fail(op, nth=2 if op == "bulk_load" else 1)
    with pytest.raises(LostConnection):
        run(world, refs)
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)
    assert ledger(world) == [] and not success_written(world)
    run(world, refs)
    assert world.server.rows(SCHEMA, TABLE) == text(NEW) and len(ledger(world)) == 1


def test_a_part_whose_row_count_is_not_the_manifests_fails_the_load_and_rolls_back(world, monkeypatch):
    refs = extract(world, NEW)
    real = MemoryTarget.bulk_load
    monkeypatch.setattr(MemoryTarget, "bulk_load", lambda self, *a: real(self, *a) - 1)
    with pytest.raises(TransferError, match="LOAD DATA read 1 rows, the manifest says 2"):
        run(world, refs)
    assert world.server.rows(SCHEMA, TABLE) == text(OLD) and ledger(world) == []


def test_a_manifest_other_than_the_one_its_extract_reported_is_refused(world):
    [ref] = extract(world, NEW)
    forged = ManifestRef(ref.key, ref.extract_id, "0" * 64)
    with pytest.raises(RefusedError, match=r"the extract task reported extract .* the target was not changed"):
        run(world, [forged])
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)
    assert world.server.ops("bulk_load") == []


def test_chunks_load_together_and_a_missing_chunk_is_refused(world):
    refs = extract(world, NEW, chunk_cuts=[3])
    assert len(refs) == 3  # id < 3, id >= 3, id IS NULL
    with pytest.raises(RefusedError, match=r"refusing to load: .*clear the plan_chunks task"):
        run(world, refs[:2])
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)
    assert run(world, refs).rows == 5 and world.server.rows(SCHEMA, TABLE) == text(NEW)


def test_a_second_writer_of_the_table_waits_for_the_lock_then_gives_up(world):
    holder = world.server.session()
    with holder.writer_lock(SCHEMA, TABLE, 0), pytest.raises(TransferError, match=r"another load of acme\.orders"):
        run(world, extract(world, NEW))
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)


# --- swap


def test_swap_replaces_the_table_through_a_shadow_and_leaves_no_shadow_behind(world):
    result = run(world, extract(world, NEW[:3]), "swap", parallelism=2)
    assert result.rows == 3
    assert world.server.rows(SCHEMA, TABLE) == text(NEW[:3])
    assert [t for t in world.server.schemas[SCHEMA] if t.startswith("_rp_")] == []
    assert [e["load_mode"] for e in ledger(world)] == ["swap"]
    # The shadow was loaded (over up to two sessions); the live table renamed over, never written row by row.
    assert not [s for s in world.server.statements if s[1] == "bulk_load" and s[2] == f"{SCHEMA}.{TABLE}"]


def test_swap_that_would_shrink_the_table_too_much_is_refused_and_the_shadow_dropped(world):
    with pytest.raises(RefusedError) as refused:
        run(world, extract(world, NEW[:1]), "swap")
    assert "not swapping acme.orders: the new data has 1 rows and would replace 4, 75% fewer" in str(refused.value)
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)
    assert sorted(world.server.schemas[SCHEMA]) == sorted([TABLE, LEDGER_TABLE, AS_OF_TABLE]) and ledger(world) == []
    # The guard is the request's: allowing the shrink loads it.
    run(world, extract(world, NEW[:1], run_id="run-2"), "swap", run_id="run-2", guard=SwapGuard(max_shrink_percent=80))
    assert world.server.rows(SCHEMA, TABLE) == text(NEW[:1])


def test_swap_of_an_older_window_than_one_swapped_in_is_skipped(world):
    run(world, extract(world, NEW, DAY2, run_id="run-2"), "swap", day=DAY2, run_id="run-2")
    before = world.server.state()
    result = run(world, extract(world, OLD), "swap")
    assert (result.skipped, result.skip_reason) == (True, "older-window")
    assert world.server.state() == before


@pytest.mark.parametrize("op", ["bulk_load", "replace_table", "record_load", "commit"])
def test_swap_that_dies_is_all_or_nothing_drops_its_shadow_and_its_retry_is_exact(world, op):
    refs = extract(world, NEW)
    world.server.fail(op, nth=2 if op == "bulk_load" else 1)
    with pytest.raises(LostConnection):
        run(world, refs, "swap", parallelism=2)
    # Until the RENAME the live table is the old one; from it on, the new one, whole.
    assert world.server.rows(SCHEMA, TABLE) in (text(OLD), text(NEW))
    assert [t for t in world.server.schemas[SCHEMA] if t.startswith("_rp_")] == []
    assert ledger(world) == [] and not success_written(world)
    run(world, refs, "swap")
    assert world.server.rows(SCHEMA, TABLE) == text(NEW) and len(ledger(world)) == 1


# --- every statement of every mode: all or nothing, then an exact retry


@pytest.mark.parametrize("mode", ["upsert", "swap", "incremental"])
def test_a_load_cut_at_any_statement_is_all_or_nothing_and_its_retry_exact(mode):
    def fresh() -> SimpleNamespace:
        server = MemoryServer()
        server.create_table(SCHEMA, TABLE, {"id": "int(11)", "name": "varchar(50)"}, keys=[("id",)])
        server.insert(SCHEMA, TABLE, OLD)
        s3 = MemoryS3()
        return SimpleNamespace(server=server, s3=s3, bucket=s3.bucket("reports-acme"))

    cursor = CursorRange("id", "integer", None, "5", "2026-11-26T06:00:00", False) if mode == "incremental" else None
    clean = fresh()
    run(clean, extract(clean, NEW, cursor=cursor), mode)
    total = len(clean.server.statements)
    assert total > 10
    for nth in range(1, total + 1):
        w = fresh()
        refs = extract(w, NEW, cursor=cursor)
        w.server.fail(None, nth=nth)
        with pytest.raises(LostConnection):
            run(w, refs, mode)
        rows = w.server.rows(SCHEMA, TABLE)
        # One transaction (upsert, incremental): nothing shows until the commit. A swap's RENAME makes the
        # new table live before its ledger row commits: from then on, the new rows, whole.
        assert rows in ((text(OLD), text(NEW)) if mode == "swap" else (text(OLD),)), f"{mode}: cut at {nth}: {rows}"
        assert ledger(w) == [], f"{mode}: cut at statement {nth} left a ledger row"
        if mode == "incremental":
            marks = w.server.schemas[SCHEMA].get(WATERMARK_TABLE)
            assert marks is None or marks.rows == [], f"cut at statement {nth} left a watermark"
        w.server.triggers.clear()
        run(w, refs, mode)
        assert w.server.rows(SCHEMA, TABLE) == text(NEW) and len(ledger(w)) == 1, f"{mode}: retry after {nth}"


# --- incremental: watermark, ordering by snapshot, delete batches


def cursor_at(max_seen: str | None, snapshot: str, since: str | None = None, reset: bool = False) -> CursorRange:
    return CursorRange("id", "integer", since, max_seen, snapshot, reset)


def watermark(world: SimpleNamespace) -> dict[str, Any] | None:
    marks = world.server.schemas[SCHEMA].get(WATERMARK_TABLE)
    found = [r for r in marks.rows if r["table_name"] == TABLE] if marks else []
    return found[0] if found else None


def test_incremental_sets_the_watermark_with_the_rows_and_never_moves_it_backwards(world):
    run(world, extract(world, NEW[:2], cursor=cursor_at("2", "2026-11-26T06:00:00")), "incremental")
    mark = watermark(world)
    assert mark is not None
    assert (mark["cursor_value"], mark["snapshot_at"]) == ("2", dt.datetime(2026, 11, 26, 6))
    # A newer extract of an older logical date loads; its lower highest value does not lower the watermark.
    refs = extract(world, [(2, "again")], cursor=cursor_at("2", "2026-11-27T06:00:00", "1"), run_id="run-b")
    run(world, refs, "incremental", run_id="run-b")
    refs = extract(world, [(1, "late")], DAY2, cursor=cursor_at("1", "2026-11-28T06:00:00", "1"), run_id="run-c")
    run(world, refs, "incremental", day=DAY2, run_id="run-c")
    mark = watermark(world)
    assert mark is not None and (mark["cursor_value"], mark["snapshot_at"]) == ("2", dt.datetime(2026, 11, 28, 6))
    assert world.server.rows(SCHEMA, TABLE) == text([(1, "late"), (2, "again"), *OLD[2:]])
    # A reset (a full reload asked for by a manual run) sets it to what that reload saw.
    refs = extract(world, NEW[:1], DAY2, cursor=cursor_at("1", "2026-11-29T06:00:00", reset=True), run_id="run-d")
    run(world, refs, "incremental", day=DAY2, run_id="run-d")
    mark = watermark(world)
    assert mark is not None and mark["cursor_value"] == "1"


def test_incremental_skips_an_extract_older_than_the_one_loaded(world, caplog):
    run(world, extract(world, NEW, cursor=cursor_at("5", "2026-11-27T06:00:00")), "incremental")
    before = world.server.state()
    refs = extract(world, OLD, DAY2, cursor=cursor_at("4", "2026-11-26T06:00:00"), run_id="run-2")
    with caplog.at_level(logging.WARNING):
        result = run(world, refs, "incremental", day=DAY2, run_id="run-2")
    assert (result.skipped, result.skip_reason) == (True, "older-extract")
    assert world.server.state() == before
    assert "loading older versions over them would undo changes" in caplog.text


def test_incremental_without_a_cursor_range_is_refused(world):
    with pytest.raises(RefusedError) as refused:
        run(world, extract(world, NEW), "incremental")
    assert str(refused.value) == (
        f"{WHERE}: acme.orders: the manifests were not written by an incremental extract (no cursor range), "
        "so no watermark can be set; re-run the extract"
    )
    assert world.server.rows(SCHEMA, TABLE) == text(OLD) and watermark(world) is None


def test_incremental_that_loses_its_connection_before_commit_keeps_rows_and_watermark(world):
    run(world, extract(world, NEW[:2], cursor=cursor_at("2", "2026-11-26T06:00:00")), "incremental")
    before = world.server.state()
    refs = extract(world, NEW, DAY2, cursor=cursor_at("5", "2026-11-27T06:00:00", "2"), run_id="run-2")
    world.server.fail("commit")
    with pytest.raises(LostConnection):
        run(world, refs, "incremental", day=DAY2, run_id="run-2")
    assert world.server.state() == before


def test_delete_detection_deletes_in_batches_only_what_the_source_lost(world):
    many = [(i, f"row-{i}") for i in range(1, 2501)]
    world.server.insert(SCHEMA, TABLE, [r for r in many if r[0] > 4])
    kept = [k for k in range(1, 2501) if k % 2 == 0 or k <= 100]  # 1,200 odd ids above 100 are gone
    refs = extract(
        world,
        [(2, "changed")],
        cursor=cursor_at("2", "2026-11-26T06:00:00"),
        key_columns=["id"],
        source_keys=[(k,) for k in kept],
    )
    run(world, refs, "incremental", guard=SwapGuard(max_shrink_percent=60))
    assert [int(r[0]) for r in world.server.rows(SCHEMA, TABLE)] == sorted(kept, key=lambda k: repr(str(k)))
    assert world.server.rows(SCHEMA, TABLE)[0:1] == [("1", "old-1")]
    batches = world.server.ops("delete_keys")
    assert [d for _, _, d in batches] == ["acme.orders: 1000 keys", "acme.orders: 200 keys"]
    assert world.server.ops("delete_missing") == []


def test_delete_detection_past_the_keys_a_worker_holds_deletes_by_anti_join(world):
    world.server.keys_in_memory = 1
    source = [(1,), (2,)]
    refs = extract(world, [], cursor=cursor_at(None, "2026-11-26T06:00:00"), key_columns=["id"], source_keys=source)
    run(world, refs, "incremental")
    assert world.server.rows(SCHEMA, TABLE) == text(OLD[:2])
    assert len(world.server.ops("delete_missing")) == 1 and world.server.ops("delete_keys") == []


def test_delete_detection_with_equal_key_sums_loads_no_key_set(world):
    keys = [(k,) for k, _ in OLD]
    refs = extract(world, [], cursor=cursor_at(None, "2026-11-26T06:00:00"), key_columns=["id"], source_keys=keys)
    run(world, refs, "incremental")
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)
    assert world.server.ops("create_key_table") == [] and len(world.server.ops("key_checksum")) == 1


def test_delete_detection_that_would_delete_too_much_is_refused_and_changes_nothing(world):
    before = world.server.state()
    refs = extract(
        world, [(1, "changed")], cursor=cursor_at("1", "2026-11-26T06:00:00"), key_columns=["id"], source_keys=[(1,)]
    )
    with pytest.raises(RefusedError) as refused:
        run(world, refs, "incremental")
    assert "not deleting from acme.orders: the new data has 1 rows and would replace 4, 75% fewer" in str(refused.value)
    after = world.server.state()
    for reserved in (LEDGER_TABLE, WATERMARK_TABLE):
        assert after[SCHEMA].pop(reserved)["rows"] == []
    assert [(r["table_name"], r["data_as_of"]) for r in after[SCHEMA].pop(AS_OF_TABLE)["rows"]] == [("*", None)]
    assert after == before
    assert world.server.ops("drop_key_table")  # the key table went with the refusal


# --- schema evolution


EVOLVED = (("id", 3, "INT"), ("name", 253, "VARCHAR(200)"), ("region", 253, "VARCHAR(20)"))


def test_evolve_adds_and_widens_columns_logs_them_and_loads_into_them(world):
    refs = extract(world, [(1, "a", "eu"), (9, "b", None)], columns=EVOLVED)
    run(world, refs, "upsert", schema_evolution="evolve")
    table = world.server.schemas[SCHEMA][TABLE]
    assert table.columns == ["id", "name", "region"]
    assert table.types == {"id": "int(11)", "name": "varchar(200)", "region": "varchar(20)"}
    assert world.server.rows(SCHEMA, TABLE) == text([(1, "a", "eu"), (9, "b", None), *[(*r, None) for r in OLD[1:]]])
    log = world.server.schemas[SCHEMA][SCHEMA_LOG_TABLE].rows
    assert sorted((r["column_name"], r["change_kind"], r["new_type"]) for r in log) == [
        ("name", "widen", "VARCHAR(200)"),
        ("region", "add", "VARCHAR(20)"),
    ]


def test_evolve_refuses_a_narrower_source_type_before_touching_the_target(world):
    before = world.server.state()
    narrower = (("id", 3, "INT"), ("name", 253, "VARCHAR(10)"))
    with pytest.raises(RefusedError) as refused:
        run(world, extract(world, NEW, columns=narrower), "swap", schema_evolution="evolve")
    assert "schema evolution of acme.orders refused, the target table was not changed" in str(refused.value)
    after = world.server.state()
    after[SCHEMA].pop(LEDGER_TABLE)
    assert [(r["table_name"], r["data_as_of"]) for r in after[SCHEMA].pop(AS_OF_TABLE)["rows"]] == [("*", None)]
    assert after == before
    assert world.server.ops("alter_columns") == [] and world.server.ops("create_shadow") == []


def test_without_evolve_a_column_query_insert_does_not_name_is_refused(world):
    with pytest.raises(RefusedError, match="not in query_insert: \\['region'\\]"):
        run(world, extract(world, [(1, "a", "eu")], columns=EVOLVED))
    assert world.server.rows(SCHEMA, TABLE) == text(OLD)

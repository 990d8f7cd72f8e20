"""The incremental mode's pure parts: cursor rules, the start value, the highest value, merging chunks."""

from __future__ import annotations

import pytest

from report_pipeline.collations import merge_problem
from report_pipeline.config import AdminRows, BrokenTable, build_plan, build_table
from report_pipeline.errors import ConfigError, TransferError
from report_pipeline.incremental.cursor import (
    MaxTracker,
    bind_since,
    cursor_problem,
    filtered_query,
    merge_ranges,
    since,
)
from report_pipeline.incremental.horizon import Writers, behind, decide, later
from report_pipeline.manifest import Manifest
from report_pipeline.settings import Settings
from report_pipeline.snapshot import plan_from_dict, plan_to_dict
from report_pipeline.validation import window_problem
from report_pipeline.vocabulary import CursorRange, Horizon

ROW = {
    "id": 4,
    "name": "orders",
    "status": 1,
    "query_select": "SELECT id, updated_at FROM orders WHERE company = %(company_id)s",
    "params_select": "",
    "query_insert": "INSERT INTO orders (id, updated_at) VALUES",
    "load_mode": "incremental",
    "cursor_column": "updated_at",
}
# DB-API descriptions: (name, type_code, display, internal, precision, scale, null_ok)
DESCRIPTION = (
    ("id", 8, 0, 20, 20, 0, 0),
    ("updated_at", 12, 0, 26, 26, 6, 0),
    ("maybe", 12, 0, 19, 19, 0, 1),
    ("label", 253, 0, 40, 40, 0, 0),
    ("year", 13, 0, 4, 4, 0, 0),
)


def test_a_cursor_must_be_a_non_null_time_or_integer_column_of_the_result():
    assert cursor_problem(DESCRIPTION, "updated_at") is None
    assert cursor_problem(DESCRIPTION, "ID") is None
    assert "not a column" in (cursor_problem(DESCRIPTION, "changed") or "")
    assert "VAR_STRING" in (cursor_problem(DESCRIPTION, "label") or "")
    assert "YEAR" in (cursor_problem(DESCRIPTION, "year") or "")
    assert "can be NULL" in (cursor_problem(DESCRIPTION, "maybe") or "")


def test_the_start_is_the_watermark_less_the_overlap_and_none_without_a_watermark():
    assert since("time", None, 60) is None
    assert since("time", "2026-11-01 00:00:30.500000", 60) == "2026-10-31 23:59:30.500000"
    assert since("time", "2026-11-01 00:00:00", None) == "2026-10-31 23:55:00"  # the default five minutes
    assert since("time", "2026-11-01", 0) == "2026-11-01 00:00:00"
    assert since("integer", "1000", 10) == 990
    assert since("integer", "1000", None) == 1000


def test_the_filter_binds_its_bound_like_the_query_binds_its_own():
    assert filtered_query("SELECT 1", "u", ()).endswith("WHERE _rp_inc.`u` >= %s")
    assert filtered_query("SELECT 1", "u", {"a": 1}).endswith("WHERE _rp_inc.`u` >= %(_rp_since)s")
    assert bind_since((1,), 5) == (1, 5)
    assert bind_since({"a": 1}, 5) == {"a": 1, "_rp_since": 5}


def test_later_compares_integers_as_numbers_and_times_as_times():
    assert later("integer", "9", "10") == "10"
    assert later("time", "2026-11-01 09:00:00", "2026-11-01 10:00:00.5") == "2026-11-01 10:00:00.5"
    assert later("time", None, "2026-11-01") == "2026-11-01"
    assert later("integer", "3", None) == "3"


def test_the_tracker_keeps_the_highest_value_and_refuses_null():
    tracker = MaxTracker("integer", 0)
    tracker.see([(b"9",), (b"10",)])
    tracker.see([(b"2",)])
    assert tracker.value == "10"
    times = MaxTracker("time", 1)
    times.see([(b"1", b"2026-11-01 10:00:00"), (b"2", b"2026-11-02 09:00:00")])
    assert times.value == "2026-11-02 09:00:00"
    with pytest.raises(TransferError, match="NULL"):
        times.see([(b"3", None)])


def _range(since_: str | None, top: str | None, taken: str, ceiling: str | None = None) -> CursorRange:
    return CursorRange("id", "integer", since_, top, taken, ceiling=ceiling, guarded=True)


def test_chunks_merge_into_the_lowest_start_and_oldest_snapshot_capped_by_the_plans_horizon_not_the_highest_value():
    # Every chunk carries the horizon read at planning (ceiling 50); a later chunk saw 90, which a
    # change in chunk 0 made after chunk 0 was read may lie below: the watermark stays at the plan's 50.
    merged = merge_ranges(
        [
            _range("5", "90", "2026-11-01 10:00:01", "50"),
            _range("3", None, "2026-11-01 10:00:00", "50"),
            _range("4", "7", "2026-11-01 10:00:02", "50"),
        ]
    )
    assert merged == _range("3", "90", "2026-11-01 10:00:00", "50")
    assert (
        merge_ranges([_range(None, "9", "2026-11-01 10:00:00"), _range("3", "5", "2026-11-01 10:00:00")]).since is None
    )  # type: ignore[union-attr]
    assert merge_ranges([_range("1", "2", "2026-11-01 10:00:00"), None]) is None
    # Chunks of older code carry no horizon: they do not move the watermark at all.
    legacy = [CursorRange("id", "integer", "1", top, "2026-11-01") for top in ("90", "9")]
    assert merge_ranges(legacy).ceiling is None  # type: ignore[union-attr]
    # Chunks read from two servers are refused.
    with pytest.raises(TransferError, match="different source servers"):
        merge_ranges(
            [
                CursorRange("id", "integer", "1", "9", "2026-11-01", ceiling="9", guarded=True, server="a"),
                CursorRange("id", "integer", "1", "9", "2026-11-01", ceiling="9", guarded=True, server="b"),
            ]
        )


def test_the_horizon_caps_a_time_cursor_at_the_oldest_open_writer_and_holds_an_integer_until_its_writers_end():
    clock = "2026-11-01 12:00:00.500000"
    quiet = Writers(clock, None, ())
    busy = Writers(clock, "2026-11-01 11:58:00.700000", ("77",))
    # Time: the highest value seen, unless an open writer started earlier (floored to whole seconds).
    assert decide("time", "2026-11-01 11:59:00", quiet, quiet).ceiling == "2026-11-01 11:59:00"
    assert decide("time", "2026-11-01 11:59:00", busy, busy).ceiling == "2026-11-01 11:58:00"
    assert decide("time", "2026-11-01 12:00:00.900000", quiet, quiet).ceiling == "2026-11-01 12:00:00"
    # Integer: with a writer open after the snapshot, the value waits; it counts once the writer has ended.
    held = decide("integer", "52", quiet, busy)
    assert (held.ceiling, held.pending, held.writers) == (None, "52", "77")
    still_open = decide("integer", "60", busy, busy, "52", "77")
    assert (still_open.ceiling, still_open.pending) == (None, "60")
    ended = decide("integer", "60", quiet, busy, "52", "77")
    assert (ended.ceiling, ended.pending) == ("52", "60")
    assert decide("integer", "60", quiet, quiet, "52", "77").ceiling == "60"
    # Unreadable (no PROCESS): the highest value seen, flagged.
    assert decide("integer", "60", None, None) == Horizon("60", guarded=False)


def test_gtid_positions_tell_a_lagging_replica_from_its_primary():
    assert behind("0-1-40", "0-1-42") and not behind("0-1-42", "0-1-42") and not behind("0-2-43", "0-1-42")
    assert behind("0-1-50,1-1-3", "0-1-42,1-1-4")
    assert behind("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7")
    assert not behind("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-9", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-3:5-7")


def test_a_target_key_collation_that_folds_what_the_source_tells_apart_is_a_problem():
    assert merge_problem({"code": "utf8mb4_general_ci"}, {"code": "utf8mb4_bin"}) is not None
    assert merge_problem({"code": "utf8mb4_bin"}, {"code": "utf8mb4_nopad_bin"}) is not None  # 'a' = 'a '
    assert merge_problem({"code": "latin1_bin"}, {"code": "utf8mb4_bin"}) is not None  # other characters
    for same in ("utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_0900_ai_ci"):
        assert merge_problem({"code": same}, {"code": same}) is None
    assert merge_problem({"code": "utf8mb4_bin"}, {"code": "utf8mb4_general_ci"}) is None
    assert merge_problem({"code": "utf8mb4_nopad_bin"}, {"code": "utf8mb4_bin"}) is None
    assert merge_problem({"code": "binary"}, {"code": "utf8mb4_unicode_ci"}) is None
    assert merge_problem({"code": "utf8mb4_general_ci"}, {"code": None, "id": "utf8mb4_bin"}) is None


def test_a_date_placeholder_of_an_incremental_row_must_bound_its_cursor_column():
    bad = [
        ("SELECT id, updated_at FROM o WHERE order_date >= %(date_from)s", []),
        ("SELECT id, updated_at FROM o WHERE company = %s AND created >= %s", [1]),
        ("SELECT id, updated_at FROM o WHERE created >= DATE_SUB(%(date_from)s, INTERVAL 1 DAY)", []),
    ]
    for query, dates in bad:
        assert window_problem(query, dates, "updated_at") is not None, query
    good = [
        ("SELECT id, updated_at FROM o WHERE o.updated_at >= %(date_from)s AND updated_at < %(date_to)s", []),
        ("SELECT id, updated_at FROM o WHERE DATE(updated_at) BETWEEN %(date_from)s AND %(date_to)s", []),
        ("SELECT id, x.changed AS updated_at FROM o x WHERE %s <= x.changed AND company = %s", [0]),
        ("SELECT id, updated_at FROM o WHERE company = %s", []),
    ]
    for query, dates in good:
        assert window_problem(query, dates, "updated_at") is None, query


def test_a_manifest_keeps_its_cursor_range_and_older_manifests_read_without_one():
    manifest = Manifest(
        "b", "p", "x", "c", "t", "d", "r", (), (), "gzip", "s", "f", cursor=_range("1", "2", "2026-11-01")
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    plain = Manifest("b", "p", "x", "c", "t", "d", "r", (), (), "gzip", "s", "f")
    assert Manifest.from_json(plain.to_json()).cursor is None


def test_incremental_rows_need_a_cursor_and_other_modes_must_not_have_one():
    spec = build_table(ROW)
    assert (spec.load_mode, spec.cursor_column, spec.cursor_overlap) == ("incremental", "updated_at", None)
    assert build_table({**ROW, "cursor_overlap": "120"}).cursor_overlap == 120
    with pytest.raises(ConfigError, match=r"needs tables\.cursor_column"):
        build_table({**ROW, "cursor_column": None})
    with pytest.raises(ConfigError, match="used only by 'incremental'"):
        build_table({**ROW, "load_mode": "upsert"})
    with pytest.raises(ConfigError, match="cursor_overlap must be >= 0"):
        build_table({**ROW, "cursor_overlap": -1})
    with pytest.raises(ConfigError, match="cursor column"):
        build_table({**ROW, "cursor_column": "updated_at; DROP TABLE x"})


def test_the_watermark_table_is_reserved_and_specs_survive_the_snapshot():
    with pytest.raises(ConfigError, match="report_watermarks"):
        build_table({**ROW, "query_insert": "INSERT INTO report_watermarks (id, updated_at) VALUES"})
    rows = AdminRows(
        companies=[{"id": 1, "company_id": 1, "status": 1, "alias": "acme"}],
        tables=[{**ROW, "cursor_overlap": 30, "verify_after_load": 1}],
    )
    plan = build_plan(rows, Settings())
    assert not any(isinstance(t, BrokenTable) for t in plan.companies[0].broken)
    assert plan_from_dict(plan_to_dict(plan)) == plan
    old_snapshot = plan_to_dict(plan)
    for key in ("cursor_column", "cursor_overlap", "verify_after_load"):
        del old_snapshot["companies"][0]["tables"][0][key]
    assert plan_from_dict(old_snapshot).companies[0].tables[0].verify_after_load is False


def test_delete_detection_needs_an_incremental_table_over_the_whole_table():
    assert build_table({**ROW, "delete_detection": "keys"}).delete_detection == "keys"
    assert build_table(ROW).delete_detection == "none"
    with pytest.raises(ConfigError, match="not one of"):
        build_table({**ROW, "delete_detection": "soft"})
    with pytest.raises(ConfigError, match="needs load_mode 'incremental'"):
        build_table({**ROW, "load_mode": "upsert", "cursor_column": None, "delete_detection": "keys"})
    windowed = "SELECT id, updated_at FROM orders WHERE company = %(company_id)s AND updated_at >= %(date_from)s"
    with pytest.raises(ConfigError, match="date window"):
        build_table({**ROW, "query_select": windowed, "delete_detection": "keys"})

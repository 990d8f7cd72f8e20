"""Chunk plans without a server: coverage by construction, labels, JSON, bound SQL, the load's set check."""

from __future__ import annotations

import pytest

from report_pipeline.chunks import (
    MAX_CHUNKS,
    bind_chunk,
    boundaries,
    check_chunk_column,
    chunk_set_problem,
    chunks_between,
)
from report_pipeline.errors import ConfigError, TransferError
from report_pipeline.vocabulary import Chunk


def covering(chunks: list[Chunk], value: int | None) -> list[int]:
    found = []
    for c in chunks:
        if c.nulls:
            hit = value is None
        else:
            hit = value is not None and (c.low is None or c.low <= value) and (c.high is None or value < c.high)
        if hit:
            found.append(c.index)
    return found


@pytest.mark.parametrize(
    ("low", "high", "count", "rows"),
    [(1, 1000, 1000, 250), (-5, 9_000_000_000, 40_000, 1000), (7, 7, 1, 1), (0, 3, 4, 1)],
)
def test_every_integer_and_null_falls_in_exactly_one_chunk(low, high, count, rows):
    chunks = chunks_between(boundaries(low, high, count, rows))
    assert [c.index for c in chunks] == list(range(len(chunks))) and {c.count for c in chunks} == {len(chunks)}
    assert chunks[0].low is None and chunks[-2].high is None and chunks[-1].nulls
    for value in (low - 10**15, low - 1, low, (low + high) // 2, high, high + 1, high + 10**15, None):
        assert len(covering(chunks, value)) == 1, value


def test_the_plan_size_is_bounded_and_an_empty_result_still_has_two_chunks():
    assert len(boundaries(1, 10**12, 10**9, 1)) == MAX_CHUNKS - 1
    assert [c.label("id") for c in chunks_between([])] == ["id IS NOT NULL", "id IS NULL"]


def test_labels_name_what_each_mapped_extract_copies():
    assert [c.label("id") for c in chunks_between([250, 500, 750])] == [
        "id < 250",
        "id [250, 500)",
        "id [500, 750)",
        "id >= 750",
        "id IS NULL",
    ]


@pytest.mark.parametrize("chunk", chunks_between([250, 500]) + chunks_between([]))
def test_chunks_travel_as_json_and_come_back_equal(chunk):
    import json

    assert Chunk.from_json(json.loads(json.dumps(chunk.to_json()))) == chunk


@pytest.mark.parametrize(
    "value",
    [
        [1, 250],  # the old [lo, hi) form
        {"index": 0, "count": 2, "low": "1", "high": None},
        {"index": 2, "count": 2, "low": None, "high": None},
        {"index": 0, "count": 2, "low": 5, "high": 5},
        {"index": 1, "count": 2, "low": 1, "high": None, "nulls": True},
        {"index": True, "count": 2},
    ],
)
def test_a_malformed_chunk_is_refused(value):
    with pytest.raises(TransferError, match="malformed chunk"):
        Chunk.from_json(value)


def test_bounds_are_bound_as_parameters_in_the_querys_own_style():
    first, middle, last, nulls = chunks_between([10, 20])
    query = "SELECT id FROM t WHERE c = %s"
    assert bind_chunk(middle, query, "id", (7,)) == (
        f"SELECT * FROM ({query}) AS _rp_chunk WHERE _rp_chunk.`id` >= %s AND _rp_chunk.`id` < %s",
        (7, 10, 20),
    )
    assert bind_chunk(first, query, "id", (7,))[1] == (7, 10)
    assert bind_chunk(last, query, "id", (7,))[1] == (7, 20)
    assert bind_chunk(nulls, query, "id", (7,)) == (
        f"SELECT * FROM ({query}) AS _rp_chunk WHERE _rp_chunk.`id` IS NULL",
        (7,),
    )
    named = "SELECT id FROM t WHERE c = %(company_id)s"
    sql, params = bind_chunk(last, named, "id", {"company_id": 7})
    assert sql.endswith("_rp_chunk.`id` >= %(_rp_lo)s") and params == {"company_id": 7, "_rp_lo": 20}


def test_the_chunk_column_must_have_an_integer_type():
    description = [("id", 8), ("code", 253), ("amount", 246), ("Year", 13)]
    check_chunk_column(description, "id")
    check_chunk_column(description, "YEAR")  # names compare without case, as MySQL does
    with pytest.raises(ConfigError, match=r"^chunk column 'code' is VARCHAR, not an integer type; set tables"):
        check_chunk_column(description, "code")
    with pytest.raises(ConfigError, match="'amount' is DECIMAL"):
        check_chunk_column(description, "amount")
    with pytest.raises(ConfigError, match=r"'nope' is not a column of the query's result \['id', 'code'"):
        check_chunk_column(description, "nope")


def test_the_load_needs_every_chunk_of_one_plan_once():
    plan = chunks_between([10, 20])
    assert chunk_set_problem(plan) is None
    assert chunk_set_problem([None]) is None
    assert chunk_set_problem(list(reversed(plan))) is None
    assert "chunk(s) [1] missing" in str(chunk_set_problem([plan[0], *plan[2:]]))
    assert "chunk(s) [3] given more than once" in str(chunk_set_problem([*plan, plan[3]]))
    assert "different sizes [2, 4]" in str(chunk_set_problem([*plan, *chunks_between([])]))
    assert "chunked and unchunked" in str(chunk_set_problem([*plan, None]))
    # Each index once, but from two plans of the same size: the ranges overlap and leave a gap.
    other = chunks_between([15, 30])
    assert "do not cover every value exactly once" in str(chunk_set_problem([plan[0], other[1], *plan[2:]]))

"""Reconcile's pure parts: the admin column, the key conditions, the ranges a comparison reads again."""

from __future__ import annotations

import pytest

from report_pipeline.config import AdminRows, build_plan, build_table
from report_pipeline.drift import _Split, key_condition, key_values
from report_pipeline.errors import ConfigError
from report_pipeline.repair import restricted_query
from report_pipeline.settings import Settings
from report_pipeline.snapshot import plan_from_dict, plan_to_dict

ROW = {
    "id": 4,
    "name": "orders",
    "status": 1,
    "query_select": "SELECT id, note FROM orders WHERE company = %(company_id)s",
    "params_select": "",
    "query_insert": "REPLACE INTO orders (id, note) VALUES",
}


def test_reconcile_every_days_is_a_defaulted_admin_column_that_survives_the_snapshot():
    assert build_table(ROW).reconcile_every_days == 0  # a seed-era row without the column: off
    assert build_table({**ROW, "reconcile_every_days": 7}).reconcile_every_days == 7
    for bad in (-1, "soon", 40_000):
        with pytest.raises(ConfigError, match="reconcile_every_days"):
            build_table({**ROW, "reconcile_every_days": bad})
    plan = build_plan(
        AdminRows(
            companies=[{"id": 1, "company_id": 1, "status": 1, "alias": "acme"}],
            tables=[{**ROW, "reconcile_every_days": 3}],
        ),
        Settings(),
    )
    assert plan_from_dict(plan_to_dict(plan)).companies[0].tables[0].reconcile_every_days == 3


def test_the_reconcile_log_is_a_reserved_target_table():
    with pytest.raises(ConfigError, match="report_reconciles"):
        build_table({**ROW, "query_insert": "REPLACE INTO report_reconciles (id, note) VALUES"})


def test_key_conditions_are_null_safe_and_bind_every_value():
    keys = [(1,), (None,), (3,)]
    assert key_values(["id"], keys) == [1, 3]
    assert key_condition("v", ["id"], keys, ["%s", "%s"]) == "(v.`id` IN (%s, %s) OR v.`id` IS NULL)"
    pairs = [("a", None), ("b", 2)]
    assert key_values(["code", "b"], pairs) == ["a", None, "b", 2]
    assert key_condition("v", ["code", "b"], pairs, ["%s"] * 4) == (
        "((v.`code` <=> %s AND v.`b` <=> %s) OR (v.`code` <=> %s AND v.`b` <=> %s))"
    )
    # Named parameters stay named: the keys are bound by name after the query's own.
    query, bound = restricted_query("SELECT id FROM t WHERE c = %(company_id)s", {"company_id": 7}, ["id"], [(5,)])
    assert (
        query == "SELECT * FROM (SELECT id FROM t WHERE c = %(company_id)s) AS _rp_r WHERE (_rp_r.`id` IN (%(_rp_0)s))"
    )
    assert bound == {"company_id": 7, "_rp_0": 5}
    query, bound = restricted_query("SELECT id FROM t WHERE c = %s", (7,), ["id"], [(5,), (6,)])
    assert query.endswith("WHERE (_rp_r.`id` IN (%s, %s))") and bound == (7, 5, 6)


def test_differing_ranges_are_read_again_as_merged_key_intervals():
    split = _Split(["id"], True, low=-10, width=64, buckets=0)
    assert split.group == "(_rp_v.`id` - (-10)) DIV 64"
    assert split.where([0, 1, 2, 5, None]) == (
        "WHERE _rp_v.`id` IS NULL OR _rp_v.`id` BETWEEN -10 AND 181 OR _rp_v.`id` BETWEEN 310 AND 373"
    )
    hashed = _Split(["code", "b"], False, low=0, width=0, buckets=100)
    assert hashed.where([3, 7]).endswith(", 100) IN (3, 7)")

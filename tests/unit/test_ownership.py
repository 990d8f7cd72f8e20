"""Whose schema is it: server, admin and source schemas are never a company's; foreign tables block adoption."""

from __future__ import annotations

from report_pipeline.guards import SwapGuard, key_problem
from report_pipeline.ownership import adoption_problem, foreign_schema_problem


def test_server_and_protected_schemas_are_refused_by_name():
    assert "schema of the MySQL server" in (foreign_schema_problem("MySQL", {}) or "")
    assert "is the admin database" in (
        foreign_schema_problem("Reports_Admin", {"reports_admin": "the admin database"}) or ""
    )
    assert foreign_schema_problem("acme", {"reports_admin": "the admin database"}) is None


def test_a_schema_is_adopted_only_with_the_ledger_or_only_report_tables():
    assert adoption_problem("acme", ["users", "orders", "_rp_new_users_x"], ["users", "orders"]) is None
    assert adoption_problem("acme", [], ["users"]) is None
    assert adoption_problem("acme", ["users", "report_loads", "notes"], ["users"]) is None
    problem = adoption_problem("shop", ["users", "customers", "payments"], ["users"])
    assert problem and "customers, payments" in problem and "--adopt-schema" in problem


def test_the_swap_guard():
    guard = SwapGuard(allow_empty=False, max_shrink_percent=50)
    assert guard.problem(0, 0) is None and guard.problem(10, 10) is None and guard.problem(10, 20) is None
    assert "empty" in (guard.problem(10, 0) or "")
    assert guard.problem(10, 5) is None and "60% fewer" in (guard.problem(10, 4) or "")
    assert SwapGuard(allow_empty=True).problem(10, 0) is None


def test_an_upsert_key_must_be_made_of_loaded_columns():
    assert key_problem([("id",)], ["id", "v"]) is None
    assert key_problem([("ID", "Day")], ["id", "day", "v"]) is None
    assert key_problem([], ["id"]) is not None
    assert key_problem([("rid",)], ["id", "v"]) is not None

"""The typed config model: seed rows, new-style rows, and every kind of bad row."""

from __future__ import annotations

import datetime as dt

import pytest

from report_pipeline.config import (
    AdminRows,
    BrokenTable,
    build_plan,
)
from report_pipeline.errors import ConfigError
from report_pipeline.legacy import Reference, parse_params_select
from report_pipeline.runs import bind_parameters, window_for
from report_pipeline.settings import Settings
from report_pipeline.snapshot import plan_from_dict, plan_to_dict

SEED_TABLE = {
    "id": 1,
    "name": "users",
    "status": 1,
    "query_select": "SELECT id, username FROM users WHERE company = %s",
    "params_select": "company[1]",
    "query_insert": "REPLACE INTO users(id, username) VALUES ",
    "params_insert": "'('+row[0] +',\"'+ row[1]+'\")'",
}
COMPANIES = [
    {"id": 1, "company_id": 10, "status": 1, "alias": "acme"},
    {"id": 2, "company_id": 20, "status": 0, "alias": "initech"},
    {"id": 3, "company_id": 30, "status": 1, "alias": "globex"},
]
CONFIGS = [{"id": 1, "name": "date Y-M-D"}]
LOOKBACKS = [{"id": 1, "retail_id": 10, "configuration_id": 1, "configuration_value": "60"}]


DEFAULT_SETTINGS = Settings()


def plan_of(tables, companies=COMPANIES, settings=DEFAULT_SETTINGS):
    return build_plan(AdminRows(companies, tables, CONFIGS, LOOKBACKS), settings)


def test_seed_rows_build_one_group_per_active_company_with_seed_meaning():
    plan = plan_of([SEED_TABLE])
    assert [c.company.alias for c in plan.companies] == ["acme", "globex"]
    assert plan.inactive_companies == 1
    acme = plan.companies[0]
    spec = acme.tables[0]
    assert spec.references == (Reference("company", 1),)
    assert spec.target.table == "users" and spec.target.columns == ("id", "username")
    assert spec.target.mode == "replace" and spec.load_mode == "upsert"
    assert acme.company.bucket == "reports-acme" and acme.company.schema == "acme"
    assert acme.company.lookback_days == 60 and plan.companies[1].company.lookback_days == 1
    # company[1] is company_id, bound as a value, never pasted into SQL.
    assert bind_parameters(spec, acme.company, window_for(dt.date(2026, 11, 26), 60)) == (10,)


def test_date_reference_and_named_placeholders_use_the_logical_date_window():
    legacy = {
        **SEED_TABLE,
        "id": 2,
        "name": "orders",
        "params_select": "company[1], date",
        "query_select": "SELECT id FROM orders WHERE company = %s AND created_at >= %s",
        "query_insert": "REPLACE INTO orders(id) VALUES ",
    }
    named = {
        **SEED_TABLE,
        "id": 3,
        "name": "events",
        "params_select": "",
        "query_select": "SELECT id FROM events WHERE company = %(company_id)s AND d >= %(date_from)s "
        "AND d < %(date_to)s AND a = %(alias)s",
        "query_insert": "INSERT INTO events(id) VALUES",
    }
    plan = plan_of([legacy, named])
    acme = plan.companies[0]
    window = window_for(dt.datetime(2026, 11, 26, tzinfo=dt.UTC), acme.company.lookback_days)
    assert bind_parameters(acme.tables[0], acme.company, window) == (10, "2026-09-27")
    assert bind_parameters(acme.tables[1], acme.company, window) == {
        "company_id": 10,
        "date_from": "2026-09-27",
        "date_to": "2026-11-26",
        "alias": "acme",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params_select": "company[1],company[1]"}, "1 %s placeholder(s) but params_select lists 2"),
        ({"params_select": "company[7]"}, "index 7 does not exist"),
        ({"params_select": "__import__('os').system('id')"}, "not a known reference"),
        ({"query_select": "DELETE FROM users WHERE company = %s"}, ""),
        ({"query_insert": "REPLACE INTO other.users(id) VALUES "}, ""),
        ({"load_mode": "merge"}, "load_mode 'merge'"),
        ({"chunk_column": "id`; DROP", "chunk_rows": 5}, ""),
        ({"query_select": "SELECT id FROM t WHERE a = %(nope)s", "params_select": ""}, "unknown named placeholder"),
    ],
)
def test_a_bad_table_row_becomes_a_named_problem_and_other_rows_still_build(change, message):
    bad = {**SEED_TABLE, "id": 9, "name": "bad_one", **change}
    good = {**SEED_TABLE, "id": 1}
    plan = plan_of([good, bad])
    for company_plan in plan.companies:
        assert [t.name for t in company_plan.tables] == ["users"]
        assert len(company_plan.broken) == 1
        broken = company_plan.broken[0]
        assert isinstance(broken, BrokenTable)
        assert "tables row id=9" in str(broken.problem)
        assert message in str(broken.problem)


def test_bad_and_colliding_aliases_fail_only_their_company():
    companies = [
        {"id": 1, "company_id": 10, "status": 1, "alias": "acme"},
        {"id": 2, "company_id": 11, "status": 1, "alias": "../etc"},
        {"id": 3, "company_id": 12, "status": 1, "alias": "acme"},
        {"id": 4, "company_id": 13, "status": 1, "alias": "Globex"},
        {"id": 5, "company_id": 14, "status": 1, "alias": "hooli"},
    ]
    plan = plan_of([SEED_TABLE], companies)
    assert [c.company.alias for c in plan.companies] == ["acme", "hooli"]
    messages = {b.key: str(b.problem) for b in plan.broken_companies}
    assert set(messages) == {"company_2", "company_3", "company_4"}
    assert "already used by company 'acme'" in messages["company_3"]
    assert all("companies row id=" in m for m in messages.values())


def test_plan_survives_the_snapshot_round_trip_exactly():
    bad = {**SEED_TABLE, "id": 9, "name": "x", "params_select": "nope"}
    plan = plan_of([SEED_TABLE, bad])
    assert plan_from_dict(plan_to_dict(plan)) == plan


def test_params_select_grammar():
    assert parse_params_select(None) == ()
    assert parse_params_select(" company[0] ,date,company[3]") == (
        Reference("company", 0),
        Reference("date"),
        Reference("company", 3),
    )
    with pytest.raises(ConfigError, match="entry 2"):
        parse_params_select("company[1],eval('1')")


def test_settings_from_env_reads_templates_and_rejects_nonsense():
    s = Settings.from_env(
        {
            "REPORTS_S3_BUCKET_TEMPLATE": "corp-{alias}-reports",
            "REPORTS_PART_MB": "8",
            "REPORTS_SCHEDULE": "none",
            "AIRFLOW_HOME": "/x",
        }
    )
    assert s.bucket_template == "corp-{alias}-reports" and s.part_bytes == 8 * 2**20 and s.schedule is None
    assert str(s.snapshot_path) == "/x/report_pipeline/admin_snapshot.json"
    with pytest.raises(ConfigError):
        Settings.from_env({"REPORTS_PART_MB": "lots"})


# --- issue 10: tenant binding, one writer per target table, overrides toward what the row permits


def test_a_query_that_never_binds_the_company_is_a_config_error_unless_the_row_opts_in():
    unbound = {**SEED_TABLE, "query_select": "SELECT id, username FROM users", "params_select": ""}
    broken = plan_of([unbound]).companies[0].broken
    assert len(broken) == 1 and "never refers to the company" in broken[0].problem.message
    assert "tables.all_companies = 1" in broken[0].problem.message
    shared = plan_of([{**unbound, "all_companies": 1}]).companies[0]
    assert not shared.broken and shared.tables[0].all_companies
    # company[2] is the status column: it does not tell tenants apart.
    status_only = {**SEED_TABLE, "params_select": "company[2]"}
    assert plan_of([status_only]).companies[0].broken
    named = {**unbound, "query_select": "SELECT id, username FROM users WHERE company = %(alias)s"}
    assert plan_of([named]).companies[0].tables


def test_two_active_rows_writing_one_target_table_are_a_config_error():
    other = {**SEED_TABLE, "id": 2, "name": "users_copy"}
    company = plan_of([SEED_TABLE, other]).companies[0]
    assert [t.name for t in company.tables] == ["users"]
    assert "tables row id=1 already loads target table 'users'" in company.broken[0].problem.message


def test_a_run_may_override_the_load_mode_only_toward_upsert():
    from report_pipeline.errors import RefusedError
    from report_pipeline.runs import with_overrides

    upsert = plan_of([SEED_TABLE]).companies[0].tables[0]
    with pytest.raises(RefusedError, match="may only override it with 'upsert'"):
        with_overrides(upsert, "swap")
    swap = plan_of([{**SEED_TABLE, "load_mode": "swap"}]).companies[0].tables[0]
    assert with_overrides(swap, "upsert").load_mode == "upsert"
    assert with_overrides(swap, "default") is swap


def test_swap_guard_settings_round_trip_through_the_snapshot():
    row = {**SEED_TABLE, "load_mode": "swap", "allow_empty_swap": 1, "max_shrink_percent": 90}
    plan = plan_of([row])
    spec = plan_from_dict(plan_to_dict(plan)).companies[0].tables[0]
    assert spec.allow_empty_swap and spec.max_shrink_percent == 90
    with pytest.raises(ConfigError, match="between 0 and 100"):
        from report_pipeline.config import build_table

        build_table({**row, "max_shrink_percent": 101})


def test_load_parallelism_and_deferred_indexes_settings():
    default = Settings.from_env({})
    assert default.load_parallelism == 2 and default.swap_defer_indexes is False
    assert default.part_bytes == 8 * 2**20, "the part size the memory bound in README assumes"
    s = Settings.from_env({"REPORTS_LOAD_PARALLELISM": "4", "REPORTS_SWAP_DEFER_INDEXES": "on"})
    assert s.load_parallelism == 4 and s.swap_defer_indexes is True
    with pytest.raises(ConfigError, match="at least 1"):
        Settings.from_env({"REPORTS_LOAD_PARALLELISM": "0"})
    with pytest.raises(ConfigError, match="REPORTS_SWAP_DEFER_INDEXES"):
        Settings.from_env({"REPORTS_SWAP_DEFER_INDEXES": "maybe"})

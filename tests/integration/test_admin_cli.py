"""The operator CLI against the real local servers: ``report-pipeline init-admin`` (new and seed-era
schemas), ``plan``, ``validate``, ``onboard`` and ``run``, each as a subprocess, exactly as an operator
types it. Every test works in scratch schemas and buckets of its own."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, execute, mysql_connect, s3_client

from report_pipeline import admin

pytestmark = pytest.mark.integration

CLI = str(REPO / ".venv" / "bin" / "report-pipeline")

# The seed's own statements (seed/000_195936748e0790d9.txt), verbatim: a seed-era admin schema.
SEED_SCHEMA = (
    """CREATE TABLE `companies` (
`id` int(11) unsigned NOT NULL AUTO_INCREMENT,
`company_id` int(11) DEFAULT NULL,
`status` int(11) DEFAULT '0',
`alias` varchar(60) DEFAULT NULL,
PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=latin1""",
    """CREATE TABLE `tables` (
`id` int(11) unsigned NOT NULL AUTO_INCREMENT,
`name` varchar(255) DEFAULT '',
`status` int(11) DEFAULT '0',
`query_select` text,
`params_select` text,
`query_insert` text NOT NULL,
`params_insert` text NOT NULL,
PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=latin1""",
    """CREATE TABLE `configurations` (
`id` int(11) unsigned NOT NULL AUTO_INCREMENT,
`name` varchar(192) DEFAULT NULL,
PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=latin1""",
    """CREATE TABLE `companies_configurations` (
`id` int(11) unsigned NOT NULL AUTO_INCREMENT,
`retail_id` int(11) DEFAULT NULL,
`configuration_id` int(11) DEFAULT NULL,
`configuration_value` text,
PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=1 DEFAULT CHARSET=latin1""",
)
SEED_ROWS = (
    "INSERT INTO `tables` (`id`, `name`, `status`, `query_select`, `params_select`, `query_insert`, "
    "`params_insert`)\nVALUES\n(1, 'users', 1, 'SELECT id, username FROM users WHERE company = %s', "
    "'company[1]', 'REPLACE INTO users(id, username) VALUES ', "
    "'\\'(\\'+row[0] +\\',\\\"\\'+ row[1]+\\'\\\")\\'');",
    "INSERT INTO companies_configurations\n(id\n, retail_id\n, configuration_id\n, configuration_value\n)\n"
    "VALUES\n(1, 1, 1, '60');",
    # The seed describes these rows in prose ("the first record have the value 'date Y-M-D'", a company
    # whose alias names its bucket); written the way the seed would have.
    "INSERT INTO configurations (id, name) VALUES (1, 'date Y-M-D')",
    "INSERT INTO companies (id, company_id, status, alias) VALUES (1, 1, 1, 'seedco')",
)
SOURCE_DDL = (
    "CREATE TABLE users (id INT UNSIGNED NOT NULL PRIMARY KEY, company INT NOT NULL, "
    "username VARCHAR(64) NOT NULL, note VARCHAR(32) NULL, KEY (company)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE orders (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, company INT NOT NULL, "
    "amount DECIMAL(12,2) NOT NULL, created_at DATETIME NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
)
GOOD_TABLES = (
    "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert) VALUES "
    "(1, 'users', 1, 'SELECT id, username FROM users WHERE company = %s', 'company[1]', "
    "'REPLACE INTO users(id, username) VALUES ', ''), "
    "(2, 'orders', 1, 'SELECT id, amount, created_at FROM orders WHERE company = %s AND created_at >= %s', "
    "'company[1],date', 'REPLACE INTO orders(id, amount, created_at) VALUES ', '')"
)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``report-pipeline`` with the scratch connections."""
    return subprocess.run([CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=180)


def _columns(db: str, table: str) -> list[str]:
    conn = mysql_connect(db)
    cur = conn.cursor()
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


def _rows(db: str, sql: str, args: tuple = ()) -> list[tuple]:
    conn = mysql_connect(db)
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = sorted(cur.fetchall())
    conn.close()
    return rows


def _table_lines(output: str) -> list[list[str]]:
    """The rows of a printed table (after its dashed rule), split on runs of 2+ spaces."""
    lines = output.splitlines()
    rule = next(i for i, line in enumerate(lines) if line and set(line) <= {"-", " "})
    return [re.split(r"\s{2,}", line.strip()) for line in lines[rule + 1 :] if line.strip()]


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An empty scratch admin schema and a scratch source schema, with the env that points the CLI at them."""
    tag = uuid.uuid4().hex[:6]
    admin_db, source_db = f"rp5c_admin_{tag}", f"rp5c_src_{tag}"
    root = mysql_connect()
    root.autocommit(True)
    execute(root, *(f"CREATE DATABASE `{d}` CHARACTER SET utf8mb4" for d in (admin_db, source_db)))
    port = os.environ["REPORTS_MYSQL_PORT"]
    created: list[str] = []  # aliases a test onboarded: their schemas and buckets go too
    yield {
        "tag": tag,
        "admin": admin_db,
        "source": source_db,
        "aliases": created,
        "env": {
            "AIRFLOW_CONN_REPORTS_ADMIN_DB": f"mysql://reports:reports@127.0.0.1:{port}/{admin_db}?charset=utf8mb4",
            "AIRFLOW_CONN_REPORTS_SOURCE_DB": f"mysql://reports:reports@127.0.0.1:{port}/{source_db}?charset=utf8mb4",
            "REPORTS_SNAPSHOT_PATH": str(tmp_path / "snapshot.json"),
        },
    }
    execute(root, *(f"DROP DATABASE IF EXISTS `{d}`" for d in (admin_db, source_db, *created)))
    root.close()
    s3 = s3_client()
    for alias in created:
        try:
            objects = s3.list_objects_v2(Bucket=f"reports-{alias}").get("Contents", [])
            if objects:
                s3.delete_objects(Bucket=f"reports-{alias}", Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
            s3.delete_bucket(Bucket=f"reports-{alias}")
        except Exception:  # noqa: BLE001 - a dry run never creates the bucket
            pass


def test_init_admin_creates_a_new_schema_and_a_second_run_has_nothing_to_do(scratch):
    first = cli(scratch["env"], "init-admin")
    assert first.returncode == 0, first.stderr
    added = [name for name, _ in admin.ADDED_COLUMNS["tables"]]
    assert first.stdout.splitlines() == [
        "created table companies",
        "created table tables",
        "created table configurations",
        "created table companies_configurations",
        *(f"added column {table}.{name}" for table, columns in admin.ADDED_COLUMNS.items() for name, _ in columns),
        "added configuration 'date Y-M-D'",
    ]
    assert _columns(scratch["admin"], "tables")[-len(added) :] == added
    assert _rows(scratch["admin"], "SELECT name FROM configurations") == [("date Y-M-D",)]
    # The seed's statements run unchanged against the new schema.
    execute(mysql_connect(scratch["admin"]), *SEED_ROWS[:2])
    second = cli(scratch["env"], "init-admin")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "admin schema is up to date; nothing to do"


def test_seed_era_schema_is_read_as_is_then_upgraded_in_place_with_defaults(scratch, monkeypatch):
    execute(mysql_connect(scratch["admin"]), *SEED_SCHEMA, *SEED_ROWS)

    # Never upgraded: `plan` (and the DAG, through the same reader) already work, with the defaults.
    plan = cli(scratch["env"], "plan", "--date", "2026-11-26")
    assert plan.returncode == 0, plan.stderr
    (row,) = _table_lines(plan.stdout)
    expected = ["seedco", "users", "reports-seedco", "seedco", "users", "upsert", "-", "60d (configuration)"]
    assert row == [*expected, "-", "[1]"]  # "-": no reconcile schedule

    from report_pipeline.airflow.factory import dag_from_admin

    for key, value in scratch["env"].items():
        monkeypatch.setenv(key, value)
    dag = dag_from_admin()
    assert sorted(dag.task_ids) == ["company_seedco.users__mysql_to_s3", "company_seedco.users__s3_to_mysql"]

    upgrade = cli(scratch["env"], "init-admin")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.splitlines() == [
        f"added column {table}.{name}" for table, columns in admin.ADDED_COLUMNS.items() for name, _ in columns
    ]
    # Seed rows keep their meaning: the added columns take their defaults; nothing else changed.
    assert _rows(scratch["admin"], "SELECT id, name, load_mode, chunk_column, chunk_rows FROM `tables`") == [
        (1, "users", "upsert", None, None)
    ]
    assert _rows(scratch["admin"], "SELECT id, name FROM configurations") == [(1, "date Y-M-D")]
    assert _rows(scratch["admin"], "SELECT * FROM companies_configurations") == [(1, 1, 1, "60")]
    again = cli(scratch["env"], "init-admin")
    assert again.stdout.strip() == "admin schema is up to date; nothing to do"


def _bad_config(scratch: dict[str, Any]) -> None:
    assert cli(scratch["env"], "init-admin").returncode == 0
    execute(
        mysql_connect(scratch["admin"]),
        GOOD_TABLES,
        "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert) VALUES "
        "(3, 'wipe', 1, 'DELETE FROM users', '', 'REPLACE INTO wipe(id) VALUES', ''), "
        "(4, 'counts', 1, 'SELECT id FROM users WHERE company = %s AND id > %s', 'company[1]', "
        "'REPLACE INTO counts(id) VALUES', ''), "
        "(5, 'refs', 1, 'SELECT id FROM users WHERE company = %s', 'company[7]', 'REPLACE INTO refs(id) VALUES', ''), "
        "(6, 'two', 1, 'SELECT 1; SELECT 2', '', 'REPLACE INTO two(id) VALUES', ''), "
        "(7, 'off', 0, 'DROP TABLE users', '', 'x', '')",
        "INSERT INTO companies (id, company_id, status, alias) VALUES (1, 71, 1, 'goodco'), (2, 72, 1, 'Bad-Alias'), "
        "(3, 73, 0, 'Also Bad But Inactive')",
    )


def test_plan_prints_every_pair_with_resolved_parameters_and_config_errors(scratch):
    _bad_config(scratch)
    out = cli(scratch["env"], "plan", "--date", "2026-11-26")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "plan for logical date 2026-11-26: 1 active companies, 1 inactive; 1 inactive tables"
    )
    rows = {(r[0], r[1]): r for r in _table_lines(out.stdout)}
    # Default look-back (1 day) for a company without configuration: date = 2026-11-25.
    assert rows[("goodco", "orders")][-3:] == ["1d (default)", "-", '[71, "2026-11-25"]']  # "-": no reconcile
    assert rows[("goodco", "users")][-1] == "[71]"
    assert rows[("goodco", "wipe")][-1].startswith("ERROR admin tables row id=3: ")
    assert rows[("company_2", "-")][-1].startswith("ERROR admin companies row id=2: company alias 'Bad-Alias'")


def test_validate_lists_every_problem_at_once_and_exits_non_zero(scratch):
    _bad_config(scratch)
    out = cli(scratch["env"], "validate")
    assert out.returncode == 1, out.stdout + out.stderr
    problems = [line for line in out.stdout.splitlines() if line.startswith("- ")]
    ids = [re.search(r"(companies|tables) row id=(\d+)", p).group(0) for p in problems]  # type: ignore[union-attr]
    # Every bad active row, and the good rows' missing source/target tables, but no inactive row.
    assert sorted(set(ids)) == sorted(
        [
            "companies row id=2",
            "tables row id=3",
            "tables row id=4",
            "tables row id=5",
            "tables row id=6",
            "tables row id=1",
            "tables row id=2",
        ]
    )
    text = out.stdout
    assert "company alias 'Bad-Alias'" in text
    assert "2 %s placeholder(s) but params_select lists 1" in text
    assert "row id=7" not in text and "Also Bad" not in text
    assert out.stdout.splitlines()[0].startswith(f"{len(problems)} problem(s)")


def _onboardable(scratch: dict[str, Any]) -> str:
    """Admin rows (2 tables, no company yet) and source data; returns the new alias."""
    assert cli(scratch["env"], "init-admin").returncode == 0
    execute(mysql_connect(scratch["admin"]), GOOD_TABLES)
    src = mysql_connect(scratch["source"])
    execute(src, *SOURCE_DDL)
    cur = src.cursor()
    for company in (61, 62):
        cur.executemany(
            "INSERT INTO users VALUES (%s, %s, %s, %s)",
            [(company * 100 + n, company, f"u{company}-{n} ñ", "x") for n in range(1, 8)],
        )
        cur.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s)",
            [(company * 1000 + n, company, f"{n}.50", f"2026-11-{n + 10:02d} 08:00:00") for n in range(1, 17)],
        )
    src.commit()
    src.close()
    alias = f"p5c{scratch['tag']}"
    scratch["aliases"].append(alias)
    return alias


def test_onboard_dry_run_then_real_then_idempotent_then_run_moves_the_data(scratch, s3):
    alias = _onboardable(scratch)
    args = ("onboard", "--company-id", "61", "--alias", alias, "--lookback-days", "3")

    dry = cli(scratch["env"], *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    steps = _table_lines(dry.stdout)
    assert [s[-1] for s in steps] == ["would create"] * len(steps)
    assert [s[0] for s in steps] == [
        f"admin companies row '{alias}' (company_id=61)",
        "configuration 'date Y-M-D' = 3 for company_id=61",
        f"bucket s3://reports-{alias}",
        f"target schema {alias}",
        f"target table {alias}.users (from source users)",
        f"target table {alias}.orders (from source orders)",
    ]
    # A dry run changes nothing.
    assert _rows(scratch["admin"], "SELECT alias FROM companies") == []
    assert _rows(scratch["admin"], "SELECT * FROM companies_configurations") == []
    assert _rows("information_schema", "SELECT 1 FROM SCHEMATA WHERE SCHEMA_NAME = %s", (alias,)) == []
    assert alias not in {b["Name"].removeprefix("reports-") for b in s3.list_buckets()["Buckets"]}

    snapshot = Path(scratch["env"]["REPORTS_SNAPSHOT_PATH"])
    snapshot.write_text("{}")
    real = cli(scratch["env"], *args)
    assert real.returncode == 0, real.stderr
    # This machine's DAG snapshot is expired, so the next parse shows the new company.
    assert snapshot.stat().st_mtime == 0
    assert [s[-1] for s in _table_lines(real.stdout)] == ["created"] * 6
    assert _rows(scratch["admin"], "SELECT company_id, status, alias FROM companies") == [(61, 1, alias)]
    s3.head_bucket(Bucket=f"reports-{alias}")
    # Target tables copied from the source definitions, kept to the columns the load fills.
    assert _columns(alias, "users") == ["id", "username"]
    assert _columns(alias, "orders") == ["id", "amount", "created_at"]
    assert "report_loads" in [r[0] for r in _rows(alias, "SHOW TABLES")]

    again = cli(scratch["env"], *args)
    assert again.returncode == 0, again.stderr
    assert [s[-1] for s in _table_lines(again.stdout)] == ["exists"] * 6
    assert _rows(scratch["admin"], "SELECT COUNT(*) FROM companies") == [(1,)]

    ok = cli(scratch["env"], "validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok: 1 companies")

    for table in ("users", "orders"):
        run = cli(scratch["env"], "run", "--company", alias, "--table", table, "--date", "2026-11-26")
        assert run.returncode == 0, run.stderr
        (row,) = _table_lines(run.stdout)
        company, name, extracted, loaded, csv_bytes, stored_bytes, extract_s, total_s = row
        assert (company, name) == (alias, table)
        assert extracted == loaded and int(loaded) > 0
        assert int(csv_bytes) > 0 and int(stored_bytes) > 0
        assert float(total_s) >= float(extract_s) >= 0
    assert _rows(alias, "SELECT id, username FROM users") == _rows(
        scratch["source"], "SELECT id, username FROM users WHERE company = 61"
    )
    # Look-back 3 days before 2026-11-26: orders from 2026-11-23 on (days 23..26 exist for company 61).
    orders = _rows(alias, "SELECT id, amount, created_at FROM orders")
    assert orders == _rows(
        scratch["source"],
        "SELECT id, amount, created_at FROM orders WHERE company = 61 AND created_at >= '2026-11-23'",
    )
    assert len(orders) == 4


def test_onboard_names_a_target_table_it_cannot_copy_and_still_creates_the_rest(scratch):
    alias = _onboardable(scratch)
    execute(
        mysql_connect(scratch["admin"]),
        "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert) VALUES "
        "(3, 'summary', 1, 'SELECT id, username FROM users WHERE company = %s', 'company[1]', "
        "'REPLACE INTO user_summary(id, username) VALUES', '')",
    )
    out = cli(scratch["env"], "onboard", "--company-id", "62", "--alias", alias)
    assert out.returncode == 1, out.stdout + out.stderr
    steps = {s[0]: s[-1] for s in _table_lines(out.stdout)}
    assert (
        steps[f"target table {alias}.user_summary"] == "cannot create: the source has no table 'user_summary' to copy"
    )
    assert steps[f"target table {alias}.users (from source users)"] == "created"
    assert steps[f"target table {alias}.orders (from source orders)"] == "created"
    assert sorted(r[0] for r in _rows(alias, "SHOW TABLES")) == ["orders", "report_as_of", "report_loads", "users"]


def test_validate_and_onboard_name_unbound_queries_keyless_targets_and_foreign_schemas(scratch):
    """Issue 10: what would make a run green with wrong data is listed by `validate` and refused by `onboard`."""
    alias = _onboardable(scratch)
    execute(
        mysql_connect(scratch["admin"]),
        "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert) VALUES "
        "(8, 'everyone', 1, 'SELECT id, username FROM users', '', 'REPLACE INTO everyone(id, username) VALUES', '')",
    )
    assert cli(scratch["env"], "onboard", "--company-id", "61", "--alias", alias).returncode == 0
    execute(mysql_connect(alias), "ALTER TABLE users DROP PRIMARY KEY")
    # The source schema's own name as an alias: on this shared server it is the source's schema.
    source_alias = scratch["source"]
    refused = cli(scratch["env"], "onboard", "--company-id", "62", "--alias", source_alias)
    assert refused.returncode == 2 and "is the source database (reports_source_db) on the same server" in refused.stderr
    assert _rows(scratch["admin"], "SELECT alias FROM companies") == [(alias,)]
    # A schema that exists with tables of somebody else's.
    foreign = f"p5cf{scratch['tag']}"
    scratch["aliases"].append(foreign)
    execute(
        mysql_connect(),
        f"CREATE DATABASE `{foreign}`",
        f"CREATE TABLE `{foreign}`.customers (id INT PRIMARY KEY)",
    )
    refused = cli(scratch["env"], "onboard", "--company-id", "63", "--alias", foreign)
    assert refused.returncode == 2 and "holds tables that are not this company's report tables (customers)" in (
        refused.stderr
    )
    execute(
        mysql_connect(scratch["admin"]),
        f"INSERT INTO companies (company_id, status, alias) VALUES (62, 1, '{source_alias}'), (63, 1, '{foreign}')",
    )
    out = cli(scratch["env"], "validate")
    assert out.returncode == 1
    text = out.stdout
    assert "admin tables row id=8: query_select never refers to the company" in text
    assert f"company {alias!r} table 'users' (tables row id=1): target table {alias}.users has no PRIMARY" in text
    assert f"company {source_alias!r} (companies row id=" in text and "is the source database" in text
    assert f"company {foreign!r} (companies row id=" in text and "(customers)" in text
    # After checking, an operator may adopt the schema: onboarding creates the ledger and the tables.
    adopted = cli(scratch["env"], "onboard", "--company-id", "63", "--alias", foreign, "--adopt-schema")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert ("report_loads",) in _rows(foreign, "SHOW TABLES")

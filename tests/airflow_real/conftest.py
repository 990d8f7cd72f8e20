"""The real-Airflow tests run only when asked for: ``-m airflow_real`` (``make test-airflow``) or a path
inside tests/airflow_real. A plain ``pytest`` / ``make test`` does not start the Airflow stack, so
there they are deselected (not skipped); once selected they fail when the stack is not up.

The Celery tests (``airflow_celery``, tests/airflow_real/test_celery.py) need a stack started with
``EXECUTOR=celery``: they run when ``-m`` names ``airflow_celery`` (``make test-celery``) or when their
file is named, and are deselected otherwise (``make test-airflow`` on a LocalExecutor stack).

Also the helpers every real-stack test checks data with: the source window of a demo table written out
here, independently of the pipeline's parameter binding, and one comparison of every target row with
it (all columns, NULL-safe), so no test can pass on a run that loaded nothing or loaded too much.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from tests.conftest import asked_for, mysql_connect

from report_pipeline_demo import DEMO_COMPANIES

HERE = Path(__file__).resolve().parent
CELERY_FILE = HERE / "test_celery.py"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "airflow_celery: needs the real local Airflow with EXECUTOR=celery")


def _celery_asked_for(config: pytest.Config) -> bool:
    if "airflow_celery" in (config.getoption("markexpr", "") or ""):
        return True
    return any(Path(str(arg).split("::", 1)[0]).resolve() == CELERY_FILE for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped: list[pytest.Item] = []
    if not asked_for(config, "airflow_real", HERE):
        dropped = [item for item in items if item.get_closest_marker("airflow_real")]
    if not _celery_asked_for(config):
        dropped += [i for i in items if i.get_closest_marker("airflow_celery") and i not in dropped]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


# --- the data: source windows and exact target comparison ------------------------------------------------
def source_db() -> str:
    """The source schema, from the reports_source_db connection scripts/env.sh exports."""
    uri = os.environ.get("AIRFLOW_CONN_REPORTS_SOURCE_DB", "")
    if uri.startswith("{"):
        return str(json.loads(uri).get("schema") or "source")
    return urlparse(uri).path.lstrip("/") or "source"


@contextlib.contextmanager
def source_table_locked(table: str) -> Iterator[None]:
    """``table`` of the source held by ``LOCK TABLES ... WRITE`` on a connection of its own: every read
    of it waits on the metadata lock until the block ends (closing the session releases it too). The
    connection autocommits, so InnoDB opens no transaction for it (the commit horizon sees no writer)."""
    conn = mysql_connect(source_db())
    conn.autocommit(True)
    try:
        cursor = conn.cursor()
        # Never wait long behind someone else's open transaction on the table.
        cursor.execute("SET SESSION lock_wait_timeout = 30")
        cursor.execute(f"LOCK TABLES `{table}` WRITE")
        yield
    finally:
        conn.close()


def lookback_days(alias: str) -> int:
    for _, _, _, name, days in DEMO_COMPANIES:
        if name == alias:
            return days if days is not None else int(os.environ.get("REPORTS_DEFAULT_LOOKBACK_DAYS") or 1)
    raise KeyError(alias)


def company_id(alias: str) -> int:
    return next(cid for _, cid, _, name, _ in DEMO_COMPANIES if name == alias)


def source_window(alias: str, table: str, logical: dt.datetime) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (and its parameters) selecting what a run of ``logical`` must copy from the source
    table, as the demo's admin rows mean it: users has no window; orders (legacy, ``created_at >= date``)
    has no upper bound; events (named placeholders) is ``[logical - look-back, logical)``."""
    date_to = logical.astimezone(dt.UTC).date()
    date_from = date_to - dt.timedelta(days=lookback_days(alias))
    cid = company_id(alias)
    if table == "users":
        return "company = %s", (cid,)
    if table == "orders":
        return "company = %s AND created_at >= %s", (cid, date_from)
    if table == "events":
        return "company = %s AND happened_at >= %s AND happened_at < %s", (cid, date_from, date_to)
    raise KeyError(table)


def target_columns(cursor: Any, schema: str, table: str) -> list[str]:
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    columns = [str(r[0]) for r in cursor.fetchall()]
    assert columns, f"{schema}.{table} does not exist"
    return columns


def target_diff(cursor: Any, schema: str, table: str, where: str, params: tuple[Any, ...]) -> tuple[int, list[str]]:
    """Compares every row of ``schema.table`` with the source rows ``where`` selects, on all the target's
    columns. Values are compared as the driver returns them (Decimal, datetime with microseconds, str,
    bytes, None), so NULL differs from '' and 'NULL', 1.10 from 1.1. Returns the source row count and the
    differences (empty when the target is exact: no row missing, extra, duplicated or changed)."""
    columns = target_columns(cursor, schema, table)
    listed = ", ".join(f"`{c}`" for c in columns)
    cursor.execute(f"SELECT {listed} FROM `{source_db()}`.`{table}` WHERE {where} ORDER BY `{columns[0]}`", params)
    source = [tuple(r) for r in cursor.fetchall()]
    cursor.execute(f"SELECT {listed} FROM `{schema}`.`{table}` ORDER BY `{columns[0]}`")
    target = [tuple(r) for r in cursor.fetchall()]
    problems: list[str] = []
    source_keys = [r[0] for r in source]
    target_keys = [r[0] for r in target]
    if len(set(target_keys)) != len(target_keys):
        twice = sorted({k for k in target_keys if target_keys.count(k) > 1})
        problems.append(f"duplicated keys in the target: {twice[:10]}")
    missing = sorted(set(source_keys) - set(target_keys))
    extra = sorted(set(target_keys) - set(source_keys))
    if missing:
        problems.append(f"{len(missing)} source rows missing, e.g. {columns[0]} {missing[:10]}")
    if extra:
        problems.append(f"{len(extra)} rows not in the source window, e.g. {columns[0]} {extra[:10]}")
    by_key = dict(zip(target_keys, target, strict=True))
    changed = [(s, by_key[s[0]]) for s in source if s[0] in by_key and by_key[s[0]] != s]
    problems += [f"changed: source {s!r} target {t!r}" for s, t in changed[:10]]
    return len(source), problems


def assert_target_exact(cursor: Any, alias: str, table: str, logical: dt.datetime, *, at_least: int = 1) -> int:
    """The target table of ``alias`` holds exactly the source window of a run of ``logical``; returns its
    row count, which must be at least ``at_least`` (an empty window proves nothing)."""
    where, params = source_window(alias, table, logical)
    count, problems = target_diff(cursor, alias, table, where, params)
    assert not problems, f"{alias}.{table} differs from its source window for {logical.date()}:\n" + "\n".join(problems)
    assert count >= at_least, f"the source window of {alias}.{table} for {logical.date()} has only {count} rows"
    return count


def reset_targets(cursor: Any, aliases: tuple[str, ...] | list[str], tables: tuple[str, ...] | list[str]) -> None:
    """Start from a known state: the target tables emptied, their ``report_loads`` rows (the load ledger,
    whose newer swaps would make older loads refuse) removed, and no shadow tables left over."""
    for alias in aliases:
        for table in tables:
            cursor.execute(f"TRUNCATE TABLE `{alias}`.`{table}`")
            cursor.execute(f"DELETE FROM `{alias}`.report_loads WHERE table_name = %s", (table,))
        for leftover in shadow_tables(cursor, alias):
            cursor.execute(f"DROP TABLE IF EXISTS `{alias}`.`{leftover}`")


def shadow_tables(cursor: Any, alias: str) -> list[str]:
    """Tables a swap works with (``_rp_new_*``, ``_rp_old_*``) that exist in the schema now."""
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE %s",
        (alias, r"\_rp\_%"),
    )
    return sorted(str(r[0]) for r in cursor.fetchall())


def loads_of_run(cursor: Any, alias: str, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """The ledger rows a run wrote, per table (a list: a table loaded twice shows up as two)."""
    cursor.execute(
        f"SELECT table_name, logical_date, rows_loaded, load_mode FROM `{alias}`.report_loads WHERE run_id = %s",
        (run_id,),
    )
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for name, logical, count, mode in cursor.fetchall():
        rows.setdefault(str(name), []).append((logical, int(count), str(mode)))
    return rows

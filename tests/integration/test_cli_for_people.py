"""The CLI for people on the real servers: ``add-table`` / ``disable`` / ``enable`` write validated
admin rows, ``run`` shows a live progress line on a terminal only, and ``report`` finds chunked and
manual (non-midnight) runs by day, by run id, or as each table's latest load."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from typing import Any

import pytest
from tests.integration import test_admin_cli
from tests.integration.test_admin_cli import CLI, _onboardable, _rows, _table_lines, cli

pytestmark = pytest.mark.integration
scratch = test_admin_cli.scratch  # the scratch admin/source schemas fixture, shared

ADD_ORDERS_CHUNKED = (
    "add-table",
    "--name",
    "orders_by_id",
    "--query-select",
    "SELECT id, amount, created_at FROM orders WHERE company = %(company_id)s",
    "--query-insert",
    "REPLACE INTO orders(id, amount, created_at) VALUES ",
    "--chunk-column",
    "id",
    "--chunk-rows",
    "5",
)


def _onboarded(scratch: dict[str, Any]) -> str:
    alias = _onboardable(scratch)
    out = cli(scratch["env"], "onboard", "--company-id", "61", "--alias", alias, "--lookback-days", "30")
    assert out.returncode == 0, out.stdout + out.stderr
    return alias


def _orders_handed_over(scratch: dict[str, Any]) -> None:
    """Disable the ``orders`` row: one target table has one active admin row (issue 10), and
    ``ADD_ORDERS_CHUNKED`` loads the same target table."""
    off = cli(scratch["env"], "disable", "--table", "orders")
    assert off.returncode == 0, off.stdout + off.stderr


def test_add_table_refuses_what_the_dag_could_not_run_and_writes_what_it_can(scratch):
    alias = _onboarded(scratch)
    _orders_handed_over(scratch)
    before = _rows(scratch["admin"], "SELECT * FROM `tables`")
    bad = cli(
        scratch["env"], "add-table", "--name", "wipe", "--query-select", "DELETE FROM users",
        "--query-insert", "REPLACE INTO users(id) VALUES ",
    )  # fmt: skip
    assert bad.returncode == 2 and "error:" in bad.stderr, bad.stdout + bad.stderr
    counts = cli(
        scratch["env"], "add-table", "--name", "counts", "--query-select",
        "SELECT id FROM users WHERE company = %s AND id > %s", "--params-select", "company[1]",
        "--query-insert", "REPLACE INTO users(id) VALUES ",
    )  # fmt: skip
    assert counts.returncode == 2 and "2 %s placeholder(s) but params_select lists 1" in counts.stderr
    taken = cli(
        scratch["env"], "add-table", "--name", "users", "--query-select",
        "SELECT id FROM users WHERE company = %(company_id)s", "--query-insert", "REPLACE INTO users(id) VALUES ",
    )  # fmt: skip
    assert taken.returncode == 2 and "an active table 'users' exists already" in taken.stderr
    assert _rows(scratch["admin"], "SELECT * FROM `tables`") == before, "a refused row was written"

    dry = cli(scratch["env"], *ADD_ORDERS_CHUNKED, "--dry-run")
    assert dry.returncode == 0 and "nothing written" in dry.stdout
    assert _rows(scratch["admin"], "SELECT * FROM `tables`") == before

    good = cli(scratch["env"], *ADD_ORDERS_CHUNKED)
    assert good.returncode == 0, good.stderr
    assert _rows(
        scratch["admin"],
        "SELECT name, status, params_select, load_mode, chunk_column, chunk_rows FROM `tables` WHERE name = %s",
        ("orders_by_id",),
    ) == [("orders_by_id", 1, "", "upsert", "id", 5)]
    plan = {(r[0], r[1]): r for r in _table_lines(cli(scratch["env"], "plan").stdout)}
    assert plan[(alias, "orders_by_id")][5:7] == ["upsert", "id/5"]


def test_disable_and_enable_companies_and_tables(scratch):
    alias = _onboarded(scratch)

    def planned() -> set[tuple[str, str]]:
        out = cli(scratch["env"], "plan")
        assert out.returncode == 0, out.stderr
        return {(r[0], r[1]) for r in _table_lines(out.stdout)}

    assert planned() == {(alias, "users"), (alias, "orders")}
    off = cli(scratch["env"], "disable", "--table", "orders")
    assert off.returncode == 0 and off.stdout.strip() == "table 'orders' is now inactive"
    assert _rows(scratch["admin"], "SELECT status FROM `tables` WHERE name = 'orders'") == [(0,)]
    assert planned() == {(alias, "users")}
    again = cli(scratch["env"], "disable", "--table", "orders")
    assert again.returncode == 0 and "already inactive" in again.stdout
    assert cli(scratch["env"], "disable", "--company", alias).returncode == 0
    assert _rows(scratch["admin"], "SELECT status FROM companies WHERE alias = %s", (alias,)) == [(0,)]
    assert planned() == set()
    assert cli(scratch["env"], "enable", "--company", alias).returncode == 0
    assert cli(scratch["env"], "enable", "--table", "orders").returncode == 0
    assert planned() == {(alias, "users"), (alias, "orders")}
    unknown = cli(scratch["env"], "enable", "--company", "nobody_here")
    assert unknown.returncode == 2 and "no companies row with alias = 'nobody_here'" in unknown.stderr


def _on_a_terminal(env: dict[str, str], *args: str) -> str:
    """Run the CLI with stdout on a pseudo-terminal, as an operator at a shell sees it."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([CLI, *args], env={**os.environ, **env}, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=180)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    return b"".join(chunks).decode()


def test_run_shows_progress_on_a_terminal_only_and_report_finds_chunked_and_manual_runs(scratch):
    alias = _onboarded(scratch)
    _orders_handed_over(scratch)
    assert cli(scratch["env"], *ADD_ORDERS_CHUNKED).returncode == 0
    # orders_by_id loads into orders too; users is loaded by a manual, mid-afternoon run.
    piped = cli(scratch["env"], "run", "--company", alias, "--table", "orders_by_id", "--date", "2026-11-26")
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stdout and "rows/s" not in piped.stdout
    shown = _on_a_terminal(
        scratch["env"], "run", "--company", alias, "--table", "users", "--date", "2026-11-26T15:30:00"
    )
    assert f"\r{alias}.users extract: " in shown and "rows/s" in shown and "loading..." in shown
    source_orders = len(_rows(scratch["source"], "SELECT id FROM orders WHERE company = 61"))
    source_users = len(_rows(scratch["source"], "SELECT id FROM users WHERE company = 61"))
    assert source_orders > 5, "the chunked table must span several chunks"

    def report(*args: str) -> dict[str, list[str]]:
        out = cli(scratch["env"], "report", *args)
        assert out.returncode == 0, out.stderr
        return {r[1]: r for r in _table_lines(out.stdout)}

    latest = report()
    # Both orders and orders_by_id load into orders; the ledger's newest orders load is the chunked one.
    assert latest["orders_by_id"][3:5] == [str(source_orders), str(source_orders)]
    assert latest["users"][2] == "2026-11-26 15:30:00"
    assert latest["users"][3:5] == [str(source_users), str(source_users)]
    by_day = report("--date", "2026-11-26")
    # CLI run ids are unique per invocation (issue 10: attempts of one date never share a run id).
    assert by_day["users"][-1].startswith("cli__2026-11-26T15:30:00+00:00__")
    assert by_day["orders_by_id"][-1].startswith("cli__2026-11-26T00:00:00+00:00__")
    by_run = report("--run-id", by_day["users"][-1])
    assert by_run["users"][4] == str(source_users)
    assert by_run["orders_by_id"][-1] == "no load"
    assert report("--date", "2026-11-25")["users"][-1] == "no load"

"""Task ids are built and read back in one module (report_pipeline.taskids), and nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from report_pipeline.taskids import INVALID_COMPANY, group_id, parse_task_id, table_task, task_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("step", ["plan_chunks", "mysql_to_s3", "s3_to_mysql", "invalid_config"])
def test_a_table_task_id_reads_back_as_what_built_it(step):
    built = task_id("acme", "order_lines", step)
    assert built == f"company_acme.order_lines__{step}"
    ref = parse_task_id(built)
    assert (ref.group, ref.company, ref.table, ref.step) == ("company_acme", "acme", "order_lines", step)
    assert ref.name == table_task("order_lines", step) and ref.group == group_id("acme")


def test_company_level_and_groupless_ids():
    ref = parse_task_id(f"{group_id('7')}.{INVALID_COMPANY}")
    assert (ref.group, ref.company, ref.name, ref.step) == ("company_7", "7", INVALID_COMPANY, "")
    assert ref.table == INVALID_COMPANY
    ref = parse_task_id("orders__s3_to_mysql")
    assert (ref.group, ref.company, ref.table, ref.step) == ("", "", "orders", "s3_to_mysql")
    # A table name with double underscores inside: the step is what follows the first separator, as
    # before; table names with "__" cannot be told apart from steps, and validation allows them.
    assert parse_task_id("company_a.x__y__s3_to_mysql").table == "x"


def test_the_alerts_name_company_and_table_from_the_task_id():
    pytest.importorskip("airflow")
    from report_pipeline.airflow.alerts import _table_of

    assert _table_of(task_id("acme", "orders", "s3_to_mysql")) == ("acme", "orders")
    assert _table_of("company_acme.invalid_company") == ("acme", "invalid_company")
    assert _table_of("company_acme.") == ("acme", "-")


def test_no_other_module_spells_a_task_id():
    """String constants that build or match task ids (``company_``, ``__s3_to_mysql``, ...) live in taskids.py."""
    steps = ("__plan_chunks", "__mysql_to_s3", "__s3_to_mysql", "__invalid_config", "invalid_company")
    found = []
    for path in [*(ROOT / "include").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        if path.name == "taskids.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                # "company_" alone (an f-string's head) or a whole literal id; "company_id" is a column.
                group = text == "company_" or (text.startswith("company_") and "." in text)
                if group or any(s in text for s in steps):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]!r}")
    assert not found, "task ids spelled outside report_pipeline.taskids:\n" + "\n".join(found)

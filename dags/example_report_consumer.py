"""Example downstream DAG: runs whenever acme's ``users`` report table has been refreshed.

``populate_report_databases`` emits one Asset event per company and table it loads (Asset
``reports.<alias>.<table>``, see ``report_pipeline.airflow.factory.table_asset``). Scheduling on that
Asset is all a consumer needs; the event's ``extra`` says what was loaded, and the target schema's
``report_loads`` row confirms it. Copy this file and change ``ALIAS``/``TABLE`` for your own table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, task

from report_pipeline.airflow.factory import table_asset

ALIAS = "acme"
TABLE = "users"


def build_consumer_dag(alias: str, table: str, dag_id: str = "example_report_consumer") -> DAG:
    """A DAG scheduled on the Asset of one company's table, reading what each triggering load did."""
    asset = table_asset(alias, table)
    with DAG(
        dag_id=dag_id,
        schedule=[asset],
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        tags=["report-pipeline", "example"],
        doc_md=f"Runs after each successful load of `{alias}.{table}` by populate_report_databases.",
    ) as dag:

        @task
        def read_refreshed_table(**context: Any) -> list[dict[str, Any]]:
            """Log each triggering load and return its ``report_loads`` row (what a report job would read)."""
            from report_pipeline.airflow.connections import HookConnections
            from report_pipeline.validation import quote_identifier

            seen: list[dict[str, Any]] = []
            for event in context["triggering_asset_events"][asset]:
                extra = dict(event.extra or {})
                print(f"{asset.name} refreshed: {extra}")
                row: dict[str, Any] = {"extra": extra, "report_loads": None}
                if extra.get("schema") and extra.get("load_key"):
                    conn = HookConnections().target()
                    try:
                        cursor = conn.cursor()
                        cursor.execute(
                            "SELECT table_name, logical_date, run_id, rows_loaded, finished_at FROM "
                            f"{quote_identifier(str(extra['schema']))}.`report_loads` WHERE load_key = %s",
                            (extra["load_key"],),
                        )
                        found = cursor.fetchone()
                        if found is not None:
                            row["report_loads"] = {
                                "table_name": found[0],
                                "logical_date": found[1].isoformat(),
                                "run_id": found[2],
                                "rows_loaded": int(found[3]),
                                "finished_at": found[4].isoformat(),
                            }
                    finally:
                        conn.close()
                print(f"report_loads: {row['report_loads']}")
                seen.append(row)
            return seen

        read_refreshed_table()
    return dag


dag = build_consumer_dag(ALIAS, TABLE)

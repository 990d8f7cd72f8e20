"""OpenLineage for the pipeline's operators: what an extract read and wrote, what a load read and wrote.

The OpenLineage provider calls ``get_openlineage_facets_on_complete`` on an operator after a
successful ``execute``; the operators hand the figures of their run to the functions here. Datasets
follow OpenLineage's naming: ``mysql://host:port`` + ``database.table`` for MySQL,
``s3://bucket`` + the key prefix for S3. The extract's output and the load's input are the same S3
dataset (the table's folder for the run's date), so a lineage graph joins
source tables -> S3 folder -> target table.

Nothing here may fail a task: the operators call it inside a guard (``safe_lineage``), and every
import of the provider happens inside the functions, so the pipeline runs without the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


def source_tables(query: str) -> list[tuple[str | None, str]]:
    """The ``(database or None, table)`` pairs a SELECT reads, in order of appearance, without CTE names.

    Parsed with sqlglot's MySQL dialect (placeholders ``%s`` / ``%(name)s`` replaced first, since they
    are not SQL); a query sqlglot cannot parse reads no known tables rather than failing the task.
    """
    import re

    import sqlglot
    from sqlglot import exp

    text = re.sub(r"%\([A-Za-z_][A-Za-z0-9_]*\)s|%s", "NULL", query)
    try:
        tree = sqlglot.parse_one(text, read="mysql")
    except sqlglot.errors.ParseError:
        log.warning("lineage: could not parse the query to find its source tables")
        return []
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: list[tuple[str | None, str]] = []
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name.lower() in ctes):
            continue
        pair = (table.db or None, table.name)
        if pair not in found:
            found.append(pair)
    return found


def mysql_namespace(conn_id: str) -> tuple[str, str | None]:
    """``mysql://host:port`` of an Airflow MySQL connection, and its default database (if set)."""
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    hook = MySqlHook(mysql_conn_id=conn_id)
    connection = hook.get_connection(conn_id)
    info = hook.get_openlineage_database_info(connection)
    return f"{info.scheme}://{info.authority}", connection.schema or None


def _schema_facet(columns: Sequence[tuple[str, str | None]]) -> Any:
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    return SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=n, type=t) for n, t in columns])


def _output(namespace: str, name: str, columns: Sequence[tuple[str, str | None]], rows: int, size: int | None) -> Any:
    from airflow.providers.common.compat.openlineage.facet import (
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )

    return OutputDataset(
        namespace=namespace,
        name=name,
        facets={"schema": _schema_facet(columns)} if columns else {},
        outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows, size=size)},
    )


def extract_lineage(
    *,
    query: str,
    source_conn_id: str,
    bucket: str,
    folder: str,
    columns: Sequence[tuple[str, str | None]],
    rows: int,
    csv_bytes: int,
) -> Any:
    """Source tables the query reads -> the S3 folder the extract wrote (schema, rows, CSV bytes)."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset, SQLJobFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    namespace, default_db = mysql_namespace(source_conn_id)
    inputs = [
        InputDataset(namespace=namespace, name=".".join(p for p in (db or default_db, table) if p))
        for db, table in source_tables(query)
    ]
    output = _output(f"s3://{bucket}", folder, columns, rows, csv_bytes)
    return OperatorLineage(inputs=inputs, outputs=[output], job_facets={"sql": SQLJobFacet(query=query)})


def load_lineage(
    *,
    bucket: str,
    folder: str,
    target_conn_id: str,
    schema: str,
    table: str,
    columns: Sequence[tuple[str, str | None]],
    rows: int,
) -> Any:
    """The S3 folder the load read -> the company's target table (schema, rows loaded)."""
    from airflow.providers.common.compat.openlineage.facet import InputDataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    namespace, _ = mysql_namespace(target_conn_id)
    source = InputDataset(
        namespace=f"s3://{bucket}",
        name=folder,
        facets={"schema": _schema_facet(columns)} if columns else {},
    )
    return OperatorLineage(inputs=[source], outputs=[_output(namespace, f"{schema}.{table}", columns, rows, None)])


def safe_lineage(operator: Any, build: Callable[[], Any]) -> Any:
    """``build()``, or empty lineage (logged once for the task) if building it fails for any reason.

    A broken lineage set-up (provider, transport, connection) must never fail a load that succeeded.
    """
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - lineage is best effort by design
        if not getattr(operator, "_lineage_failure_logged", False):
            operator._lineage_failure_logged = True
            operator.log.warning("OpenLineage facets not emitted: %s: %s", type(exc).__name__, exc)
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage

            return OperatorLineage()
        except Exception:  # noqa: BLE001 - no provider at all: nothing to return but None
            return None

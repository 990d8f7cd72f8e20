"""Issue 10: extract and load agree on exactly what was written, whatever else runs beside them.

A ``report-pipeline run`` of a date (its own run id) interleaved with the DAG run of the same date:
each extract attempt writes a folder of its own, each load loads exactly the rows its own extract
wrote (the source changes between the two extracts, so the rows tell them apart), and neither load's
cleanup removes the other's files before that other load has run. A load handed an XCom whose
extract id or sha256 do not match the manifest refuses and leaves the target as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import LocalConnections, execute, mysql_connect, s3_client

from report_pipeline import tasks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.errors import TransferError
from report_pipeline.manifest import (
    MANIFEST_NAME,
    SUCCESS_NAME,
    Manifest,
    extract_prefix,
    new_extract_id,
    table_prefix,
)
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
DAG_RUN = "scheduled__2026-11-26T00:00:00+00:00"
CLI_RUN = "cli__2026-11-26T00:00:00+00:00__20261127T090000_a1b2c3"
ROWS = 500
SETTINGS = Settings(part_bytes=2048)  # several parts per extract


def _spec() -> TableSpec:
    return build_table(
        {
            "id": 3,
            "name": "src",
            "status": 1,
            "query_select": "SELECT id, val FROM src",
            "params_select": "",
            # One company in these tests: the query reads only its rows, so it need not bind the company.
            "all_companies": 1,
            "query_insert": "REPLACE INTO tgt (id, val) VALUES",
            # A full refresh: a run of one date replaces the table, so the order of the two loads matters.
            "load_mode": "swap",
        }
    )


@pytest.fixture
def world(scratch_db: str, bucket_name: str) -> Iterator[dict[str, Any]]:
    """A source table and, in a schema of its own, the company's target table."""
    target = f"{scratch_db}_t"
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT NOT NULL PRIMARY KEY, val VARCHAR(32) NOT NULL)",
        f"CREATE DATABASE `{target}`",
        f"CREATE TABLE `{target}`.tgt (id INT NOT NULL PRIMARY KEY, val VARCHAR(32) NOT NULL)",
    )
    company = Company(1, 1, 1, "att", bucket_name, target, 1, "default")
    yield {"db": scratch_db, "target": target, "company": company, "conns": LocalConnections(scratch_db)}
    execute(mysql_connect(), f"DROP DATABASE IF EXISTS `{target}`")


def _source_says(db: str, tag: str) -> None:
    fill = f"INSERT INTO src SELECT seq, CONCAT('{tag}', seq) FROM seq_1_to_{ROWS}"
    execute(mysql_connect(db), "DELETE FROM src", fill)


def _query(db: str, sql: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(sql)
    rows = list(cursor.fetchall())
    conn.close()
    return rows


def _extract(world: dict[str, Any], run_id: str) -> Manifest:
    return tasks.extract_table(world["conns"], SETTINGS, world["company"], _spec(), DATE, run_id)


def _load(world: dict[str, Any], manifest_refs: list[Any], run_id: str) -> Any:
    return tasks.load_table(world["conns"], SETTINGS, world["company"], _spec(), manifest_refs, DATE, run_id)


def _keys(world: dict[str, Any]) -> set[str]:
    s3 = s3_client()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=world["company"].bucket, Prefix="src/")
    return {o["Key"] for page in pages for o in page.get("Contents", ())}


def _files(manifest: Manifest) -> set[str]:
    return {manifest.key, *(p.key for p in manifest.parts)}


@pytest.mark.parametrize("order", ["dag-then-cli", "cli-then-dag"])
def test_a_cli_run_beside_a_dag_run_of_the_same_date_each_loads_exactly_its_own_extract(world, order):
    _source_says(world["db"], "dag")
    dag = _extract(world, DAG_RUN)
    _source_says(world["db"], "cli")
    cli = _extract(world, CLI_RUN)
    assert dag.prefix != cli.prefix and len(dag.parts) > 1 and len(cli.parts) > 1
    assert {dag.prefix, cli.prefix} == {extract_prefix("src", DATE, m.extract_id) for m in (dag, cli)}
    runs = {"dag": (dag, DAG_RUN), "cli": (cli, CLI_RUN)}
    pending = ["dag", "cli"] if order == "dag-then-cli" else ["cli", "dag"]
    while pending:
        name = pending.pop(0)
        manifest, run_id = runs[name]
        assert _files(manifest) <= _keys(world), f"{name}'s files were removed before its load"
        result = _load(world, [manifest.ref], run_id)
        if name == "dag" and order == "cli-then-dag":
            # The DAG's extract is older than the CLI's, already swapped in: it never replaces it.
            assert result.skipped and result.skip_reason == "older-window"
        else:
            assert result.rows == ROWS and not result.skipped
        # Exactly the newest extract loaded so far, never an older one over it.
        assert _query(world["target"], "SELECT id, val FROM tgt ORDER BY id") == [
            (i, f"{'cli' if order == 'cli-then-dag' else name}{i}") for i in range(1, ROWS + 1)
        ]
        for other in pending:
            assert _files(runs[other][0]) <= _keys(world), f"{name}'s load removed {other}'s files before its load"
    loads = _query(world["target"], "SELECT run_id, rows_loaded FROM report_loads ORDER BY id")
    expected = [(DAG_RUN, ROWS), (CLI_RUN, ROWS)] if order == "dag-then-cli" else [(CLI_RUN, ROWS)]
    assert loads == expected
    success = f"{table_prefix('src', DATE)}/{SUCCESS_NAME}"
    if order == "dag-then-cli":
        # The CLI's load came last and its extract started after the DAG's had finished and been
        # loaded: the DAG run's folder was an older attempt, and is gone.
        assert _keys(world) == _files(cli) | {success}
    else:
        # The DAG's load was skipped and removed nothing; the CLI's newer extract stays.
        assert _keys(world) == _files(cli) | _files(dag) | {success}


def test_the_load_removes_dead_attempts_of_its_own_run_and_keeps_another_runs_unfinished_one(world):
    s3, bucket = s3_client(), world["company"].bucket
    _source_says(world["db"], "dag")
    manifest = _extract(world, DAG_RUN)
    # A chunk attempt of this run that died before its manifest, and one of another run still going.
    dead = f"{extract_prefix('src', DATE, new_extract_id(DAG_RUN), 3)}/part-00000.csv.gz"
    live = f"{extract_prefix('src', DATE, new_extract_id(CLI_RUN), 0)}/part-00000.csv.gz"
    for key in (dead, live):
        s3.put_object(Bucket=bucket, Key=key, Body=b"partial")
    _load(world, [manifest.ref], DAG_RUN)
    assert _keys(world) == _files(manifest) | {live, f"{table_prefix('src', DATE)}/{SUCCESS_NAME}"}


@pytest.mark.parametrize("tamper", ["sha256", "extract_id", "other-manifest"])
def test_a_load_whose_xcom_does_not_match_the_manifest_is_refused_and_changes_nothing(world, tamper):
    execute(mysql_connect(world["target"]), "INSERT INTO tgt VALUES (1, 'before'), (9999, 'kept')")
    _source_says(world["db"], "dag")
    manifest = _extract(world, DAG_RUN)
    _source_says(world["db"], "cli")
    other = _extract(world, CLI_RUN)
    ref = manifest.ref
    if tamper == "sha256":
        ref = dataclasses.replace(ref, sha256="0" * 64)
    elif tamper == "extract_id":
        ref = dataclasses.replace(ref, extract_id=other.extract_id)
    else:
        # The XCom of one extract pointed at the manifest another attempt wrote.
        ref = dataclasses.replace(ref, key=other.key)
    keys_before = _keys(world)
    with pytest.raises(TransferError) as refused:
        _load(world, [ref], DAG_RUN)
    message = str(refused.value)
    assert message.startswith(
        f"company 'att' table 'src' (tables row id=3): refusing to load s3://{world['company'].bucket}/{ref.key}: "
        "it holds extract "
    )
    assert "the target was not changed. Re-run the extract (clear its task)" in message
    assert _query(world["target"], "SELECT id, val FROM tgt ORDER BY id") == [(1, "before"), (9999, "kept")]
    assert _query(world["target"], "SHOW TABLES") == [("tgt",)]  # no ledger row, not even its table
    assert _keys(world) == keys_before
    # The genuine XCom still loads.
    assert _load(world, [manifest.ref], DAG_RUN).rows == ROWS
    assert manifest.key.endswith(f"/{manifest.extract_id}/{MANIFEST_NAME}")

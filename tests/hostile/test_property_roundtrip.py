"""Issue 7, property test: random rows of every supported column type survive extract + load exactly.

Hypothesis generates 1-30 rows per example over a table with a column of each type the pipeline
supports; they are inserted with bound parameters into a scratch source table, extracted to the real
S3 server as CSV, loaded into a scratch target table, and compared in SQL, column by column with
``<=>`` (so NULL only equals NULL), joined on the primary key. The schema is created once and
truncated between examples.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import execute, mysql_connect, s3_client

from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.load import LoadRequest, load
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

# name, column type, strategy of values (None is added to every strategy).
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# Values that look like CSV or LOAD DATA syntax are what breaks a naive encoder, so they are likely.
_TRICKY = st.sampled_from(["", "NULL", "\\N", "\\", '"', '""', ",", "\n", "\r\n", "\t", "\x00", "null", "N", "😀"])
_TEXTS = st.one_of(_TRICKY, _TEXT, st.lists(st.one_of(_TRICKY, _TEXT), max_size=4).map("".join))

_DECIMAL = st.decimals(
    min_value=decimal.Decimal("-99999999999999999999.9999999999"),
    max_value=decimal.Decimal("99999999999999999999.9999999999"),
    places=10,
    allow_nan=False,
    allow_infinity=False,
)
# TIMESTAMP's range is 1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC; sessions here are UTC.
_TIMESTAMP = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2038, 1, 18, 23, 59, 59, 999999))
# TIME's range is -838:59:59.000000 .. 838:59:59.000000.
_TIME_LIMIT = 838 * 3600 + 59 * 60 + 59
_TIME = st.integers(min_value=-_TIME_LIMIT * 10**6, max_value=_TIME_LIMIT * 10**6).map(
    lambda us: dt.timedelta(microseconds=us)
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), _TEXT),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_TEXT, children, max_size=3)),
    max_leaves=8,
).map(lambda v: json.dumps(v, ensure_ascii=False))

COLUMNS: tuple[tuple[str, str, st.SearchStrategy[Any]], ...] = (
    ("ti", "TINYINT", st.integers(-128, 127)),
    ("i", "INT", st.integers(-(2**31), 2**31 - 1)),
    ("ui", "INT UNSIGNED", st.integers(0, 2**32 - 1)),
    ("bi", "BIGINT", st.integers(-(2**63), 2**63 - 1) | st.sampled_from([-(2**63), 2**63 - 1])),
    ("ubi", "BIGINT UNSIGNED", st.integers(0, 2**64 - 1) | st.sampled_from([0, 2**64 - 1])),
    ("dec", "DECIMAL(30,10)", _DECIMAL),
    ("f", "FLOAT", st.floats(width=32, allow_nan=False, allow_infinity=False)),
    ("d", "DOUBLE", st.floats(allow_nan=False, allow_infinity=False)),
    ("vc", "VARCHAR(200) CHARACTER SET utf8mb4", _TEXTS),
    ("tx", "TEXT CHARACTER SET utf8mb4", _TEXTS),
    ("vb", "VARBINARY(64)", st.binary(max_size=64)),
    ("bl", "BLOB", st.binary(max_size=300)),
    ("dte", "DATE", st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))),
    ("dt6", "DATETIME(6)", st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31))),
    ("ts6", "TIMESTAMP(6) NULL DEFAULT NULL", _TIMESTAMP),
    ("tm6", "TIME(6)", _TIME),
    ("yr", "YEAR", st.sampled_from([0]) | st.integers(1901, 2155)),
    ("bt", "BIT(8)", st.integers(0, 255)),
    ("en", "ENUM('a','b c','d,\"e\"','NULL','\\\\N')", st.sampled_from(["a", "b c", 'd,"e"', "NULL", "\\N"])),
    ("se", "SET('x','y','z')", st.sampled_from(["", "x", "y", "z", "x,y", "x,y,z"])),
    ("js", "JSON", _JSON),
)
NAMES = ("id", *(c[0] for c in COLUMNS))
# Every column, FLOAT included, must arrive bit for bit.
EXACT = NAMES[1:]

ROWS = st.lists(
    st.tuples(*(st.none() | strategy for _, _, strategy in COLUMNS)),
    min_size=1,
    max_size=30,
)


@pytest.fixture(scope="module")
def place() -> Iterator[dict[str, Any]]:
    """A source and a target schema with the table, and a bucket, for the whole module."""
    run = uuid.uuid4().hex[:8]
    source_db, target_db, bucket = f"hp{run}_src", f"hp{run}_tgt", f"rp-hp-{run}"
    root = mysql_connect()
    root.autocommit(True)
    columns = ",\n  ".join(f"`{name}` {kind} NULL" for name, kind, _ in COLUMNS)
    ddl = f"CREATE TABLE t (\n  id INT NOT NULL PRIMARY KEY,\n  {columns}\n) DEFAULT CHARSET=utf8mb4"
    execute(root, f"CREATE DATABASE `{source_db}` CHARACTER SET utf8mb4")
    execute(root, f"CREATE DATABASE `{target_db}` CHARACTER SET utf8mb4")
    s3 = s3_client()
    try:
        execute(root, f"USE `{source_db}`", ddl, f"CREATE TABLE `{target_db}`.t LIKE `{source_db}`.t")
        yield {"source": source_db, "target": target_db, "bucket": Bucket(s3, bucket)}
    finally:
        # A connection this module left open (e.g. by a failed example) would hold a metadata lock
        # and make DROP DATABASE wait forever; only connections inside these run-unique schemas go.
        cursor = root.cursor()
        cursor.execute(
            "SELECT id FROM information_schema.PROCESSLIST WHERE db IN (%s, %s) AND id <> CONNECTION_ID()",
            (source_db, target_db),
        )
        for (thread,) in cursor.fetchall():
            cursor.execute("KILL %s", (thread,))
        execute(root, "USE information_schema")
        execute(root, f"DROP DATABASE IF EXISTS `{source_db}`", f"DROP DATABASE IF EXISTS `{target_db}`")
        root.close()
        try:
            objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
            s3.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - the bucket may never have been created
            pass


def _round_trip(
    place: dict[str, Any], rows: list[tuple[Any, ...]], example: str, exact: tuple[str, ...] = EXACT
) -> list[tuple[Any, ...]]:
    """Insert rows, extract, load; return the ids (and columns) that differ, plus any count mismatch.

    Columns in ``exact`` must be equal (``<=>``); FLOAT, when not among them, must still agree to
    MariaDB's 6 significant digits, the precision the extract currently keeps.
    """
    source, target = place["source"], place["target"]
    # Every session in UTC, like the pipeline's connections: TIMESTAMP values are then not shifted.
    utc = "SET time_zone = '+00:00'"
    src = mysql_connect(source, init_command=utc)
    execute(src, "TRUNCATE TABLE t", f"TRUNCATE TABLE `{target}`.t")
    cursor = src.cursor()
    marks = ", ".join(["%s"] * len(NAMES))
    cursor.executemany(
        f"INSERT INTO t ({', '.join(f'`{n}`' for n in NAMES)}) VALUES ({marks})",
        [(i, *row) for i, row in enumerate(rows, start=1)],
    )
    src.commit()
    prefix = f"t/{example}"
    manifest = extract(
        src,
        ExtractRequest(
            company="hp",
            table="t",
            bucket=place["bucket"],
            prefix=prefix,
            query=f"SELECT {', '.join(f'`{n}`' for n in NAMES)} FROM t ORDER BY id",
            parameters=(),
            logical_date="2026-07-04T00:00:00+00:00",
            run_id=example,
            part_bytes=2048,
        ),
    )
    src.close()
    assert manifest.rows == len(rows)
    tgt = mysql_connect(init_command=utc)
    try:
        result = load(
            MySqlTarget(tgt),
            LoadRequest(
                company="hp",
                schema=target,
                target=InsertTarget("t", NAMES, "replace"),
                load_mode="upsert",
                bucket=place["bucket"],
                manifest_keys=(manifest.key,),
                success_key=f"{prefix}/_SUCCESS",
                logical_date=dt.datetime(2026, 7, 4, tzinfo=dt.UTC),
                run_id=example,
            ),
        )
    finally:
        tgt.close()
    assert result.rows == len(rows)

    conn = mysql_connect(init_command=utc)
    cursor = conn.cursor()
    same = [f"s.`{n}` <=> t.`{n}`" for n in exact]
    if "f" not in exact:
        same.append("(s.f <=> t.f OR ABS(s.f - t.f) <= ABS(s.f) * 5e-6)")
    differs = ", ".join(f"IF({condition}, NULL, '{condition[:12]}')" for condition in same)
    cursor.execute(
        f"SELECT s.id, CONCAT_WS(',', {differs}) FROM `{source}`.t s LEFT JOIN `{target}`.t t ON t.id = s.id "
        f"WHERE NOT ({' AND '.join(same)})"
    )
    bad = list(cursor.fetchall())
    cursor.execute(f"SELECT (SELECT COUNT(*) FROM `{source}`.t), (SELECT COUNT(*) FROM `{target}`.t)")
    source_count, target_count = cursor.fetchone()
    conn.close()
    return bad + ([("counts", source_count, target_count)] if source_count != target_count else [])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_random_rows_of_every_type_arrive_exactly(place, rows):
    example = uuid.uuid4().hex[:8]
    assert _round_trip(place, rows, example) == []


FLOAT_VALUES = [1000001.0, 1.0000001, 123456.79, 16777216.0, 3.4028234663852886e38, 1.1754943508222875e-38, 0.1, -0.0]


def test_float_values_arrive_exactly(place):
    """Every FLOAT value, not just those with 6 significant digits, must arrive bit for bit."""
    rows = [tuple([None] * 6 + [value] + [None] * (len(COLUMNS) - 7)) for value in FLOAT_VALUES]
    assert _round_trip(place, rows, f"float-{uuid.uuid4().hex[:6]}", exact=NAMES[1:]) == []

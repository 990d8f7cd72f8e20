"""Issue 3: every value arrives exactly (real MariaDB + real S3), and a lossy load fails instead."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.errors import TransferError
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.load import LoadRequest, load
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

COLUMNS = (
    "id",
    "txt",
    "big_text",
    "dec65",
    "f",
    "d",
    "ubig",
    "dte",
    "dt6",
    "ts6",
    "tm6",
    "yr",
    "bits",
    "bin",
    "vbin",
    "blb",
    "js",
    "en",
    "st",
)
DDL = """CREATE TABLE {name} (
  id INT NOT NULL PRIMARY KEY,
  txt VARCHAR(255) CHARACTER SET utf8mb4 NULL,
  big_text MEDIUMTEXT CHARACTER SET utf8mb4 NULL,
  dec65 DECIMAL(65,30) NULL,
  f FLOAT NULL,
  d DOUBLE NULL,
  ubig BIGINT UNSIGNED NULL,
  dte DATE NULL,
  dt6 DATETIME(6) NULL,
  ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  tm6 TIME(6) NULL,
  yr YEAR NULL,
  bits BIT(12) NULL,
  bin BINARY(4) NULL,
  vbin VARBINARY(64) NULL,
  blb BLOB NULL,
  js JSON NULL,
  en ENUM('a','b c','d,"e"') NULL,
  st SET('x','y','z') NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

TRICKY_TEXT = [
    None,
    "",
    "NULL",
    "\\N",
    "N",
    "null",
    "😀 family: 👨‍👩‍👧‍👦 and 🏳️‍🌈",
    "a,b",
    'say "hi"',
    '"',
    '""',
    "back\\slash\\",
    "tab\there",
    "crlf\r\nline",
    "lone\rcr",
    "nl\nnl",
    " leading and trailing ",
    "\\",
    ",",
    "\\\\N",
    "x\x00y",
    'ends with quote"',
    '"starts',
    "é ü ß ñ 中文",
    "\u2028\u2029",
]


def rows() -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for i, text in enumerate(TRICKY_TEXT):
        out.append(
            (
                i + 1,
                text,
                None if i % 3 else text,
                None
                if i == 0
                else "12345678901234567890123456789012345.123456789012345678901234567891"
                if i == 1
                else f"-{i}.{'0' * 29}1",
                None if i == 0 else [0.1, 3.40282e38, -1.17549e-38, 1.5, 0.0][i % 5],
                None if i == 0 else [0.1 + 0.2, 1e308, -2.2250738585072014e-308, 5e-324, 1 / 3][i % 5],
                None if i == 0 else [18446744073709551615, 0, 1, 2**63][i % 4],
                None if i == 0 else dt.date(1000 + i, 1, 1 + i % 28),
                None if i == 0 else dt.datetime(2026, 1, 1, 23, 59, 59, 999999 - i),
                None
                if i == 0
                else dt.datetime(2038, 1, 19, 3, 14, 7, 499999)
                if i == 1
                else dt.datetime(1970, 1, 1, 0, 0, 1) + dt.timedelta(days=i * 1000, microseconds=i),
                None
                if i == 0
                else ["-838:59:59.000000", "838:59:59.000000", "-00:00:00.000001", "12:34:56.789012"][i % 4],
                None if i == 0 else 1901 + i,
                None if i == 0 else i * 97 % 4096,
                None if i == 0 else bytes([0, 0x5C, 0x22, i % 256]),
                None if i == 0 else bytes(range(i, i + 40)) + b'\x00\\\n\r\t,"',
                None if i == 0 else bytes(range(256)) * (1 + i % 3),
                None if i == 0 else json.dumps({"k": text, "n": [1, 2.5, None], "u": "😀"}),
                None if i == 0 else ["a", "b c", 'd,"e"'][i % 3],
                None if i == 0 else ["", "x", "x,z", "x,y,z"][i % 4],
            )
        )
    # A TEXT value near 1 MB with every awkward character repeated.
    out.append((1000, "big", ('x,"\\\n\r\t😀' * 100_000)[:1_000_000], *([None] * 16)))
    return out


def _make_tables(source_db: str, target_db: str) -> None:
    src = mysql_connect(source_db)
    execute(src, DDL.format(name="src"), f"CREATE TABLE `{target_db}`.tgt LIKE src")
    cursor = src.cursor()
    marks = ", ".join(["%s"] * len(COLUMNS))
    cursor.executemany(f"INSERT INTO src ({', '.join(COLUMNS)}) VALUES ({marks})", rows())
    src.commit()
    src.close()


def _fingerprint_mismatches(source_db: str, target_db: str) -> list[Any]:
    conn = mysql_connect()
    cursor = conn.cursor()
    same = " AND ".join(f"s.{c} <=> t.{c}" for c in COLUMNS)
    cursor.execute(
        f"SELECT s.id FROM `{source_db}`.src s LEFT JOIN `{target_db}`.tgt t ON t.id = s.id WHERE NOT ({same})"
    )
    bad = list(cursor.fetchall())
    cursor.execute(f"SELECT (SELECT COUNT(*) FROM `{source_db}`.src), (SELECT COUNT(*) FROM `{target_db}`.tgt)")
    counts = cursor.fetchone()
    conn.close()
    return bad + ([("counts", counts)] if counts[0] != counts[1] else [])


def _extract(source_db: str, bucket: Bucket, part_bytes: int, compress: bool = True, zone: str = "+05:00") -> Any:
    conn = mysql_connect(source_db, init_command=f"SET time_zone = '{zone}'")
    try:
        return extract(
            conn,
            ExtractRequest(
                company="acme",
                table="src",
                bucket=bucket,
                prefix="src/2026-11-26T000000Z",
                query=f"SELECT {', '.join(COLUMNS)} FROM src WHERE id >= %s ORDER BY id",
                parameters=(0,),
                logical_date="2026-11-26T00:00:00+00:00",
                run_id="test",
                compress=compress,
                part_bytes=part_bytes,
            ),
        )
    finally:
        conn.close()


def _load(
    target_db: str,
    bucket: Bucket,
    manifest: Any,
    table: str = "tgt",
    mode: str = "upsert",
    parallelism: int = 1,
    opened: list[Any] | None = None,
    defer_indexes: bool = False,
) -> Any:
    def opener() -> Any:
        # Every extra session in another zone too: the values must not move with any session's zone.
        extra = mysql_connect(init_command="SET time_zone = '+09:30'")
        if opened is not None:
            opened.append(extra)
        return extra

    conn = mysql_connect(init_command="SET time_zone = '-07:00'")
    try:
        return load(
            MySqlTarget(conn, opener=opener),
            LoadRequest(
                company="acme",
                schema=target_db,
                target=InsertTarget(table, COLUMNS, "replace"),
                load_mode=mode,
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key="src/2026-11-26T000000Z/_SUCCESS",
                logical_date=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
                run_id="test",
                parallelism=parallelism,
                defer_indexes=defer_indexes,
            ),
        )
    finally:
        conn.close()


@pytest.mark.parametrize("defer_indexes", [False, True], ids=["indexes-kept", "indexes-after"])
def test_every_value_round_trips_exactly_through_a_parallel_swap(
    scratch_db, mysql_root, s3, bucket_name, defer_indexes
):
    """Several parts over three target sessions at once into the shadow: every column equals the source."""
    target_db = scratch_db + "_t"
    execute(mysql_root, f"CREATE DATABASE `{target_db}`")
    try:
        _make_tables(scratch_db, target_db)
        execute(mysql_root, f"ALTER TABLE `{target_db}`.tgt ADD KEY by_txt (txt(10)), ADD KEY by_dt (dt6, id)")
        bucket = Bucket(s3, bucket_name)
        manifest = _extract(scratch_db, bucket, part_bytes=4096)
        assert len(manifest.parts) > 6, "small parts give every session several"
        opened: list[Any] = []
        result = _load(
            target_db, bucket, manifest, mode="swap", parallelism=3, opened=opened, defer_indexes=defer_indexes
        )
        assert result.rows == manifest.rows == len(rows())
        assert _fingerprint_mismatches(scratch_db, target_db) == []
        assert len(opened) == 2 and not any(c.open for c in opened), "every extra session is closed"
        cursor = mysql_root.cursor()
        cursor.execute(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'tgt' "
            "GROUP BY INDEX_NAME ORDER BY INDEX_NAME",
            (target_db,),
        )
        kept = sorted(r[0] for r in cursor.fetchall())
        assert kept == ["PRIMARY", "by_dt", "by_txt"], "the live table keeps its keys"
        cursor.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE '\\_rp\\_%%'",
            (target_db,),
        )
        assert cursor.fetchall() == ()
    finally:
        execute(mysql_root, f"DROP DATABASE IF EXISTS `{target_db}`")


@pytest.mark.parametrize("compress", [True, False])
def test_every_value_round_trips_exactly_across_time_zones_and_parts(scratch_db, mysql_root, s3, bucket_name, compress):
    target_db = scratch_db + "_t"
    execute(mysql_root, f"CREATE DATABASE `{target_db}`")
    try:
        _make_tables(scratch_db, target_db)
        bucket = Bucket(s3, bucket_name)
        manifest = _extract(scratch_db, bucket, part_bytes=4096, compress=compress)
        assert manifest.rows == len(rows())
        assert len(manifest.parts) > 3, "small parts force several objects"
        encodings = {c.name: c.encoding for c in manifest.columns}
        assert encodings["bin"] == encodings["vbin"] == encodings["blb"] == "hex"
        assert encodings["bits"] == "bit" and encodings["txt"] == encodings["js"] == "text"
        result = _load(target_db, bucket, manifest)
        assert result.rows == manifest.rows
        assert _fingerprint_mismatches(scratch_db, target_db) == []
        # The run is recorded for BI tools, and the marker sits beside the parts.
        cursor = mysql_root.cursor()
        cursor.execute(f"SELECT table_name, rows_loaded, run_id FROM `{target_db}`.report_loads")
        assert cursor.fetchall() == (("tgt", manifest.rows, "test"),)
        assert s3.head_object(Bucket=bucket_name, Key="src/2026-11-26T000000Z/_SUCCESS")
        # A retry of the same load is recognised and loads nothing twice.
        again = _load(target_db, bucket, manifest)
        assert again.skipped and again.rows == manifest.rows
        cursor.execute(f"SELECT COUNT(*) FROM `{target_db}`.report_loads")
        assert cursor.fetchone()[0] == 1
    finally:
        execute(mysql_root, f"DROP DATABASE IF EXISTS `{target_db}`")


def test_csv_is_plain_rfc4180_with_unquoted_null(scratch_db, mysql_root, s3, bucket_name):
    execute(mysql_root, f"CREATE TABLE `{scratch_db}`.t (id INT, s VARCHAR(20), n DECIMAL(5,2))")
    execute(mysql_root, f"INSERT INTO `{scratch_db}`.t VALUES (1, 'a,\"b\"', 1.50), (2, NULL, NULL), (3, '', 0)")
    conn = mysql_connect(scratch_db)
    manifest = extract(
        conn,
        ExtractRequest(
            company="acme",
            table="t",
            bucket=Bucket(s3, bucket_name),
            prefix="t/x",
            query="SELECT * FROM t ORDER BY id",
            parameters=(),
            logical_date="x",
            run_id="r",
        ),
    )
    conn.close()
    body = gzip.decompress(s3.get_object(Bucket=bucket_name, Key=manifest.parts[0].key)["Body"].read())
    assert body == b'1,"a,""b""",1.50\n2,NULL,NULL\n3,"",0.00\n'
    stored = json.loads(s3.get_object(Bucket=bucket_name, Key=manifest.key)["Body"].read())
    assert stored["rows"] == 3 and stored["columns"][1] == {
        "name": "s",
        "source_type": "VAR_STRING",
        "encoding": "text",
        "sql_type": "VARCHAR(20)",  # the exact type schema evolution would create the column with
        "collation": stored["columns"][1]["collation"],  # what a target key must tell apart (collations.py)
    }
    assert stored["columns"][1]["collation"].startswith("utf8mb4_") and stored["columns"][0]["collation"] is None


def test_a_load_that_would_truncate_fails_and_leaves_the_target_untouched(scratch_db, mysql_root, s3, bucket_name):
    execute(
        mysql_root,
        f"CREATE TABLE `{scratch_db}`.src (id INT PRIMARY KEY, s VARCHAR(20))",
        f"INSERT INTO `{scratch_db}`.src VALUES (1, 'ok'), (2, 'much too long for it')",
        f"CREATE TABLE `{scratch_db}`.narrow (id INT PRIMARY KEY, s VARCHAR(5))",
        f"INSERT INTO `{scratch_db}`.narrow VALUES (9, 'old')",
    )
    conn = mysql_connect(scratch_db)
    bucket = Bucket(s3, bucket_name)
    manifest = extract(
        conn,
        ExtractRequest(
            company="acme",
            table="src",
            bucket=bucket,
            prefix="src/x",
            query="SELECT id, s FROM src",
            parameters=(),
            logical_date="x",
            run_id="r",
        ),
    )
    conn.close()
    target = mysql_connect()
    with pytest.raises(TransferError, match="would change values"):
        load(
            MySqlTarget(target),
            LoadRequest(
                company="acme",
                schema=scratch_db,
                target=InsertTarget("narrow", ("id", "s"), "replace"),
                load_mode="upsert",
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key="src/_SUCCESS",
                logical_date=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
                run_id="r",
            ),
        )
    target.close()
    cursor = mysql_root.cursor()
    cursor.execute(f"SELECT id, s FROM `{scratch_db}`.narrow")
    assert cursor.fetchall() == ((9, "old"),)
    assert not s3.list_objects_v2(Bucket=bucket_name, Prefix="src/_SUCCESS").get("Contents")


def _extract_src(scratch_db: str, bucket: Bucket) -> Any:
    conn = mysql_connect(scratch_db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="acme",
                table="src",
                bucket=bucket,
                prefix="src/ignore",
                query="SELECT id, s FROM src ORDER BY id",
                parameters=(),
                logical_date="x",
                run_id="r",
            ),
        )
    finally:
        conn.close()


def _load_ignore(scratch_db: str, bucket: Bucket, manifest: Any) -> Any:
    conn = mysql_connect()
    try:
        return load(
            MySqlTarget(conn),
            LoadRequest(
                company="acme",
                schema=scratch_db,
                target=InsertTarget("tgt", ("id", "s"), "ignore"),
                load_mode="upsert",
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key="src/ignore/_SUCCESS",
                logical_date=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
                run_id="r",
            ),
        )
    finally:
        conn.close()


def test_insert_ignore_skips_duplicates_but_still_refuses_a_changed_value(scratch_db, mysql_root, s3, bucket_name):
    execute(
        mysql_root,
        f"CREATE TABLE `{scratch_db}`.src (id INT PRIMARY KEY, s VARCHAR(40))",
        f"INSERT INTO `{scratch_db}`.src SELECT seq, CONCAT('new ', seq) FROM `{scratch_db}`.seq_1_to_200",
        f"CREATE TABLE `{scratch_db}`.tgt (id INT PRIMARY KEY, s VARCHAR(10))",
        f"INSERT INTO `{scratch_db}`.tgt SELECT seq, CONCAT('old ', seq) FROM `{scratch_db}`.seq_1_to_150",
    )
    bucket = Bucket(s3, bucket_name)
    result = _load_ignore(scratch_db, bucket, _extract_src(scratch_db, bucket))
    assert result.rows == 200
    cursor = mysql_root.cursor()
    cursor.execute(f"SELECT COUNT(*), SUM(s LIKE 'old %'), MAX(IF(id = 151, s, NULL)) FROM `{scratch_db}`.tgt")
    assert cursor.fetchone() == (200, 150, "new 151")
    # 150 duplicate warnings fill the server's warning list; one truncation among them must still fail.
    execute(
        mysql_root,
        f"UPDATE `{scratch_db}`.src SET s = 'far too long for ten' WHERE id = 199",
        f"DELETE FROM `{scratch_db}`.tgt WHERE id > 150",
    )
    with pytest.raises(TransferError, match="would change values"):
        _load_ignore(scratch_db, bucket, _extract_src(scratch_db, bucket))
    cursor.execute(f"SELECT COUNT(*) FROM `{scratch_db}`.tgt")
    assert cursor.fetchone() == (150,)

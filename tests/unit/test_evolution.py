"""Schema evolution's pure parts: result metadata -> SQL type, type comparison, the plan, the config column."""

from __future__ import annotations

import json

import pytest

from report_pipeline.config import AdminRows, build_plan, build_table
from report_pipeline.errors import ConfigError
from report_pipeline.evolution import holds, parse_type, plan_evolution, result_type
from report_pipeline.manifest import Column, Manifest
from report_pipeline.settings import Settings
from report_pipeline.snapshot import plan_from_dict, plan_to_dict
from report_pipeline.vocabulary import ColumnChange

# (type code, length, decimals, flags, charset) as MariaDB 10.11 describes each column to a utf8mb4 session
# (measured: tests/integration/test_schema_evolution.py creates the same columns on the real server).
METADATA = [
    ((1, 4, 0, 32768, None), "TINYINT"),
    ((1, 3, 0, 32800, None), "TINYINT UNSIGNED"),
    ((3, 11, 0, 32768, None), "INT"),
    ((3, 10, 0, 32800, None), "INT UNSIGNED"),
    ((8, 20, 0, 32768, None), "BIGINT"),
    ((9, 8, 0, 32800, None), "MEDIUMINT UNSIGNED"),
    ((246, 12, 2, 32768, None), "DECIMAL(10,2)"),
    ((246, 11, 2, 32800, None), "DECIMAL(10,2) UNSIGNED"),
    ((246, 15, 0, 32768, None), "DECIMAL(14,0)"),
    ((253, 200, 0, 0, None), "VARCHAR(50)"),
    ((254, 12, 0, 0, None), "CHAR(3)"),
    ((253, 20, 0, 128, "binary"), "VARBINARY(20)"),
    ((253, 80, 0, 128, "utf8mb4"), "VARCHAR(20)"),  # a _bin collation sets the BINARY flag too
    ((254, 4, 0, 128, "binary"), "BINARY(4)"),
    ((252, 1020, 0, 16, None), "TINYTEXT"),
    ((252, 262140, 0, 16, None), "TEXT"),
    ((252, 67108860, 0, 16, None), "MEDIUMTEXT"),
    ((252, -1, 0, 16, None), "LONGTEXT"),
    ((252, 65535, 0, 144, "binary"), "BLOB"),
    ((252, 16777215, 0, 144, "binary"), "MEDIUMBLOB"),
    ((10, 10, 0, 128, None), "DATE"),
    ((12, 19, 0, 128, None), "DATETIME"),
    ((12, 26, 6, 128, None), "DATETIME(6)"),
    ((7, 23, 3, 160, None), "TIMESTAMP(3)"),
    ((11, 13, 2, 128, None), "TIME(2)"),
    ((13, 4, 0, 32864, None), "YEAR"),
    ((4, 12, 31, 32768, None), "FLOAT"),
    ((5, 22, 31, 32768, None), "DOUBLE"),
    ((16, 5, 0, 32, None), "BIT(5)"),
    ((254, 4, 0, 256, None), None),  # ENUM: members unknown
    ((254, 12, 0, 2048, None), None),  # SET
]


@pytest.mark.parametrize(("metadata", "expected"), METADATA, ids=[str(e) for _, e in METADATA])
def test_result_metadata_gives_the_columns_sql_type(metadata, expected):
    assert result_type(*metadata) == expected


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        ("varchar(200)", "VARCHAR(50)"),
        ("bigint(20)", "INT"),
        ("bigint", "int unsigned"),
        ("int unsigned", "smallint unsigned"),
        ("decimal(14,2)", "DECIMAL(10,2)"),
        ("decimal(12,4)", "decimal(10,2)"),
        ("decimal(10,2)", "decimal(10,2) unsigned"),
        ("mediumtext", "TEXT"),
        ("text", "varchar(50)"),
        ("datetime(6)", "datetime"),
        ("varbinary(30)", "binary(4)"),
        ("double", "float"),
    ],
)
def test_widenings_hold_every_value_and_not_the_other_way(wide, narrow):
    assert holds(parse_type(wide), parse_type(narrow))
    assert not holds(parse_type(narrow), parse_type(wide))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("int", "int unsigned"),  # negatives vs values above 2**31
        ("bigint unsigned", "int"),
        ("decimal(10,2)", "decimal(11,1)"),
        ("varchar(50)", "int"),
        ("date", "datetime"),
        ("binary(4)", "binary(8)"),
        ("enum('a','b')", "enum('a','c')"),
    ],
)
def test_incompatible_types_hold_neither_way(a, b):
    assert not holds(parse_type(a), parse_type(b)) and not holds(parse_type(b), parse_type(a))


def test_display_widths_and_spelling_do_not_make_a_difference():
    for target, source in [("int(11)", "INT"), ("tinyint(1)", "TINYINT"), ("int(10) unsigned", "INT UNSIGNED")]:
        assert holds(parse_type(target), parse_type(source)) and holds(parse_type(source), parse_type(target))


TARGET = {"id": "int(11)", "label": "varchar(50)", "qty": "int(11)", "kind": "enum('a','b')", "loaded_at": "datetime"}


def test_the_plan_adds_missing_columns_and_widens_narrower_ones():
    result = [("id", "INT"), ("label", "VARCHAR(200)"), ("qty", "BIGINT"), ("kind", None), ("note", "TEXT")]
    evolution = plan_evolution(result, TARGET, ["id", "label", "qty", "kind"])
    assert evolution.refusals == ()
    assert evolution.changes == (
        ColumnChange("label", "widen", "varchar(50)", "VARCHAR(200)"),
        ColumnChange("qty", "widen", "int(11)", "BIGINT"),
        ColumnChange("note", "add", None, "TEXT"),
    )
    # A target column nobody declared (loaded_at, filled by a default) is not a removed column.
    assert plan_evolution([("id", "INT")], TARGET, ["id"]).refusals == ()


def test_the_plan_refuses_removed_narrowed_incompatible_and_untyped_columns():
    result = [("id", "INT UNSIGNED"), ("label", "VARCHAR(20)"), ("new", None), ("COUNT(*)", "BIGINT")]
    refusals = plan_evolution(result, TARGET, ["id", "label", "qty"], added_before=["kind"]).refusals
    text = " | ".join(refusals)
    assert (
        "column id: the query now returns INT UNSIGNED but the target column is int(11); that is not a widening" in text
    )
    assert (
        "column label: the query now returns VARCHAR(20) but the target column is varchar(50), which is wider" in text
    )
    assert "column new is not in the target table and its source type is unknown" in text
    assert "'COUNT(*)'" in text and "alias it" in text
    assert "column qty (int(11)) is no longer returned" in text and "column kind (enum('a','b'))" in text
    assert len(refusals) == 6


def test_schema_evolution_is_a_validated_admin_column_defaulting_to_fail():
    row = {
        "id": 3,
        "name": "orders",
        "status": 1,
        "query_select": "SELECT id FROM orders WHERE company = %(company_id)s",
        "params_select": "",
        "query_insert": "REPLACE INTO orders (id) VALUES",
    }
    assert build_table(row).schema_evolution == "fail"
    assert build_table({**row, "schema_evolution": " Evolve "}).schema_evolution == "evolve"
    with pytest.raises(ConfigError, match=r"schema_evolution 'grow' is not one of \('fail', 'evolve'\)"):
        build_table({**row, "schema_evolution": "grow"})
    plan = build_plan(
        AdminRows([{"id": 1, "company_id": 7, "status": 1, "alias": "acme"}], [{**row, "schema_evolution": "evolve"}]),
        Settings(),
    )
    assert plan_from_dict(plan_to_dict(plan)).companies[0].tables[0].schema_evolution == "evolve"


def test_a_manifest_written_before_sql_types_were_recorded_still_reads():
    manifest = Manifest(
        "b", "p", "e", "c", "t", "2026-11-20", "r", (Column("id", "LONG", "text", "INT"),), (), "gzip", "", ""
    )
    body = json.loads(manifest.to_json())
    assert body["columns"][0]["sql_type"] == "INT"
    del body["columns"][0]["sql_type"]
    old = Manifest.from_json(json.dumps(body).encode())
    assert old.columns[0] == Column("id", "LONG", "text", None)


def test_a_manifest_with_keys_this_version_does_not_know_still_reads():
    # Rolling deploys: a newer extract may write keys an older load does not know; it reads the rest.
    manifest = Manifest(
        "b", "p", "e", "c", "t", "2026-11-20", "r", (Column("id", "LONG", "text", "INT"),), (), "gzip", "", ""
    )
    body = json.loads(manifest.to_json())
    body["columns"][0]["nullable"] = True
    body["parts"] = [{"key": "k", "rows": 1, "csv_bytes": 2, "stored_bytes": 3, "sha256": "s", "codec": "zstd"}]
    read = Manifest.from_json(json.dumps(body).encode())
    assert read.columns[0] == Column("id", "LONG", "text", "INT")
    assert read.parts[0].key == "k" and read.parts[0].rows == 1


@pytest.mark.parametrize(
    ("target", "source"),
    [
        ("text", "VARCHAR(20000)"),  # 65,535 bytes vs 20,000 characters: a narrowing in latin1, too long in utf8mb4
        ("tinytext", "VARCHAR(100)"),
        ("mediumtext", "CHAR(255)"),
        ("blob", "VARBINARY(65535)"),
        ("tinyblob", "BINARY(255)"),
    ],
)
def test_a_text_or_blob_column_never_becomes_a_char_or_varchar(target, source):
    assert not holds(parse_type(source), parse_type(target))
    evolution = plan_evolution([("note", source)], {"note": target}, ["note"])
    assert evolution.changes == ()
    assert len(evolution.refusals) == 1 and f"the target column is {target}" in evolution.refusals[0]


def test_a_source_type_result_type_cannot_write_never_reaches_ddl():
    # Manifests are files on S3: a hand-edited or corrupt sql_type must not be pasted into an ALTER TABLE.
    injected = "INT, DROP COLUMN id"
    evolution = plan_evolution([("id", "INT"), ("note", injected)], {"id": "int(11)"}, ["id"])
    assert evolution.changes == ()
    assert len(evolution.refusals) == 1
    assert "column note is not in the target table and its source type is unknown" in evolution.refusals[0]
    # An existing column with an unknown type is left alone (loaded as before), not altered.
    for odd in ("VARCHAR(200) CHARACTER SET latin1", "varchar(200); DROP TABLE t", "ENUM('a')", "VARCHAR(200)\n"):
        assert plan_evolution([("label", odd)], {"label": "varchar(50)"}, ["label"]) == plan_evolution(
            [("label", None)], {"label": "varchar(50)"}, ["label"]
        )
    # Every type result_type writes passes.
    known = [expected for _, expected in METADATA if expected]
    evolution = plan_evolution([(f"c{i}", t) for i, t in enumerate(known)], {"id": "int"}, [])
    assert evolution.refusals == () and [c.new_type for c in evolution.changes] == known


CREATE_TABLE = """CREATE TABLE `items` (
  `id` int(11) NOT NULL,
  `label` varchar(50) NOT NULL DEFAULT 'none' COMMENT 'shown as DEFAULT ''x'' to users',
  `note` varchar(50) DEFAULT NULL COMMENT 'DEFAULT 1',
  `code` varchar(20) DEFAULT NULL,
  `qty` int(11) DEFAULT 0,
  `made_at` datetime DEFAULT current_timestamp() ON UPDATE current_timestamp() COMMENT 'ON UPDATE CURRENT_TIMESTAMP',
  `seen_at` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3) COMMENT 'DEFAULT now()',
  `due` datetime(2) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_code` (`code`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


def test_a_temporal_widening_restates_current_timestamp_with_the_new_precision():
    from report_pipeline.target.alter import alter_statement

    changes = [
        ColumnChange("made_at", "widen", "datetime", "DATETIME(6)"),
        ColumnChange("seen_at", "widen", "timestamp(3)", "TIMESTAMP(6)"),
        ColumnChange("due", "widen", "datetime(2)", "DATETIME(6)"),
        ColumnChange("qty", "widen", "int(11)", "BIGINT"),
    ]
    assert alter_statement("s", "items", CREATE_TABLE, changes) == (
        "ALTER TABLE `s`.`items` "
        "MODIFY COLUMN `made_at` DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) "
        "COMMENT 'ON UPDATE CURRENT_TIMESTAMP', "
        "MODIFY COLUMN `seen_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6) "
        "COMMENT 'DEFAULT now()', "
        "MODIFY COLUMN `due` DATETIME(6) DEFAULT NULL, "
        "MODIFY COLUMN `qty` BIGINT DEFAULT 0"
    )


def test_literal_defaults_are_told_from_null_expressions_and_comment_text():
    from report_pipeline.target.alter import _column_lines, literal_default

    rests = {name: line.group(3) for name, line in _column_lines(CREATE_TABLE).items()}
    assert literal_default(rests["label"]) == "'none'"
    assert literal_default(rests["qty"]) == "0"
    for name in ("id", "note", "code", "made_at", "seen_at", "due"):
        assert literal_default(rests[name]) is None, name
    assert literal_default(" DEFAULT (uuid())") is None  # a MySQL 8 expression default
    assert literal_default(" NOT NULL DEFAULT 'it''s' COMMENT 'x'") == "'it''s'"


def test_a_column_with_a_literal_default_or_in_an_index_is_not_widened_into_a_lob():
    target = {"id": "int(11)", "label": "varchar(50)", "code": "varchar(20)", "body": "text", "note": "varchar(50)"}
    obstacles = {
        "label": "it has the literal default 'none', which TEXT/BLOB/JSON columns cannot have",
        "code": "it is part of index ix_code, which a TEXT/BLOB column can only be in with a prefix length",
        "body": "it is part of index ix_body, which a TEXT/BLOB column can only be in with a prefix length",
    }
    result = [("id", "INT"), ("label", "TEXT"), ("code", "MEDIUMTEXT"), ("body", "MEDIUMTEXT"), ("note", "TEXT")]
    evolution = plan_evolution(result, target, list(target), lob_obstacles=obstacles)
    # A LOB into a larger LOB keeps its prefix index; a free column is widened; the other two are refused.
    assert evolution.changes == (
        ColumnChange("body", "widen", "text", "MEDIUMTEXT"),
        ColumnChange("note", "widen", "varchar(50)", "TEXT"),
    )
    label, code = evolution.refusals
    assert label.startswith("column label: the query now returns TEXT but the target column is varchar(50)")
    assert "it has the literal default 'none'" in label and "Widen it by hand" in label
    assert "cast it in query_select to a VARCHAR/VARBINARY size" in code and "part of index ix_code" in code
    # A widening that stays out of TEXT/BLOB/JSON is not affected.
    widened = plan_evolution([("label", "VARCHAR(200)")], target, ["label"], lob_obstacles=obstacles)
    assert widened.changes == (ColumnChange("label", "widen", "varchar(50)", "VARCHAR(200)"),)

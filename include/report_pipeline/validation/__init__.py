"""Validation of the SQL fragments and names that come from admin rows.

Everything here treats its input as hostile: admin rows are written by users, and what they
contain ends up as identifiers in generated SQL, as S3 bucket names, or as a query executed on
the source database. Every function either returns a value that is safe for its one use or
raises ConfigError saying what is wrong.

    naming.py        identifiers and their quoting, company aliases, schema and bucket names
    tokens.py        the one MySQL tokeniser the SQL checks below share
    placeholders.py  %s / %(name)s placeholders, read the way the MySQL driver reads them
    select.py        the SELECT-only check of query_select
    insert.py        the target table, columns and mode of query_insert
    windows.py       date placeholders of an incremental query bound only its cursor column

Callers import from this package (``from report_pipeline.validation import check_select``);
the modules are its internals.
"""

from __future__ import annotations

from report_pipeline.validation.insert import InsertTarget, parse_insert_target
from report_pipeline.validation.naming import (
    backtick,
    bucket_name,
    check_alias,
    check_identifier,
    quote_identifier,
    schema_name,
)
from report_pipeline.validation.placeholders import check_placeholders, count_placeholders
from report_pipeline.validation.select import check_select
from report_pipeline.validation.windows import window_problem

__all__ = [
    "InsertTarget",
    "backtick",
    "bucket_name",
    "check_alias",
    "check_identifier",
    "check_placeholders",
    "check_select",
    "count_placeholders",
    "parse_insert_target",
    "quote_identifier",
    "schema_name",
    "window_problem",
]

"""Rows into a MySQL target table: ``LOAD DATA LOCAL INFILE`` of one part, and INSERT ... SELECT of a table.

A bulk load that would change any value (a warning other than a duplicate key skipped under IGNORE, or
strict mode's error) fails whole, so nothing is loaded that the source did not hold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from report_pipeline.csvformat import LOAD_DATA_FORMAT, load_data_columns
from report_pipeline.errors import TransferError
from report_pipeline.target.infile import LocalInfileGuard
from report_pipeline.target.mysql_errors import DUPLICATE_KEY
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import Duplicates, Encoding

_RECORDS = re.compile(rb"Records:\s*(\d+)")
_SKIPPED = re.compile(rb"Skipped:\s*(\d+)")
_LOAD_VERBS: dict[Duplicates, str] = {"replace": "REPLACE ", "ignore": "IGNORE ", "insert": ""}
_MERGE_VERBS: dict[Duplicates, str] = {"replace": "REPLACE ", "ignore": "INSERT IGNORE ", "insert": "INSERT "}


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def bulk_load(
    conn: Any,
    cursor: Any,
    infile: LocalInfileGuard,
    path: str,
    schema: str,
    table: str,
    columns: Sequence[str],
    encodings: Sequence[Encoding],
    duplicates: Duplicates,
) -> int:
    """``LOAD DATA LOCAL INFILE`` of one part through ``cursor`` on ``conn`` (its guard ``infile`` lets ``path``
    through); the rows read."""
    import MySQLdb

    statement = (
        f"LOAD DATA LOCAL INFILE %s {_LOAD_VERBS[duplicates]}INTO TABLE {_name(schema, table)} {LOAD_DATA_FORMAT} "
        + load_data_columns([quote_identifier(c) for c in columns], encodings)
    )
    try:
        with infile.allow(path):
            cursor.execute(statement, (path,))
    except (MySQLdb.DataError, MySQLdb.IntegrityError) as exc:
        # Strict mode turns what would be a warning into an error; the verdict is the same.
        raise TransferError(f"loading would change values, so nothing was loaded: {exc}") from exc
    # Read the statement's info line before anything else runs on the connection.
    raw_info = conn.info() or b""
    info = raw_info if isinstance(raw_info, bytes) else raw_info.encode()
    records, skipped = _RECORDS.search(info), _SKIPPED.search(info)
    allowed = frozenset({DUPLICATE_KEY}) if duplicates == "ignore" else frozenset()
    _raise_on_warnings(conn, cursor, allowed, int(skipped.group(1)) if skipped else 0)
    return int(records.group(1)) if records else -1


def _raise_on_warnings(conn: Any, cursor: Any, allowed: frozenset[int], skipped: int) -> None:
    """Fail on any warning but the allowed ones (duplicate keys under INSERT IGNORE).

    The server keeps only the first warnings, so allowed duplicates are also counted: each skipped
    row is one duplicate-key warning, and any warning beyond them is a changed value.
    """
    count = conn.warning_count()
    if not count:
        return
    cursor.execute("SHOW WARNINGS LIMIT 20")
    listed = cursor.fetchall()
    warnings = [w for w in listed if int(w[1]) not in allowed]
    if warnings or (allowed and count > skipped):
        shown = "; ".join(f"{w[0]} {w[1]}: {w[2]}" for w in (warnings or listed)[:5])
        raise TransferError(
            f"loading would change values, so nothing was loaded ({count} warnings, "
            f"{skipped} duplicate rows skipped): {shown}"
        )


def merge_into(
    cursor: Any, schema: str, table: str, source: str, columns: Sequence[str], duplicates: Duplicates
) -> int:
    """Copy ``source``'s rows into ``table`` in the current transaction (``duplicates`` as a load); rows copied."""
    names = ", ".join(quote_identifier(c) for c in columns)
    cursor.execute(
        f"{_MERGE_VERBS[duplicates]}INTO {_name(schema, table)} ({names}) SELECT {names} FROM {_name(schema, source)}"
    )
    return int(cursor.rowcount)

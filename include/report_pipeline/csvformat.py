"""The CSV wire format between the extract and the load: the one home for writing, loading and decoding.

The format: RFC 4180 quoting (every text value in double quotes, quotes doubled, newlines kept inside
quotes), the unquoted word NULL for SQL NULL, binary strings as lowercase hex, BIT values as unsigned
integers, every other value in MySQL's own text form (what the text protocol returns, which loads back
exactly). No header; one row per line ending in ``\\n``; UTF-8.

- Writing: ``raw_converters`` makes mysqlclient return those text forms; ``rows_formatter`` renders a batch.
- Loading: ``LOAD_DATA_FORMAT`` and ``load_data_columns`` are the matching ``LOAD DATA`` clauses.
- Decoding: ``decode_rows`` reads the format back in Python, the reference for tests and tools.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from report_pipeline.vocabulary import Encoding

# MySQL field type codes (MySQLdb.constants.FIELD_TYPE), spelled out so this module imports without it.
TYPE_NAMES = {
    0: "DECIMAL",
    1: "TINY",
    2: "SHORT",
    3: "LONG",
    4: "FLOAT",
    5: "DOUBLE",
    6: "NULL",
    7: "TIMESTAMP",
    8: "LONGLONG",
    9: "INT24",
    10: "DATE",
    11: "TIME",
    12: "DATETIME",
    13: "YEAR",
    14: "NEWDATE",
    15: "VARCHAR",
    16: "BIT",
    245: "JSON",
    246: "NEWDECIMAL",
    247: "ENUM",
    248: "SET",
    249: "TINY_BLOB",
    250: "MEDIUM_BLOB",
    251: "LONG_BLOB",
    252: "BLOB",
    253: "VAR_STRING",
    254: "STRING",
    255: "GEOMETRY",
}
FLOAT = 4
BIT = 16
GEOMETRY = 255
STRING_TYPES = frozenset({15, 249, 250, 251, 252, 253, 254})
# Integer types: what a chunk column must be (decided from the type, never from values).
INTEGER_TYPES = frozenset({1, 2, 3, 8, 9, 13})
_BINARY_FLAG = 128
# Numbers, dates and times print without quotes, commas or newlines; everything else is quoted.
_UNQUOTED_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 246})

LOAD_DATA_FORMAT = (
    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n'"
)

NULL = b"NULL"
_QUOTE = b'"'
_TWO_QUOTES = b'""'


class Hex(bytes):
    """A binary value rendered as hex; its type tells the extract which columns are binary."""


def _binary_to_hex(raw: bytes) -> bytes:
    return Hex(binascii.hexlify(raw))


def _bit_to_int(raw: bytes) -> bytes:
    return str(int.from_bytes(raw, "big")).encode()


def type_name(type_code: int) -> str:
    """The name of a MySQL field type code, e.g. ``LONGLONG``."""
    return TYPE_NAMES.get(type_code, str(type_code))


def raw_converters() -> dict[int, Any]:
    """A mysqlclient ``conv`` mapping that returns every value as MySQL's text bytes.

    Only binary strings (charset 63, which mysqlclient reports through BINARY_FLAG in converter
    sequences) become hex, and BIT becomes an integer, because neither survives CSV as raw bytes.
    """
    conv: dict[int, Any] = {t: [(_BINARY_FLAG, _binary_to_hex)] for t in STRING_TYPES}
    conv[BIT] = _bit_to_int
    conv[GEOMETRY] = _binary_to_hex
    return conv


def rows_formatter(type_codes: Sequence[int]) -> Callable[[Sequence[Sequence[bytes | None]]], list[bytes]]:
    """A function that renders a batch of raw rows as lines (no line ends) for columns of these types.

    The extract spends most of its own time here (once per row), so the function is generated for the
    column layout: one comprehension that unpacks each row into locals and builds every field inline,
    about 3x faster than a per-row loop over (value, quoted) pairs. The generated text depends only on
    the number of columns and which of them are quoted, never on names or values; a row of another
    length fails to unpack instead of being misformatted.
    """
    names = [f"v{i}" for i in range(len(type_codes))]
    fields = [
        f"(NULL if {name} is None else {name})"
        if code in _UNQUOTED_TYPES
        else f"(NULL if {name} is None else QUOTE + {name}.replace(QUOTE, TWO_QUOTES) + QUOTE)"
        for name, code in zip(names, type_codes, strict=True)
    ]
    if not names:
        return lambda rows: [b"" for _ in rows]
    source = (
        f"def format_rows(rows):\n    return [COMMA.join(({', '.join(fields)},)) for {', '.join(names)}, in rows]\n"
    )
    namespace: dict[str, Any] = {"NULL": NULL, "QUOTE": _QUOTE, "TWO_QUOTES": _TWO_QUOTES, "COMMA": b","}
    exec(compile(source, f"<csvformat.rows_formatter {len(names)} columns>", "exec"), namespace)
    format_rows: Callable[[Sequence[Sequence[bytes | None]]], list[bytes]] = namespace["format_rows"]
    return format_rows


def row_formatter(type_codes: Sequence[int]) -> Callable[[Sequence[bytes | None]], bytes]:
    """A function that renders one row of raw values (no line end) for columns of these types."""
    format_rows = rows_formatter(type_codes)
    return lambda row: format_rows((row,))[0]


class EncodingTracker:
    """Decides each column's encoding from the first non-NULL values it sees.

    A string column's declared type does not say whether it is binary; its converted values do
    (``Hex``). An all-NULL column stays ``text``, which loads NULL alike under any encoding.
    """

    def __init__(self, type_codes: Sequence[int]) -> None:
        self.encodings: list[Encoding] = ["bit" if code == BIT else "text" for code in type_codes]
        self._undecided = {i for i, code in enumerate(type_codes) if code in STRING_TYPES or code == GEOMETRY}

    def see(self, rows: Sequence[Sequence[bytes | None]]) -> None:
        """Look at a batch of raw rows until every string column has shown a value."""
        for i in list(self._undecided):
            value = next((r[i] for r in rows if r[i] is not None), None)
            if value is not None:
                self.encodings[i] = "hex" if isinstance(value, Hex) else "text"
                self._undecided.discard(i)


def merge_encodings(per_extract: Sequence[Sequence[Encoding]]) -> list[Encoding]:
    """One encoding per column across several extracts (chunks): any non-text encoding wins."""
    merged: list[Encoding] = list(per_extract[0])
    for encodings in per_extract[1:]:
        for i, encoding in enumerate(encodings):
            if encoding != "text":
                merged[i] = encoding
    return merged


def load_data_columns(quoted_columns: Sequence[str], encodings: Sequence[Encoding]) -> str:
    """The column list and ``SET`` clause of a ``LOAD DATA`` reading this format into those columns.

    ``quoted_columns`` are already-quoted target column names, in CSV order.
    """
    columns: list[str] = []
    assignments: list[str] = []
    for i, (column, encoding) in enumerate(zip(quoted_columns, encodings, strict=True)):
        if encoding == "text":
            columns.append(column)
            continue
        columns.append(f"@_rp_c{i}")
        expression = f"UNHEX(@_rp_c{i})" if encoding == "hex" else f"CAST(@_rp_c{i} AS UNSIGNED)"
        assignments.append(f"{column} = {expression}")
    clause = f"({', '.join(columns)})"
    return clause + (" SET " + ", ".join(assignments) if assignments else "")


def _fields(data: bytes) -> Iterator[tuple[bytes | None, bool]]:
    """(value, ends_row) for every field of CSV data in this format; None is an unquoted NULL."""
    i, n = 0, len(data)
    while i < n:
        if data[i : i + 1] == _QUOTE:
            j, pieces = i + 1, []
            while True:
                k = data.index(_QUOTE, j)
                pieces.append(data[j:k])
                if data[k + 1 : k + 2] == _QUOTE:
                    pieces.append(_QUOTE)
                    j = k + 2
                    continue
                i = k + 1
                break
            value: bytes | None = b"".join(pieces)
        else:
            end = i
            while end < n and data[end : end + 1] not in (b",", b"\n"):
                end += 1
            raw = data[i:end]
            value, i = (None if raw == NULL else raw), end
        if i < n and data[i : i + 1] not in (b",", b"\n"):
            raise ValueError(f"malformed CSV at byte {i}: {data[i : i + 20]!r}")
        ends_row = i >= n or data[i : i + 1] == b"\n"
        i += 1
        yield value, ends_row


def decode_rows(data: bytes, encodings: Sequence[Encoding]) -> list[tuple[Any, ...]]:
    """Read CSV data in this format back into rows, as the load's ``LOAD DATA`` does.

    Text values come back as ``str``, hex columns as ``bytes``, BIT columns as ``int``; NULL as None.
    """
    rows: list[tuple[Any, ...]] = []
    row: list[Any] = []
    for value, ends_row in _fields(data):
        encoding = encodings[len(row)] if len(row) < len(encodings) else "text"
        if value is None:
            row.append(None)
        elif encoding == "hex":
            row.append(binascii.unhexlify(value))
        elif encoding == "bit":
            row.append(int(value))
        else:
            row.append(value.decode("utf-8"))
        if ends_row:
            if len(row) != len(encodings):
                raise ValueError(f"row {len(rows) + 1} has {len(row)} fields, expected {len(encodings)}")
            rows.append(tuple(row))
            row = []
    return rows

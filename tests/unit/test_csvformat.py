"""The CSV wire format without a server: what the extract writes, ``decode_rows`` reads back exactly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from report_pipeline.csvformat import (
    BIT,
    EncodingTracker,
    Hex,
    load_data_columns,
    merge_encodings,
    raw_converters,
    row_formatter,
)

LONG, VARCHAR, BLOB, DATETIME = 3, 253, 252, 12
TO_HEX = raw_converters()[BLOB][0][1]


def _csv(type_codes: list[int], rows: list[list[bytes | None]]) -> bytes:
    fmt = row_formatter(type_codes)
    return b"".join(fmt(r) + b"\n" for r in rows)


def test_text_that_looks_like_the_format_survives():
    rows = [
        [b"1", b"NULL", None, b"2026-11-26 10:00:00"],
        [b"2", b'say "hi", then\nnew line\r\n', "\\N \\ emoji 😀".encode(), None],
        [b"3", b"", b",", b"2026-01-01 00:00:00"],
    ]
    codes = [LONG, VARCHAR, VARCHAR, DATETIME]
    from report_pipeline.csvformat import decode_rows

    decoded = decode_rows(_csv(codes, rows), ["text"] * 4)
    expected = [tuple(None if v is None else v.decode() for v in r) for r in rows]
    assert decoded == expected
    # The quoted word NULL is text; only the unquoted one is SQL NULL.
    assert decoded[0][1] == "NULL" and decoded[0][2] is None


def test_binary_and_bit_columns_round_trip():
    from report_pipeline.csvformat import decode_rows

    value = bytes(range(256)) + b"\x00\\\"'"
    hexed = TO_HEX(value)
    assert isinstance(hexed, Hex)
    bit = raw_converters()[BIT](b"\x01\x00")
    data = _csv([LONG, BLOB, BIT], [[b"1", hexed, bit], [b"2", None, None]])
    assert decode_rows(data, ["text", "hex", "bit"]) == [("1", value, 256), ("2", None, None)]


def test_encoding_tracker_decides_from_the_first_value_and_keeps_all_null_columns_text():
    tracker = EncodingTracker([LONG, BLOB, VARCHAR, BLOB, BIT])
    tracker.see([[b"1", None, b"x", None, b"0"]])
    tracker.see([[b"2", TO_HEX(b"\x00"), b"y", None, b"1"]])
    assert tracker.encodings == ["text", "hex", "text", "text", "bit"]
    assert merge_encodings([["text", "text"], ["hex", "text"]]) == ["hex", "text"]


def test_load_data_columns_decode_hex_and_bit_through_user_variables():
    clause = load_data_columns(["`id`", "`b`", "`f`"], ["text", "hex", "bit"])
    assert clause == "(`id`, @_rp_c1, @_rp_c2) SET `b` = UNHEX(@_rp_c1), `f` = CAST(@_rp_c2 AS UNSIGNED)"
    assert load_data_columns(["`id`"], ["text"]) == "(`id`)"


def test_a_malformed_line_is_an_error_not_a_guess():
    from report_pipeline.csvformat import decode_rows

    with pytest.raises(ValueError):
        decode_rows(b'"a"b\n', ["text"])
    with pytest.raises(ValueError):
        decode_rows(b"1,2\n", ["text"])


# A shared, busy machine must not turn generation time into a failure.
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.binary())), max_size=30))
def test_any_text_and_bytes_round_trip(rows: list[tuple[str | None, bytes | None]]):
    from report_pipeline.csvformat import decode_rows

    raw = [[None if t is None else t.encode(), None if b is None else TO_HEX(b)] for t, b in rows]
    assert decode_rows(_csv([VARCHAR, BLOB], raw), ["text", "hex"]) == [tuple(r) for r in rows]


def _reference_line(type_codes: list[int], row: list[bytes | None]) -> bytes:
    """The format as the module docstring states it, one field at a time (what rows_formatter must equal)."""
    from report_pipeline.csvformat import TYPE_NAMES

    numbers = {"DECIMAL", "NEWDECIMAL", "TINY", "SHORT", "LONG", "LONGLONG", "INT24", "FLOAT", "DOUBLE", "NULL"}
    times = {"TIMESTAMP", "DATE", "TIME", "DATETIME", "YEAR", "NEWDATE", "BIT"}
    fields = []
    for code, value in zip(type_codes, row, strict=True):
        if value is None:
            fields.append(b"NULL")
        elif TYPE_NAMES[code] in numbers | times:
            fields.append(bytes(value))
        else:
            fields.append(b'"' + bytes(value).replace(b'"', b'""') + b'"')
    return b",".join(fields)


_ANY_TYPE = st.sampled_from([0, 1, 3, 4, 5, 7, 8, 10, 11, 12, 13, 16, 245, 246, 247, 248, 252, 253, 254, 255])
_VALUE = st.one_of(st.none(), st.binary(max_size=40), st.sampled_from([b"", b'"', b'""', b",", b"\n", b"NULL", b"\\N"]))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=200)
@given(
    st.lists(_ANY_TYPE, min_size=1, max_size=12).flatmap(
        lambda codes: st.tuples(st.just(codes), st.lists(st.lists(_VALUE, min_size=len(codes), max_size=len(codes))))
    )
)
def test_the_generated_batch_formatter_writes_exactly_the_stated_format(case: tuple[list[int], list[list[Any]]]):
    from report_pipeline.csvformat import rows_formatter

    codes, rows = case
    rows = [[Hex(v) if v is not None and i % 2 else v for i, v in enumerate(r)] for r in rows]
    assert rows_formatter(codes)(rows) == [_reference_line(codes, r) for r in rows]


def test_the_batch_formatter_refuses_a_row_of_another_length():
    from report_pipeline.csvformat import rows_formatter

    with pytest.raises(ValueError):
        rows_formatter([LONG, VARCHAR])([[b"1", b"a", b"extra"]])
    with pytest.raises(ValueError):
        rows_formatter([LONG, VARCHAR])([[b"1"]])

"""Schema evolution (``tables.schema_evolution``): keeping a target table's shape up with its source query.

``fail`` (the default) loads only into the columns the target already has, as the seed did: a source
query returning a column query_insert does not name is refused, and a value the target column cannot
hold fails LOAD DATA. ``evolve`` lets the source query's result decide the target's columns:

* a result column the target lacks is added (NULL-able, the source's type), before the load;
* a target column narrower than the source's type is widened to it (only when the new type holds
  every value the old one could, e.g. VARCHAR(50) -> VARCHAR(200), INT -> BIGINT, DECIMAL(10,2) ->
  DECIMAL(14,2), TEXT -> MEDIUMTEXT, INT UNSIGNED -> BIGINT);
* anything else is refused before the target is touched: a column query_insert names (or an earlier
  evolution added) that the query no longer returns, a source type narrower than the target's, or a
  type the target's cannot become without changing values.

The source's types come from the extract's result metadata (``result_type``), recorded in the
manifest as ``Column.sql_type``; the target's from its catalogue. Both are read with ``parse_type``
into one comparable form, so ``int(11)`` (MariaDB) and ``int`` (MySQL 8) are the same type.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from report_pipeline.csvformat import TYPE_NAMES
from report_pipeline.errors import ConfigError
from report_pipeline.job import LoadJob
from report_pipeline.validation import check_identifier
from report_pipeline.vocabulary import ColumnChange

log = logging.getLogger(__name__)

# Result metadata flags (MySQLdb.constants.FLAG).
_UNSIGNED, _BINARY, _ENUM, _SET = 32, 128, 256, 2048
# The extract's session reads text as utf8mb4 (session.prepare_session): string lengths are 4 bytes a character.
_RESULT_BYTES_PER_CHAR = 4
_STRING_NAMES = frozenset({"VARCHAR", "VAR_STRING", "STRING", "TINY_BLOB", "MEDIUM_BLOB", "LONG_BLOB", "BLOB"})
_INTEGERS = {"TINY": "TINYINT", "SHORT": "SMALLINT", "INT24": "MEDIUMINT", "LONG": "INT", "LONGLONG": "BIGINT"}
_INT_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
_LOBS = ((255, "TINY"), (65_535, ""), (16_777_215, "MEDIUM"), (4_294_967_295, "LONG"))
_LOB_FAMILIES = ("text", "blob", "json")
_LOB_BYTES = {f"{prefix.lower()}{kind}": size for size, prefix in _LOBS for kind in ("text", "blob")}
# Every type ``result_type`` writes, and nothing else: a manifest's sql_type goes into DDL, so a hand-edited or
# corrupt manifest must not put anything but a type there.
_SOURCE_TYPE = re.compile(
    r"(?:(?:TINY|SMALL|MEDIUM|BIG)?INT(?: UNSIGNED)?|DECIMAL\(\d{1,2},\d{1,2}\)(?: UNSIGNED)?|FLOAT|DOUBLE|DATE|YEAR"
    r"|JSON|GEOMETRY|(?:TIME|DATETIME|TIMESTAMP)(?:\([0-6]\))?|BIT\(\d{1,2}\)"
    r"|(?:CHAR|VARCHAR|BINARY|VARBINARY)\(\d{1,10}\)|(?:TINY|MEDIUM|LONG)?(?:TEXT|BLOB))"
)
_TYPE_TEXT = re.compile(r"^\s*([a-z]+)\s*(?:\(([^)]*)\))?\s*(unsigned)?\s*(zerofill)?", re.IGNORECASE)


def result_type(type_code: int, length: int, decimals: int, flags: int, charset: str | None = None) -> str | None:
    """The SQL type of one result column from the driver's metadata, or None when it cannot be told.

    ``length`` is the column's byte length in the utf8mb4 result (-1 or more than 2**32: LONGTEXT); ``charset``
    (``binary`` for byte strings) is needed only for string columns with the BINARY flag, which a binary
    collation of a text column sets too. ENUM and SET are None: the result does not carry their members.
    """
    name = TYPE_NAMES.get(type_code, "")
    unsigned = " UNSIGNED" if flags & _UNSIGNED else ""
    if name in _INTEGERS:
        return _INTEGERS[name] + unsigned
    if name in ("DECIMAL", "NEWDECIMAL"):
        # The length counts the digits, a sign unless unsigned, and a point when there are decimals.
        precision = length - (1 if decimals else 0) - (0 if unsigned else 1)
        return f"DECIMAL({precision},{decimals}){unsigned}"
    simple = {"FLOAT": "FLOAT", "DOUBLE": "DOUBLE", "DATE": "DATE", "NEWDATE": "DATE", "YEAR": "YEAR", "JSON": "JSON"}
    if name in simple:
        return simple[name]
    if name in ("TIME", "DATETIME", "TIMESTAMP"):
        return f"{name}({decimals})" if 0 < decimals <= 6 else name
    if name == "BIT":
        return f"BIT({length})"
    if name == "GEOMETRY":
        return "GEOMETRY"
    if name not in _STRING_NAMES:
        return None
    if flags & (_ENUM | _SET):
        return None
    binary = charset == "binary" if charset is not None else bool(flags & _BINARY)
    size = length if 0 <= length < 2**32 else 4_294_967_295
    count = size if binary else size // _RESULT_BYTES_PER_CHAR
    if name in ("VARCHAR", "VAR_STRING"):
        return f"VARBINARY({count})" if binary else f"VARCHAR({count})"
    if name == "STRING":
        return f"BINARY({count})" if binary else f"CHAR({count})"
    prefix = next(p for limit, p in _LOBS if count <= limit or limit == _LOBS[-1][0])
    return f"{prefix}BLOB" if binary else f"{prefix}TEXT"


def needs_charset(type_code: int, flags: int) -> bool:
    """Whether ``result_type`` needs the column's charset: a string with the BINARY flag (bytes or _bin text)."""
    return TYPE_NAMES.get(type_code, "") in _STRING_NAMES and bool(flags & _BINARY)


@dataclass(frozen=True)
class SqlType:
    """A column type in comparable form: a family and its sizes (display widths and charsets ignored)."""

    family: str
    size: int = 0
    scale: int = 0
    unsigned: bool = False
    text: str = ""


def parse_type(text: str) -> SqlType:
    """Read a type as SHOW CREATE TABLE, information_schema.COLUMNS.COLUMN_TYPE or ``result_type`` write it."""
    match = _TYPE_TEXT.match(text)
    if match is None:
        return SqlType(text.strip().lower(), text=text.strip().lower())
    name, args, unsigned = match.group(1).lower(), match.group(2), bool(match.group(3))
    numbers = [int(a) for a in (args or "").split(",") if a.strip().isdigit()]
    canonical = text.strip().lower()
    if name in _INT_BYTES:
        return SqlType("int", _INT_BYTES[name], 0, unsigned, canonical)
    if name in ("decimal", "numeric", "dec", "fixed"):
        precision = numbers[0] if numbers else 10
        return SqlType("decimal", precision, numbers[1] if len(numbers) > 1 else 0, unsigned, canonical)
    if name in ("float", "double", "real"):
        return SqlType("float", 4 if name == "float" else 8, 0, unsigned, canonical)
    if name in ("char", "varchar", "binary", "varbinary", "bit"):
        return SqlType(name, numbers[0] if numbers else 1, 0, False, canonical)
    if name in _LOB_BYTES:
        return SqlType("text" if name.endswith("text") else "blob", _LOB_BYTES[name], 0, False, canonical)
    if name in ("datetime", "timestamp", "time"):
        return SqlType(name, numbers[0] if numbers else 0, 0, False, canonical)
    if name in ("enum", "set"):
        return SqlType(name, 0, 0, False, canonical)
    return SqlType(name, 0, 0, False, name)


def holds(wide: SqlType, narrow: SqlType) -> bool:
    """Whether a column of type ``wide`` keeps every value of type ``narrow`` unchanged."""
    f, g = wide.family, narrow.family
    if f == "int" and g == "int":
        if wide.unsigned == narrow.unsigned:
            return wide.size >= narrow.size
        return narrow.unsigned and wide.size > narrow.size
    if f == "decimal" and g == "decimal":
        whole_fits = wide.size - wide.scale >= narrow.size - narrow.scale
        return wide.scale >= narrow.scale and whole_fits and (narrow.unsigned or not wide.unsigned)
    if f in ("float", "bit", "datetime", "timestamp", "time") and f == g:
        return wide.size >= narrow.size
    if g in ("char", "varchar", "text"):
        # CHAR drops trailing spaces, so only a CHAR holds a CHAR's values and nothing holds a VARCHAR's in one.
        # A text column's size is in bytes of its own charset (unknown here), a CHAR/VARCHAR's in characters:
        # neither converts into the other, so nothing text-family ever becomes a CHAR or VARCHAR.
        if f == "char":
            return g == "char" and wide.size >= narrow.size
        if f == "varchar":
            return g in ("char", "varchar") and wide.size >= narrow.size
        return f == "text" and _capacity(wide) >= _capacity(narrow)
    if g in ("binary", "varbinary", "blob"):
        # BINARY pads with zero bytes: a wider BINARY would change every stored value. As for text, a
        # BLOB never becomes a VARBINARY (its values may be longer than any VARBINARY holds in a row).
        if f == "binary":
            return g == "binary" and wide.size == narrow.size
        if f == "varbinary":
            return g in ("binary", "varbinary") and wide.size >= narrow.size
        return f == "blob" and wide.size >= narrow.size
    if f in ("enum", "set") or g in ("enum", "set"):
        return wide.text == narrow.text
    return f == g


def _capacity(kind: SqlType) -> int:
    # Text types hold bytes; a VARCHAR or CHAR of n utf8mb4 characters needs up to 4n of them.
    return kind.size if kind.family == "text" else kind.size * _RESULT_BYTES_PER_CHAR


@dataclass(frozen=True)
class Evolution:
    """What a load of an ``evolve`` table changes on the target, or why it is refused (target unchanged)."""

    changes: tuple[ColumnChange, ...] = ()
    refusals: tuple[str, ...] = ()


def describe_changes(changes: Sequence[ColumnChange]) -> str:
    """The changes in words, for logs and ``validate``."""
    return ", ".join(
        f"add column {c.column} {c.new_type}" if c.change == "add" else f"widen {c.column} {c.old_type} -> {c.new_type}"
        for c in changes
    )


def plan_evolution(
    result: Sequence[tuple[str, str | None]],
    target_types: Mapping[str, str],
    declared: Sequence[str],
    added_before: Collection[str] = (),
    lob_obstacles: Mapping[str, str] | None = None,
) -> Evolution:
    """Compare the query's result columns (name, source SQL type) with the target's (name -> type).

    A source type ``result_type`` cannot have written (``_SOURCE_TYPE``) is taken as unknown: it is never
    put into DDL.

    ``declared`` are query_insert's columns and ``added_before`` the columns earlier evolutions added:
    a target column that is either and that the query no longer returns is a removed column.
    ``lob_obstacles`` (lower-cased target column -> why, ``target.alter.lob_obstacles``): columns that cannot
    become TEXT/BLOB/JSON in place; such a widening is refused instead.
    """
    existing = {name.lower(): (name, kind) for name, kind in target_types.items()}
    returned = {name.lower() for name, _ in result}
    changes: list[ColumnChange] = []
    refusals: list[str] = []
    for name, raw_type in result:
        source_type = raw_type if raw_type is not None and _SOURCE_TYPE.fullmatch(raw_type) else None
        try:
            check_identifier(name, "column")
        except ConfigError:
            refusals.append(f"the query returns a column named {name!r}, which cannot be a column name; alias it")
            continue
        if name.lower() not in existing:
            if source_type is None:
                refusals.append(_untyped(name))
            else:
                changes.append(ColumnChange(name, "add", None, source_type))
            continue
        target_name, target_type = existing[name.lower()]
        if source_type is None:
            continue  # ENUM/SET or an older manifest: loaded as before, LOAD DATA refuses what does not fit
        problem = _type_problem(target_name, target_type, source_type)
        if problem:
            refusals.append(problem)
        elif not holds(parse_type(target_type), parse_type(source_type)):
            obstacle = _lob_obstacle(target_name, target_type, source_type, lob_obstacles or {})
            if obstacle:
                refusals.append(obstacle)
            else:
                changes.append(ColumnChange(target_name, "widen", target_type, source_type))
    wanted = {c.lower() for c in (*declared, *added_before)}
    for lowered, (name, kind) in existing.items():
        if lowered in wanted and lowered not in returned:
            refusals.append(
                f"column {name} ({kind}) is no longer returned by query_select: schema evolution never drops a "
                f"column; return it again, or drop it from query_insert and (if it should go) from the target "
                f"table by hand (ALTER TABLE ... DROP COLUMN {name})"
            )
    return Evolution(tuple(changes), tuple(refusals))


def _type_problem(name: str, target_type: str, source_type: str) -> str | None:
    old, new = parse_type(target_type), parse_type(source_type)
    if holds(new, old):
        return None  # the same type, or a widening
    if holds(old, new):
        return (
            f"column {name}: the query now returns {source_type} but the target column is {target_type}, which is "
            f"wider: schema evolution never narrows a column (existing rows may not fit). Cast it back in "
            f"query_select (... AS {name}), or change the target column by hand (ALTER TABLE ... MODIFY {name} "
            f"{source_type}) if the narrower type is meant"
        )
    return (
        f"column {name}: the query now returns {source_type} but the target column is {target_type}; that is "
        f"not a widening (some values of one do not fit the other unchanged). Cast it in query_select to a type "
        f"{target_type} holds, or change the target column by hand"
    )


def _lob_obstacle(name: str, target_type: str, source_type: str, obstacles: Mapping[str, str]) -> str | None:
    # Into TEXT/BLOB/JSON from a type that is none of them: MySQL 8 refuses the column's literal default
    # there (1101), both servers a key on it without a prefix length (1170). A LOB to a larger LOB keeps both.
    why = obstacles.get(name.lower())
    if why is None or parse_type(source_type).family not in _LOB_FAMILIES:
        return None
    if parse_type(target_type).family in _LOB_FAMILIES:
        return None
    return (
        f"column {name}: the query now returns {source_type} but the target column is {target_type}, and widening "
        f"it to {source_type} cannot be done in place: {why}. Widen it by hand (ALTER TABLE ... MODIFY {name} "
        f"{source_type} without the default, with a prefix length in the index), or cast it in query_select to "
        f"a VARCHAR/VARBINARY size the target column can be widened to"
    )


def _untyped(name: str) -> str:
    return (
        f"column {name} is not in the target table and its source type is unknown (an ENUM or SET, whose "
        "members the result does not carry, a bare NULL, or a manifest from an extract before schema evolution); "
        "add the column to the target by hand, or cast it in query_select, or re-run the extract"
    )


def refusal_message(table: str, evolution: Evolution) -> str:
    """The refusal of a load whose evolution is refused: every reason, and that the target was not changed."""
    return f"schema evolution of {table} refused, the target table was not changed: " + "; ".join(evolution.refusals)


# --- the load's steps (run by the load modes, report_pipeline.modes)


def evolve_table(job: LoadJob, table: str, record: bool) -> None:
    """Add and widen ``table``'s columns (one ALTER, before the transaction: DDL commits on its own).

    ``record``: log the changes first (committed on their own), as they are live from the ALTER on whatever
    the load does next. Logged before, not after: a connection lost between the two would otherwise leave
    a change nobody logged, which the retry (finding the column there) never logs either. A logged change
    whose ALTER then failed is harmless: the retry plans and logs it again (``record_changes`` skips the
    repeat), and ``plan_evolution`` only looks at logged columns the target has.
    """
    if not job.changes:
        return
    job.target.ensure_schema_log(job.schema)
    if record:
        record_changes(job)
    job.target.alter_columns(job.schema, table, job.changes)
    log.warning("%s.%s: schema evolution: %s", job.schema, table, describe_changes(job.changes))


def record_changes(job: LoadJob) -> None:
    """One ``report_schema_changes`` row per change of the load (skipped when the column's latest row is the
    same change), committed on its own, before the DDL (upsert, incremental) or the RENAME (swap) makes it live."""
    if not job.changes:
        return
    job.target.begin()
    for change in job.changes:
        job.target.record_schema_change(job.schema, job.table, change, job.logical_date, job.run_id, job.load_key)
    job.target.commit()

"""An in-memory ``Target`` with failures injected, so the load path runs without a server (like dlt's dummy).

It lives under tests/ and not in the package: it is a test double, not an engine anyone may deploy, and
its fault hooks have no place in a wheel. ``test_load_in_memory`` checks that it has every method of the
``target.Target`` protocol with the same parameters, so the two cannot drift apart unnoticed.

What it keeps of MySQL's behaviour, because the load's correctness rests on it:
- transactions: ``begin`` .. ``commit`` apply as one, other sessions see only committed tables, and
  ``rollback`` (or a lost connection) discards them; DDL inside a transaction commits it first, as
  MySQL's implicit commit does (``implicit_commits`` counts them, so a test can say there were none);
- REPLACE / INSERT / IGNORE by every unique key; ``insert`` of an existing key fails the statement;
- the writer lock is per schema.table across sessions, one owner at a time;
- the ledger, watermark and schema-log tables are tables of the schema (``tables`` lists them).
It does not judge whether a value fits its column's type (strict mode): the real-server tests do.

Faults: ``server.fail(op, nth, error)`` raises ``error`` (default ``LostConnection``, which also kills
the session) when the ``nth`` statement of that kind starts; ``op=None`` counts every statement.
``fail("commit", ...)`` loses the connection before the commit reaches the server.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import itertools
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from report_pipeline.csvformat import decode_rows
from report_pipeline.errors import TargetBusyError, TransferError
from report_pipeline.records import COMPANY_ROW, AsOf, LoadRecord, PendingShadow, Watermark, utc_naive
from report_pipeline.target import Capabilities
from report_pipeline.target.keysets import DELETE_BATCH, KEYS_IN_MEMORY
from report_pipeline.vocabulary import (
    AS_OF_TABLE,
    LEDGER_TABLE,
    PENDING_TABLE,
    SCHEMA_LOG_TABLE,
    WATERMARK_TABLE,
    ColumnChange,
    Duplicates,
    Encoding,
)


class LostConnection(Exception):
    """What the driver raises when the server goes away mid-statement (MySQL error 2013)."""

    def __init__(self, message: str = "Lost connection to MySQL server during query") -> None:
        super().__init__(2013, message)


class ServerError(Exception):
    """A statement the server refuses (no such table or column, a duplicate ledger key)."""


@dataclass
class Table:
    """One table: its columns in order with their types, unique keys, plain indexes and rows."""

    columns: list[str]
    types: dict[str, str] = field(default_factory=dict)
    keys: list[tuple[str, ...]] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def column(self, name: str) -> str:
        for c in self.columns:
            if c.lower() == name.lower():
                return c
        raise ServerError(f"unknown column {name!r}")

    def values(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        names = [self.column(c).lower() for c in columns]
        return [tuple(r.get(n) for n in names) for r in self.rows]


def _put_rows(t: Table, names: Sequence[str], rows: Sequence[Sequence[Any]], duplicates: Duplicates) -> None:
    """Add ``rows`` (values of ``names``) to ``t`` as REPLACE / INSERT / INSERT IGNORE would."""
    kept = dict(enumerate(t.rows))  # row id -> row, and per unique key its values -> row id
    indexes: list[tuple[list[str], dict[tuple[Any, ...], int]]] = [([k.lower() for k in key], {}) for key in t.keys]

    def key_values(row: dict[str, Any], key: list[str]) -> tuple[Any, ...] | None:
        values = tuple(row.get(n) for n in key)
        return None if None in values else values  # NULLs never collide, as in MySQL

    for rid, row in kept.items():
        for key, index in indexes:
            if (found := key_values(row, key)) is not None:
                index[found] = rid
    for number, values in enumerate(rows, start=len(kept)):
        row = {c.lower(): None for c in t.columns} | dict(zip(names, values, strict=True))
        clash = {index[v] for key, index in indexes if (v := key_values(row, key)) is not None and v in index}
        if clash and duplicates == "ignore":
            continue
        if clash and duplicates == "insert":
            raise TransferError(f"loading would change values, so nothing was loaded: duplicate key {row}")
        for rid in clash:
            gone = kept.pop(rid)
            for key, index in indexes:
                index.pop(key_values(gone, key), None)  # type: ignore[arg-type]
        kept[number] = row
        for key, index in indexes:
            if (found := key_values(row, key)) is not None:
                index[found] = number
    t.rows[:] = list(kept.values())


def _ddl_table(columns: Sequence[str], keys: Sequence[tuple[str, ...]] = ()) -> Table:
    return Table(list(columns), {c: "varchar(255)" for c in columns}, list(keys))


_LEDGER_COLUMNS = (
    "table_name",
    "logical_date",
    "run_id",
    "rows_loaded",
    "finished_at",
    "load_mode",
    "load_key",
    "snapshot_at",
)
_WATERMARK_COLUMNS = (
    "table_name",
    "cursor_column",
    "cursor_value",
    "snapshot_at",
    "logical_date",
    "run_id",
    "pending_value",
    "pending_writers",
    "source_server",
    "source_position",
)
_AS_OF_COLUMNS = ("table_name", "data_as_of", "snapshot_at", "logical_date", "run_id", "load_key", "updated_at")
_SCHEMA_LOG_COLUMNS = ("table_name", "column_name", "change_kind", "old_type", "new_type", "logical_date", "run_id")


@dataclass
class _Trigger:
    op: str | None
    nth: int
    error: BaseException
    seen: int = 0


class MemoryServer:
    """What the sessions share: schemas of tables, writer locks, the statement log and the faults."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Table]] = {}
        self.statements: list[tuple[int, str, str]] = []
        self.implicit_commits = 0
        self.lob_obstacles: dict[tuple[str, str], dict[str, str]] = {}
        self.keys_in_memory = KEYS_IN_MEMORY
        self.triggers: list[_Trigger] = []
        self.mutex = threading.RLock()
        self.locks: dict[str, int] = {}
        self._released = threading.Condition(self.mutex)
        self._sessions = itertools.count(1)
        # What the engine can do; a test takes abilities away (dataclasses.replace) to see the load refuse.
        self.capabilities = Capabilities(engine="memory")

    def session(self) -> MemoryTarget:
        """A new session (connection) on this server."""
        return MemoryTarget(self)

    def create_schema(self, schema: str) -> None:
        self.schemas.setdefault(schema, {})

    def create_table(
        self,
        schema: str,
        table: str,
        types: dict[str, str],
        keys: Sequence[tuple[str, ...]] = (),
        indexes: Sequence[str] = (),
    ) -> None:
        """A table with these columns (name -> type, in order) and unique keys (the first one primary)."""
        self.create_schema(schema)
        self.schemas[schema][table] = Table(list(types), dict(types), [tuple(k) for k in keys], list(indexes))

    def insert(self, schema: str, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as the table's columns in order (committed), held as the text LOAD DATA would store."""
        t = self.schemas[schema][table]
        for row in rows:
            t.rows.append({c.lower(): None if v is None else str(v) for c, v in zip(t.columns, row, strict=True)})

    def rows(self, schema: str, table: str) -> list[tuple[Any, ...]]:
        """The committed rows, as the table's columns in order, sorted."""
        t = self.schemas[schema][table]
        return sorted(t.values(t.columns), key=repr)

    def state(self) -> dict[str, dict[str, Any]]:
        """Everything committed, for comparing before and after."""
        return copy.deepcopy({s: {n: vars(t) for n, t in tables.items()} for s, tables in self.schemas.items()})

    def fail(self, op: str | None = None, nth: int = 1, error: BaseException | None = None) -> None:
        """Raise ``error`` (default: the connection is lost) when the ``nth`` statement ``op`` starts."""
        self.triggers.append(_Trigger(op, nth, error if error is not None else LostConnection()))

    def ops(self, op: str | None = None) -> list[tuple[int, str, str]]:
        """The statements run so far (of one kind)."""
        return [s for s in self.statements if op is None or s[1] == op]


class MemoryTarget:
    """One session on a ``MemoryServer``: the ``target.Target`` protocol on tables in memory."""

    def __init__(self, server: MemoryServer) -> None:
        self.server = server
        self.id = next(server._sessions)
        self.tx: dict[tuple[str, str], Table] | None = None
        self.temporary: dict[str, Table] = {}
        self.dead = False

    # --- the machinery: statements, faults, transactions

    def _statement(self, op: str, detail: str = "") -> None:
        server = self.server
        with server.mutex:
            if self.dead:
                raise LostConnection("MySQL server has gone away")
            server.statements.append((self.id, op, detail))
            for trigger in server.triggers:
                if trigger.op in (None, op):
                    trigger.seen += 1
                    if trigger.seen == trigger.nth:
                        if isinstance(trigger.error, LostConnection):
                            self._die()
                        raise trigger.error

    def _die(self) -> None:
        self.dead = True
        self.tx = None
        self.temporary.clear()
        self._release_locks()

    def _release_locks(self) -> None:
        with self.server.mutex:
            for name in [n for n, owner in self.server.locks.items() if owner == self.id]:
                del self.server.locks[name]
            self.server._released.notify_all()

    def _schema(self, schema: str) -> dict[str, Table]:
        if schema not in self.server.schemas:
            raise ServerError(f"unknown database {schema!r}")
        return self.server.schemas[schema]

    def _read(self, schema: str, table: str) -> Table:
        if self.tx is not None and (schema, table) in self.tx:
            return self.tx[(schema, table)]
        found = self._schema(schema).get(table)
        if found is None:
            raise ServerError(f"table {schema}.{table} doesn't exist")
        return found

    def _write(self, schema: str, table: str) -> Table:
        if table in self.temporary:
            return self.temporary[table]
        if self.tx is None:
            return self._read(schema, table)
        if (schema, table) not in self.tx:
            self.tx[(schema, table)] = copy.deepcopy(self._read(schema, table))
        return self.tx[(schema, table)]

    def _ddl(self, op: str, detail: str) -> None:
        """A statement that commits any open transaction first (MySQL's implicit commit)."""
        self._statement(op, detail)
        if self.tx is not None:
            self.server.implicit_commits += 1
            self._apply()

    def _apply(self) -> None:
        with self.server.mutex:
            for (schema, table), copied in (self.tx or {}).items():
                self._schema(schema)[table] = copied
        self.tx = None

    # --- the Target protocol

    def capabilities(self) -> Capabilities:
        """The server's abilities (all of them unless a test took some away)."""
        return self.server.capabilities

    def fork(self) -> MemoryTarget:
        """Another session on the same server."""
        return MemoryTarget(self.server)

    def close(self) -> None:
        """Close quietly: an open transaction is lost, locks are released."""
        self._die()

    def begin(self) -> None:
        """Start a transaction."""
        self._statement("begin")
        self.tx = {}

    def commit(self) -> None:
        """Commit: every table the transaction wrote becomes visible at once."""
        self._statement("commit")
        self._apply()

    def rollback(self) -> None:
        """Roll back quietly (the session may be gone)."""
        with contextlib.suppress(LostConnection):
            self._statement("rollback")
        self.tx = None

    @contextlib.contextmanager
    def writer_lock(self, schema: str, table: str, timeout_seconds: int) -> Iterator[None]:
        """One owner per schema.table at a time, across sessions; TransferError after the timeout."""
        self._statement("get_lock", f"{schema}.{table}")
        name = f"{schema}.{table}"
        deadline = time.monotonic() + timeout_seconds
        with self.server.mutex:
            while self.server.locks.get(name, self.id) != self.id:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TargetBusyError(
                        f"another load of {schema}.{table} still runs after {timeout_seconds} s "
                        "(REPORTS_TABLE_LOCK_TIMEOUT); loads of one table run one at a time"
                    )
                self.server._released.wait(left)
            self.server.locks[name] = self.id
        try:
            yield
        finally:
            with self.server.mutex:
                if self.server.locks.get(name) == self.id:
                    del self.server.locks[name]
                self.server._released.notify_all()

    def schema_exists(self, schema: str) -> bool:
        self._statement("schema_exists", schema)
        return schema in self.server.schemas

    def tables(self, schema: str) -> list[str]:
        self._statement("tables", schema)
        return sorted(self.server.schemas.get(schema, {}))

    def columns(self, schema: str, table: str) -> list[str]:
        self._statement("columns", f"{schema}.{table}")
        found = self.server.schemas.get(schema, {}).get(table)
        return list(found.columns) if found else []

    def column_types(self, schema: str, table: str) -> dict[str, str]:
        self._statement("column_types", f"{schema}.{table}")
        found = self.server.schemas.get(schema, {}).get(table)
        return {c: found.types[c] for c in found.columns} if found else {}

    def alter_columns(self, schema: str, table: str, changes: Sequence[ColumnChange]) -> None:
        self._ddl("alter_columns", f"{schema}.{table}")
        t = self._read(schema, table)
        for change in changes:
            if change.change == "add":
                t.columns.append(change.column)
                for row in t.rows:
                    row[change.column.lower()] = None
            t.types[t.column(change.column)] = change.new_type.lower()

    def lob_obstacles(self, schema: str, table: str) -> dict[str, str]:
        self._statement("lob_obstacles", f"{schema}.{table}")
        return dict(self.server.lob_obstacles.get((schema, table), {}))

    def ensure_schema_log(self, schema: str) -> None:
        self._ddl("ensure_schema_log", schema)
        self._schema(schema).setdefault(SCHEMA_LOG_TABLE, _ddl_table(_SCHEMA_LOG_COLUMNS))

    def record_schema_change(
        self, schema: str, table: str, change: ColumnChange, logical_date: dt.datetime, run_id: str, load_key: str
    ) -> None:
        self._statement("record_schema_change", f"{schema}.{table}.{change.column}")
        log = self._write(schema, SCHEMA_LOG_TABLE)
        latest = [r for r in log.rows if (r["table_name"], r["column_name"]) == (table, change.column)]
        if latest and (latest[-1]["change_kind"], latest[-1]["old_type"], latest[-1]["new_type"]) == (
            change.change,
            change.old_type,
            change.new_type,
        ):
            return
        values = (table, change.column, change.change, change.old_type, change.new_type, utc_naive(logical_date))
        log.rows.append(dict(zip(_SCHEMA_LOG_COLUMNS, (*values, run_id), strict=True)))

    def added_columns(self, schema: str, table: str) -> list[str]:
        self._statement("added_columns", f"{schema}.{table}")
        log = self.server.schemas.get(schema, {}).get(SCHEMA_LOG_TABLE)
        if log is None:
            return []
        return sorted({r["column_name"] for r in log.rows if r["table_name"] == table and r["change_kind"] == "add"})

    def unique_keys(self, schema: str, table: str) -> list[tuple[str, ...]]:
        self._statement("unique_keys", f"{schema}.{table}")
        return list(self._read(schema, table).keys)

    def key_collations(self, schema: str, table: str) -> dict[str, str]:
        # Keys compare as Python strings here: exact, as a binary collation would, so nothing can merge.
        self._statement("key_collations", f"{schema}.{table}")
        return {}

    def count_rows(self, schema: str, table: str) -> int:
        self._statement("count_rows", f"{schema}.{table}")
        return len((self.temporary.get(table) or self._read(schema, table)).rows)

    def bulk_load(
        self,
        path: str,
        schema: str,
        table: str,
        columns: Sequence[str],
        encodings: Sequence[Encoding],
        duplicates: Duplicates,
    ) -> int:
        """Read one CSV part into ``columns``, all of it or (on a duplicate under ``insert``) none."""
        self._statement("bulk_load", f"{schema}.{table}")
        with open(path, "rb") as f:
            rows = decode_rows(f.read(), encodings)
        t = self._write(schema, table)
        _put_rows(t, [t.column(c).lower() for c in columns], rows, duplicates)
        return len(rows)

    def create_shadow(self, schema: str, like: str, shadow: str) -> None:
        self._ddl("create_shadow", f"{schema}.{shadow}")
        model = self._read(schema, like)
        self._schema(schema)[shadow] = Table(
            list(model.columns), dict(model.types), list(model.keys), list(model.indexes)
        )

    def drop_secondary_indexes(self, schema: str, table: str) -> list[str]:
        self._ddl("drop_secondary_indexes", f"{schema}.{table}")
        t = self._read(schema, table)
        dropped, t.indexes = t.indexes, []
        return dropped

    def add_indexes(self, schema: str, table: str, definitions: Sequence[str]) -> None:
        if definitions:
            self._ddl("add_indexes", f"{schema}.{table}")
            self._read(schema, table).indexes.extend(definitions)

    def replace_table(self, schema: str, live: str, shadow: str, retired: str) -> None:
        self._ddl("replace_table", f"{schema}.{live}")
        tables = self._schema(schema)
        if shadow not in tables:
            raise ServerError(f"table {schema}.{shadow} doesn't exist")
        with self.server.mutex:
            tables[live] = tables.pop(shadow)

    def replace_tables(self, schema: str, swaps: Sequence[tuple[str, str, str]], keep_retired: bool = False) -> None:
        # One RENAME over every table: all of them or none.
        self._ddl("replace_tables", f"{schema}: {', '.join(live for live, _, _ in swaps)}")
        tables = self._schema(schema)
        missing = [shadow for _, shadow, _ in swaps if shadow not in tables]
        if missing:
            raise ServerError(f"table {schema}.{missing[0]} doesn't exist")
        with self.server.mutex:
            for live, shadow, retired in swaps:
                old = tables.pop(live, None)
                if keep_retired and old is not None:
                    tables[retired] = old
                tables[live] = tables.pop(shadow)

    def has_rows(self, schema: str, table: str) -> bool:
        self._statement("has_rows", f"{schema}.{table}")
        return bool(self._read(schema, table).rows)

    def merge_into(self, schema: str, table: str, source: str, columns: Sequence[str], duplicates: Duplicates) -> int:
        self._statement("merge_into", f"{schema}.{table}")
        origin = self._read(schema, source)
        rows = origin.values(columns)
        t = self._write(schema, table)
        _put_rows(t, [t.column(c).lower() for c in columns], rows, duplicates)
        return len(rows)

    def ensure_as_of(self, schema: str) -> None:
        self._ddl("ensure_as_of", schema)
        table = self._schema(schema).setdefault(AS_OF_TABLE, _ddl_table(_AS_OF_COLUMNS, [("table_name",)]))
        if not any(r["table_name"] == COMPANY_ROW for r in table.rows):
            table.rows.append(dict.fromkeys(_AS_OF_COLUMNS) | {"table_name": COMPANY_ROW})

    def record_as_of(self, schema: str, entry: AsOf, replace: bool, company_tables: Sequence[str] | None) -> None:
        # records.as_of_moves and company_as_of, written again: a swap sets its table's as-of, other loads only
        # move it forward; the company row is the oldest of the company's tables, or NULL while one never loaded.
        self._statement("record_as_of", f"{schema}.{entry.table_name}")
        t = self._write(schema, AS_OF_TABLE)
        rows = {r["table_name"]: r for r in t.rows}
        stored = rows.get(entry.table_name, {}).get("data_as_of")
        if replace or stored is None or entry.data_as_of is None or entry.data_as_of >= stored:
            rows[entry.table_name] = dataclasses.asdict(entry)
        tables = [r for n, r in rows.items() if n != COMPANY_ROW]
        if company_tables is not None:
            wanted = {n.lower() for n in company_tables}
            tables = [r for r in tables if r["table_name"].lower() in wanted]
        dated = [r for r in tables if r["data_as_of"] is not None]
        loaded = {r["table_name"].lower() for r in dated}
        missing = company_tables is not None and any(n.lower() not in loaded for n in company_tables)
        oldest = None if missing or not dated else min(dated, key=lambda r: r["data_as_of"])
        rows[COMPANY_ROW] = {**(oldest or {c: None for c in _AS_OF_COLUMNS}), "table_name": COMPANY_ROW}
        t.rows[:] = list(rows.values())

    def ensure_pending(self, schema: str) -> None:
        self._ddl("ensure_pending", schema)
        self._schema(schema).setdefault(PENDING_TABLE, _ddl_table(("table_name", "shadow"), [("table_name",)]))

    def record_pending(self, schema: str, entry: PendingShadow) -> None:
        self._statement("record_pending", f"{schema}.{entry.table_name}")
        t = self._write(schema, PENDING_TABLE)
        t.rows[:] = [r for r in t.rows if r["table_name"] != entry.table_name] + [
            {"table_name": entry.table_name, "shadow": entry}
        ]

    def pending(self, schema: str) -> dict[str, PendingShadow]:
        self._statement("pending", schema)
        return {r["table_name"]: r["shadow"] for r in self._read(schema, PENDING_TABLE).rows}

    def mark_publishing(self, schema: str, tables: Sequence[str]) -> None:
        self._statement("mark_publishing", schema)
        t = self._write(schema, PENDING_TABLE)
        for r in t.rows:
            if r["table_name"] in tables:
                r["shadow"] = dataclasses.replace(r["shadow"], publishing=True)

    def remove_pending(self, schema: str, tables: Sequence[str]) -> None:
        self._statement("remove_pending", schema)
        t = self._write(schema, PENDING_TABLE)
        t.rows[:] = [r for r in t.rows if r["table_name"] not in tables]

    def drop_tables(self, schema: str, *tables: str) -> None:
        if tables:
            self._ddl("drop_tables", f"{schema}: {', '.join(tables)}")
            for t in tables:
                self.server.schemas.get(schema, {}).pop(t, None)

    def ensure_ledger(self, schema: str) -> None:
        self._ddl("ensure_ledger", schema)
        self._schema(schema).setdefault(LEDGER_TABLE, _ddl_table((*_LEDGER_COLUMNS, "manifest_keys"), [("load_key",)]))

    def _ledger(self, schema: str) -> list[dict[str, Any]]:
        return self._read(schema, LEDGER_TABLE).rows

    def find_load(self, schema: str, load_key: str) -> LoadRecord | None:
        self._statement("find_load", schema)
        found = [r for r in self._ledger(schema) if r["load_key"] == load_key]
        return _record(found[-1]) if found else None

    def newer_swap(
        self, schema: str, table: str, logical_date: dt.datetime, snapshot_at: dt.datetime | None = None
    ) -> dt.datetime | None:
        self._statement("newer_swap", f"{schema}.{table}")
        day, snap = utc_naive(logical_date), None if snapshot_at is None else utc_naive(snapshot_at)

        def newer(r: dict[str, Any]) -> bool:
            later_snapshot = snap is not None and r.get("snapshot_at") is not None and r["snapshot_at"] > snap
            return r["logical_date"] > day or (r["logical_date"] == day and later_snapshot)

        found = [
            r["logical_date"]
            for r in self._ledger(schema)
            if r["table_name"] == table and r["load_mode"] == "swap" and newer(r)
        ]
        return max(found) if found else None

    def record_load(self, schema: str, entry: LoadRecord) -> None:
        self._statement("record_load", f"{schema}.{entry.table_name}")
        ledger = self._write(schema, LEDGER_TABLE)
        if any(r["load_key"] == entry.load_key for r in ledger.rows):
            raise ServerError(f"Duplicate entry {entry.load_key!r} for key 'uq_report_loads_load_key'")
        ledger.rows.append(
            {
                "table_name": entry.table_name,
                "logical_date": utc_naive(entry.logical_date),
                "run_id": entry.run_id,
                "rows_loaded": entry.rows_loaded,
                "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
                "load_mode": entry.load_mode,
                "load_key": entry.load_key,
                "manifest_keys": entry.manifest_keys,
                "snapshot_at": None if entry.snapshot_at is None else utc_naive(entry.snapshot_at),
            }
        )

    def ensure_watermarks(self, schema: str) -> None:
        self._ddl("ensure_watermarks", schema)
        self._schema(schema).setdefault(WATERMARK_TABLE, _ddl_table(_WATERMARK_COLUMNS, [("table_name",)]))

    def watermark(self, schema: str, table: str) -> Watermark | None:
        self._statement("watermark", f"{schema}.{table}")
        marks = self.server.schemas.get(schema, {}).get(WATERMARK_TABLE)
        if marks is None:
            return None
        found = [r for r in self._read(schema, WATERMARK_TABLE).rows if r["table_name"] == table]
        return Watermark(**found[0]) if found else None

    def write_watermark(self, schema: str, mark: Watermark) -> None:
        self._statement("write_watermark", f"{schema}.{mark.table_name}")
        marks = self._write(schema, WATERMARK_TABLE)
        marks.rows = [r for r in marks.rows if r["table_name"] != mark.table_name]
        marks.rows.append(
            {
                "table_name": mark.table_name,
                "cursor_column": mark.cursor_column,
                "cursor_value": mark.cursor_value,
                "snapshot_at": mark.snapshot_at,
                "logical_date": utc_naive(mark.logical_date) if mark.logical_date else None,
                "run_id": mark.run_id,
                "load_key": mark.load_key,
                "pending_value": mark.pending_value,
                "pending_writers": mark.pending_writers,
                "source_server": mark.source_server,
                "source_position": mark.source_position,
            }
        )

    # --- delete detection

    def create_key_table(self, schema: str, table: str, columns: Sequence[str]) -> str:
        self._statement("create_key_table", f"{schema}.{table}")
        name = f"_rp_keys_{self.id}_{len(self.temporary)}"
        self.temporary[name] = Table(list(columns), {}, [tuple(columns)])
        return name

    def key_checksum(self, schema: str, table: str, columns: Sequence[str]) -> tuple[int, int]:
        self._statement("key_checksum", f"{schema}.{table}")
        keys = self._read(schema, table).values(columns)
        return len(keys), sum(key_crc(k) for k in keys)

    def _missing(self, schema: str, table: str, keys_table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        present = set(self.temporary[keys_table].values(columns))
        return [k for k in self._read(schema, table).values(columns) if k not in present]

    def missing_keys(
        self, schema: str, table: str, keys_table: str, columns: Sequence[str]
    ) -> tuple[int, list[tuple[Any, ...]] | None]:
        self._statement("missing_keys", f"{schema}.{table}")
        missing = self._missing(schema, table, keys_table, columns)
        return len(missing), (missing if len(missing) <= self.server.keys_in_memory else None)

    def delete_keys(self, schema: str, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> int:
        """Delete by key, one statement per ``keysets.DELETE_BATCH`` keys (as the MySQL target batches)."""
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            batch = {tuple(k) for k in keys[start : start + DELETE_BATCH]}
            self._statement("delete_keys", f"{schema}.{table}: {len(batch)} keys")
            t = self._write(schema, table)
            names = [t.column(c).lower() for c in columns]
            before = len(t.rows)
            t.rows = [r for r in t.rows if tuple(r.get(n) for n in names) not in batch]
            deleted += before - len(t.rows)
        return deleted

    def delete_missing(self, schema: str, table: str, keys_table: str, columns: Sequence[str]) -> int:
        self._statement("delete_missing", f"{schema}.{table}")
        gone = set(self._missing(schema, table, keys_table, columns))
        t = self._write(schema, table)
        names = [t.column(c).lower() for c in columns]
        before = len(t.rows)
        t.rows = [r for r in t.rows if tuple(r.get(n) for n in names) not in gone]
        return before - len(t.rows)

    def drop_key_table(self, schema: str, keys_table: str) -> None:
        with contextlib.suppress(LostConnection):
            self._statement("drop_key_table", keys_table)
        self.temporary.pop(keys_table, None)


def key_crc(values: Sequence[Any]) -> int:
    """CRC32(CONCAT_WS('#', key columns)) of one key, as MySQL and the extract compute it (NULLs skipped)."""
    return zlib.crc32(b"#".join(str(v).encode() for v in values if v is not None))


def _record(row: dict[str, Any]) -> LoadRecord:
    return LoadRecord(
        table_name=row["table_name"],
        logical_date=row["logical_date"],
        run_id=row["run_id"],
        rows_loaded=row["rows_loaded"],
        load_mode=row["load_mode"],
        load_key=row["load_key"],
        manifest_keys=tuple(row["manifest_keys"]),
        finished_at=row["finished_at"],
    )

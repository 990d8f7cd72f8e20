"""The MySQL (and MariaDB, Aurora MySQL) target: every MySQL-only call the load makes lives here or in a
helper module beside it: ``mysql_bulk`` (LOAD DATA, INSERT ... SELECT), ``mysql_ledger``, ``mysql_logs``
(schema and reconcile logs), ``mysql_state`` (watermarks, as-of, pending), ``mysql_onboard``,
``mysql_errors``, ``alter``, ``keysets``, ``rename`` and ``infile``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from report_pipeline.errors import TargetBusyError, TransferError
from report_pipeline.records import AsOf, LoadRecord, PendingShadow, Watermark
from report_pipeline.session import close_quietly, prepare_session, rollback_quietly
from report_pipeline.settings import Settings
from report_pipeline.target import (
    Capabilities,
    alter,
    keysets,
    mysql_bulk,
    mysql_ledger,
    mysql_logs,
    mysql_onboard,
    mysql_state,
    rename,
)
from report_pipeline.target.infile import guard_of
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import ColumnChange, Duplicates, Encoding

log = logging.getLogger(__name__)

# MySQL 8, Aurora MySQL 3 and MariaDB: one RENAME TABLE swaps any number of tables atomically.
CAPABILITIES = Capabilities(engine="mysql")
# A plain secondary index line of SHOW CREATE TABLE: "  KEY `name` (`col`,...)" (not UNIQUE/FULLTEXT/SPATIAL).
_PLAIN_KEY = re.compile(r"^\s*KEY\s+(`(?:[^`]|``)+`)\s.*?,?$")


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def bound_session(conn: Any, lock_wait_seconds: int, net_timeout_seconds: int) -> None:
    """Bound every lock wait of a target session, and how long the server waits on a silent client.

    Lock waits (metadata and InnoDB row locks) default to hours or a year on the server: a BI session
    holding a transaction open on a live table would otherwise hold the load (and every reader queued
    behind it) without end. ``net_read_timeout`` is how long the server waits for the next piece of a
    LOAD DATA file: when the client is gone behind a half-open connection, the server rolls the load
    back after that long and frees its locks for the retry, instead of after its default 30 s or more.
    """
    wait, net = int(lock_wait_seconds), int(net_timeout_seconds)
    cursor = conn.cursor()
    try:
        cursor.execute(f"SET SESSION lock_wait_timeout = {wait}, innodb_lock_wait_timeout = {wait}")
        cursor.execute(f"SET SESSION net_read_timeout = {net}, net_write_timeout = {net}")
    finally:
        cursor.close()


class MySqlTarget:
    """A ``Target`` on one mysqlclient connection opened with LOAD DATA LOCAL allowed.

    The connection answers LOCAL INFILE requests only with the part a ``bulk_load`` is loading (see
    ``target.infile``), and every lock wait of its session is bounded by the settings. ``opener``
    (optional) opens another such connection, for ``fork``: parallel shadow loads.
    """

    def __init__(self, conn: Any, settings: Settings | None = None, opener: Callable[[], Any] | None = None) -> None:
        self.conn = conn
        self.settings = settings or Settings()
        self.opener = opener
        # Before the first query: a server that is not who it claims may answer any query with a
        # LOCAL INFILE request. Connections from airflow.connections have it since their handshake.
        self.infile = guard_of(conn)
        prepare_session(conn)
        bound_session(conn, self.settings.target_lock_wait_seconds, self.settings.net_timeout_seconds)
        conn.autocommit(True)
        self.cursor = conn.cursor()
        self.rename_waits = 0

    def capabilities(self) -> Capabilities:
        """Everything ``Capabilities`` names: RENAME TABLE swaps atomically, the server checksums keys."""
        return CAPABILITIES

    def fork(self) -> MySqlTarget:
        """Another session through the same opener (TransferError without one).

        It goes through ``__init__`` like this one: its own LOCAL INFILE guard, bounded waits and UTC.
        """
        if self.opener is None:
            raise TransferError("this target was given no way to open another connection")
        conn = self.opener()
        try:
            return MySqlTarget(conn, self.settings, self.opener)
        except BaseException:
            close_quietly(conn)
            raise

    def close(self) -> None:
        """Close the connection quietly."""
        close_quietly(self.conn)

    def begin(self) -> None:
        """Start a transaction."""
        self.conn.autocommit(False)

    def commit(self) -> None:
        """Commit and return to autocommit."""
        self.conn.commit()
        self.conn.autocommit(True)

    def rollback(self) -> None:
        """Roll back quietly and return to autocommit when the server is still there."""
        rollback_quietly(self.conn)
        try:
            self.conn.autocommit(True)
        except Exception:  # noqa: BLE001 - the server is gone; nothing to return to
            log.debug("could not return to autocommit", exc_info=True)

    @contextlib.contextmanager
    def writer_lock(self, schema: str, table: str, timeout_seconds: int) -> Iterator[None]:
        """A server-wide named lock (GET_LOCK) per target table, held by this session for the block.

        Named locks work alike on MySQL 8, Aurora MySQL and MariaDB, and die with the session, so a
        killed worker never leaves one behind. MySQL limits the name to 64 characters: a digest.
        """
        name = "report_pipeline:" + hashlib.sha1(f"{schema}.{table}".encode()).hexdigest()[:40]
        self.cursor.execute("SELECT GET_LOCK(%s, %s)", (name, timeout_seconds))
        got = self.cursor.fetchone()[0]
        if got != 1:
            raise TargetBusyError(
                f"another load of {schema}.{table} still runs after {timeout_seconds} s "
                "(REPORTS_TABLE_LOCK_TIMEOUT); loads of one table run one at a time"
            )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a dead session has released it already
                self.cursor.execute("DO RELEASE_LOCK(%s)", (name,))

    def schema_exists(self, schema: str) -> bool:
        """Whether the schema exists."""
        self.cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,))
        return self.cursor.fetchone() is not None

    def tables(self, schema: str) -> list[str]:
        """The schema's base tables and views."""
        self.cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,))
        return [str(r[0]) for r in self.cursor.fetchall()]

    def columns(self, schema: str, table: str) -> list[str]:
        """Column names in table order; empty when the table does not exist."""
        self.cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        return [str(r[0]) for r in self.cursor.fetchall()]

    def column_types(self, schema: str, table: str) -> dict[str, str]:
        """COLUMN_TYPE of each column, in table order (e.g. ``int(11)`` on MariaDB, ``int`` on MySQL 8)."""
        self.cursor.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        return {str(r[0]): r[1].decode() if isinstance(r[1], bytes) else str(r[1]) for r in self.cursor.fetchall()}

    def alter_columns(self, schema: str, table: str, changes: Sequence[ColumnChange]) -> None:
        """One ALTER TABLE adding and widening columns (``target.alter``)."""
        alter.alter_columns(self.cursor, schema, table, changes)

    def lob_obstacles(self, schema: str, table: str) -> dict[str, str]:
        """Literal defaults and index membership that keep a column from becoming TEXT/BLOB/JSON (``target.alter``)."""
        return alter.lob_obstacles(self.cursor, schema, table)

    def ensure_schema_log(self, schema: str) -> None:
        """Create ``report_schema_changes`` if needed."""
        mysql_logs.ensure_schema_log(self.cursor, schema)

    def record_schema_change(
        self, schema: str, table: str, change: ColumnChange, logical_date: dt.datetime, run_id: str, load_key: str
    ) -> None:
        """One row of ``report_schema_changes``."""
        mysql_logs.record_schema_change(self.cursor, schema, table, change, logical_date, run_id, load_key)

    def added_columns(self, schema: str, table: str) -> list[str]:
        """Columns schema evolution added to ``table``."""
        return mysql_logs.added_columns(self.cursor, schema, table)

    def unique_keys(self, schema: str, table: str) -> list[tuple[str, ...]]:
        """Columns of each PRIMARY or UNIQUE key."""
        self.cursor.execute(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        keys: dict[str, list[str]] = {}
        for index, column in self.cursor.fetchall():
            keys.setdefault(str(index), []).append(str(column))
        return [tuple(c) for c in keys.values()]

    def key_collations(self, schema: str, table: str) -> dict[str, str]:
        """The collation of each character column of a PRIMARY or UNIQUE key (lower-case column names)."""
        self.cursor.execute(
            "SELECT DISTINCT LOWER(c.COLUMN_NAME), c.COLLATION_NAME FROM information_schema.STATISTICS s "
            "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME "
            "AND c.COLUMN_NAME = s.COLUMN_NAME WHERE s.TABLE_SCHEMA = %s AND s.TABLE_NAME = %s AND s.NON_UNIQUE = 0 "
            "AND c.COLLATION_NAME IS NOT NULL",
            (schema, table),
        )
        return {str(name): str(collation) for name, collation in self.cursor.fetchall()}

    def count_rows(self, schema: str, table: str) -> int:
        """COUNT(*) of the table."""
        self.cursor.execute(f"SELECT COUNT(*) FROM {_name(schema, table)}")
        return int(self.cursor.fetchone()[0])

    def bulk_load(
        self,
        path: str,
        schema: str,
        table: str,
        columns: Sequence[str],
        encodings: Sequence[Encoding],
        duplicates: Duplicates,
    ) -> int:
        """``LOAD DATA LOCAL INFILE`` of one part; any warning but skipped duplicates fails it (``mysql_bulk``)."""
        return mysql_bulk.bulk_load(
            self.conn, self.cursor, self.infile, path, schema, table, columns, encodings, duplicates
        )

    def create_shadow(self, schema: str, like: str, shadow: str) -> None:
        """An empty copy of ``like``'s definition, replacing any leftover of that name."""
        self.cursor.execute(f"DROP TABLE IF EXISTS {_name(schema, shadow)}")
        self.cursor.execute(f"CREATE TABLE {_name(schema, shadow)} LIKE {_name(schema, like)}")

    def drop_secondary_indexes(self, schema: str, table: str) -> list[str]:
        """Drop plain secondary indexes (kept when a foreign key may need them); their definitions."""
        self.cursor.execute(f"SHOW CREATE TABLE {_name(schema, table)}")
        ddl = str(self.cursor.fetchone()[1])
        if "FOREIGN KEY" in ddl.upper():
            return []
        definitions = []
        for line in ddl.splitlines():
            if _PLAIN_KEY.match(line):
                definitions.append(line.strip().rstrip(","))
        if definitions:
            drops = ", ".join("DROP KEY " + str(_PLAIN_KEY.match(d).group(1)) for d in definitions)  # type: ignore[union-attr]
            self.cursor.execute(f"ALTER TABLE {_name(schema, table)} {drops}")
        return definitions

    def add_indexes(self, schema: str, table: str, definitions: Sequence[str]) -> None:
        """One ALTER TABLE adding every index back (sorted index builds, one table rebuild at most)."""
        if definitions:
            self.cursor.execute(f"ALTER TABLE {_name(schema, table)} " + ", ".join(f"ADD {d}" for d in definitions))

    def replace_table(self, schema: str, live: str, shadow: str, retired: str) -> None:
        """One RENAME swaps both names, so readers see the old table or the new one (``target.rename``)."""
        self.replace_tables(schema, [(live, shadow, retired)])

    def replace_tables(self, schema: str, swaps: Sequence[tuple[str, str, str]], keep_retired: bool = False) -> None:
        """Every (live, shadow, retired) swapped in by one RENAME, atomic across the tables (``target.rename``)."""
        self.rename_waits += rename.swap_in(self.cursor, self.settings, schema, swaps, keep_retired)

    def has_rows(self, schema: str, table: str) -> bool:
        """Whether the table holds any row (one index probe, whatever its size)."""
        return bool(self.cursor.execute(f"SELECT 1 FROM {_name(schema, table)} LIMIT 1"))

    def merge_into(self, schema: str, table: str, source: str, columns: Sequence[str], duplicates: Duplicates) -> int:
        """INSERT/REPLACE ... SELECT in the current transaction (``mysql_bulk``); rows copied."""
        return mysql_bulk.merge_into(self.cursor, schema, table, source, columns, duplicates)

    def ensure_as_of(self, schema: str) -> None:
        """Create ``report_as_of`` and its company row if needed."""
        mysql_state.ensure_as_of(self.cursor, schema)

    def record_as_of(self, schema: str, entry: AsOf, replace: bool, company_tables: Sequence[str] | None) -> None:
        """The table's as-of row and the company's, in the current transaction (``mysql_state``)."""
        mysql_state.record_as_of(self.cursor, schema, entry, replace=replace, company_tables=company_tables)

    def drop_tables(self, schema: str, *tables: str) -> None:
        """DROP TABLE IF EXISTS for each."""
        if tables:
            self.cursor.execute("DROP TABLE IF EXISTS " + ", ".join(_name(schema, t) for t in tables))

    def ensure_ledger(self, schema: str) -> None:
        """Create ``report_loads`` if needed."""
        mysql_ledger.ensure_ledger(self.cursor, schema)

    def find_load(self, schema: str, load_key: str) -> LoadRecord | None:
        """The ledger row of these extracts."""
        return mysql_ledger.find_load(self.cursor, schema, load_key)

    def newer_swap(
        self, schema: str, table: str, logical_date: dt.datetime, snapshot_at: dt.datetime | None = None
    ) -> dt.datetime | None:
        """A newer full refresh's logical date."""
        return mysql_ledger.newer_swap(self.cursor, schema, table, logical_date, snapshot_at)

    def record_load(self, schema: str, entry: LoadRecord) -> None:
        """The ledger row, in the current transaction."""
        mysql_ledger.record_load(self.cursor, schema, entry)

    def ensure_pending(self, schema: str) -> None:
        """Create ``report_pending`` if needed."""
        mysql_state.ensure_pending(self.cursor, schema)

    def record_pending(self, schema: str, entry: PendingShadow) -> None:
        """Register a ready shadow."""
        mysql_state.record_pending(self.cursor, schema, entry)

    def pending(self, schema: str) -> dict[str, PendingShadow]:
        """The schema's pending shadows by table."""
        return mysql_state.read_pending(self.cursor, schema)

    def mark_publishing(self, schema: str, tables: Sequence[str]) -> None:
        """Note that these shadows are about to be renamed in."""
        mysql_state.mark_publishing(self.cursor, schema, tables)

    def remove_pending(self, schema: str, tables: Sequence[str]) -> None:
        """Forget these tables' pending shadows."""
        mysql_state.remove_pending(self.cursor, schema, tables)

    def ensure_watermarks(self, schema: str) -> None:
        """Create ``report_watermarks`` if needed."""
        mysql_state.ensure_watermarks(self.cursor, schema)

    def watermark(self, schema: str, table: str) -> Watermark | None:
        """The stored watermark of ``table``."""
        return mysql_state.read_watermark(self.cursor, schema, table)

    def write_watermark(self, schema: str, mark: Watermark) -> None:
        """The watermark row, in the current transaction."""
        mysql_state.write_watermark(self.cursor, schema, mark)

    # --- delete detection (target.keysets): the source's key set in a TEMPORARY table

    def create_key_table(self, schema: str, table: str, columns: Sequence[str]) -> str:
        """A TEMPORARY table with ``table``'s key columns and types, keyed on them."""
        return keysets.create_key_table(self.cursor, schema, table, columns)

    def key_checksum(self, schema: str, table: str, columns: Sequence[str]) -> tuple[int, int]:
        """Row count and key checksum, computed by the server."""
        return keysets.key_checksum(self.cursor, schema, table, columns)

    def missing_keys(
        self, schema: str, table: str, keys_table: str, columns: Sequence[str]
    ) -> tuple[int, list[tuple[Any, ...]] | None]:
        """How many rows of ``table`` have keys not in ``keys_table``, and those keys (None: too many to hold)."""
        return keysets.missing_keys(self.conn, schema, table, keys_table, columns)

    def delete_keys(self, schema: str, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> int:
        """DELETE the rows with these keys, in the current transaction."""
        return keysets.delete_keys(self.cursor, schema, table, columns, keys)

    def delete_missing(self, schema: str, table: str, keys_table: str, columns: Sequence[str]) -> int:
        """DELETE every row whose key is not in ``keys_table``, in one statement."""
        return keysets.delete_missing(self.cursor, schema, table, keys_table, columns)

    def drop_key_table(self, schema: str, keys_table: str) -> None:
        """DROP TEMPORARY TABLE (does not end the transaction)."""
        keysets.drop_key_table(self.cursor, schema, keys_table)

    # --- schemas and tables, for onboarding

    def create_schema(self, schema: str) -> None:
        """Create the schema (``mysql_onboard``)."""
        mysql_onboard.create_schema(self.cursor, schema)

    def create_table_from(self, source: Any, schema: str, table: str, keep: Sequence[str]) -> None:
        """Create ``schema.table`` as the source's table, kept to the ``keep`` columns (``mysql_onboard``)."""
        mysql_onboard.create_table_from(self.cursor, source, schema, table, keep)

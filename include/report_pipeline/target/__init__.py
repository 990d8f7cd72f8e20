"""What the load needs from a target database: small protocols by concern, and the abilities an engine has.

The load and its strategies speak only to these protocols; everything specific to one engine (statements,
driver calls, error numbers) lives in that engine's modules here, e.g. ``mysql.py`` and its helpers
``mysql_*.py``. Each function annotates the narrowest protocol it needs; ``Target`` is their union, what a
whole engine implements. Optional abilities are flags (``Capabilities``, as dlt's ``capabilities()``): the
load reads them and refuses, naming the admin row, a mode the engine cannot do (``intake.capability_problem``).

A new engine: one module (say ``target/postgres.py``) with a class that has every method below (checked by
tests/unit/test_target_protocols.py for each implementation), its ``capabilities()``, and an opener where
connections are made (``airflow/connections.py``). The bookkeeping tables' rows are ``records``' values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from report_pipeline.records import AsOf, LoadRecord, PendingShadow, Watermark
from report_pipeline.vocabulary import ColumnChange, Duplicates, Encoding


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do beyond the protocols' basics; the load refuses a mode that needs what is missing.

    ``shadow_swap``: load a shadow table and put it in place of the live one atomically (readers see one
    or the other), merge a table into another on the server (load_mode ``swap``, fast first loads).
    ``atomic_multi_table_rename``: several such swaps in ONE atomic statement (``publish_together``).
    ``key_checksums``: a server-side count and checksum of a table's keys, and a session-private key table
    (``delete_detection = 'keys'``).
    """

    engine: str
    shadow_swap: bool = True
    atomic_multi_table_rename: bool = True
    key_checksums: bool = True


@runtime_checkable
class Session(Protocol):
    """One session on a target server: transactions, the writer lock, more sessions, its abilities."""

    def capabilities(self) -> Capabilities:
        """What this engine can do (the same for every session of one engine)."""

    def fork(self) -> Target:
        """Another session on the same server, of the same kind, for loads that run in parallel.

        The caller closes it (``close``). Raises TransferError when this target cannot open more.
        """

    def close(self) -> None:
        """Close this session quietly (a forked one; the caller of ``load`` closes the first)."""

    def begin(self) -> None:
        """Start a transaction: what follows commits or rolls back as one."""

    def commit(self) -> None:
        """Commit the transaction and return to autocommit."""

    def rollback(self) -> None:
        """Roll back the transaction (quietly: the server may be gone) and return to autocommit."""

    def writer_lock(self, schema: str, table: str, timeout_seconds: int) -> AbstractContextManager[None]:
        """Hold the one-writer lock of ``schema.table`` for the block; TransferError after the timeout."""


@runtime_checkable
class Catalogue(Protocol):
    """What the target's schemas and tables look like, read only."""

    def schema_exists(self, schema: str) -> bool:
        """Whether the schema exists."""

    def tables(self, schema: str) -> list[str]:
        """The names of the schema's tables."""

    def columns(self, schema: str, table: str) -> list[str]:
        """The table's column names in table order; empty when the table does not exist."""

    def column_types(self, schema: str, table: str) -> dict[str, str]:
        """The table's column names and types (as its catalogue spells them), in table order."""

    def key_collations(self, schema: str, table: str) -> dict[str, str]:
        """The collation of each character column of a PRIMARY or UNIQUE key (lower-case column names)."""

    def unique_keys(self, schema: str, table: str) -> list[tuple[str, ...]]:
        """The columns of each PRIMARY or UNIQUE key of the table."""

    def count_rows(self, schema: str, table: str) -> int:
        """The table's row count."""

    def has_rows(self, schema: str, table: str) -> bool:
        """Whether the table holds any row."""


@runtime_checkable
class ColumnChanges(Protocol):
    """Schema evolution: columns added and widened in place."""

    def alter_columns(self, schema: str, table: str, changes: Sequence[ColumnChange]) -> None:
        """Add and widen columns in one statement (all or none), keeping each widened column's other attributes."""

    def lob_obstacles(self, schema: str, table: str) -> dict[str, str]:
        """Columns that cannot become TEXT/BLOB/JSON in place (lower-cased name -> why)."""

    def added_columns(self, schema: str, table: str) -> list[str]:
        """The columns schema evolution added to ``table``."""


@runtime_checkable
class BulkLoad(Protocol):
    """Rows into a table: a local CSV file, or another table's rows."""

    def bulk_load(
        self,
        path: str,
        schema: str,
        table: str,
        columns: Sequence[str],
        encodings: Sequence[Encoding],
        duplicates: Duplicates,
    ) -> int:
        """Load one local CSV file (``csvformat``) into ``columns``; returns the rows read.

        Raises TransferError when any value would be changed on the way in (no warning is tolerated
        except duplicate keys skipped under ``ignore``).
        """

    def merge_into(self, schema: str, table: str, source: str, columns: Sequence[str], duplicates: Duplicates) -> int:
        """Copy ``source``'s rows into ``table`` in the current transaction, duplicates as a load treats them."""


@runtime_checkable
class ShadowSwap(Protocol):
    """A shadow table loaded beside the live one and put in its place (``Capabilities.shadow_swap``)."""

    def create_shadow(self, schema: str, like: str, shadow: str) -> None:
        """Create an empty ``shadow`` table shaped like ``like``, replacing any leftover of that name."""

    def drop_secondary_indexes(self, schema: str, table: str) -> list[str]:
        """Drop the table's plain (non-unique) secondary indexes; returns their definitions for ``add_indexes``.

        Unique keys stay, as they decide which duplicate wins; returns [] when nothing may be dropped.
        """

    def add_indexes(self, schema: str, table: str, definitions: Sequence[str]) -> None:
        """Build the indexes ``drop_secondary_indexes`` returned, in one statement."""

    def replace_table(self, schema: str, live: str, shadow: str, retired: str) -> None:
        """Atomically put ``shadow`` in place of ``live`` (readers see one or the other), then drop the old."""

    def replace_tables(self, schema: str, swaps: Sequence[tuple[str, str, str]], keep_retired: bool = False) -> None:
        """Every (live, shadow, retired) swapped in by ONE rename, atomic across the tables; then drop the old
        ones (unless ``keep_retired``)."""

    def drop_tables(self, schema: str, *tables: str) -> None:
        """Drop tables if they exist."""


@runtime_checkable
class KeySets(Protocol):
    """Delete detection: the source's key set beside the table, compared by key (``Capabilities.key_checksums``)."""

    def create_key_table(self, schema: str, table: str, columns: Sequence[str]) -> str:
        """A session-private table for the key set of ``table`` (its ``columns``, their types); its name."""

    def missing_keys(
        self, schema: str, table: str, keys_table: str, columns: Sequence[str]
    ) -> tuple[int, list[tuple[Any, ...]] | None]:
        """How many of ``table``'s rows have keys not in ``keys_table`` (read without locking rows), and
        those keys, or None when there are more than a worker should hold."""

    def delete_keys(self, schema: str, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> int:
        """Delete the rows with these keys in the current transaction; returns how many."""

    def delete_missing(self, schema: str, table: str, keys_table: str, columns: Sequence[str]) -> int:
        """Delete every row of ``table`` whose key is not in ``keys_table``, in the current transaction."""

    def drop_key_table(self, schema: str, keys_table: str) -> None:
        """Drop the key table (quietly: the session may be gone, and the table with it)."""

    def key_checksum(self, schema: str, table: str, columns: Sequence[str]) -> tuple[int, int]:
        """COUNT(*) and SUM(CRC32(CONCAT_WS('#', columns))) of ``table``, in the current transaction."""


@runtime_checkable
class LedgerStore(Protocol):
    """The load ledger ``report_loads`` (``report_pipeline.ledger``)."""

    def ensure_ledger(self, schema: str) -> None:
        """Create the load ledger in ``schema`` if needed."""

    def find_load(self, schema: str, load_key: str) -> LoadRecord | None:
        """The ledger row of a load of exactly these extracts, if it committed."""

    def newer_swap(
        self, schema: str, table: str, logical_date: dt.datetime, snapshot_at: dt.datetime | None = None
    ) -> dt.datetime | None:
        """The logical date of a newer full refresh of ``table`` already loaded, if any."""

    def record_load(self, schema: str, entry: LoadRecord) -> None:
        """Add the ledger row of a successful load, in the current transaction."""


@runtime_checkable
class SchemaLogStore(Protocol):
    """The schema change log ``report_schema_changes`` (``report_pipeline.schemalog``)."""

    def ensure_schema_log(self, schema: str) -> None:
        """Create the schema change log in ``schema`` if needed (before the load's transaction)."""

    def record_schema_change(
        self, schema: str, table: str, change: ColumnChange, logical_date: dt.datetime, run_id: str, load_key: str
    ) -> None:
        """Add a schema change to the log, in the current transaction (autocommit outside one)."""


@runtime_checkable
class AsOfStore(Protocol):
    """The as-of table ``report_as_of`` (``report_pipeline.asof``)."""

    def ensure_as_of(self, schema: str) -> None:
        """Create the as-of table (``report_as_of``) and its company row in ``schema`` if needed."""

    def record_as_of(self, schema: str, entry: AsOf, replace: bool, company_tables: Sequence[str] | None) -> None:
        """Set the table's as-of (``replace``: whatever it was; else only forward) and the company's, in the
        current transaction."""


@runtime_checkable
class PendingStore(Protocol):
    """Shadows waiting for their company's publish, ``report_pending`` (``report_pipeline.pending``)."""

    def ensure_pending(self, schema: str) -> None:
        """Create the table of shadows waiting for their company's publish (``report_pending``) if needed."""

    def record_pending(self, schema: str, entry: PendingShadow) -> None:
        """Register a loaded, checked shadow waiting for its company's publish (replacing the table's earlier one)."""

    def pending(self, schema: str) -> dict[str, PendingShadow]:
        """The shadows waiting for their company's publish, by table."""

    def mark_publishing(self, schema: str, tables: Sequence[str]) -> None:
        """Note (committed) that these tables' shadows are about to be renamed in."""

    def remove_pending(self, schema: str, tables: Sequence[str]) -> None:
        """Forget these tables' pending shadows (in the current transaction, autocommit outside one)."""


@runtime_checkable
class WatermarkStore(Protocol):
    """Incremental loads' watermarks, ``report_watermarks`` (``report_pipeline.watermarks``)."""

    def ensure_watermarks(self, schema: str) -> None:
        """Create the watermark table in ``schema`` if needed (before the load's transaction)."""

    def watermark(self, schema: str, table: str) -> Watermark | None:
        """The stored watermark of ``table``, if an incremental load has set one."""

    def write_watermark(self, schema: str, mark: Watermark) -> None:
        """Store a table's watermark in the current transaction."""


@runtime_checkable
class Bookkeeping(LedgerStore, SchemaLogStore, AsOfStore, PendingStore, WatermarkStore, Protocol):
    """Every bookkeeping table a load writes in the company's schema beside its rows."""


@runtime_checkable
class Target(Session, Catalogue, ColumnChanges, BulkLoad, ShadowSwap, KeySets, Bookkeeping, Protocol):
    """One session on a target server, as the load uses it: every concern at once."""


# The protocols a whole engine implements, one per concern (tests check each implementation has them all).
CONCERNS: tuple[type, ...] = (
    Session,
    Catalogue,
    ColumnChanges,
    BulkLoad,
    ShadowSwap,
    KeySets,
    LedgerStore,
    SchemaLogStore,
    AsOfStore,
    PendingStore,
    WatermarkStore,
)

"""The package's shared vocabulary: names and plain value types that many modules use and none implements.

Like dlt's ``common/schema/typing.py``, this module sits below everything else and imports nothing of
the package but its exceptions, so the config model, the load's strategies and the steps they call can
all speak of a load mode, a chunk or a cursor range without importing each other (the import graph is
one-way, ``tests/unit/test_import_graph.py``). What a name *does* lives with its implementation:
``modes``/``strategies`` (the strategies of ``LoadMode``), ``evolution`` (of ``SchemaEvolution``), ``chunks`` (planning
and binding a ``Chunk``), ``incremental`` (cursor ranges and key sets), ``ledger``/``watermarks``/
``schemalog`` (the reserved tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from report_pipeline.errors import TransferError

# Load modes (``tables.load_mode``): the single source of truth; ``strategies.STRATEGIES`` has one strategy each.
LoadMode = Literal["upsert", "swap", "incremental"]
LOAD_MODES: tuple[LoadMode, ...] = get_args(LoadMode)
DEFAULT_LOAD_MODE: LoadMode = "upsert"

# Schema evolution policies (``tables.schema_evolution``; ``evolution`` says what each does).
SchemaEvolution = Literal["fail", "evolve"]
SCHEMA_EVOLUTIONS: tuple[SchemaEvolution, ...] = ("fail", "evolve")
DEFAULT_SCHEMA_EVOLUTION: SchemaEvolution = "fail"

# How a loaded row whose key already exists is treated (query_insert's REPLACE / INSERT / INSERT IGNORE).
Duplicates = Literal["replace", "insert", "ignore"]

# How one CSV column's values are written (``csvformat``).
Encoding = Literal["text", "hex", "bit"]

# Tables the load itself owns in every target schema: the ledger (``ledger``), the watermarks
# (``watermarks``), the schema change log (``schemalog``), and, by prefix, the shadow and retired tables
# of a swap (``modes.shadow_names``). A table spec loading into them would corrupt the load status.
LEDGER_TABLE = "report_loads"
WATERMARK_TABLE = "report_watermarks"
SCHEMA_LOG_TABLE = "report_schema_changes"
RECONCILE_LOG_TABLE = "report_reconciles"
AS_OF_TABLE = "report_as_of"
PENDING_TABLE = "report_pending"
RESERVED_TARGET_TABLES = frozenset(
    {LEDGER_TABLE, WATERMARK_TABLE, SCHEMA_LOG_TABLE, RECONCILE_LOG_TABLE, AS_OF_TABLE, PENDING_TABLE}
)
RESERVED_TARGET_PREFIX = "_rp_"


@dataclass(frozen=True)
class ColumnChange:
    """One change schema evolution makes to a target table."""

    column: str
    change: Literal["add", "widen"]
    old_type: str | None
    new_type: str


# The kinds of incremental cursor column (``incremental.cursor.cursor_problem`` says which types are which).
CursorKind = Literal["integer", "time"]


@dataclass(frozen=True)
class Horizon:
    """What one snapshot allows the watermark to become (``incremental.horizon.decide``).

    ``ceiling``: the highest value the watermark may take from this snapshot (None: no move).
    ``pending``/``writers`` (integer cursors): the value that counts once the comma-separated
    transactions ``writers`` have all ended. ``guarded`` is False when open transactions could not be
    read: the ceiling is then the highest value seen and only the overlap protects late rows.
    """

    ceiling: str | None
    pending: str | None = None
    writers: str = ""
    guarded: bool = True

    def to_json(self) -> dict[str, Any]:
        """The horizon as a JSON object (it travels inside a chunk, through XCom)."""
        return {"ceiling": self.ceiling, "pending": self.pending, "writers": self.writers, "guarded": self.guarded}

    @classmethod
    def from_json(cls, value: Any) -> Horizon:
        """Read ``to_json``'s form back."""
        return cls(value.get("ceiling"), value.get("pending"), value.get("writers", ""), bool(value.get("guarded")))


@dataclass(frozen=True)
class CursorRange:
    """What an incremental extract read: rows whose cursor column is >= ``since`` (None: every row).

    Values are the source's own text forms (an integer, or ``YYYY-MM-DD[ HH:MM:SS[.ffffff]]`` in UTC).
    ``snapshot_at`` is the source server's UTC clock when the extract's consistent snapshot began:
    loads of one table are ordered by it, so an older extract never overwrites newer rows.
    """

    column: str
    kind: CursorKind
    since: str | None
    max_seen: str | None
    snapshot_at: str
    reset: bool = False
    # The commit horizon (report_pipeline.incremental.horizon): the highest value the watermark may take from this
    # extract, the integer value pending until the comma-separated ``writers`` end, and whether open
    # transactions could be read at all. ``guarded`` None: a manifest of older code (max_seen counts).
    ceiling: str | None = None
    pending: str | None = None
    writers: str = ""
    guarded: bool | None = None
    # Which server the rows came from and its GTID position before the snapshot (horizon.SourceServer).
    server: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class KeyColumns:
    """The key set of one load: its columns and encodings, and its row count and checksum (if known)."""

    columns: tuple[str, ...]
    encodings: tuple[Encoding, ...]
    rows: int
    checksum: int | None


@dataclass(frozen=True)
class Chunk:
    """One chunk of a plan: the rows with ``low <= column < high`` (None: open), or those with NULL.

    ``index`` and ``count`` place it in its plan, so the load can tell that it was given every chunk.
    It travels as JSON (``to_json``): through XCom to its extract, and inside the extract's manifest.
    """

    index: int
    count: int
    low: int | None = None
    high: int | None = None
    nulls: bool = False
    # An incremental table's commit horizon, read once at planning before any chunk (tasks.plan_table_chunks):
    # the load's watermark never passes what that earliest snapshot allowed, however late a chunk runs.
    horizon: Horizon | None = None

    def label(self, column: str | None) -> str:
        """What the chunk covers, as the UI names its mapped extract: ``id [250, 500)``, ``id IS NULL``."""
        col = column or "chunk"
        if self.nulls:
            return f"{col} IS NULL"
        if self.low is None and self.high is None:
            return f"{col} IS NOT NULL"
        if self.low is None:
            return f"{col} < {self.high}"
        if self.high is None:
            return f"{col} >= {self.low}"
        return f"{col} [{self.low}, {self.high})"

    def to_json(self) -> dict[str, Any]:
        """The chunk as a JSON object; ``None`` bounds are open ends, ``nulls`` marks the NULL chunk."""
        body: dict[str, Any] = {
            "index": self.index,
            "count": self.count,
            "low": self.low,
            "high": self.high,
            "nulls": self.nulls,
        }
        if self.horizon is not None:
            body["horizon"] = self.horizon.to_json()
        return body

    @classmethod
    def from_json(cls, value: Any) -> Chunk:
        """Read ``to_json``'s form back; TransferError for anything else (a hand-edited XCom)."""
        try:
            if not isinstance(value, Mapping):
                raise TypeError(f"not an object: {value!r}")
            index, count, nulls = value["index"], value["count"], value.get("nulls", False)
            low, high = value.get("low"), value.get("high")
            ints = (index, count, *(b for b in (low, high) if b is not None))
            if any(isinstance(v, bool) or not isinstance(v, int) for v in ints) or not isinstance(nulls, bool):
                raise TypeError(f"index, count and bounds must be integers: {dict(value)!r}")
            if not 0 <= index < count or (nulls and (low, high) != (None, None)):
                raise ValueError(f"not a chunk of a plan: {dict(value)!r}")
            if low is not None and high is not None and low >= high:
                raise ValueError(f"empty range: {dict(value)!r}")
            horizon = Horizon.from_json(value["horizon"]) if value.get("horizon") is not None else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransferError(f"malformed chunk: {exc}") from exc
        return cls(index, count, low, high, nulls, horizon)

"""Load modes: one closed set of names, each a small strategy class chosen from a registry.

``LoadMode`` is the single source of truth; ``LOAD_MODES`` is derived from it (as dlt derives its write
dispositions from ``TWriteDisposition``). A strategy decides where the rows go and how they become
visible: ``prepare`` (or say why nothing is to be done), ``load_parts``, ``finish``, and ``abort`` on
failure. ``load.py`` runs every strategy the same way and has no mode branches. To add a mode: add its
name to ``LoadMode``, write its class here, and register it in ``STRATEGIES``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from report_pipeline.csvformat import Encoding
from report_pipeline.errors import TransferError
from report_pipeline.manifest import Part
from report_pipeline.target import Duplicates, Target

log = logging.getLogger(__name__)

LoadMode = Literal["upsert", "swap"]
LOAD_MODES: tuple[LoadMode, ...] = get_args(LoadMode)
DEFAULT_LOAD_MODE: LoadMode = "upsert"


@dataclass(frozen=True)
class LoadJob:
    """Everything a strategy needs to know about one load."""

    target: Target
    schema: str
    table: str
    columns: tuple[str, ...]
    encodings: tuple[Encoding, ...]
    duplicates: Duplicates
    expected_rows: int
    logical_date: dt.datetime
    run_id: str
    load_key: str
    manifest_keys: tuple[str, ...]
    # Target sessions a strategy that loads a table no reader sees may use at once (1: serial).
    parallelism: int = 1
    # Swap: build the shadow's plain secondary indexes after its rows are in, in one ALTER.
    defer_indexes: bool = False


def _remove_quietly(path: str) -> None:
    # The part's file belongs to the loader once handed over; the load's temp dir removes any left.
    try:
        os.remove(path)
    except OSError:
        pass


def load_part(target: Target, job: LoadJob, into: str, duplicates: Duplicates, part: Part, path: str) -> int:
    """Bulk-load one local part file (then remove it); its row count must be the manifest's."""
    try:
        records = target.bulk_load(path, job.schema, into, job.columns, job.encodings, duplicates)
    except TransferError as exc:
        raise TransferError(f"{part.key}: {exc}") from exc
    finally:
        _remove_quietly(path)
    if records != part.rows:
        raise TransferError(f"{part.key}: LOAD DATA read {records} rows, the manifest says {part.rows}")
    return records


def load_in_parallel(
    target: Target, sessions: int, parts: Iterable[tuple[Part, str]], load_one: Callable[[Target, Part, str], int]
) -> int:
    """Load parts over ``sessions`` target sessions at once (``target`` plus forks of it); rows loaded.

    Each session takes the next part as it finishes one. The first failure stops the others from
    taking more (each ends the part it is loading, at most one part's time) and is raised as it was,
    so the load fails with that part's error. Every forked session is closed before this returns.
    """
    source: Iterator[tuple[Part, str]] = iter(parts)
    lock = threading.Lock()
    failed = threading.Event()
    errors: list[BaseException] = []

    def take() -> tuple[Part, str] | None:
        # The part iterator is a generator: one thread at a time may advance it.
        with lock:
            return None if failed.is_set() else next(source, None)

    def work(session: Target) -> int:
        count = 0
        try:
            while (item := take()) is not None:
                count += load_one(session, *item)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises the first
            with lock:
                errors.append(exc)
            failed.set()
        return count

    forks: list[Target] = []
    try:
        for _ in range(sessions - 1):
            forks.append(target.fork())
        with ThreadPoolExecutor(len(forks) + 1, thread_name_prefix="rp-load") as pool:
            futures = [pool.submit(work, s) for s in (target, *forks)]
            loaded = sum(f.result() for f in futures)
    finally:
        for fork in forks:
            fork.close()
    if errors:
        raise errors[0]
    return loaded

class LoadStrategy:
    """One load mode. Subclasses set ``mode`` and override the steps that differ."""

    mode: ClassVar[LoadMode]

    def __init__(self, job: LoadJob) -> None:
        self.job = job

    @property
    def into(self) -> str:
        """The table the parts are loaded into."""
        return self.job.table

    @property
    def duplicates(self) -> Duplicates:
        """How rows whose key already exists are treated."""
        return self.job.duplicates

    def refusal(self) -> str | None:
        """Why this load must not happen (a skip, target unchanged), or None to go ahead."""
        return None

    @property
    def sessions(self) -> int:
        """Target sessions ``load_parts`` uses at once (the load prefetches as many parts)."""
        return 1

    def prepare(self) -> None:
        """Get the target ready to receive the parts."""

    def load_parts(self, parts: Iterable[tuple[Part, str]]) -> int:
        """Load each (part, local file, removed once loaded) in one transaction; returns the rows loaded."""
        job = self.job
        job.target.begin()
        loaded = 0
        for part, path in parts:
            loaded += self._load_one(job.target, part, path)
        self._check_total(loaded)
        return loaded

    def _load_one(self, target: Target, part: Part, path: str) -> int:
        return load_part(target, self.job, self.into, self.duplicates, part, path)

    def _check_total(self, loaded: int) -> None:
        job = self.job
        if loaded != job.expected_rows:
            raise TransferError(f"loaded {loaded} rows, the manifests list {job.expected_rows}")

    def finish(self, loaded: int) -> None:
        """Make the load visible and record it in the ledger."""
        self._record(loaded)
        self.job.target.commit()

    def abort(self) -> None:
        """Undo what a failed load did, so the target is as it was."""
        self.job.target.rollback()

    def _record(self, loaded: int) -> None:
        job = self.job
        job.target.record_load(
            job.schema,
            table=job.table,
            logical_date=job.logical_date,
            run_id=job.run_id,
            rows=loaded,
            load_mode=self.mode,
            load_key=job.load_key,
            manifest_keys=job.manifest_keys,
        )


class Upsert(LoadStrategy):
    """The seed's REPLACE/INSERT: every part and the ledger row land in one transaction."""

    mode = "upsert"


def shadow_names(table: str) -> tuple[str, str]:
    """The shadow (new copy) and retired (old copy) table names a swap uses for ``table``."""
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"_rp_new_{table[:40]}_{digest}", f"_rp_old_{table[:40]}_{digest}"


class Swap(LoadStrategy):
    """Full refresh: load a shadow table built like the target, check its count, one atomic RENAME.

    No reader sees the shadow, so its parts load over ``job.parallelism`` sessions at once, each
    statement committing on its own; all-or-nothing comes from the count check, the one RENAME, and
    ``abort`` dropping the shadow.
    """

    mode = "swap"

    def __init__(self, job: LoadJob) -> None:
        super().__init__(job)
        self.shadow, self.retired = shadow_names(job.table)
        self.deferred_indexes: list[str] = []

    @property
    def sessions(self) -> int:
        """Parallel sessions into the shadow."""
        return max(1, self.job.parallelism)

    @property
    def into(self) -> str:
        """The shadow table: no reader sees it until the RENAME."""
        return self.shadow

    @property
    def duplicates(self) -> Duplicates:
        """The shadow starts empty; duplicates within the extract keep the last row, as upsert does."""
        return "replace"

    def refusal(self) -> str | None:
        """An older window than one already swapped in is refused."""
        job = self.job
        newer = job.target.newer_swap(job.schema, job.table, job.logical_date)
        if newer is not None:
            log.warning(
                "%s.%s: not swapping in the window of %s over the newer one of %s already loaded "
                "(a backfill of an older date must not replace a full refresh with older data)",
                job.schema,
                job.table,
                job.logical_date.date(),
                newer,
            )
            return "older-window"
        return None

    def prepare(self) -> None:
        """An empty shadow built like the target."""
        job = self.job
        job.target.drop_tables(job.schema, self.retired)
        job.target.create_shadow(job.schema, job.table, self.shadow)
        if job.defer_indexes:
            self.deferred_indexes = job.target.drop_secondary_indexes(job.schema, self.shadow)

    def load_parts(self, parts: Iterable[tuple[Part, str]]) -> int:
        """Load the shadow (over parallel sessions when allowed); nobody reads it yet, so it commits here."""
        if self.sessions <= 1:
            loaded = super().load_parts(parts)
            self.job.target.commit()
            return loaded
        loaded = load_in_parallel(self.job.target, self.sessions, parts, self._load_one)
        self._check_total(loaded)
        return loaded

    def finish(self, loaded: int) -> None:
        """Count the shadow, swap it in with one RENAME, then record the load."""
        job = self.job
        job.target.add_indexes(job.schema, self.shadow, self.deferred_indexes)
        counted = job.target.count_rows(job.schema, self.shadow)
        if counted != job.expected_rows:
            raise TransferError(f"shadow table holds {counted} rows, the manifests list {job.expected_rows}")
        job.target.replace_table(job.schema, job.table, self.shadow, self.retired)
        job.target.begin()
        super().finish(loaded)

    def abort(self) -> None:
        """Roll back and drop the shadow, so nothing is left behind."""
        super().abort()
        job = self.job
        try:
            job.target.drop_tables(job.schema, self.shadow)
            return
        except Exception:  # noqa: BLE001 - this session may be the one that failed; try a fresh one
            log.debug("could not drop the shadow on the load's session", exc_info=True)
        try:
            fresh = job.target.fork()
            try:
                fresh.drop_tables(job.schema, self.shadow)
            finally:
                fresh.close()
        except Exception:  # noqa: BLE001 - the server may be gone; the next attempt replaces the shadow
            log.warning("could not drop shadow table %s.%s", job.schema, self.shadow, exc_info=True)


STRATEGIES: dict[LoadMode, type[LoadStrategy]] = {s.mode: s for s in (Upsert, Swap)}


def strategy_for(mode: str) -> type[LoadStrategy]:
    """The strategy class of a load mode; TransferError for a name not in ``LOAD_MODES``."""
    try:
        return STRATEGIES[mode]  # type: ignore[index]
    except KeyError:
        raise TransferError(f"load_mode {mode!r} is not one of {LOAD_MODES}") from None


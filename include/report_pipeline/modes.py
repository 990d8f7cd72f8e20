"""Load modes: one closed set of names, each a small strategy class chosen from a registry.

``vocabulary.LoadMode`` is the single source of truth; ``LOAD_MODES`` is derived from it (as dlt derives
its write dispositions from ``TWriteDisposition``). A strategy decides where the rows go and how they
become visible: ``prepare`` (or say why nothing is to be done), ``load_parts``, ``finish``, and ``abort``
on failure. ``load.py`` runs every strategy the same way and has no mode branches. This module holds the
base class and the two modes without state of their own (``upsert``, ``swap``); ``incremental``, with its
cursor, horizon and deletes, is the package ``report_pipeline.incremental`` (``incremental.strategy``).
To add a mode: add its name to ``vocabulary.LoadMode``, write its class (here, or in a package of its
own when it brings more than a class), and register it in ``strategies.STRATEGIES``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable
from typing import ClassVar

from report_pipeline.collations import merge_problem
from report_pipeline.errors import RefusedError, TransferError
from report_pipeline.evolution import evolve_table, record_changes
from report_pipeline.guards import key_problem
from report_pipeline.job import LoadJob
from report_pipeline.ledger import LoadRecord
from report_pipeline.manifest import Part
from report_pipeline.parallel import load_in_parallel
from report_pipeline.target import Target
from report_pipeline.vocabulary import Duplicates, LoadMode

log = logging.getLogger(__name__)


def load_part(target: Target, job: LoadJob, into: str, duplicates: Duplicates, part: Part, path: str) -> int:
    """Bulk-load one local part file (then remove it); its row count must be the manifest's."""
    try:
        records = target.bulk_load(path, job.schema, into, job.columns, job.encodings, duplicates)
    except TransferError as exc:
        raise type(exc)(f"{part.key}: {exc}") from exc  # the class says whether a retry can help
    finally:
        # The part's file belongs to the loader once handed over; the load's temp dir removes any left.
        with contextlib.suppress(OSError):
            os.remove(path)
    if records != part.rows:
        raise TransferError(f"{part.key}: LOAD DATA read {records} rows, the manifest says {part.rows}")
    return records


class LoadStrategy:
    """One load mode. Subclasses set ``mode`` and override the steps that differ."""

    mode: ClassVar[LoadMode]
    # Whether the target needs a PRIMARY or UNIQUE key of loaded columns (rows are replaced by key).
    needs_key: ClassVar[bool] = False

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

    def delete_missing(self, key_parts: Iterable[tuple[Part, str]]) -> int:
        """Delete the target rows whose keys the source no longer returns; 0 for modes without it."""
        return 0

    def finish(self, loaded: int) -> None:
        """Make the load visible and record it in the ledger."""
        self._record(loaded)
        self.job.target.commit()

    def abort(self) -> None:
        """Undo what a failed load did, so the target is as it was."""
        self.job.target.rollback()

    def _record(self, loaded: int) -> None:
        job = self.job
        entry = LoadRecord(
            table_name=job.table,
            logical_date=job.logical_date,
            run_id=job.run_id,
            rows_loaded=loaded,
            load_mode=self.mode,
            load_key=job.load_key,
            manifest_keys=job.manifest_keys,
            snapshot_at=job.snapshot_at,
        )
        job.target.record_load(job.schema, entry)
        if job.as_of is not None:
            job.target.record_as_of(job.schema, job.as_of, self.mode == "swap", job.company_tables)


class Upsert(LoadStrategy):
    """The seed's REPLACE/INSERT: every part and the ledger row land in one transaction."""

    mode: ClassVar[LoadMode] = "upsert"
    needs_key = True

    def prepare(self) -> None:
        """Refuse a target without a key: re-extracting a date would insert its rows a second time."""
        job = self.job
        problem = key_problem(job.target.unique_keys(job.schema, job.table), job.columns)
        if problem:
            raise RefusedError(f"{job.schema}.{job.table} {problem}")
        source = {c.lower(): s for c, s in zip(job.columns, job.collations, strict=False)}
        merging = merge_problem(job.target.key_collations(job.schema, job.table), source)
        if merging:
            raise RefusedError(f"{job.schema}.{job.table}: {merging}")
        # After every refusal: a refused load leaves the table as it was. A load that fails after this
        # leaves the added (NULL-able) or widened columns, which the next load of these columns needs anyway.
        evolve_table(job, job.table, record=True)


def shadow_prefixes(table: str) -> tuple[str, str]:
    """The name prefixes of every shadow (new copy) and retired (old copy) table of ``table``."""
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"_rp_new_{table[:30]}_{digest}_", f"_rp_old_{table[:30]}_{digest}_"


def shadow_names(table: str, load_key: str) -> tuple[str, str]:
    """The shadow and retired table names of one load: unique per load, so two loads never share one."""
    new, old = shadow_prefixes(table)
    return new + load_key[:8], old + load_key[:8]


class Swap(LoadStrategy):
    """Full refresh: load a shadow table built like the target, check its count, one atomic RENAME.

    No reader sees the shadow, so its parts load over ``job.parallelism`` sessions at once, each
    statement committing on its own; all-or-nothing comes from the count check, the one RENAME, and
    ``abort`` dropping the shadow.
    """

    mode: ClassVar[LoadMode] = "swap"

    def __init__(self, job: LoadJob) -> None:
        super().__init__(job)
        self.shadow, self.retired = shadow_names(job.table, job.load_key)
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
        newer = job.target.newer_swap(job.schema, job.table, job.logical_date, job.snapshot_at)
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
        """An empty shadow built like the target, after dropping what dead loads of this table left.

        The load holds the table's writer lock, so any other shadow or retired table of this table
        belongs to a load that died (a killed worker cannot drop its own).
        """
        job = self.job
        prefixes = shadow_prefixes(job.table)
        leftovers = [t for t in job.target.tables(job.schema) if t.startswith(prefixes)]
        job.target.drop_tables(job.schema, *leftovers)
        job.target.create_shadow(job.schema, job.table, self.shadow)
        # The shadow takes the new shape; the live table keeps its own until the RENAME.
        evolve_table(job, self.shadow, record=False)
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
        """Count the shadow, check it against the guard and newer refreshes, swap it in, record the load."""
        job = self.job
        job.target.add_indexes(job.schema, self.shadow, self.deferred_indexes)
        counted = job.target.count_rows(job.schema, self.shadow)
        if counted != job.expected_rows:
            raise TransferError(f"shadow table holds {counted} rows, the manifests list {job.expected_rows}")
        problem = job.guard.problem(job.target.count_rows(job.schema, job.table), counted)
        if problem:
            raise RefusedError(f"not swapping {job.schema}.{job.table}: {problem}")
        # Checked again right before the RENAME: whatever happened since the start, older data never
        # replaces a newer full refresh.
        newer = job.target.newer_swap(job.schema, job.table, job.logical_date, job.snapshot_at)
        if newer is not None:
            raise RefusedError(
                f"not swapping {job.schema}.{job.table}: a newer full refresh (logical date {newer}) was loaded "
                f"while this load of {job.logical_date.date()} ran"
            )
        record_changes(job)  # before the RENAME makes the new shape live (evolution.evolve_table says why)
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

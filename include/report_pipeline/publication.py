"""Publishing a company's day together (``companies.publish_together``).

Without it each table goes live when its own load finishes, so for the minutes between two swaps a BI
query joining two tables sees one at the new day and the other at the old one. With it, each swap
table's load leaves its shadow loaded and checked (count, shrink guard, newer full refresh) and
registers it in ``report_pending``; after every table of the day loaded, one publish takes every such
table's writer lock, checks each shadow again, and renames all of them in ONE ``RENAME TABLE``, atomic
across tables on MySQL and MariaDB; then it records their ledger rows and as-of in one transaction.

A table whose load failed keeps the whole company on its previous day (nothing is renamed) and the
publish fails naming it; with ``companies.publish_partial`` the others are published and the publish
fails naming the table that is behind. Upsert and incremental tables cannot join (their rows go live in
their load's own transaction, with no copy to hold back): they go live as they load.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from report_pipeline.asof import AsOf
from report_pipeline.config import Plan
from report_pipeline.errors import RefusedError, TransferError
from report_pipeline.evolution import record_changes
from report_pipeline.guards import SwapGuard
from report_pipeline.ledger import LoadRecord
from report_pipeline.modes import LoadStrategy, Swap, shadow_names
from report_pipeline.pending import PendingShadow
from report_pipeline.target import Bookkeeping, Session, Target

log = logging.getLogger(__name__)

JOINING_MODES = ("swap",)


def joins(load_mode: str) -> bool:
    """Whether a table of this load mode can be published with its company's day (only swaps)."""
    return load_mode in JOINING_MODES


class HeldSwap(Swap):
    """A swap whose shadow, loaded and checked, waits for the company's publish instead of going live."""

    def finish(self, loaded: int) -> None:
        """Every check a swap makes before its RENAME, then register the shadow; no RENAME, no ledger row."""
        job = self.job
        target = job.target
        target.add_indexes(job.schema, self.shadow, self.deferred_indexes)
        counted = target.count_rows(job.schema, self.shadow)
        if counted != job.expected_rows:
            raise TransferError(f"shadow table holds {counted} rows, the manifests list {job.expected_rows}")
        problem = job.guard.problem(target.count_rows(job.schema, job.table), counted)
        if problem:
            raise RefusedError(f"not swapping {job.schema}.{job.table}: {problem}")
        newer = target.newer_swap(job.schema, job.table, job.logical_date)
        if newer is not None:
            raise RefusedError(
                f"not swapping {job.schema}.{job.table}: a newer full refresh (logical date {newer}) is loaded"
            )
        record_changes(job)  # logged before the shape can go live, as a swap does
        as_of = job.as_of
        target.ensure_pending(job.schema)
        target.record_pending(
            job.schema,
            PendingShadow(
                table_name=job.table,
                shadow_name=self.shadow,
                run_id=job.run_id,
                logical_date=job.logical_date,
                load_key=job.load_key,
                rows_loaded=loaded,
                manifest_keys=job.manifest_keys,
                data_as_of=as_of.data_as_of if as_of else None,
                snapshot_at=as_of.snapshot_at if as_of else None,
            ),
        )
        log.info("%s.%s: %d rows in %s, waiting for the company's publish", job.schema, job.table, loaded, self.shadow)


def joining_notes(plan: Plan) -> list[str]:
    """For ``validate``: per company that publishes its day together, which tables join and which cannot."""
    notes = []
    for cp in plan.companies:
        if not cp.company.publish_together:
            continue
        joining = [t.name for t in cp.tables if joins(t.load_mode)]
        apart = [f"{t.name} ({t.load_mode})" for t in cp.tables if not joins(t.load_mode)]
        note = f"company {cp.company.alias!r} (companies row id={cp.company.id}) publishes its day together: " + (
            f"{', '.join(joining)} go live at once, in one RENAME" if joining else "no table can join"
        )
        if apart:
            note += (
                f"; {', '.join(apart)} cannot join (an upsert or incremental load goes live in its own "
                "transaction, with no copy to hold back): they go live as they load"
            )
        notes.append(note)
    return notes


def held(strategy: LoadStrategy) -> LoadStrategy:
    """A swap as a held swap (its company publishes its day together); any other mode as it is."""
    return HeldSwap(strategy.job) if type(strategy) is Swap else strategy


@dataclass(frozen=True)
class DayTable:
    """One table of a company's day, as its load task reported it."""

    table: str  # the target table
    where: str  # how messages name it: "table 'orders' (tables row id=2)"
    load_key: str | None  # what its load left ready this run; None: its load did not finish
    guard: SwapGuard = field(default_factory=SwapGuard)


@dataclass(frozen=True)
class Publication:
    """What a publish did: the tables it made live, and those left behind with why."""

    published: tuple[str, ...] = ()
    behind: Mapping[str, str] = field(default_factory=dict)


class _Recorder(Session, Bookkeeping, Protocol):
    """What recording a publish needs: a transaction and the bookkeeping tables."""


def _problem(target: Target, schema: str, day: DayTable, ready: PendingShadow | None, tables: set[str]) -> str | None:
    """Why this table's shadow cannot go live now, or None (under the table's writer lock)."""
    if day.load_key is None:
        return "its load did not finish in this run (failed, or its extract did); the table is as it was"
    if ready is None or ready.load_key != day.load_key:
        return "its loaded copy was replaced by a later load of the table; re-run this run's load of it"
    if ready.shadow_name not in tables:
        return f"its loaded copy {ready.shadow_name} is gone; re-run its load"
    counted = target.count_rows(schema, ready.shadow_name)
    if counted != ready.rows_loaded:
        return f"its loaded copy holds {counted} rows, its load loaded {ready.rows_loaded}; re-run its load"
    shrink = day.guard.problem(target.count_rows(schema, day.table), counted)
    if shrink:
        return shrink
    newer = target.newer_swap(schema, day.table, ready.logical_date)
    if newer is not None:
        return f"a newer full refresh (logical date {newer}) is live; this day's copy would replace it with older data"
    return None


def publish(
    target: Target,
    schema: str,
    label: str,
    day: Sequence[DayTable],
    *,
    partial: bool,
    lock_timeout_seconds: int,
    company_tables: Sequence[str] | None = None,
) -> Publication:
    """Make every table of the day live at once (one RENAME), or none of them (RefusedError naming why).

    ``label`` names the company in messages. With ``partial``, tables that cannot go live are left
    behind and the others published; the caller reports ``Publication.behind``.
    """
    if not day:
        return Publication()
    with contextlib.ExitStack() as locks:
        for name in sorted({d.table for d in day}):  # one order for every publish: no lock cycles
            locks.enter_context(target.writer_lock(schema, name, lock_timeout_seconds))
        target.ensure_pending(schema)
        target.ensure_ledger(schema)
        target.ensure_as_of(schema)
        ready = target.pending(schema)
        tables = set(target.tables(schema))
        done = [d for d in day if _renamed(ready.get(d.table), d, tables)]
        todo = [d for d in day if d not in done]
        behind = {d.table: p for d in todo if (p := _problem(target, schema, d, ready.get(d.table), tables))}
        if behind and not partial:
            raise RefusedError(
                f"{label}: not publishing the day: "
                + "; ".join(f"{_where(day, t)}: {why}" for t, why in behind.items())
                + ". Every table of the company stays on its previous day (nothing was renamed). Fix and re-run "
                "the failed load(s), then this publish task (clear both); or set companies.publish_partial = 1 "
                "to publish the tables that loaded"
            )
        going = [d for d in todo if d.table not in behind]
        if going:
            target.mark_publishing(schema, [d.table for d in going])
            swaps = [(d.table, ready[d.table].shadow_name, _retired(ready[d.table])) for d in going]
            target.replace_tables(schema, swaps)
        _record(target, schema, [ready[d.table] for d in (*done, *going)], company_tables)
    published = tuple(d.table for d in (*done, *going))
    log.info("%s: published %s in one RENAME; behind: %s", label, ", ".join(published) or "nothing", behind or "none")
    return Publication(published, behind)


def _where(day: Sequence[DayTable], table: str) -> str:
    return next((d.where for d in day if d.table == table), f"table {table!r}")


def _retired(ready: PendingShadow) -> str:
    return shadow_names(ready.table_name, ready.load_key)[1]


def _renamed(ready: PendingShadow | None, day: DayTable, tables: set[str]) -> bool:
    """A table an earlier try of this publish renamed in but did not record (it died in between)."""
    return ready is not None and ready.publishing and ready.load_key == day.load_key and ready.shadow_name not in tables


def _record(target: _Recorder, schema: str, published: Sequence[PendingShadow], company: Sequence[str] | None) -> None:
    """The ledger rows and as-of of the published tables, and their pending rows gone, in one transaction."""
    if not published:
        return
    target.begin()
    try:
        for p in published:
            target.record_load(
                schema,
                LoadRecord(p.table_name, p.logical_date, p.run_id, p.rows_loaded, "swap", p.load_key, p.manifest_keys),
            )
            as_of = AsOf(p.table_name, p.data_as_of, p.snapshot_at, p.logical_date, p.run_id, p.load_key)
            target.record_as_of(schema, as_of, True, company)
        target.remove_pending(schema, [p.table_name for p in published])
        target.commit()
    except BaseException:
        target.rollback()
        raise

"""Repair: re-copy the rows of some keys through the load, and commit only when they match the source.

A repair is a load (``report_pipeline.load``) of an extract of the table's query restricted to the
differing keys, so it takes the same path and guards as any load: the manifest pinned by extract id
and sha256, the table's writer lock, the key check, the ``report_loads`` row (``load_mode`` ``repair``).
Only the strategy differs (``Repair``): in one transaction it deletes the target's rows of the keys it
replaces (NULL-safe, so a NULL-able UNIQUE key's rows are not doubled) and of the target-only keys it
may remove (``delete_detection = 'keys'``), loads the extracted rows, then compares those keys with
the source once more, in a new source snapshot and in its own uncommitted transaction on the target.
It commits only if they match; a source write that raced the repair makes it roll back (``Raced``),
and the caller tries again with newer rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from report_pipeline.drift import Drift, Key, key_condition, key_values
from report_pipeline.errors import TransferError
from report_pipeline.job import LoadJob
from report_pipeline.manifest import Part
from report_pipeline.modes import Upsert
from report_pipeline.session import Parameters
from report_pipeline.verify import bind_after
from report_pipeline.vocabulary import LoadMode

log = logging.getLogger(__name__)

# The S3 folder of repair extracts: ``_rp_repairs/<table>/<date>/<extract id>/``, apart from the loads'
# folders, so neither's clean-up ever takes the other's files.
REPAIRS_FOLDER = "_rp_repairs"


class Raced(TransferError):
    """The source changed repaired rows between their extract and the recheck: rolled back, try again."""


def repair_folder(table: str) -> str:
    """The 'table' part of a repair extract's S3 prefix (``manifest.extract_prefix``)."""
    return f"{REPAIRS_FOLDER}/{table}"


def restricted_query(
    query: str, parameters: Parameters, key: Sequence[str], keys: Sequence[Key]
) -> tuple[str, Parameters]:
    """The table's query returning only the rows of ``keys`` (NULL-safe), and its parameters."""
    marks, bound = bind_after(parameters, key_values(key, keys))
    return f"SELECT * FROM ({query}) AS _rp_r WHERE {key_condition('_rp_r', key, keys, marks)}", bound


@dataclass
class RepairPlan:
    """What one repair attempt replaces and removes, and how it checks its result against the source.

    ``replace``: keys whose target rows are deleted before the extracted rows load (changed ones).
    ``remove``: target-only keys deleted for good (empty unless the table detects deletes).
    ``recheck``: compares the repaired keys on both sides, the target's in the repair's transaction,
    and returns the drift and the source's clock at its snapshot (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``).
    """

    key: tuple[str, ...]
    replace: tuple[Key, ...]
    remove: tuple[Key, ...]
    recheck: Callable[[], tuple[Drift, str]]
    keeps_extra: bool
    # Set by the attempt: rows deleted (replaced, removed), and what the recheck found.
    deleted: tuple[int, int] = (0, 0)
    rechecked: Drift | None = None

    def settled(self, drift: Drift) -> bool:
        """Whether the rechecked keys are as they should be: equal, or target-only where extra rows stay."""
        return not (drift.changed or drift.missing or drift.overflow) and (self.keeps_extra or not drift.extra)


class Repair(Upsert):
    """Replace the rows of some keys by their extracted source rows, in one transaction, rechecked."""

    # Not a mode an admin row can name: what its report_loads rows say.
    mode: ClassVar[LoadMode] = "repair"  # type: ignore[assignment]

    def __init__(self, job: LoadJob, plan: RepairPlan) -> None:
        super().__init__(job)
        self.plan = plan

    def load_parts(self, parts: Iterable[tuple[Part, str]]) -> int:
        """Delete the replaced and removed keys' rows, then load the parts, in one transaction."""
        job, plan = self.job, self.plan
        job.target.begin()
        plan.deleted = (
            job.target.delete_keys(job.schema, job.table, plan.key, plan.replace) if plan.replace else 0,
            job.target.delete_keys(job.schema, job.table, plan.key, plan.remove) if plan.remove else 0,
        )
        loaded = sum(self._load_one(job.target, part, path) for part, path in parts)
        self._check_total(loaded)
        return loaded

    def finish(self, loaded: int) -> None:
        """Recheck the repaired keys against a new source snapshot; commit only if they match."""
        plan = self.plan
        drift, source_clock = plan.recheck()
        plan.rechecked = drift
        if not plan.settled(drift):
            raise Raced(
                f"the source changed {len(drift.changed) + len(drift.missing) + len(drift.extra)} of the repaired "
                "rows while the repair ran; rolled back"
            )
        self._order_later_loads(source_clock)
        super().finish(loaded)

    def _order_later_loads(self, source_clock: str) -> None:
        """An incremental table's extracts older than the recheck may no longer load over repaired rows.

        Only the watermark's snapshot time moves (its cursor value stays): such an extract is skipped as
        older, and the next run reads its rows again from the same watermark.
        """
        job = self.job
        stored = job.target.watermark(job.schema, job.table)
        checked = dt.datetime.fromisoformat(source_clock)
        if stored is not None and stored.snapshot_at < checked:
            job.target.write_watermark(job.schema, dataclasses.replace(stored, snapshot_at=checked))
            log.info(
                "%s.%s: extracts taken before %s no longer load over the repaired rows", job.schema, job.table, checked
            )

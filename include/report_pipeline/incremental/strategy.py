"""The ``incremental`` load mode: an upsert of the rows after the watermark, the new watermark in its transaction.

The extract's side (the cursor, the narrowed query, the highest value seen) is ``cursor``; how far the
watermark may move is ``horizon``; deleting what the source no longer has is ``deletes``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import ClassVar

from report_pipeline.errors import RefusedError
from report_pipeline.incremental.deletes import delete_missing
from report_pipeline.incremental.horizon import compare_sources, later, switch_refusal
from report_pipeline.manifest import Part
from report_pipeline.modes import Upsert
from report_pipeline.vocabulary import CursorRange, Duplicates, LoadMode
from report_pipeline.watermarks import Watermark

# The load modes' logger, as before this class moved out of modes.py: log filters keep finding it.
log = logging.getLogger("report_pipeline.modes")


def _utc(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


class Incremental(Upsert):
    """Only rows at or after the watermark, replaced by key; the new watermark commits with them.

    Loads of one table are ordered by their extracts' source snapshots, not by logical date: an extract
    older than the one behind the stored watermark would put older versions of rows over newer ones, so
    it is skipped (a load retried after a later run, or a backfill that lost the race). A newer extract
    of any logical date loads, and the watermark never moves backwards, except on a reset (a full
    reload asked for by a manual run), which sets it to what that reload saw.
    """

    mode: ClassVar[LoadMode] = "incremental"

    @property
    def cursor(self) -> CursorRange:
        """The manifests' cursor range; refused when they were not written by an incremental extract."""
        if self.job.cursor is None:
            raise RefusedError(
                f"{self.job.schema}.{self.job.table}: the manifests were not written by an incremental extract "
                "(no cursor range), so no watermark can be set; re-run the extract"
            )
        return self.job.cursor

    @property
    def duplicates(self) -> Duplicates:
        """Always replace: the overlap re-reads rows already loaded, and they must take the newer values."""
        return "replace"

    def refusal(self) -> str | None:
        """An extract older than the one the stored watermark came from is skipped, whichever server it read.

        Extracts of one server are ordered by its snapshot clock. Across servers (a replica and its
        primary, two replicas) clocks say nothing about how far the data had got, so GTID positions
        decide: rows that lack transactions the loaded rows hold are skipped. Without comparable
        positions the load is refused; a deliberate switch (failover) is a reset run.
        """
        job = self.job
        stored = job.target.watermark(job.schema, job.table)
        cursor = self.cursor
        taken = _utc(cursor.snapshot_at)
        order = "same" if stored is None or cursor.reset else compare_sources(stored, cursor.server, cursor.position)
        if order == "unknown":
            raise RefusedError(f"{job.schema}.{job.table}: {switch_refusal(stored, cursor.server)}")
        if order == "older":
            log.warning(
                "%s.%s: not loading rows from %s, which lack transactions the loaded rows from %s hold "
                "(a lagging replica)",
                job.schema,
                job.table,
                cursor.server,
                stored and stored.source_server,
            )
            return "older-extract"
        if order == "newer":
            return None
        if stored is not None and taken < stored.snapshot_at:
            log.warning(
                "%s.%s: not loading an extract of %s taken at %s: rows extracted at %s are already loaded "
                "(loading older versions over them would undo changes)",
                job.schema,
                job.table,
                job.logical_date.date(),
                taken,
                stored.snapshot_at,
            )
            return "older-extract"
        return None

    def prepare(self) -> None:
        """The upsert's key check, and the watermark table (DDL commits, so before the transaction)."""
        super().prepare()
        self.job.target.ensure_watermarks(self.job.schema)

    def delete_missing(self, key_parts: Iterable[tuple[Part, str]]) -> int:
        """Delete, in the load's transaction, the target rows the source no longer has (``deletes``)."""
        return delete_missing(self.job, key_parts)

    def finish(self, loaded: int) -> None:
        """The new watermark (the later of the stored one and the highest value seen), then the ledger row."""
        job, cursor = self.job, self.cursor
        stored = job.target.watermark(job.schema, job.table)
        # The horizon's ceiling, never the highest value seen: a transaction open at the snapshot may
        # still commit rows below that (report_pipeline.incremental.horizon).
        value, snapshot = cursor.ceiling, _utc(cursor.snapshot_at)
        if stored is not None and not cursor.reset and stored.cursor_column.lower() == cursor.column.lower():
            value = later(cursor.kind, stored.cursor_value, value)
            snapshot = max(snapshot, stored.snapshot_at)
        mark = Watermark(
            table_name=job.table,
            cursor_column=cursor.column,
            cursor_value=value,
            snapshot_at=snapshot,
            logical_date=job.logical_date,
            run_id=job.run_id,
            load_key=job.load_key,
            pending_value=cursor.pending,
            pending_writers=cursor.writers,
            source_server=cursor.server,
            source_position=cursor.position,
        )
        job.target.write_watermark(job.schema, mark)
        log.info("%s.%s: watermark %s -> %s", job.schema, job.table, stored and stored.cursor_value, value)
        super().finish(loaded)

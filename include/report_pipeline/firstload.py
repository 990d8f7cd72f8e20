"""First loads as fast as a swap: an upsert or incremental load into an EMPTY table goes through a shadow.

Nobody can tell an empty table filled by one transaction from an empty table swapped for a loaded copy:
either way readers see no rows, then all of them. So the first load of a table (or the first after it was
emptied) loads a shadow table over parallel sessions, each statement committing on its own (no undo
for a million-row transaction), and swaps it in with one RENAME; the upsert's key check, schema
evolution, the incremental watermark, the ledger and the as-of commit as the upsert's would.

Concurrency. The load holds the table's writer lock, so no other load writes the table meanwhile; the
table is found empty under that lock. A stray writer outside the pipeline (someone's INSERT) is caught
twice: just before the RENAME (rows in the live table: the shadow is merged into it by one REPLACE ...
SELECT in the load's transaction, the upsert's own semantics, only slower) and just after it (a row
committed between that check and the RENAME, e.g. by a transaction the RENAME waited for, is in the
retired table: it is copied into the new one with INSERT IGNORE, the load's rows winning on the same key
as its REPLACE would have, before the ledger row commits). Readers may miss such a row for that moment.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from report_pipeline.errors import TransferError
from report_pipeline.incremental.strategy import Incremental
from report_pipeline.modes import LoadStrategy, Swap, Upsert, shadow_prefixes
from report_pipeline.vocabulary import Duplicates, LoadMode

log = logging.getLogger("report_pipeline.modes")


class FirstLoadDeclined(TransferError):
    """The shadow cannot stand for the serial load (duplicate keys in the extract): load it the usual way."""


class FirstLoad(Swap):
    """An upsert or incremental load into an empty table, through a shadow table and one RENAME."""

    mode: ClassVar[LoadMode] = "upsert"

    def __init__(self, inner: LoadStrategy) -> None:
        super().__init__(inner.job)
        self.inner = inner

    @property
    def duplicates(self) -> Duplicates:
        """As the upsert or incremental load would treat them."""
        return self.inner.duplicates

    def refusal(self) -> str | None:
        """The wrapped mode's (an incremental extract older than the watermark's is skipped)."""
        return self.inner.refusal()

    def prepare(self) -> None:
        """The wrapped mode's checks and schema evolution on the live table, then a shadow shaped like it."""
        self.inner.prepare()
        job = self.job
        prefixes = shadow_prefixes(job.table)
        job.target.drop_tables(job.schema, *[t for t in job.target.tables(job.schema) if t.startswith(prefixes)])
        job.target.create_shadow(job.schema, job.table, self.shadow)
        if job.defer_indexes:
            self.deferred_indexes = job.target.drop_secondary_indexes(job.schema, self.shadow)

    def finish(self, loaded: int) -> None:
        """Swap the shadow in (or merge it, when somebody wrote the table meanwhile), then the mode's bookkeeping."""
        job = self.job
        target = job.target
        target.add_indexes(job.schema, self.shadow, self.deferred_indexes)
        counted = target.count_rows(job.schema, self.shadow)
        if counted != job.expected_rows:
            # Duplicate keys in the extract: which one wins must be the serial load's last (or first) one.
            raise FirstLoadDeclined(f"the shadow holds {counted} rows of {job.expected_rows}: duplicate keys")
        if target.has_rows(job.schema, job.table):
            log.warning("%s.%s: rows appeared during the first load; merging them as an upsert", job.schema, job.table)
            target.begin()
            target.merge_into(job.schema, job.table, self.shadow, job.columns, self.duplicates)
            self.inner.finish(loaded)
            target.drop_tables(job.schema, self.shadow)
            return
        target.replace_tables(job.schema, [(job.table, self.shadow, self.retired)], keep_retired=True)
        target.begin()
        if target.has_rows(job.schema, self.retired):
            log.warning("%s.%s: a row committed during the RENAME; keeping it", job.schema, job.table)
            columns = target.columns(job.schema, self.retired)
            target.merge_into(job.schema, job.table, self.retired, columns, "ignore")
        self.inner.finish(loaded)
        target.drop_tables(job.schema, self.retired)

    def delete_missing(self, key_parts: object) -> int:
        """Nothing to delete: the table held no row before this load."""
        return 0


def by_shadow(strategy: LoadStrategy) -> LoadStrategy:
    """``strategy`` as a first load through a shadow when it is an upsert or incremental load into an empty
    table (under the writer lock), else ``strategy`` itself."""
    job = strategy.job
    if not isinstance(strategy, (Upsert, Incremental)) or job.target.has_rows(job.schema, job.table):
        return strategy
    return FirstLoad(strategy)

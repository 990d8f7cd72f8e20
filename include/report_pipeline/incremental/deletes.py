"""Delete detection of an ``incremental`` load (``tables.delete_detection = 'keys'``).

The extract streams the key columns of every source row (``keys-NNNNN`` parts, with their checksum;
``extract._extract_keys``, in the snapshot of the rows, with the key ``request.delete_key`` chose);
the load, in its own transaction after the changed rows are in, deletes the target rows whose keys the
source no longer returns. What it costs on the target, for a table of N rows:

- a day without deletes: one server-side COUNT + checksum over the target's keys (an index scan); equal
  to the source's, the key set is not loaded at all;
- otherwise: loading the N keys into a TEMPORARY table, one non-locking anti-join read of the target
  against it (the keys to delete), and one short DELETE per 1,000 of those keys, by key; past
  ``target.keysets.KEYS_IN_MEMORY`` keys to delete, one anti-join DELETE instead (memory stays bounded).

A chunked extract stores one key set per chunk; ``merge_keys`` makes them the load's one set.

Deleting more than the shrink guard allows (a source in maintenance returns no keys and looks like
"everything was deleted") is refused before anything is deleted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from report_pipeline.csvformat import merge_encodings
from report_pipeline.errors import RefusedError, TransferError
from report_pipeline.job import LoadJob
from report_pipeline.manifest import KeySet, Part
from report_pipeline.vocabulary import KeyColumns

# The load mode's logger, as before this step moved out of modes.py: log filters keep finding it.
log = logging.getLogger("report_pipeline.modes")


def merge_keys(key_sets: Sequence[KeySet | None]) -> KeyColumns | None:
    """The key set across the manifests of one load (a chunked one has one per chunk); None without.

    Every manifest must carry one (each chunk holds its share of the keys): with some missing, the set
    would be incomplete and rows of the missing chunks would be deleted.
    """
    if not key_sets or all(k is None for k in key_sets):
        return None
    if any(k is None for k in key_sets):
        raise TransferError("some of the load's manifests carry key sets and some do not; re-run the extract")
    known = [k for k in key_sets if k is not None]
    names = tuple(c.name for c in known[0].columns)
    if any(tuple(c.name for c in k.columns) != names for k in known):
        raise TransferError("the load's manifests carry key sets of different columns; re-run the extract")
    checksums = [k.checksum for k in known]
    return KeyColumns(
        columns=names,
        encodings=tuple(merge_encodings([[c.encoding for c in k.columns] for k in known])),
        rows=sum(p.rows for k in known for p in k.parts),
        checksum=None if any(c is None for c in checksums) else sum(c for c in checksums if c is not None),
    )


def delete_missing(job: LoadJob, key_parts: Iterable[tuple[Part, str]]) -> int:
    """Delete, in the load's transaction, the target rows whose keys are not in the source's key set.

    ``key_parts``: each key part as a local file, removed here once loaded. Returns the rows deleted.
    """
    if job.keys is None:
        return 0
    target, schema, table = job.target, job.schema, job.table
    columns, encodings = job.keys.columns, job.keys.encodings
    live: int | None = None
    if job.keys.checksum is not None:
        # The target's keys after this load, summed like the extract summed the source's: equal
        # sums mean nothing was deleted (the usual day), and the key set need not be loaded at all.
        found = target.key_checksum(schema, table, columns)
        if found == (job.keys.rows, job.keys.checksum):
            log.info("%s.%s: key sets agree (%d keys); nothing deleted", schema, table, job.keys.rows)
            return 0
        live = found[0]  # counted in this transaction, after the load: no second COUNT(*)
    keys_table = target.create_key_table(schema, table, columns)
    try:
        for part, path in key_parts:
            records = target.bulk_load(path, schema, keys_table, columns, encodings, "replace")
            os.remove(path)  # the consumer owns a handed-over file: at most one key part on disk
            if records != part.rows:
                raise TransferError(f"{part.key}: LOAD DATA read {records} keys, the manifest says {part.rows}")
        if live is None:
            live = target.count_rows(schema, table)
        missing, gone = target.missing_keys(schema, table, keys_table, columns)
        problem = job.guard.problem(live, live - missing)
        if problem:
            raise RefusedError(f"not deleting from {schema}.{table}: {problem}")
        if gone is not None:
            deleted = target.delete_keys(schema, table, columns, gone)
        else:  # too many keys to hold: one DELETE with the anti-join (it locks the rows it passes)
            deleted = target.delete_missing(schema, table, keys_table, columns)
    finally:
        target.drop_key_table(schema, keys_table)
    if deleted != missing:
        raise TransferError(f"{schema}.{table}: deleted {deleted} rows for {missing} missing keys")
    log.info("%s.%s: deleted %d row(s) no longer in the source", schema, table, deleted)
    return deleted

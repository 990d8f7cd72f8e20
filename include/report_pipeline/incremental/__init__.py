"""The ``incremental`` load mode, in one place: only the rows after a stored watermark, upserted by key.

- ``request``: what an extract is asked for, read from the target first (the watermark it starts from,
  the key columns it stores for delete detection);
- ``cursor``: the cursor column's rules, the query narrowed to the rows after the watermark, the
  highest value seen, and the cursor ranges of one load's manifests merged into one;
- ``horizon``: how far the watermark may move without passing a row still being written (open source
  transactions, the server and GTID position read);
- ``deletes``: delete detection (``delete_detection = 'keys'``): one load's key sets merged, and the
  target rows the source no longer returns deleted in the load's transaction;
- ``strategy``: the load strategy ``Incremental`` (``modes.Upsert`` plus the watermark), registered in
  ``report_pipeline.strategies``.

Kept elsewhere: the watermark table's rows and SQL (``report_pipeline.watermarks``), the key-set SQL on
the target (``report_pipeline.target.keysets``), and the value types the manifest carries
(``vocabulary.CursorRange``, ``manifest.KeySet``), which low modules share. Nothing is imported here, so
importing one module of the package never imports the others.
"""

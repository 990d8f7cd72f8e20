"""The transfer benchmark's pieces (``scripts/bench.py`` and ``scripts/parse_report.py`` are the entry points).

- ``data``: the source generator, the bench schemas and buckets, fingerprints;
- ``machine``: the machine's state (quiet seconds, RSS, InnoDB pages, flushing) and the run's environment;
- ``ours`` / ``peers``: the contenders, each building a ``run()`` for a child process;
- ``child``: the child-process side (one contender once) and the parent's runner of it;
- ``session``: the schedule of a full run; ``summary``: its medians, table and issue 16's targets;
- ``incremental`` / ``reconcile``: the incremental and reconcile rows;
- ``parse_admin`` / ``parse_probes``: the scratch admin config and the DAG-parse measurements.
"""

"""Reconcile one table: compare its source query with its target table by key, name what differs, repair it.

The unit of work behind ``report-pipeline reconcile`` and the scheduled reconcile task (a table row's
``reconcile_every_days``). The comparison is ``drift.find_drift`` over the table's narrowest PRIMARY or
UNIQUE key of loaded columns; the source session is bounded like an extract's (``REPORTS_QUERY_TIMEOUT``,
the stream timeouts). With ``repair``, the differing keys are re-copied through ``repair``: an extract
of the query restricted to them, loaded under the table's writer lock. Every reconcile is recorded in
``report_reconciles`` (``reconcilelog``).

Rows changing while it runs: the writer lock is taken before the comparison and held until the repair
commits, so no load changes the target in between; each side is compared in one snapshot. The source
may still change: the repair extracts the differing keys' rows in a newer snapshot, and before it
commits, compares those keys once more against a newer one still (the target side read in the
repair's own transaction). Equal, it commits: the repaired rows are the source's as of that recheck,
the others as of the comparison. Not equal (a source write raced the repair), it rolls back and tries
again, ``ROUNDS`` times in all, then refuses with the target unchanged. Rows that change at the source
after the comparison and were not among the differing ones are the next load's business, as always.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from report_pipeline import extract as extract_module
from report_pipeline import load as load_module
from report_pipeline import reconcilelog
from report_pipeline.config import Company, TableSpec, table_label
from report_pipeline.connections import Connections, company_bucket, source_session
from report_pipeline.drift import MAX_KEYS, Drift, Key, compare_keys, find_drift
from report_pipeline.errors import RefusedError, ReportPipelineError
from report_pipeline.guards import narrowest_key
from report_pipeline.manifest import SUCCESS_NAME, Manifest, extract_prefix, new_extract_id, table_prefix
from report_pipeline.repair import Raced, Repair, RepairPlan, repair_folder, restricted_query
from report_pipeline.runs import bind_parameters, window_for
from report_pipeline.session import Parameters, opened, rollback_quietly
from report_pipeline.settings import Settings
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.tasks import compared_columns
from report_pipeline.verify import source_side, target_side

# Repair attempts (each rolled back when a source write raced it) before the reconcile refuses.
ROUNDS = 3
# Differing keys of each kind kept in report_reconciles.first_keys, and shown by the CLI and task log.
RECORDED_KEYS = 100
SHOWN_KEYS = 5
KINDS = ("changed", "missing", "extra")
RECONCILE_NEEDS_KEY = (
    "reconcile compares rows by key, and the target table has no PRIMARY or UNIQUE key made of loaded columns; "
    "add one (as the source table has)"
)


@dataclass(frozen=True)
class Reconciliation:
    """What one reconcile found and did."""

    company: Company
    spec: TableSpec
    drift: Drift
    outcome: str  # reconcilelog.ReconcileRecord.outcome
    repair: bool = False
    rows_copied: int = 0
    rows_deleted: int = 0
    extra_kept: int = 0
    rounds: int = 0
    load_key: str | None = None
    seconds: float = 0.0
    record_id: int | None = None

    @property
    def exact(self) -> bool:
        """Whether the target now holds the source's rows (target-only rows a table keeps aside)."""
        return self.outcome in reconcilelog.COMPLETE

    def summary(self) -> str:
        """One line: what was compared, what differed, what was done."""
        d, c, s = self.drift, self.company, self.spec
        head = (
            f"{c.alias}.{s.name} -> {c.schema}.{s.target.table} by key ({', '.join(d.key)}): source {d.source_rows:,} "
            f"rows, target {d.target_rows:,}; {d.differing_ranges:,} of {d.ranges:,} key ranges ({d.split}) differ; "
            f"rows read: source {d.rows_read[0]:,}, target {d.rows_read[1]:,}"
        )
        if self.outcome == "match":
            return f"{head}; match"
        if self.outcome == "differs" and d.overflow:
            return f"{head}; DIFFERENT: more than {MAX_KEYS:,} keys differ (the first are named); reload the table"
        if self.outcome == "differs":
            return f"{head}; DIFFERENT (run with --repair to re-copy them)"
        kept = f", {self.extra_kept:,} target-only rows kept (delete_detection 'none')" if self.extra_kept else ""
        return (
            f"{head}; repaired: {self.rows_copied:,} rows re-copied, {self.rows_deleted:,} target-only rows deleted"
            f"{kept}, in {self.rounds} attempt(s); the repaired keys match the source (rechecked before commit)"
        )

    def kinds(self) -> tuple[list[str], list[list[Any]]]:
        """A table for a person: per kind of difference, how many keys, what was done, the first keys."""
        d = self.drift
        mended = {
            "changed": "re-copied",
            "missing": "copied",
            "extra": "deleted" if self.spec.delete_detection == "keys" else "kept: delete_detection 'none'",
        }
        rows = []
        for kind, keys in zip(KINDS, (d.changed, d.missing, d.extra), strict=True):
            shown = ", ".join(describe_key(d.key, k) for k in keys[:SHOWN_KEYS])
            more = f" (+{len(keys) - SHOWN_KEYS:,} more)" if len(keys) > SHOWN_KEYS else ""
            done = mended[kind] if self.outcome == "repaired" and keys else "-"
            rows.append([kind, len(keys), done, shown + more])
        return ["difference", "keys", "mended", "first keys"], rows


def describe_key(columns: Sequence[str], key: Key) -> str:
    """``id=17``, or ``(a=1, b=NULL)`` for a composite key."""
    parts = [f"{c}={'NULL' if v is None else v}" for c, v in zip(columns, key, strict=True)]
    return parts[0] if len(parts) == 1 else f"({', '.join(parts)})"


def reconcile_key(target: MySqlTarget, company: Company, spec: TableSpec, columns: Sequence[str]) -> tuple[str, ...]:
    """The key rows are compared by; RefusedError (naming the fix) when the target table has none."""
    key = narrowest_key(target.unique_keys(company.schema, spec.target.table), columns)
    if key is None:
        label = table_label(company.alias, spec.name, spec.id)
        raise RefusedError(f"{label}: {RECONCILE_NEEDS_KEY}; the target was not changed")
    return key


def reconcile_table(
    connections: Connections,
    settings: Settings,
    company: Company,
    spec: TableSpec,
    logical_date: dt.datetime,
    run_id: str,
    *,
    repair: bool = False,
    lookback_days: int | None = None,
    company_tables: Sequence[str] | None = None,
) -> Reconciliation:
    """Compare the table's source query (bound for ``logical_date``) with its target table; with ``repair``
    re-copy the differing rows. Recorded in ``report_reconciles`` either way, refusals included."""
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    days = company.lookback_days if lookback_days is None else lookback_days
    parameters = bind_parameters(spec, company, window_for(logical_date, days))
    with source_session(connections, settings) as source, opened(connections.target()) as target_conn:
        target = MySqlTarget(target_conn, settings, opener=connections.target)
        columns = compared_columns(source, spec, parameters)
        key = reconcile_key(target, company, spec, columns)
        holding = (
            target.writer_lock(company.schema, spec.target.table, settings.table_lock_timeout_seconds)
            if repair
            else contextlib.nullcontext()
        )
        job = _Job(connections, settings, company, spec, logical_date, run_id, parameters, columns, key)
        with holding:
            src = source_side(source, spec.query_select, parameters, columns)
            try:
                drift = find_drift(src, target_side(target_conn, company.schema, spec.target.table, columns), key)
            finally:
                rollback_quietly(source)
                rollback_quietly(target_conn)
            result = Reconciliation(company, spec, drift, "match" if drift.matches else "differs", repair)
            if repair and not drift.matches:
                try:
                    result = job.repair(source, target, result, company_tables)
                except ReportPipelineError as exc:
                    with contextlib.suppress(Exception):  # the refusal is what the caller must see
                        _record(target, job, replace(result, outcome="refused"), started, str(exc))
                    raise
        result = replace(result, seconds=time.monotonic() - clock)
        return replace(result, record_id=_record(target, job, result, started))


@dataclass(frozen=True)
class _Job:
    """One reconcile's fixed inputs."""

    connections: Connections
    settings: Settings
    company: Company
    spec: TableSpec
    logical_date: dt.datetime
    run_id: str
    parameters: Parameters
    columns: Sequence[str]
    key: tuple[str, ...]

    def repair(
        self, source: Any, target: MySqlTarget, found: Reconciliation, company_tables: Sequence[str] | None
    ) -> Reconciliation:
        """Re-copy the differing keys' rows (``repair``), up to ``ROUNDS`` attempts; RefusedError after."""
        drift, label = found.drift, table_label(self.company.alias, self.spec.name, self.spec.id)
        if drift.overflow:
            raise RefusedError(
                f"{label}: reconcile found more than {MAX_KEYS:,} differing keys ({drift.differing_ranges:,} of "
                f"{drift.ranges:,} key ranges differ), more than a repair re-copies row by row; the target was not "
                f"changed. Reload the table instead (report-pipeline run --company {self.company.alias} --table "
                f"{self.spec.name}, with --reset-watermark for an incremental table)"
            )
        keys, now = drift.keys, drift
        deletes = self.spec.delete_detection == "keys"
        for attempt in range(1, ROUNDS + 1):
            if attempt > 1:  # the rows the last attempt raced with: classify the keys again
                now = self._compare(source, target, keys)
            plan = RepairPlan(
                self.key,
                replace=now.changed,
                remove=now.extra if deletes else (),
                recheck=lambda: self._recheck(source, target, keys),
                keeps_extra=not deletes,
            )
            manifest = self._extract(keys)
            try:
                result = load_module.load(target, self._request(manifest, plan, company_tables))
            except Raced:
                continue
            return replace(
                found,
                outcome="repaired",
                rows_copied=result.rows,
                rows_deleted=plan.deleted[1],
                extra_kept=0 if deletes else len(drift.extra),
                rounds=attempt,
                load_key=result.load_key,
            )
        raced = plan.rechecked.keys if plan.rechecked is not None else ()
        raise RefusedError(
            f"{label}: reconcile: the source kept changing rows being repaired ({len(raced)} keys in the last "
            f"attempt, e.g. {', '.join(describe_key(self.key, k) for k in raced[:SHOWN_KEYS])}) in {ROUNDS} "
            "attempts; each was rolled back, so the target was not changed. Run the reconcile again when writes "
            "to these rows have settled"
        )

    def _compare(self, source: Any, target: MySqlTarget, keys: Sequence[Key]) -> Drift:
        """The keys compared in a new snapshot on each side."""
        src = source_side(source, self.spec.query_select, self.parameters, self.columns)
        try:
            tgt = target_side(target.conn, self.company.schema, self.spec.target.table, self.columns)
            return compare_keys(src, tgt, self.key, keys)
        finally:
            rollback_quietly(source)
            rollback_quietly(target.conn)

    def _recheck(self, source: Any, target: MySqlTarget, keys: Sequence[Key]) -> tuple[Drift, str]:
        """The keys compared in a new source snapshot and in the target's current (repair) transaction, and the
        source's clock, read before that snapshot started (so it is never later than the rows it saw)."""
        cursor = source.cursor()
        try:
            cursor.execute("SELECT UTC_TIMESTAMP(6)")
            source_clock = str(cursor.fetchone()[0])
        finally:
            cursor.close()
        src = source_side(source, self.spec.query_select, self.parameters, self.columns)
        try:
            tgt = target_side(target.conn, self.company.schema, self.spec.target.table, self.columns, snapshot=False)
            return compare_keys(src, tgt, self.key, keys), source_clock
        finally:
            rollback_quietly(source)

    def _extract(self, keys: Sequence[Key]) -> Manifest:
        """The differing keys' source rows, extracted like any table into the repair folder of the bucket."""
        settings, spec = self.settings, self.spec
        query, parameters = restricted_query(spec.query_select, self.parameters, self.key, keys)
        extract_id = new_extract_id(self.run_id)
        request = extract_module.ExtractRequest(
            company=self.company.alias,
            table=spec.name,
            bucket=company_bucket(self.connections, settings, self.company),
            prefix=extract_prefix(repair_folder(spec.name), self.logical_date, extract_id),
            query=query,
            parameters=parameters,
            logical_date=self.logical_date.isoformat(),
            run_id=self.run_id,
            compress=settings.compress,
            part_bytes=settings.part_bytes,
            extract_id=extract_id,
        )
        with source_session(self.connections, settings) as conn:
            return extract_module.extract(conn, request)

    def _request(
        self, manifest: Manifest, plan: RepairPlan, company_tables: Sequence[str] | None
    ) -> load_module.LoadRequest:
        settings, company, spec = self.settings, self.company, self.spec
        return load_module.LoadRequest(
            company=company.alias,
            schema=company.schema,
            target=spec.target,
            load_mode=spec.load_mode,
            bucket=company_bucket(self.connections, settings, company),
            manifest_keys=(manifest.key,),
            success_key=f"{table_prefix(repair_folder(spec.name), self.logical_date)}/{SUCCESS_NAME}",
            logical_date=self.logical_date,
            run_id=self.run_id,
            expected=(manifest.ref,),
            where=table_label(company.alias, spec.name, spec.id),
            attempt_max_age=dt.timedelta(hours=settings.attempt_max_age_hours),
            company_tables=None if company_tables is None else tuple(company_tables),
            protected_schemas=self.connections.protected_schemas(),
            lock_timeout_seconds=settings.table_lock_timeout_seconds,
            schema_evolution=spec.schema_evolution,
            strategy=lambda job: Repair(job, plan),
        )


def _record(
    target: MySqlTarget, job: _Job, result: Reconciliation, started: dt.datetime, message: str | None = None
) -> int:
    d = result.drift
    entry = reconcilelog.ReconcileRecord(
        table_name=job.spec.target.table,
        logical_date=job.logical_date,
        run_id=job.run_id,
        outcome=result.outcome,
        key_columns=job.key,
        source_rows=d.source_rows,
        target_rows=d.target_rows,
        ranges=d.ranges,
        differing_ranges=d.differing_ranges,
        rows_read=sum(d.rows_read),
        changed_keys=len(d.changed),
        missing_keys=len(d.missing),
        extra_keys=len(d.extra),
        started_at=started,
        rows_copied=result.rows_copied,
        rows_deleted=result.rows_deleted,
        extra_kept=result.extra_kept,
        load_key=result.load_key,
        first_keys={k: v[:RECORDED_KEYS] for k, v in zip(KINDS, (d.changed, d.missing, d.extra), strict=True)},
        message=message,
    )
    return reconcilelog.record(target.cursor, job.company.schema, entry)


def due(connections: Connections, company: Company, spec: TableSpec, logical_date: dt.datetime) -> str | None:
    """Why the scheduled reconcile of this run's date is not due (None: due).

    Due when ``reconcile_every_days`` is set and no reconcile completed (``match`` or ``repaired``) for a
    logical date less than that many days before this one: a failed or refused one is tried again the
    next run, and a retry of a completed one is skipped.
    """
    every = spec.reconcile_every_days
    if every <= 0:
        return "tables.reconcile_every_days is 0 (off)"
    with opened(connections.target()) as conn:
        last = reconcilelog.last_complete(MySqlTarget(conn).cursor, company.schema, spec.target.table)
    if last is None:
        return None
    next_day = last.date() + dt.timedelta(days=every)
    if logical_date.date() >= next_day:
        return None
    return f"reconciled for {last.date()}, every {every} day(s): next due for {next_day}"

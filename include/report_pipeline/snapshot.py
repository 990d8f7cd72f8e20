"""The parse-time snapshot: the resolved plan cached on local disk, so parsing rarely touches the admin DB.

Rules (issue 5): within the TTL, no network I/O; past it, one bounded refresh written atomically; if
the admin DB cannot be reached, the last good snapshot is used with a warning; only with no snapshot
at all does loading fail. A worker parsing the file to run one task follows the same rules (issue 21):
an admin edit reaches every worker within the TTL, as it reaches the DAG processor.

Layout (version 2): each distinct table spec is stored once, and each company lists the specs it runs
by their place in that list. At 1,000 companies x 20 tables the file holds 20 specs instead of 20,000
copies (45.7 MB -> well under 1 MB), and a parse builds objects only for the companies it keeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from report_pipeline import legacy, validation
from report_pipeline.config import (
    AdminRows,
    BrokenCompany,
    BrokenTable,
    Company,
    CompanyPlan,
    Plan,
    Problem,
    TableSpec,
    build_plan,
)
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings

log = logging.getLogger(__name__)

# 2: specs stored once (``_compact``); a version-1 file is ignored and refreshed.
SNAPSHOT_VERSION = 2


@dataclass(frozen=True)
class PlanSource:
    """Where a plan came from, for logs and tests."""

    origin: str  # "snapshot", "admin-db", "stale-snapshot"
    age_seconds: float
    admin_queries: int


def _fingerprint(settings: Settings) -> dict[str, object]:
    # A snapshot built under other naming settings would name other buckets and schemas.
    return {
        "bucket_template": settings.bucket_template,
        "schema_template": settings.schema_template,
        "default_lookback_days": settings.default_lookback_days,
    }


def read_snapshot(
    path: Path, settings: Settings, keep: Callable[[str], bool] | None = None
) -> tuple[Plan, float] | None:
    """The cached plan and its age in seconds, or None if there is no usable snapshot.

    ``keep`` tests a company's alias (a broken company row's key): only those companies are rebuilt.
    """
    try:
        raw = path.read_bytes()
        age = time.time() - path.stat().st_mtime
        body = json.loads(raw)
        if body.get("version") != SNAPSHOT_VERSION or body.get("settings") != _fingerprint(settings):
            return None
        return _from_compact(body["plan"], keep), age
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable admin snapshot %s: %s", path, exc)
        return None


def write_snapshot(path: Path, settings: Settings, plan: Plan) -> None:
    """Write the plan atomically (temp file + rename), so a reader never sees half a snapshot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": SNAPSHOT_VERSION, "settings": _fingerprint(settings), "plan": _compact(plan)})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def expire_snapshot(path: Path) -> bool:
    """Make the next parse on this machine refresh the snapshot (after the CLI changed the admin DB).

    The snapshot is kept, only dated back, so it still serves as the fallback if that refresh fails.
    Returns whether there was a snapshot to expire.
    """
    failure_marker(path).unlink(missing_ok=True)
    try:
        os.utime(path, (0, 0))
    except FileNotFoundError:
        return False
    return True


def failure_marker(path: Path) -> Path:
    """The file beside the snapshot whose mtime records the last failed refresh."""
    return path.with_name(path.name + ".failed")


def _recent_failure(path: Path, ttl_seconds: int) -> float | None:
    """Seconds since the last failed refresh, if it is younger than the TTL; else None."""
    try:
        since = time.time() - failure_marker(path).stat().st_mtime
    except OSError:
        return None
    return since if 0 <= since < ttl_seconds else None


def _record_failure(path: Path) -> None:
    marker = failure_marker(path)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os.utime(marker)
    except OSError as exc:  # a read-only disk must not turn a stale snapshot into an import error
        log.warning("cannot record the failed admin refresh at %s: %s", marker, exc)


def load_plan(
    settings: Settings,
    fetch_rows: Callable[[], AdminRows],
    *,
    keep: Callable[[str], bool] | None = None,
) -> tuple[Plan, PlanSource]:
    """The plan for this parse: from the snapshot when younger than the TTL, else refreshed.

    ``fetch_rows`` reads the admin DB (with short timeouts); it is called at most once, and after a
    failed refresh not again until the TTL has passed once more, so an unreachable admin DB costs one
    connect timeout per TTL instead of one per parse. ``keep`` limits the plan read from the snapshot
    (see ``read_snapshot``); a plan just built from the admin DB is whole, and written whole.
    """
    path = settings.snapshot_path
    cached = read_snapshot(path, settings, keep)
    if cached is not None and cached[1] < settings.snapshot_ttl_seconds:
        return cached[0], PlanSource("snapshot", cached[1], 0)
    with _refresh_lock(path, wait_seconds=4 * settings.admin_timeout_seconds + 5):
        # A parse of another DAG file sharing this snapshot (a shard, parsed in parallel) may have
        # refreshed it while this one waited for the lock: then that refresh serves both.
        if cached is not None:
            again = read_snapshot(path, settings, keep)
            if again is not None and again[1] < settings.snapshot_ttl_seconds:
                return again[0], PlanSource("snapshot", again[1], 0)
        return _refresh(settings, fetch_rows, cached)


@contextlib.contextmanager
def _refresh_lock(path: Path, wait_seconds: float) -> Iterator[None]:
    """Hold an exclusive lock beside the snapshot, so one parse at a time refreshes it.

    Bounded: after ``wait_seconds`` (a holder is itself bounded by the admin timeouts) or on a disk that
    cannot hold the lock file, the parse goes on without it, as it did before there was a lock.
    """
    import fcntl

    handle = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a")
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("admin snapshot %s: another parse holds the refresh lock; refreshing anyway", path)
                    break
                time.sleep(0.05)
    except OSError as exc:
        log.warning("admin snapshot %s: no refresh lock (%s); refreshing without it", path, exc)
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # releases the lock


def _refresh(
    settings: Settings, fetch_rows: Callable[[], AdminRows], cached: tuple[Plan, float] | None
) -> tuple[Plan, PlanSource]:
    """Read the admin DB and write the snapshot, or fall back to ``cached`` (see ``load_plan``)."""
    path = settings.snapshot_path
    if cached is not None:
        failed_ago = _recent_failure(path, settings.snapshot_ttl_seconds)
        if failed_ago is not None:
            log.warning(
                "admin database was unreachable %.0f s ago; using the snapshot from %.0f s ago with %d companies "
                "(next refresh attempt in %.0f s)",
                failed_ago,
                cached[1],
                len(cached[0].companies),
                settings.snapshot_ttl_seconds - failed_ago,
            )
            return cached[0], PlanSource("stale-snapshot", cached[1], 0)
    try:
        plan = build_plan(fetch_rows(), settings)
    except Exception as exc:
        if cached is None:
            raise ConfigError(
                f"cannot read the admin database ({type(exc).__name__}: {exc}) and there is no usable snapshot at "
                f"{path}; the DAG cannot be built until the admin database has been reachable once"
            ) from exc
        _record_failure(path)
        log.warning(
            "admin database unreachable (%s: %s); using the snapshot from %.0f s ago with %d companies",
            type(exc).__name__,
            exc,
            cached[1],
            len(cached[0].companies),
        )
        return cached[0], PlanSource("stale-snapshot", cached[1], 1)
    write_snapshot(path, settings, plan)
    failure_marker(path).unlink(missing_ok=True)
    return plan, PlanSource("admin-db", 0.0, 1)


# --- (de)serialisation: the plan is cached as JSON, so parsing the DAG never re-validates SQL.


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """A JSON-ready form of the plan."""
    return asdict(plan)


def _table_from_dict(d: Mapping[str, Any]) -> TableSpec:
    return TableSpec(
        id=d["id"],
        name=d["name"],
        query_select=d["query_select"],
        references=tuple(legacy.Reference(r["kind"], r["index"]) for r in d["references"]),
        named_parameters=tuple(d["named_parameters"]),
        target=validation.InsertTarget(d["target"]["table"], tuple(d["target"]["columns"]), d["target"]["mode"]),
        load_mode=d["load_mode"],
        chunk_column=d["chunk_column"],
        chunk_rows=d["chunk_rows"],
        all_companies=d.get("all_companies", False),
        allow_empty_swap=d.get("allow_empty_swap", False),
        max_shrink_percent=d.get("max_shrink_percent"),
        cursor_column=d.get("cursor_column"),
        cursor_overlap=d.get("cursor_overlap"),
        verify_after_load=d.get("verify_after_load", False),
        delete_detection=d.get("delete_detection", "none"),
        schema_evolution=d.get("schema_evolution", "fail"),
        reconcile_every_days=d.get("reconcile_every_days", 0),
    )


def _problem(d: Mapping[str, Any]) -> Problem:
    return Problem(d["table"], d["row_id"], d["message"])


def plan_from_dict(d: Mapping[str, Any], keep: Callable[[str], bool] | None = None) -> Plan:
    """Rebuild a plan written by ``plan_to_dict``; with ``keep``, only the companies it accepts.

    Every company carries the same table specs: each distinct one is rebuilt once and shared, as
    ``build_plan`` shares them (20,000 spec objects become 20 at 1,000 companies x 20 tables).
    """
    specs: dict[int, tuple[Mapping[str, Any], TableSpec]] = {}

    def table(t: Mapping[str, Any]) -> TableSpec:
        known = specs.get(t["id"])
        if known is not None and known[0] == t:
            return known[1]
        spec = _table_from_dict(t)
        specs[t["id"]] = (t, spec)
        return spec

    return Plan(
        companies=tuple(
            CompanyPlan(
                company=Company(**c["company"]),
                tables=tuple(table(t) for t in c["tables"]),
                broken=tuple(BrokenTable(b["name"], _problem(b["problem"])) for b in c["broken"]),
            )
            for c in d["companies"]
            if keep is None or keep(c["company"]["alias"])
        ),
        broken_companies=tuple(
            BrokenCompany(b["key"], _problem(b["problem"]))
            for b in d["broken_companies"]
            if keep is None or keep(b["key"])
        ),
        inactive_companies=d["inactive_companies"],
        inactive_tables=d["inactive_tables"],
        built_at=d["built_at"],
    )


# --- the snapshot's own layout: specs once, companies by reference.


def _compact(plan: Plan) -> dict[str, Any]:
    """The snapshot form of a plan: each distinct spec and broken table once, companies pointing at them.

    Specs are told apart by value, not by id, so a plan whose companies carried different versions of
    one row (none does today: ``build_plan`` gives every company the same specs) still round-trips.
    """
    specs: dict[TableSpec, int] = {}
    broken_tables: dict[BrokenTable, int] = {}
    companies = []
    for company_plan in plan.companies:
        companies.append(
            {
                "company": asdict(company_plan.company),
                "tables": [specs.setdefault(t, len(specs)) for t in company_plan.tables],
                "broken": [broken_tables.setdefault(b, len(broken_tables)) for b in company_plan.broken],
            }
        )
    return {
        "specs": [asdict(t) for t in specs],
        "broken_tables": [asdict(b) for b in broken_tables],
        "companies": companies,
        "broken_companies": [asdict(b) for b in plan.broken_companies],
        "inactive_companies": plan.inactive_companies,
        "inactive_tables": plan.inactive_tables,
        "built_at": plan.built_at,
    }


def _from_compact(d: Mapping[str, Any], keep: Callable[[str], bool] | None = None) -> Plan:
    """Rebuild a plan written by ``_compact``; with ``keep``, only the companies it accepts.

    A spec is rebuilt the first time a kept company needs it and shared after that, so a parse that
    keeps one company builds that company's specs and nothing else.
    """
    specs: dict[int, TableSpec] = {}
    broken_tables: dict[int, BrokenTable] = {}

    def spec(n: int) -> TableSpec:
        if n not in specs:
            specs[n] = _table_from_dict(d["specs"][n])
        return specs[n]

    def broken(n: int) -> BrokenTable:
        if n not in broken_tables:
            b = d["broken_tables"][n]
            broken_tables[n] = BrokenTable(b["name"], _problem(b["problem"]))
        return broken_tables[n]

    return Plan(
        companies=tuple(
            CompanyPlan(
                company=Company(**c["company"]),
                tables=tuple(spec(n) for n in c["tables"]),
                broken=tuple(broken(n) for n in c["broken"]),
            )
            for c in d["companies"]
            if keep is None or keep(c["company"]["alias"])
        ),
        broken_companies=tuple(
            BrokenCompany(b["key"], _problem(b["problem"]))
            for b in d["broken_companies"]
            if keep is None or keep(b["key"])
        ),
        inactive_companies=d["inactive_companies"],
        inactive_tables=d["inactive_tables"],
        built_at=d["built_at"],
    )

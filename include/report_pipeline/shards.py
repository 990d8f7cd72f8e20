"""Splitting the companies over N DAGs (``REPORTS_DAG_SHARDS``): which company goes to which shard.

One DAG of 1,000 companies x 20 tables is 40,000 tasks: too slow to parse and to render. With N
shards, shard k (1..N) is its own DAG ``populate_report_databases_shard_kk`` built by its own DAG file
(the DAG processor parses per file, so each file must build only its shard).

The assignment is Lamping and Veach's jump consistent hash of a SHA-1 of the alias: a pure function
of (alias, N), the same in every process and on every machine (Python's ``hash()`` of a str is
salted per process, so it cannot be used), independent of which other companies exist (onboarding
one company moves nobody else), and when N grows to N+1 only about 1/(N+1) of the companies move,
all of them into the new shard (from N to N-1 only the last shard's companies move). A broken
company row, which has no usable alias, is assigned by its key (``company_<row id>``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from report_pipeline.config import Plan
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings

DAG_ID = "populate_report_databases"
_FILE = re.compile(r"^populate_report_databases_shard_(\d+)\.py$")
_SHARD_FILE = '''"""{dag_id}: shard {shard} of {shards} of populate_report_databases (see README "Scaling out").

Written by `report-pipeline write-dag-shards --shards {shards}`; rewrite them all when the count changes.
"""

from report_pipeline.airflow.factory import dag_from_admin

dag = dag_from_admin(shard={shard}, shards={shards})
'''


def _jump(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping & Veach 2014): ``key`` -> 0..buckets-1."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_of(key: str, shards: int) -> int:
    """The shard (1..``shards``) of a company alias (or broken row key); 1 when not sharded."""
    if shards <= 1:
        return 1
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return _jump(int.from_bytes(digest[:8], "big"), shards) + 1


def shard_dag_id(shard: int) -> str:
    """The DAG id of one shard, e.g. ``populate_report_databases_shard_03``.

    The count is not part of the id: when it grows, most companies keep their shard, and with it their
    DAG's run history.
    """
    return f"{DAG_ID}_shard_{shard:02d}"


def dag_ids(shards: int) -> list[str]:
    """Every DAG id the companies are scheduled in: the one DAG, or one per shard."""
    return [DAG_ID] if shards <= 1 else [shard_dag_id(k) for k in range(1, shards + 1)]


def dag_id_of(alias: str, shards: int) -> str:
    """The DAG that holds a company's task group."""
    return DAG_ID if shards <= 1 else shard_dag_id(shard_of(alias, shards))


def check_shard(shard: int, shards: int, configured: int) -> None:
    """Refuse a shard file that does not match ``REPORTS_DAG_SHARDS`` (it would schedule companies twice,
    or leave some unscheduled), naming what to do."""
    if not 1 <= shard <= shards:
        raise ConfigError(f"shard {shard} of {shards} does not exist (shards are numbered 1..{shards})")
    if shards != configured:
        setting = f"REPORTS_DAG_SHARDS={configured}" if configured > 1 else "REPORTS_DAG_SHARDS is off (1)"
        raise ConfigError(
            f"this DAG file is shard {shard} of {shards}, but {setting}: run `report-pipeline write-dag-shards` "
            "with the configured count (it rewrites the shard files and removes stale ones), or change the setting"
        )


def missing_shard_files(folder: Path, shards: int) -> list[str]:
    """The shard files of ``shards`` that ``folder`` lacks (sharding on, files never written: no DAG at all)."""
    return [f"{shard_dag_id(k)}.py" for k in range(1, shards + 1) if not (folder / f"{shard_dag_id(k)}.py").exists()]


def shard_plan(plan: Plan, shard: int, shards: int) -> Plan:
    """The part of ``plan`` one shard schedules: its companies and its broken company rows."""
    if shards <= 1:
        return plan
    return replace(
        plan,
        companies=tuple(c for c in plan.companies if shard_of(c.company.alias, shards) == shard),
        broken_companies=tuple(b for b in plan.broken_companies if shard_of(b.key, shards) == shard),
    )


def write_shard_files(folder: Path, shards: int) -> tuple[list[Path], list[Path]]:
    """Write one DAG file per shard into ``folder`` and remove shard files of other counts.

    Returns (written, removed). ``shards`` 1 removes every shard file: the plain DAG file then builds the
    one DAG again.
    """
    if shards < 1:
        raise ConfigError(f"the shard count must be at least 1, not {shards}")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if shards > 1:
        for k in range(1, shards + 1):
            path = folder / f"{shard_dag_id(k)}.py"
            text = _SHARD_FILE.format(dag_id=shard_dag_id(k), shard=k, shards=shards)
            if not path.exists() or path.read_text() != text:
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(text)
                tmp.replace(path)  # the DAG processor never reads half a file
            written.append(path)
    removed = []
    for path in sorted(folder.glob("populate_report_databases_shard_*.py")):
        match = _FILE.match(path.name)
        if match and path not in written:
            path.unlink()
            removed.append(path)
    return written, removed


def add_parser(sub: Any) -> None:
    """Add ``write-dag-shards`` to the CLI's subparsers."""
    p = sub.add_parser(
        "write-dag-shards",
        help="write one DAG file per shard (REPORTS_DAG_SHARDS) into the dags folder; remove stale ones",
    )
    p.add_argument("--shards", type=int, help="the count (default: REPORTS_DAG_SHARDS); 1 removes every shard file")
    p.add_argument(
        "--dags-folder",
        type=Path,
        help="where the DAG files go (default: as Airflow's: $AIRFLOW__CORE__DAGS_FOLDER, else $AIRFLOW_HOME/dags)",
    )


def cmd_write_dag_shards(args: argparse.Namespace, settings: Settings, connect: Any) -> int:
    """Write the shard files for the configured (or given) count, and say what else must match."""
    count = settings.dag_shards if args.shards is None else args.shards
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    folder = args.dags_folder or Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or os.path.join(home, "dags"))
    written, removed = write_shard_files(folder, count)
    for path in removed:
        print(f"removed {path}")
    for path in written:
        print(f"wrote {path}")
    if count > 1:
        print(f"{count} shard DAGs {shard_dag_id(1)} .. {shard_dag_id(count)}; {DAG_ID}.py builds none of them")
    else:
        print(f"no shard files: {DAG_ID}.py builds the one DAG")
    if count != settings.dag_shards:
        print(
            f"warning: REPORTS_DAG_SHARDS is {settings.dag_shards}; set it to {count} on the DAG processor, the "
            "workers and the CLI, or these files fail to import with a message saying so",
            file=sys.stderr,
        )
    return 0

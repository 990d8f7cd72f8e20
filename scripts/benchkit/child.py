"""One contender, once, in a process of its own: the child's side (``bench.py --child SPEC``: imports,
then the clock, then one JSON line) and the parent's runner of it."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit.machine import REPO, rss_mb
from benchkit.ours import OURS_LOADS, contender_ours, contender_ours_chunked
from benchkit.peers import contender_airflow, contender_limit, contender_naive
from serverkit import s3_client

ENTRY_POINT = REPO / "scripts" / "bench.py"
CHILD_TIMEOUT_S = 3600
RESULT_PREFIX = "BENCH-RESULT "

CONTENDERS: dict[str, Callable[[dict[str, Any]], Callable[[], dict[str, Any]]]] = {
    "ours-upsert": contender_ours,
    "ours-upsert-populated": contender_ours,
    "ours-swap": contender_ours,
    "ours-swap-1": contender_ours,
    "ours-swap-defer": contender_ours,
    "ours-chunked-4": contender_ours_chunked,
    "airflow": contender_airflow,
    "limit": contender_limit,
    "naive": contender_naive,
}


def child_main(raw_spec: str, process_started: float) -> int:
    """Run one contender once and print one JSON line: stage times, total, peak RSS, RSS after imports.

    ``process_started``: the entry point's clock at its first line, so the import time includes ours."""
    spec = json.loads(raw_spec)
    spec["load_mode"], spec["parallelism"], spec["defer_indexes"] = OURS_LOADS.get(
        spec["contender"], ("upsert", 1, False)
    )
    run = CONTENDERS[spec["contender"]](spec)  # imports happen here, before the clock starts
    # One throwaway S3 client: botocore loads and caches its S3 service model (~25 MB) on the first
    # client, the same for every contender; a fixed cost like an import, not the transfer's memory.
    s3_client()
    rss_after_imports = rss_mb()
    import_s = time.perf_counter() - process_started
    started = time.perf_counter()
    result = run()
    result["total_s"] = time.perf_counter() - started
    result["import_s"] = import_s
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_after_imports_mb"] = rss_after_imports
    # The transfer's own working set: what the run added on top of the interpreter and its imports.
    result["working_set_mb"] = result["peak_rss_mb"] - rss_after_imports
    result["airflow_imported"] = any(m == "airflow" or m.startswith("airflow.") for m in sys.modules)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_child(spec: dict[str, Any], entry_point: Path = ENTRY_POINT) -> dict[str, Any]:
    """Run ``entry_point --child SPEC`` and return its result with the whole-process wall time (or an error)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(entry_point), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=REPO,
        check=False,
    )
    # Whole-process wall time: interpreter start-up, imports, the work, and exit.
    wall = time.perf_counter() - started
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = dict(json.loads(line[len(RESULT_PREFIX) :]))
            result["wall_s"] = wall
            result["startup_s"] = wall - result["total_s"]
            return result
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    return {"error": f"exit {proc.returncode}: {tail}"}

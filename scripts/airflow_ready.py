"""Wait until a freshly started local Airflow stack is ready (scripts/airflow_local.sh ``wait_ready``).

Polls the api-server until every component reports healthy with a heartbeat from after ``SINCE``
(epoch seconds; older ones are the previous processes') and the DAG was parsed since then without an
import error; fails early when one of the started processes dies. Everything comes from the
environment: SINCE, AIRFLOW_LOCAL_PIDS ("name=pid ..."), API, DAG_ID, TIMEOUT, ADMIN_USER,
ADMIN_PASSWORD. Exit 0 when ready; otherwise the reason on stderr and a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def call(api: str, path: str, data: Any = None, token: str | None = None) -> Any:
    """One JSON request to the api-server."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    with urllib.request.urlopen(urllib.request.Request(api + path, body, headers), timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def fresh(stamp: str | None, since: dt.datetime) -> bool:
    """Whether an API timestamp is from after ``since``."""
    return bool(stamp) and dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) >= since


def check_alive(pids: dict[str, str]) -> None:
    """Exit when one of the stack's processes is gone."""
    for name, pid in pids.items():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"{name} (pid {pid}) exited while waiting for the stack")


def main() -> None:
    """Poll until healthy and parsed (exit 0), or exit with the reason."""
    api, dag_id = os.environ["API"], os.environ["DAG_ID"]
    since = dt.datetime.fromtimestamp(float(os.environ["SINCE"]), dt.UTC)
    deadline = time.monotonic() + float(os.environ["TIMEOUT"])
    pids = dict(item.split("=") for item in os.environ["AIRFLOW_LOCAL_PIDS"].split())

    last, stage = "no answer yet", "health"
    while time.monotonic() < deadline:
        check_alive(pids)
        try:
            if stage == "health":
                health = call(api, "/api/v2/monitor/health")
                states = {k: (v or {}).get("status") for k, v in health.items()}
                beats = {k: v.get(f"latest_{k}_heartbeat") for k, v in health.items() if k != "metadatabase"}
                if (
                    all(s == "healthy" for s in states.values())
                    and len(states) >= 4
                    and all(fresh(b, since) for b in beats.values())
                ):
                    print(f"healthy: {states}", file=sys.stderr)
                    stage = "dag"
                else:
                    last = f"health {states}, heartbeats {beats}"
            if stage == "dag":
                credentials = {"username": os.environ["ADMIN_USER"], "password": os.environ["ADMIN_PASSWORD"]}
                token = call(api, "/auth/token", credentials)["access_token"]
                errors = call(api, "/api/v2/importErrors?limit=100", token=token)["import_errors"]
                mine = [e for e in errors if os.path.basename(e.get("filename", "")) == f"{dag_id}.py"]
                if mine and fresh(mine[0].get("timestamp"), since):
                    sys.exit(f"import error in the DAG file:\n{mine[0].get('stack_trace')}")
                try:
                    dag = call(api, f"/api/v2/dags/{dag_id}", token=token)
                    if fresh(dag.get("last_parsed_time"), since) and not mine:
                        print(f"dag {dag_id} listed (paused={dag.get('is_paused')})", file=sys.stderr)
                        sys.exit(0)
                    last = f"dag {dag_id} not parsed since the start yet (last {dag.get('last_parsed_time')})"
                except urllib.error.HTTPError as exc:
                    last = f"GET /api/v2/dags/{dag_id}: HTTP {exc.code} (not parsed yet?)"
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(2)
    sys.exit(f"timed out after {os.environ['TIMEOUT']} s; last: {last}")


if __name__ == "__main__":
    main()

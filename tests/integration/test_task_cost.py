"""Issue 21 item 3: what one task re-does that it need not (real connections, real local servers).

- One ``HookConnections`` (one task) looks each Airflow connection up once, however many sessions it
  opens: every look-up goes through the secrets backends and adds the password to the log masker.
- The S3 client names its calling operator in the user agent, as the provider's hook does, without
  ``inspect.stack()`` (which reads the source of every frame: 0.1-0.35 s of each S3 task's own time).
- ``preload()`` imports the libraries the tasks would import on first use.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from report_pipeline.airflow.connections import HookConnections
from report_pipeline.session import opened
from report_pipeline.settings import ADMIN_CONN_ID, SOURCE_CONN_ID, TARGET_CONN_ID

pytestmark = pytest.mark.integration


def test_one_task_looks_each_connection_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.bases.hook import BaseHook

    looked_up: Counter[str] = Counter()
    real = BaseHook.get_connection.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, conn_id: str) -> Any:
        looked_up[conn_id] += 1
        return real(cls, conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counting))
    connections = HookConnections()
    for _ in range(3):  # a load, its swap's extra sessions, its verify: the target again and again
        with opened(connections.target()) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    connections.protected_schemas()
    connections.protected_schemas()
    with opened(connections.source()) as conn:
        conn.cursor().execute("SELECT 1")
    with opened(connections.admin()) as conn:
        conn.cursor().execute("SELECT 1")
    assert looked_up[TARGET_CONN_ID] == 1, looked_up
    assert looked_up[ADMIN_CONN_ID] == 1, looked_up
    assert looked_up[SOURCE_CONN_ID] == 1, looked_up


class ProbeOperator:
    """Stands where an operator's ``execute`` builds the client (the frame the provider looks for)."""

    def execute(self, connections: HookConnections) -> Any:
        return connections.s3()


def test_the_s3_client_names_its_operator_without_reading_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_stack(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inspect.stack() called")

    monkeypatch.setattr(inspect, "stack", no_stack)
    client = ProbeOperator().execute(HookConnections())
    assert "Caller/ProbeOperator" in (client.meta.config.user_agent_extra or "")
    # The bounded waits of REPORTS_NET_TIMEOUT still apply, and the client works.
    assert client.meta.config.connect_timeout == HookConnections().settings.net_timeout_seconds
    assert "Buckets" in client.list_buckets()


def test_preload_imports_what_the_tasks_would_import_on_first_use() -> None:
    code = (
        "import sys\n"
        "from report_pipeline.airflow.preload import preload\n"
        "preload()\n"
        "wanted = ['boto3', 'MySQLdb', 'airflow.providers.amazon.aws.hooks.s3',\n"
        "          'airflow.providers.mysql.hooks.mysql']\n"
        "missing = [m for m in wanted if m not in sys.modules]\n"
        "ours = sorted(m for m in sys.modules if m.startswith('report_pipeline') and m not in "
        "('report_pipeline', 'report_pipeline.airflow', 'report_pipeline.airflow.preload'))\n"
        "assert not missing and not ours, (missing, ours)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)

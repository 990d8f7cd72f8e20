"""Issue 21 item 3: what one task re-does that it need not (real connections, real local servers).

- One ``HookConnections`` (one task) looks each Airflow connection up once, however many sessions it
  opens: every look-up goes through the secrets backends and adds the password to the log masker.
- The S3 client and the STS account lookup name their calling operator in the user agent, as the
  provider's hooks do, without ``inspect.stack()`` (which reads the source of every frame: 0.1-0.35 s
  of each S3 task's own time, each time), and with the S3 connection the task already looked up.
- ``preload()`` imports the libraries the tasks would import on first use, and parses the botocore
  data the S3 client and the STS lookup need.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from report_pipeline.airflow import connections as connections_module
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.session import opened
from report_pipeline.settings import ADMIN_CONN_ID, S3_CONN_ID, SOURCE_CONN_ID, TARGET_CONN_ID

pytestmark = pytest.mark.integration


def count_lookups(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts Airflow connection look-ups by id (the providers' hooks and ours alike)."""
    from airflow.sdk.bases.hook import BaseHook

    looked_up: Counter[str] = Counter()
    real = BaseHook.get_connection.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, conn_id: str) -> Any:
        looked_up[conn_id] += 1
        return real(cls, conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counting))
    return looked_up


def test_one_task_looks_each_connection_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = count_lookups(monkeypatch)
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
    stacks = stack_calls(monkeypatch)
    client = ProbeOperator().execute(HookConnections())
    assert stacks == []
    assert "Caller/ProbeOperator" in (client.meta.config.user_agent_extra or "")
    # The bounded waits of REPORTS_NET_TIMEOUT still apply, and the client works.
    assert client.meta.config.connect_timeout == HookConnections().settings.net_timeout_seconds
    assert "Buckets" in client.list_buckets()


def stack_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and refuses) every ``inspect.stack()``: the provider's hooks turn the refusal into
    "Caller/Unknown" silently, so a test must look at the record, not for an error."""
    calls: list[str] = []

    def no_stack(*args: Any, **kwargs: Any) -> Any:
        calls.append("inspect.stack()")
        raise AssertionError("inspect.stack() called")

    monkeypatch.setattr(inspect, "stack", no_stack)
    return calls


def sent_user_agents(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(service, user-agent extra) of every AWS API call made from here on."""
    from botocore.client import BaseClient

    sent: list[tuple[str, str]] = []
    real = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: Any) -> Any:
        sent.append((self.meta.service_model.service_name, self.meta.config.user_agent_extra or ""))
        return real(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return sent


class AccountProbeOperator:
    """Stands where an operator's ``execute`` checks a bucket's owner (the STS account lookup)."""

    def execute(self, connections: HookConnections) -> Any:
        return connections.s3_caller_account()


def test_the_account_lookup_reads_no_stack_and_reuses_the_tasks_s3_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections_module, "_caller_accounts", {})
    stacks, sent, looked_up = stack_calls(monkeypatch), sent_user_agents(monkeypatch), count_lookups(monkeypatch)
    connections = HookConnections()
    # The local S3 server has no STS: the lookup asks, is refused, and goes on without an account.
    assert AccountProbeOperator().execute(connections) is None
    ProbeOperator().execute(connections)
    assert stacks == []
    sts = [agent for service, agent in sent if service == "sts"]
    assert len(sts) == 1 and "Caller/AccountProbeOperator" in sts[0], sent
    # One look-up of reports_s3 for the task's S3 client and its account lookup together.
    assert looked_up[S3_CONN_ID] == 1, looked_up
    # Asked once per process.
    assert AccountProbeOperator().execute(HookConnections()) is None
    assert len([s for s, _ in sent if s == "sts"]) == 1, sent


def test_preload_parses_the_botocore_data_the_s3_client_and_the_account_lookup_need() -> None:
    # After preload, building the clients a task builds reads no botocore data file again.
    code = (
        "import boto3, botocore.loaders\n"
        "from report_pipeline.airflow.preload import preload\n"
        "preload()\n"
        "read = []\n"
        "real = botocore.loaders.JSONFileLoader.load_file\n"
        "def counting(self, file_path):\n"
        "    read.append(file_path)\n"
        "    return real(self, file_path)\n"
        "botocore.loaders.JSONFileLoader.load_file = counting\n"
        "session = boto3.session.Session(aws_access_key_id='k', aws_secret_access_key='s', region_name='eu-west-1')\n"
        "for service in ('s3', 'sts'):\n"
        "    session.client(service, endpoint_url='http://127.0.0.1:9')\n"
        "assert not read, read\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


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

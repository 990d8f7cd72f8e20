"""Issue 14 through a real ``airflow dags test`` run: OpenLineage events (file transport), StatsD metrics
(a UDP listener), and failure alerts by mail (a local SMTP sink) with a broken notifier beside it.

One scratch company with two tables: ``items`` loads, ``broken`` reads a source table that does not
exist, so its extract fails after the seed's retries and the run finishes failed. Everything runs in
scratch schemas, a scratch bucket and a scratch DAG folder; the run is a subprocess so Airflow reads
the lineage, metrics and alert settings from its environment, as a deployment would.
"""

from __future__ import annotations

import html
import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from tests.conftest import REPO, execute, mysql_connect, mysql_url, s3_client

pytestmark = pytest.mark.integration

RUN_DATE = "2026-11-26"
DAG_FILE = '''"""Scratch DAG for tests/dags/test_operator_view.py."""
import os

from report_pipeline.airflow.factory import build_dag, current_plan
from report_pipeline.settings import Settings

settings = Settings.from_env()
plan, _ = current_plan(settings)
dag = build_dag(plan, settings, dag_id=os.environ["RP_TEST_DAG"])
'''


class SmtpSink:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class UdpListener:
    """Collects the StatsD datagrams sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines += data.decode(errors="replace").splitlines()

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


def _delete_bucket(name: str) -> None:
    s3 = s3_client()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - the bucket may never have been created
        pass


@pytest.fixture(scope="module")
def observed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One failed run of the scratch DAG, with what the SMTP sink, the UDP listener and the lineage file got."""
    from report_pipeline.admin import init_admin

    tmp = tmp_path_factory.mktemp("opview")
    tag = uuid.uuid4().hex[:8]
    alias, admin_db, source_db, dag_id = f"rpo{tag}", f"t_adm_{tag}", f"t_src_{tag}", f"rp_test_opview_{tag}"
    bucket = f"rp-opview-{alias}"
    root = mysql_connect()
    for db in (admin_db, source_db, alias):
        execute(root, f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    sink, udp = SmtpSink(), UdpListener()
    try:
        admin = mysql_connect(admin_db)
        init_admin(admin)
        execute(
            admin,
            f"INSERT INTO companies (id, company_id, status, alias) VALUES (1, 7, 1, '{alias}')",
            "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert) "
            "VALUES (1, 'items', 1, 'SELECT i.id, i.amount, c.name AS colour FROM items AS i JOIN colours AS c "
            "ON c.id = i.colour WHERE i.company = %s', 'company[1]', "
            "'REPLACE INTO items(id, amount, colour) VALUES ', ''), "
            "(2, 'broken', 1, 'SELECT id FROM no_such_table WHERE company = %s', 'company[1]', "
            "'REPLACE INTO broken(id) VALUES ', '')",
        )
        admin.close()
        execute(
            root,
            f"CREATE TABLE {source_db}.items (id INT PRIMARY KEY, company INT, amount DECIMAL(10,2), colour INT)",
            f"CREATE TABLE {source_db}.colours (id INT PRIMARY KEY, name VARCHAR(16))",
            f"INSERT INTO {source_db}.colours VALUES (1, 'red'), (2, 'blue')",
            f"INSERT INTO {source_db}.items VALUES (1, 7, 1.50, 1), (2, 7, 2.25, 2), (3, 7, 3.00, 1), (4, 8, 9, 2)",
            f"CREATE TABLE {alias}.items (id INT PRIMARY KEY, amount DECIMAL(10,2), colour VARCHAR(16))",
            f"CREATE TABLE {alias}.broken (id INT PRIMARY KEY)",
        )
        dags = tmp / "dags"
        dags.mkdir()
        (dags / "rp_opview_dag.py").write_text(DAG_FILE)
        lineage_file = tmp / "openlineage.jsonl"
        env = {
            **os.environ,
            "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
            "AIRFLOW_CONN_REPORTS_ADMIN_DB": mysql_url(admin_db),
            "AIRFLOW_CONN_REPORTS_SOURCE_DB": mysql_url(source_db),
            "REPORTS_SNAPSHOT_PATH": str(tmp / "snapshot.json"),
            "REPORTS_S3_BUCKET_TEMPLATE": "rp-opview-{alias}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "RP_TEST_DAG": dag_id,
            # Lineage: the provider's file transport, one JSON event per line.
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(lineage_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "rp-test",
            # Metrics: StatsD with InfluxDB-style tags, to the listener.
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(udp.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
            # Alerts: mail to the sink, and a Slack notifier whose connection does not exist (broken).
            "REPORTS_ALERT_NOTIFIERS": "smtp:ops@example.com,dba@example.com slack:rp_no_such_slack",
            "REPORTS_ALERT_FROM": "airflow@example.com",
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"},
                }
            ),
            "AIRFLOW__API__BASE_URL": "http://airflow.example.com:8080",
        }
        result = subprocess.run(
            ["airflow", "dags", "test", dag_id, RUN_DATE],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log_text = result.stdout + result.stderr
        (REPO / "test-output").mkdir(exist_ok=True)
        (REPO / "test-output" / "operator_view_run.log").write_text(log_text)
        udp.stop()
        events = [json.loads(line) for line in lineage_file.read_text().splitlines()] if lineage_file.exists() else []
        yield {
            "alias": alias,
            "bucket": bucket,
            "source_db": source_db,
            "dag_id": dag_id,
            "log": log_text,
            "mails": list(sink.messages),
            "metrics": list(udp.lines),
            "events": events,
        }
    finally:
        sink.stop()
        udp.stop()
        for db in (admin_db, source_db, alias):
            execute(root, f"DROP DATABASE IF EXISTS `{db}`")
        root.close()
        _delete_bucket(bucket)


def _rows(sql: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect()
    cursor = conn.cursor()
    cursor.execute(sql)
    rows = list(cursor.fetchall())
    conn.close()
    return rows


def test_the_good_table_loads_though_a_notifier_is_broken(observed_run: dict[str, Any]) -> None:
    run = observed_run
    alias, source = run["alias"], run["source_db"]
    assert _rows(f"SELECT id, amount, colour FROM {alias}.items ORDER BY id") == _rows(
        f"SELECT i.id, i.amount, c.name FROM {source}.items i JOIN {source}.colours c ON c.id = i.colour "
        "WHERE i.company = 7 ORDER BY i.id"
    ), "see test-output/operator_view_run.log"
    # The broken Slack notifier is reported once per failed task and once for the run, never raised.
    failures = [ln for ln in run["log"].splitlines() if "alert not delivered by 1 notifier(s)" in ln]
    assert failures and all("rp_no_such_slack" in ln for ln in failures), run["log"][-3000:]
    assert len(failures) == 2, failures


def _mail_text(message: Message) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    return "\n".join(p.get_payload(decode=True).decode() for p in parts if p.get_content_maintype() == "text")


def test_the_failed_task_and_the_failed_run_are_mailed(observed_run: dict[str, Any]) -> None:
    run = observed_run
    alias = run["alias"]
    mails = run["mails"]
    assert len(mails) == 2, [m["Subject"] for m in mails]
    task_mail = next(m for m in mails if f"{alias}.broken failed" in m["Subject"])
    assert task_mail["To"] == "ops@example.com, dba@example.com"
    assert task_mail["From"] == "airflow@example.com"
    body = _mail_text(task_mail)
    for expected in (
        f"company: {alias}",
        "table: broken",
        "logical date: 2026-11-26T00:00:00+00:00",
        "error: ProgrammingError: (1146",
        "no_such_table",
        f"http://airflow.example.com:8080/dags/{run['dag_id']}/runs/",
        f"/tasks/company_{alias}.broken__mysql_to_s3?try_number=4",
    ):
        assert expected in body, f"{expected!r} not in the mail:\n{body}"
    run_mail = next(m for m in mails if "finished with 1 failed table(s)" in m["Subject"])
    assert f"{alias}.broken" in run_mail["Subject"]
    run_body = html.unescape(_mail_text(run_mail))  # an HTML mail: quotes arrive as &#x27;
    assert f"company {alias!r} table 'broken' task company_{alias}.broken__mysql_to_s3" in run_body
    assert f"company {alias!r} table 'items'" not in run_body


def _datasets(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event.get(side, [])]


def test_lineage_events_name_source_tables_s3_folder_and_target_table(observed_run: dict[str, Any]) -> None:
    run = observed_run
    alias, source = run["alias"], run["source_db"]
    complete = {
        e["job"]["name"].rsplit(".", 1)[-1]: e
        for e in run["events"]
        if e.get("eventType") == "COMPLETE" and e["job"]["name"].startswith(run["dag_id"] + ".")
    }
    assert "items__mysql_to_s3" in complete and "items__s3_to_mysql" in complete, sorted(complete)
    mysql_ns = f"mysql://127.0.0.1:{os.environ['REPORTS_MYSQL_PORT']}"
    folder = ("s3://" + run["bucket"], "items/2026-11-26T000000Z")
    extract, load = complete["items__mysql_to_s3"], complete["items__s3_to_mysql"]
    assert sorted(_datasets(extract, "inputs")) == [(mysql_ns, f"{source}.colours"), (mysql_ns, f"{source}.items")]
    assert _datasets(extract, "outputs") == [folder]
    out = extract["outputs"][0]
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["id", "amount", "colour"]
    assert "no_such_table" not in json.dumps(extract)
    assert _datasets(load, "inputs") == [folder]
    assert _datasets(load, "outputs") == [(mysql_ns, f"{alias}.items")]
    target = load["outputs"][0]
    assert target["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert [f["name"] for f in target["facets"]["schema"]["fields"]] == ["id", "amount", "colour"]


def test_metrics_reach_statsd_tagged_by_company_and_table(observed_run: dict[str, Any]) -> None:
    run = observed_run
    alias = run["alias"]
    lines = run["metrics"]
    tags = f",company={alias},table=items"

    def value(name: str) -> float:
        found = [ln for ln in lines if ln.startswith(f"airflow.report_pipeline.{name}{tags}:")]
        assert found, f"no {name} for items among {[ln for ln in lines if 'report_pipeline' in ln]}"
        return float(found[-1].split(":", 1)[1].split("|", 1)[0])

    assert value("extract.rows") == 3
    assert value("load.rows") == 3
    assert value("extract.bytes") > 0 and value("load.bytes") == value("extract.bytes")
    assert value("extract.duration") >= 0 and value("load.duration") >= 0
    assert value("data_age") > 0
    # Tags carry company and table (statsd_influxdb_enabled): no name per table (issue 21 item 5).
    assert not any(ln.startswith(f"airflow.report_pipeline.{alias}.") for ln in lines)
    # The failed table never got as far as sending figures.
    assert not [ln for ln in lines if "table=broken" in ln]

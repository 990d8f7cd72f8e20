"""No password, secret key or connection URI ends up where people or other systems can read it.

A scratch deployment (tests/security/test_least_privilege.py's `deploy`) gets database passwords
and an S3 secret key that are unique, recognisable strings. Then the DAG runs in a child process
(so everything it prints -- task logs included, which dag.test() sends to stdout/stderr rather than
to files -- is captured whole), the CLI commands run against the same connections, and every place
the run wrote to is searched: task output and any log files under $AIRFLOW_HOME/logs, the run's
XCom values and rendered template fields, every S3 object (parts decompressed), the snapshot
file, and every CLI output.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, s3_client
from tests.security.test_least_privilege import COMPANIES, LOGICAL_DATE, Deployment, deploy, run_dag, teardown

pytestmark = pytest.mark.integration

_DEPLOYMENT_VARIABLE = "RP_SECURITY_DEPLOYMENT"
_RUN_VARIABLE = "RP_SECURITY_RUN"
_RESULT_MARK = "RP_SECURITY_RESULT "
DATE = LOGICAL_DATE.date().isoformat()
CLI_COMMANDS = (
    ("plan", "--date", DATE),
    ("plan", "--json"),
    ("validate",),
    ("run", "--company", "acme", "--table", "orders", "--date", DATE),
    ("report", "--date", DATE),
    ("onboard", "--company-id", "1", "--alias", "acme", "--lookback-days", "60", "--dry-run"),
)


def secrets_of(deployment: Deployment) -> dict[str, str]:
    """Every string that must never appear: passwords, the S3 secret key, the connection values."""
    found = {f"{role} password": pw for role, pw in deployment.passwords.items()}
    found["S3 secret key"] = deployment.s3_secret_key
    found.update(deployment.connection_uris())
    return found


def leaks(text: str | bytes, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets that occur in ``text``."""
    haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return [name for name, value in secrets.items() if value in haystack]


def _child_env(deployment: Deployment, **extra: str) -> dict[str, str]:
    return {**os.environ, **deployment.env(), **extra}


def run_dag_in_child(
    deployment: Deployment, dag_id: str | None = None, run_conf: dict[str, Any] | None = None, **env: str
) -> tuple[str, dict[str, Any]]:
    """Run the deployment's DAG in a fresh interpreter; returns its whole output and the run's ids."""
    body = dataclasses.asdict(deployment) | {"snapshot_dir": str(deployment.snapshot_dir)}
    run = {"dag_id": dag_id, "run_conf": run_conf}
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.test_secrets"],
        env=_child_env(deployment, **{_DEPLOYMENT_VARIABLE: json.dumps(body), _RUN_VARIABLE: json.dumps(run)}, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_MARK)]
    assert done.returncode == 0 and lines, output[-5000:]
    return output, json.loads(lines[-1][len(_RESULT_MARK) :])


def _cli(deployment: Deployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["report-pipeline", *args],
        env=_child_env(deployment, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _xcom_values(dag_id: str, run_id: str) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id
            )
        ).all()
    return [f"{task_id} {key} {json.dumps(value, default=str)}" for task_id, key, value in rows]


def _rendered_fields(dag_id: str, run_id: str) -> list[str]:
    """The run's rendered template fields, which the UI shows next to the task log."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(Rendered.task_id, Rendered.rendered_fields).where(
                Rendered.dag_id == dag_id, Rendered.run_id == run_id
            )
        ).all()
    return [f"{task_id} {json.dumps(fields, default=str)}" for task_id, fields in rows]


def _s3_objects(deployment: Deployment) -> dict[str, bytes]:
    s3 = s3_client()
    objects: dict[str, bytes] = {}
    for alias in COMPANIES:
        bucket = deployment.bucket(alias)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", ()):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                if body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                objects[f"s3://{bucket}/{item['Key']}"] = body
    return objects


def _log_files_since(started: float) -> dict[str, bytes]:
    """Airflow log files written during the run (dag.test() may write none; a scheduler would)."""
    root = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A scratch deployment with recognisable secrets; dropped afterwards."""
    created = deploy(tmp_path_factory.mktemp("secrets"), password_prefix="leakcheck")
    yield created
    teardown(created)


@pytest.fixture(scope="module")
def evidence(deployment: Deployment) -> dict[str, Any]:
    """Run the DAG and every CLI command, then collect everything they left behind."""
    started = time.time()
    output, result = run_dag_in_child(deployment)
    cli = {" ".join(args): _cli(deployment, *args) for args in CLI_COMMANDS}
    return {
        "task output": output,
        "log files": _log_files_since(started),
        "result": result,
        "xcom": _xcom_values(result["dag_id"], result["run_id"]),
        "rendered": _rendered_fields(result["dag_id"], result["run_id"]),
        "s3": _s3_objects(deployment),
        "cli": cli,
        "snapshot": {str(p): p.read_bytes() for p in deployment.snapshot_dir.glob("*.json")},
    }


def test_the_run_succeeded_and_its_task_logs_were_captured(evidence: dict[str, Any]) -> None:
    # Without this, searching an empty or failed run's output would prove nothing.
    assert evidence["result"]["state"] == "success", evidence["task output"][-5000:]
    assert evidence["result"]["tasks"] == {"success": 18}
    output = evidence["task output"]
    assert "extracted" in output and "loaded" in output and "company_acme.orders__s3_to_mysql" in output


def test_task_logs_hold_no_secret(deployment: Deployment, evidence: dict[str, Any]) -> None:
    secrets = secrets_of(deployment)
    assert leaks(evidence["task output"], secrets) == []
    for path, body in evidence["log files"].items():
        assert leaks(body, secrets) == [], path


def test_xcom_values_hold_no_secret(deployment: Deployment, evidence: dict[str, Any]) -> None:
    values = evidence["xcom"]
    assert len(values) >= 18, values  # every extract and load returned something
    for value in values:
        assert leaks(value, secrets_of(deployment)) == [], value


def test_rendered_template_fields_hold_no_secret(deployment: Deployment, evidence: dict[str, Any]) -> None:
    rendered = evidence["rendered"]
    assert len(rendered) == 18, rendered
    for value in rendered:
        assert leaks(value, secrets_of(deployment)) == [], value


def test_s3_objects_hold_no_secret(deployment: Deployment, evidence: dict[str, Any]) -> None:
    objects = evidence["s3"]
    for alias in COMPANIES:
        written = [k for k in objects if k.startswith(f"s3://{deployment.bucket(alias)}/")]
        assert any(k.endswith("manifest.json") for k in written), written
        assert any(k.endswith("_SUCCESS") for k in written), written
    for key, body in objects.items():
        assert leaks(body, secrets_of(deployment)) == [], key


def test_snapshot_file_holds_no_secret(deployment: Deployment, evidence: dict[str, Any]) -> None:
    assert evidence["snapshot"], "the run must have written its admin snapshot"
    for path, body in evidence["snapshot"].items():
        assert leaks(body, secrets_of(deployment)) == [], path


@pytest.mark.parametrize("command", [" ".join(args) for args in CLI_COMMANDS])
def test_cli_output_holds_no_secret(command: str, deployment: Deployment, evidence: dict[str, Any]) -> None:
    done = evidence["cli"][command]
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip()
    assert leaks(done.stdout + done.stderr, secrets_of(deployment)) == []


def test_cli_connection_failures_hold_no_secret(deployment: Deployment) -> None:
    """A refused login and an unreachable server print an error, but never the credentials tried."""
    wrong = f"leakcheck-wrong-{uuid.uuid4().hex}"
    port = os.environ["REPORTS_MYSQL_PORT"]
    bad_password = f"mysql://{deployment.users['admin']}:{wrong}@127.0.0.1:{port}/{deployment.admin_schema}"
    # Port 1 on loopback: nothing listens there, so the connect fails at once.
    no_server = f"mysql://{deployment.users['admin']}:{wrong}@127.0.0.1:1/{deployment.admin_schema}"
    failures = []
    for uri in (bad_password, no_server):
        done = _cli(deployment, "plan", AIRFLOW_CONN_REPORTS_ADMIN_DB=uri, REPORTS_ADMIN_TIMEOUT="2")
        assert done.returncode != 0
        output = done.stdout + done.stderr
        failures.append(output)
        assert leaks(output, secrets_of(deployment) | {"wrong password": wrong, "uri": uri}) == []
    # The refused login's message is the driver's, naming the user: the search did see the error.
    assert f"Access denied for user '{deployment.users['admin']}'" in failures[0]


def test_failed_task_logs_hold_no_secret(deployment: Deployment) -> None:
    """A task whose target login is refused fails, and its log (with tracebacks) shows no credential."""
    wrong = f"leakcheck-wrong-{uuid.uuid4().hex}"
    port = os.environ["REPORTS_MYSQL_PORT"]
    uri = f"mysql://{deployment.users['target']}:{wrong}@127.0.0.1:{port}/?charset=utf8mb4"
    dag_id = f"{deployment.dag_id}_refused"
    deployment.extra_dag_ids.append(dag_id)
    output, result = run_dag_in_child(
        deployment,
        dag_id=dag_id,
        # One extract and one load are enough; every other task skips.
        run_conf={"companies": ["acme"], "tables": ["users"]},
        AIRFLOW_CONN_REPORTS_TARGET_DB=uri,
    )
    assert result["state"] == "failed", output[-5000:]
    assert f"Access denied for user '{deployment.users['target']}'" in output  # the failure was logged
    assert leaks(output, secrets_of(deployment) | {"wrong password": wrong, "uri": uri}) == []


def _child_main() -> None:
    """In the child: run the DAG with the deployment's least-privileged environment, print the result."""
    body = json.loads(os.environ[_DEPLOYMENT_VARIABLE])
    body["snapshot_dir"] = Path(body["snapshot_dir"])
    deployment = Deployment(**body)
    options = json.loads(os.environ.get(_RUN_VARIABLE) or "{}")
    run = run_dag(deployment, dag_id=options.get("dag_id"), run_conf=options.get("run_conf"))
    counts: dict[str, int] = {}
    for ti in run.get_task_instances():
        counts[str(ti.state)] = counts.get(str(ti.state), 0) + 1
    result = {"dag_id": run.dag_id, "run_id": run.run_id, "state": str(run.state), "tasks": counts}
    print(_RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    _child_main()

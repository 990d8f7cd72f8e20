"""Issue 22.2: company buckets are ours or refused, on an S3 server that keeps accounts apart (moto).

moto runs as a real server on a local port (``moto_server``, a separate process). The pipeline's S3
connection authenticates as moto's default account; a squatter is another account, reached the AWS
way: STS AssumeRole into a role of account 111111111111. Without REPORTS_S3_EXPECTED_OWNER the
pipeline asks STS which account it is (GetCallerIdentity, once per process) and sends that account as
``ExpectedBucketOwner`` on every call naming a company bucket. moto does not enforce that header, so
the pipeline also checks that its own ListBuckets lists the bucket: the squatter's bucket answers HEAD,
is not listed, and the extract is refused before writing anything. A missing bucket is still created,
in the pipeline's own account. The lifecycle rule (REPORTS_S3_EXPIRE_DAYS) is merged into a bucket's
existing rules the first time a process uses it, and read back.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.conftest import execute, mysql_connect, mysql_url

from report_pipeline import tasks
from report_pipeline.airflow import connections as connections_module
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.config import Company, build_table
from report_pipeline.errors import RefusedError
from report_pipeline.settings import Settings
from report_pipeline.storage import EXPIRE_RULE_ID

pytestmark = pytest.mark.integration

OURS = "123456789012"  # moto's default account: the one plain credentials act as
SQUATTER = "111111111111"
LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
HEADER = "x-amz-expected-bucket-owner"


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``moto_server`` on a free local port, for this module."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Path(tmp_path_factory.mktemp("moto")) / "moto.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, log.read_text()
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(30)


def _client(endpoint: str, service: str, **credentials: str) -> Any:
    credentials = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **credentials)


def _squatter(endpoint: str) -> Any:
    """An S3 client of another account: AssumeRole into a role of account 111111111111."""
    creds = _client(endpoint, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{SQUATTER}:role/squatter", RoleSessionName="squat"
    )["Credentials"]
    return _client(
        endpoint,
        "s3",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


@pytest.fixture
def world(moto_endpoint: str, scratch_db: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A source table, the contract connections (S3 = moto, plain credentials), a fresh owner lookup."""
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO src VALUES (1, 'a'), (2, 'b')",
    )
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", mysql_url(scratch_db))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_TARGET_DB", mysql_url(""))
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORTS_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    monkeypatch.setattr(connections_module, "_caller_accounts", {})
    return scratch_db


def _extract(bucket: str, settings: Settings) -> tuple[Any, list[tuple[str, str | None]]]:
    conns = HookConnections(settings)
    calls: list[tuple[str, str | None]] = []
    conns.s3().meta.events.register(
        "before-call.s3", lambda model, params, **_: calls.append((model.name, params["headers"].get(HEADER)))
    )
    company = Company(
        id=1,
        company_id=1,
        status=1,
        alias="acct",
        bucket=bucket,
        schema="unused",
        lookback_days=1,
        lookback_source="default",
    )
    spec = build_table(
        {
            "id": 7,
            "name": "src",
            "query_select": "SELECT id, name FROM src",
            "params_select": "",
            "all_companies": 1,
            "query_insert": "REPLACE INTO dst (id, name) VALUES",
            "status": 1,
        }
    )
    return tasks.extract_table(conns, settings, company, spec, LOGICAL_DATE, "run-1"), calls


def _name() -> str:
    return f"reports-acct-{uuid.uuid4().hex[:10]}"


def test_a_bucket_squatted_by_another_account_is_refused_with_nothing_written(world, moto_endpoint):
    bucket = _name()
    squatter = _squatter(moto_endpoint)
    squatter.create_bucket(Bucket=bucket)
    assert bucket not in {b["Name"] for b in _client(moto_endpoint, "s3").list_buckets()["Buckets"]}
    with pytest.raises(RefusedError) as refused:
        _extract(bucket, Settings())
    message = str(refused.value)
    assert f"s3://{bucket} belongs to another account, not to account {OURS}" in message, message
    assert squatter.list_objects_v2(Bucket=bucket)["KeyCount"] == 0, "nothing was written to the squatter"


def test_a_missing_bucket_is_created_in_our_account_and_every_call_names_it(world, moto_endpoint):
    bucket = _name()
    manifest, calls = _extract(bucket, Settings())
    ours = _client(moto_endpoint, "s3")
    assert bucket in {b["Name"] for b in ours.list_buckets()["Buckets"]}
    assert bucket not in {b["Name"] for b in _squatter(moto_endpoint).list_buckets()["Buckets"]}
    keys = {o["Key"] for o in ours.list_objects_v2(Bucket=bucket)["Contents"]}
    assert any(k.endswith(".json") for k in keys) and manifest.rows == 2, keys
    unnamed = [(op, owner) for op, owner in calls if op not in ("CreateBucket", "ListBuckets") and owner != OURS]
    assert unnamed == [] and {"HeadBucket", "PutObject"} <= {op for op, _ in calls}, calls


def test_an_explicit_expected_owner_is_sent_instead_of_the_connection_account(world, moto_endpoint):
    # A role of one account writing into buckets of another: S3 itself enforces the header (moto does not).
    _, calls = _extract(_name(), Settings(s3_expected_owner=SQUATTER))
    assert {owner for op, owner in calls if op not in ("CreateBucket", "ListBuckets")} == {SQUATTER}, calls


def test_the_expiry_rule_is_merged_into_the_bucket_rules_on_first_use(world, moto_endpoint):
    bucket = _name()
    ours = _client(moto_endpoint, "s3")
    ours.create_bucket(Bucket=bucket)
    theirs = {"ID": "keep-logs-90", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 90}}
    ours.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [theirs]})
    _extract(bucket, Settings(s3_expire_days=30))
    rules = {r["ID"]: r for r in ours.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"keep-logs-90", EXPIRE_RULE_ID}, rules
    assert rules["keep-logs-90"]["Expiration"] == {"Days": 90}
    assert rules["keep-logs-90"]["Filter"] == {"Prefix": "logs/"}
    assert rules[EXPIRE_RULE_ID]["Expiration"] == {"Days": 30}
    # A changed setting replaces the pipeline's own rule, still keeping theirs.
    _extract(bucket, Settings(s3_expire_days=7))
    rules = {r["ID"]: r for r in ours.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules[EXPIRE_RULE_ID]["Expiration"] == {"Days": 7} and "keep-logs-90" in rules


def test_onboarding_refuses_a_squatted_bucket_before_writing_anything(world, moto_endpoint, mysql_root):
    from report_pipeline import onboard
    from report_pipeline.admin import init_admin

    alias = f"sq{uuid.uuid4().hex[:6]}"
    settings = Settings(bucket_template="reports-{alias}", s3_expected_owner=OURS)
    _squatter(moto_endpoint).create_bucket(Bucket=f"reports-{alias}")
    admin = mysql_connect(world)
    init_admin(admin)
    with pytest.raises(RefusedError, match=f"s3://reports-{alias} belongs to another account, not to account {OURS}"):
        onboard.onboard(
            admin=admin,
            source=mysql_connect(world),
            target=mysql_connect(""),
            s3=_client(moto_endpoint, "s3"),
            settings=settings,
            company_id=77,
            alias=alias,
            tables=[],
            owner_is_caller=True,
        )
    cursor = admin.cursor()
    cursor.execute("SELECT COUNT(*) FROM companies WHERE alias = %s", (alias,))
    assert cursor.fetchone()[0] == 0, "no admin row was written"
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{alias}`")

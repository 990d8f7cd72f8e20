"""Issue 11.4: owned buckets and expiring date folders.

SeaweedFS accepts ``ExpectedBucketOwner`` and ignores it (checked: a put with any account id
succeeds), so the tests prove what the pipeline controls: with ``REPORTS_S3_EXPECTED_OWNER`` set,
every request of a real extract and load against the real server carries the
``x-amz-expected-bucket-owner`` header (recorded by a botocore ``before-call`` hook on the real
client); and when S3 refuses a call for it (403, what AWS answers for another account's bucket,
injected by a ``before-send`` hook) the task fails saying so, with nothing written to the target or S3.
SeaweedFS does store and return lifecycle rules, so onboarding's rule is read back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from tests.conftest import LocalConnections, execute, mysql_connect, s3_client

from report_pipeline import onboard, tasks
from report_pipeline.admin import init_admin
from report_pipeline.config import Company, build_table
from report_pipeline.errors import TransferError
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

OWNER = "111122223333"
LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
SETTINGS = Settings(s3_expected_owner=OWNER, s3_expire_days=30)
HEADER = "x-amz-expected-bucket-owner"


class Connections(LocalConnections):
    """The local servers, with an S3 client whose calls the test records."""

    def __init__(self, db: str, s3: Any) -> None:
        super().__init__(db)
        self.client = s3

    def s3(self) -> Any:
        return self.client


def _recording_client() -> tuple[Any, list[tuple[str, str | None]]]:
    client = s3_client()
    calls: list[tuple[str, str | None]] = []
    client.meta.events.register(
        "before-call.s3", lambda model, params, **_: calls.append((model.name, params["headers"].get(HEADER)))
    )
    return client, calls


def _world(scratch_db: str, bucket: str) -> tuple[Company, Any]:
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO src VALUES (1, 'a'), (2, 'b')",
        "CREATE TABLE dst LIKE src",
    )
    company = Company(
        id=1,
        company_id=1,
        status=1,
        alias="own",
        bucket=bucket,
        schema=scratch_db,
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
    return company, spec


def test_every_call_of_an_extract_and_load_names_the_expected_owner(scratch_db, bucket_name):
    client, calls = _recording_client()
    company, spec = _world(scratch_db, bucket_name)
    conns = Connections(scratch_db, client)
    # Two attempts of one run: the load's cleanup deletes the first attempt's folder (DeleteObjects).
    tasks.extract_table(conns, SETTINGS, company, spec, LOGICAL_DATE, "run-1")
    manifest = tasks.extract_table(conns, SETTINGS, company, spec, LOGICAL_DATE, "run-1")
    tasks.load_table(conns, SETTINGS, company, spec, [manifest.ref], LOGICAL_DATE, "run-1")
    operations = {name for name, _ in calls}
    assert {"HeadBucket", "PutObject", "GetObject", "ListObjectsV2", "DeleteObjects"} <= operations, operations
    # CreateBucket is the one call S3 gives no owner parameter; the HeadBucket right after it checks.
    # ListBuckets names no bucket: it lists the caller's own (the check for servers that ignore the header).
    missing = [(name, owner) for name, owner in calls if owner != OWNER and name not in ("CreateBucket", "ListBuckets")]
    assert missing == [], missing
    assert [n for n, _ in calls].count("CreateBucket") == 1
    created = [n for n, _ in calls].index("CreateBucket")
    assert calls[created + 1] == ("HeadBucket", OWNER), "a bucket created under a taken name is checked at once"
    cursor = mysql_connect(scratch_db).cursor()
    cursor.execute("SELECT id, name FROM dst ORDER BY id")
    assert cursor.fetchall() == ((1, "a"), (2, "b"))


def test_without_an_expected_owner_no_header_is_sent(scratch_db, bucket_name):
    client, calls = _recording_client()
    company, spec = _world(scratch_db, bucket_name)
    tasks.extract_table(Connections(scratch_db, client), Settings(), company, spec, LOGICAL_DATE, "run-1")
    assert calls and all(owner is None for _, owner in calls)


def test_a_bucket_of_another_account_fails_the_task_naming_the_check(scratch_db, bucket_name):
    s3_client().create_bucket(Bucket=bucket_name)  # "pre-created by someone else"
    client, calls = _recording_client()

    def other_account(request: Any, **_: Any) -> AWSResponse | None:
        # What AWS answers when ExpectedBucketOwner is not the bucket's owner.
        if request.headers.get(HEADER):
            body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return AWSResponse(request.url, 403, {}, _Raw(body))
        return None

    client.meta.events.register("before-send.s3", other_account)
    company, spec = _world(scratch_db, bucket_name)
    with pytest.raises(TransferError, match=r"ExpectedBucketOwner=111122223333 \(REPORTS_S3_EXPECTED_OWNER\)"):
        tasks.extract_table(Connections(scratch_db, client), SETTINGS, company, spec, LOGICAL_DATE, "run-1")
    assert [name for name, _ in calls] == ["HeadBucket"], "the check comes before anything is written"
    assert s3_client().list_objects_v2(Bucket=bucket_name)["KeyCount"] == 0


def test_onboarding_applies_and_reads_back_the_expiry_rule(scratch_db, bucket_name):
    client, calls = _recording_client()
    settings = Settings(s3_expire_days=30, s3_expected_owner=OWNER, bucket_template=bucket_name[:-4] + "{alias}")
    admin, target = mysql_connect(scratch_db), mysql_connect("")
    init_admin(admin)
    alias = bucket_name[-4:]
    schema_steps: Any = None
    try:
        steps = onboard.onboard(
            admin=admin,
            source=mysql_connect(scratch_db),
            target=target,
            s3=client,
            settings=settings,
            company_id=9,
            alias=f"o{alias}",
            tables=[],
        )
        schema_steps = [s for s in steps if s.what.startswith("target schema")]
    finally:
        execute(mysql_connect(""), f"DROP DATABASE IF EXISTS `o{alias}`")
    bucket = bucket_name[:-4] + f"o{alias}"
    rule = s3_client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule[0]["Expiration"] == {"Days": 30} and rule[0]["Status"] == "Enabled"
    assert any(s.what.startswith("lifecycle rule") and s.action == "created" for s in steps)
    assert schema_steps
    assert all(owner == OWNER for name, owner in calls if name not in ("CreateBucket", "ListBuckets"))
    again = onboard.onboard(
        admin=admin,
        source=mysql_connect(scratch_db),
        target=mysql_connect(""),
        s3=client,
        settings=settings,
        company_id=9,
        alias=f"o{alias}",
        tables=[],
        dry_run=True,
    )
    assert any(s.what.startswith("lifecycle rule") and s.action == "exists" for s in again)
    s3_client().delete_bucket(Bucket=bucket)


class _Raw:
    """The raw body botocore reads from an injected response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body

    def read(self, *_: Any) -> bytes:
        body, self.body = self.body, b""
        return body


def test_the_extract_merges_the_expiry_rule_into_an_existing_bucket_rules(scratch_db, bucket_name):
    # Issue 21 (moved to 22): the rule is set wherever a bucket is first used, not only by onboarding,
    # and the bucket's own rules stay (before, the pipeline's rule replaced them).
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket_name)
    theirs = {"ID": "keep-logs-90", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 90}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket_name, LifecycleConfiguration={"Rules": [theirs]})
    company, spec = _world(scratch_db, bucket_name)
    tasks.extract_table(LocalConnections(scratch_db), Settings(s3_expire_days=30), company, spec, LOGICAL_DATE, "r")
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket_name)["Rules"]}
    assert rules["keep-logs-90"]["Expiration"] == {"Days": 90}
    assert rules["keep-logs-90"]["Filter"] == {"Prefix": "logs/"}
    assert rules["report-pipeline-expire"]["Expiration"] == {"Days": 30}

"""S3 server-side encryption: REPORTS_S3_SSE reaches every object the pipeline writes.

The local SeaweedFS only encrypts when a key-encryption key is configured (`s3.sse.kek` in its
security.toml) and a KMS for `aws:kms`; `scripts/services.sh` configures neither, and SeaweedFS then
refuses a PutObject that asks for encryption (InternalError) rather than storing it unencrypted. So:

- one test pins down that the local server never *silently drops* an SSE request (refused, or
  stored and reported as encrypted), whatever its configuration;
- the DAG tests run the whole DAG with `REPORTS_S3_SSE` set and record every request its S3 client
  sends: every write (parts, manifests, `_SUCCESS`) must carry the SSE headers, and every object in
  the company buckets must have been written by such a request. The recorder removes the headers
  after recording them, so the unconfigured local server accepts the objects; on AWS they would
  reach S3 unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from tests.conftest import s3_client
from tests.security.test_least_privilege import COMPANIES, Deployment, deploy, run_dag, teardown

pytestmark = pytest.mark.integration

SSE_HEADER = "x-amz-server-side-encryption"
KMS_KEY_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"
# Every S3 operation that creates an object or its content.
WRITES = ("PutObject", "CopyObject", "CreateMultipartUpload", "CompleteMultipartUpload", "UploadPart")


@dataclass
class Recorder:
    """Records the SSE headers of every request sent by the clients it is attached to."""

    writes: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def attach(self, client: Any) -> Any:
        """Hook ``client`` so that each request it sends is recorded; returns the client."""
        client.meta.events.register("before-send.s3", self._before_send)
        return client

    def _before_send(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation not in WRITES:
            return
        headers = {
            name.lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        sse = {k: v for k, v in headers.items() if k.startswith(SSE_HEADER)}
        self.writes.append((operation, request.url, sse))
        # The local server has no KEK/KMS configured (see the module docstring): let the write through.
        for name in list(request.headers.keys()):
            if name.lower().startswith(SSE_HEADER):
                del request.headers[name]


def _bucket_keys(deployment: Deployment) -> set[str]:
    s3 = s3_client()
    found: set[str] = set()
    for alias in COMPANIES:
        bucket = deployment.bucket(alias)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found.update(f"/{bucket}/{o['Key']}" for o in page.get("Contents", ()))
    return found


def test_local_seaweedfs_never_silently_drops_an_sse_request(bucket_name: str, s3: Any) -> None:
    """Asked to encrypt, the server either refuses the write or stores it encrypted, never plain."""
    from botocore.exceptions import ClientError

    s3.create_bucket(Bucket=bucket_name)
    requests = {
        "sse-s3": {"ServerSideEncryption": "AES256"},
        "sse-kms": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/report-pipeline-test"},
    }
    for key, args in requests.items():
        try:
            s3.put_object(Bucket=bucket_name, Key=key, Body=b"x", **args)
        except ClientError:
            stored = s3.list_objects_v2(Bucket=bucket_name, Prefix=key).get("Contents", [])
            assert stored == [], f"{key}: refused, yet stored"
            continue
        assert s3.head_object(Bucket=bucket_name, Key=key).get("ServerSideEncryption") == args["ServerSideEncryption"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A scratch deployment (least-privileged users, as in production)."""
    created = deploy(tmp_path_factory.mktemp("sse"))
    yield created
    teardown(created)


def _empty_buckets(deployment: Deployment) -> None:
    s3 = s3_client()
    for alias in COMPANIES:
        bucket = deployment.bucket(alias)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def _run_with_sse(deployment: Deployment, sse: str, kms_key_id: str | None) -> tuple[Any, Recorder]:
    from report_pipeline.airflow.connections import HookConnections

    _empty_buckets(deployment)

    recorder = Recorder()
    original = HookConnections.s3

    def recorded_s3(self: HookConnections) -> Any:
        return recorder.attach(original(self))

    with pytest.MonkeyPatch.context() as patch:
        for name, value in deployment.env().items():
            patch.setenv(name, value)
        patch.setenv("REPORTS_S3_SSE", sse)
        if kms_key_id:
            patch.setenv("REPORTS_S3_SSE_KMS_KEY_ID", kms_key_id)
        # Tasks of dag.test() run in this process, so every client the pipeline opens is recorded.
        patch.setattr(HookConnections, "s3", recorded_s3)
        run = run_dag(deployment, dag_id=f"{deployment.dag_id}_{sse.replace(':', '_')}")
    return run, recorder


@pytest.mark.parametrize(
    ("sse", "kms_key_id"),
    [("AES256", None), ("aws:kms", f"arn:aws:kms:us-east-1:111122223333:key/{uuid.uuid4()}")],
    ids=["sse-s3", "sse-kms"],
)
def test_every_object_the_dag_writes_asks_for_the_configured_sse(
    deployment: Deployment, sse: str, kms_key_id: str | None
) -> None:
    from airflow.utils.state import DagRunState

    run, recorder = _run_with_sse(deployment, sse, kms_key_id)
    assert run.state == DagRunState.SUCCESS
    expected = {SSE_HEADER: sse} | ({KMS_KEY_HEADER: kms_key_id} if kms_key_id else {})
    assert recorder.writes, "the run wrote no object"
    for operation, url, sse_headers in recorder.writes:
        assert operation == "PutObject", (operation, url)
        assert sse_headers == expected, url
    written = {unquote(urlsplit(url).path) for _, url, _ in recorder.writes}
    names = {key.rsplit("/", 1)[-1] for key in written}
    assert {"manifest.json", "_SUCCESS"} <= names, names
    assert any(name.startswith("part-") for name in names), names
    # The buckets were emptied before the run: every object in them now was written with SSE.
    assert _bucket_keys(deployment) == written

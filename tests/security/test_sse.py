"""S3 server-side encryption: REPORTS_S3_SSE reaches every object the pipeline writes.

SeaweedFS (4.48) only encrypts when a key-encryption key is configured (`[s3.sse] kek` in its
security.toml), and has no KMS for `aws:kms` here; the shared server `scripts/services.sh` starts
has no KEK, and then refuses a PutObject that asks for encryption (InternalError). So:

- one test pins down that the shared server never *silently drops* an SSE request (refused, or
  stored and reported as encrypted), whatever its configuration;
- SSE-S3 end to end: this module starts its own SeaweedFS with a KEK on free loopback ports, runs
  the whole DAG against it with `REPORTS_S3_SSE=AES256`, and asks the server about every object;
- both settings (`AES256`, `aws:kms` + key id) against the shared server: the whole DAG runs and
  every request its S3 client sends is recorded: every write (parts, manifests, `_SUCCESS`) must
  carry the SSE headers, and every object in the company buckets must have been written by such a
  request. The recorder removes the headers after recording them, so the server without a KEK
  accepts the objects; on AWS they would reach S3 unchanged.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from tests.conftest import REPO, s3_client
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


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def encrypting_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private SeaweedFS with SSE-S3 enabled (a random KEK); yields its S3 endpoint URL."""
    import boto3

    home = tmp_path_factory.mktemp("seaweed-sse")
    config = home / "config"
    config.mkdir()
    (config / "security.toml").write_text(f'[s3.sse]\nkek = "{secrets.token_hex(32)}"\n')
    # One volume per bucket (collection) at a time, as scripts/services.sh configures its server.
    (config / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\ncopy_other = 1\n")
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_port, s3_grpc = _free_ports(8)
    command = [
        str(REPO / ".venv" / "bin" / "weed"),
        "-logtostderr",
        f"-config_dir={config}",
        "server",
        f"-dir={home}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.electionTimeout=2s",
        "-master.telemetry=false",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=32",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    log = (home / "weed.log").open("wb")
    # A clean environment: weed reads AWS_* and WEED_* variables as configuration.
    server = subprocess.Popen(
        command,
        cwd=home,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{s3_port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1"
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                client.create_bucket(Bucket="rp-sse-ready")
                client.put_object(Bucket="rp-sse-ready", Key="probe", Body=b"x", ServerSideEncryption="AES256")
                break
            except Exception:  # noqa: BLE001 - not up yet; the deadline bounds the wait
                assert server.poll() is None, (home / "weed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (home / "weed.log").read_text()[-3000:]
                time.sleep(0.5)
        yield endpoint
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def test_with_sse_s3_every_object_the_dag_writes_is_stored_encrypted(
    deployment: Deployment, encrypting_s3: str
) -> None:
    """The real server, told to encrypt by every PutObject, reports every object as AES256."""
    import boto3
    from airflow.utils.state import DagRunState

    env = deployment.env()
    s3_conn = json.loads(env["AIRFLOW_CONN_REPORTS_S3"])
    s3_conn["extra"]["endpoint_url"] = encrypting_s3
    env["AIRFLOW_CONN_REPORTS_S3"] = json.dumps(s3_conn)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("REPORTS_S3_SSE", "AES256")
        # The load reads every part back and checks its sha256: success means it decrypted exactly.
        run = run_dag(deployment, dag_id=f"{deployment.dag_id}_encrypting")
    assert run.state == DagRunState.SUCCESS
    client = boto3.client(
        "s3", endpoint_url=encrypting_s3, aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1"
    )
    names: set[str] = set()
    for alias in COMPANIES:
        bucket = deployment.bucket(alias)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", ())]
        assert keys, bucket
        for key in keys:
            assert client.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption") == "AES256", key
            names.add(Path(key).name)
    assert {"manifest.json", "_SUCCESS"} <= names and any(n.startswith("part-") for n in names), names

"""Whether the local S3 server works end to end (scripts/services.sh waits on it after a start).

    REPORTS_S3_PORT=8333 .venv/bin/python scripts/s3_probe.py     exit 0: it works

Creates a bucket, writes, reads back and deletes an object, deletes the bucket. This proves that
master (raft leader elected), volume server (registered with its existing volumes), filer and gateway
all work: bucket operations alone succeed through the filer long before objects written before a
restart can be read again. Fails fast (short timeouts, one attempt): the caller retries.
"""

from __future__ import annotations

import os
import uuid

from botocore.config import Config

from serverkit import s3_client


def probe() -> None:
    """One round trip through every part of the S3 server; raises on any failure."""
    s3 = s3_client(
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    )
    name = f"services-probe-{uuid.uuid4().hex[:12]}"
    body = os.urandom(64 * 1024)  # large enough not to be inlined in the filer
    s3.create_bucket(Bucket=name)
    try:
        s3.put_object(Bucket=name, Key="probe.bin", Body=body)
        if s3.get_object(Bucket=name, Key="probe.bin")["Body"].read() != body:
            raise RuntimeError("the object read back differs from the one written")
        s3.delete_object(Bucket=name, Key="probe.bin")
    finally:
        s3.delete_bucket(Bucket=name)


if __name__ == "__main__":
    probe()

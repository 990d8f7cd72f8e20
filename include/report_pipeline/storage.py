"""S3 access on top of a boto3 client handed in by the caller (in Airflow: ``S3Hook.get_conn()``).

Every object is written with the configured server-side encryption, and every read of a part is
checked against the sha256 its manifest recorded. With an expected owner (``REPORTS_S3_EXPECTED_OWNER``,
or else the account the S3 connection authenticates as) every call that names the bucket carries
``ExpectedBucketOwner``, so S3 refuses to read or write a bucket of that (predictable) name that another
account created first. Servers that ignore ``ExpectedBucketOwner`` are covered by ``ensure``: a bucket
that answers but is missing from the owner's own ListBuckets is somebody else's, and is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from report_pipeline.errors import RefusedError, TransferError

log = logging.getLogger(__name__)

# Bytes read from S3 at a time when a part is streamed to disk.
DOWNLOAD_PIECE = 1024 * 1024
EXPIRE_RULE_ID = "report-pipeline-expire"
# Buckets this process has checked (ownership) and given their lifecycle rule: (endpoint, name, owner, days).
_checked: set[tuple[str, str, str | None, int]] = set()


@dataclass(frozen=True)
class Bucket:
    """One company's bucket and how objects are written to it."""

    client: Any
    name: str
    sse: str | None = None
    sse_kms_key_id: str | None = None
    expected_owner: str | None = None
    # REPORTS_S3_EXPIRE_DAYS: the lifecycle rule ``ensure`` merges into the bucket's rules (0: none).
    expire_days: int = 0
    # The client authenticates as the expected owner: then its ListBuckets must list the bucket.
    owner_is_caller: bool = False

    def _owner(self) -> dict[str, str]:
        return {"ExpectedBucketOwner": self.expected_owner} if self.expected_owner else {}

    @contextlib.contextmanager
    def _owned(self) -> Iterator[None]:
        """Name the ownership check when S3 refuses a call for it (403 with an expected owner set)."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if self.expected_owner and (status == 403 or code in ("403", "AccessDenied")):
                raise TransferError(
                    f"s3://{self.name}: S3 refused the call with ExpectedBucketOwner={self.expected_owner} "
                    f"(REPORTS_S3_EXPECTED_OWNER): the bucket belongs to another account, or this role may "
                    f"not use it. Nothing was read or written there. ({code})"
                ) from exc
            raise

    def _write_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.sse == "aws:kms" and self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args

    def ensure(self) -> None:
        """Create the bucket if it does not exist yet, as the seed's extract did; refuse another account's.

        The first time a process uses the bucket, it also checks that the expected owner's ListBuckets
        lists it (for servers that ignore ExpectedBucketOwner), and merges the expiry rule
        (``expire_days``) into the bucket's lifecycle rules.
        """
        from botocore.exceptions import ClientError

        created = False
        try:
            with self._owned():
                self.client.head_bucket(Bucket=self.name, **self._owner())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            self._create()
            created = True
        key = (str(self.client.meta.endpoint_url), self.name, self.expected_owner, self.expire_days)
        # ``_checked`` keys by owner and days: a changed setting checks and merges again.
        if key in _checked and not created:
            return
        self.check_owner()
        if self.expire_days:
            self.expire_after(self.expire_days)
        _checked.add(key)

    def _create(self) -> None:
        from botocore.exceptions import ClientError

        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.name}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            # Another task of the same company may have created it a moment ago (check_owner tells whose).
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        if self.expected_owner:
            # CreateBucket takes no owner; a name another account took first answers 403 here.
            with self._owned():
                self.client.head_bucket(Bucket=self.name, **self._owner())

    def check_owner(self) -> None:
        """Refuse (RefusedError) a bucket the expected owner's ListBuckets does not list.

        S3 enforces ExpectedBucketOwner itself; S3-compatible servers may not (moto, some gateways). Only
        meaningful when the client authenticates as the owner; a role without s3:ListAllMyBuckets leaves
        the check to S3's own enforcement.
        """
        from botocore.exceptions import ClientError

        if not self.expected_owner or not self.owner_is_caller:
            return
        try:
            listed = self.client.list_buckets(Prefix=self.name).get("Buckets", ())
        except ClientError as exc:
            log.info("s3://%s: ListBuckets not allowed (%s); S3's ExpectedBucketOwner check applies", self.name, exc)
            return
        if self.name not in {b.get("Name") for b in listed}:
            raise RefusedError(
                f"s3://{self.name} belongs to another account, not to account {self.expected_owner} "
                "(REPORTS_S3_EXPECTED_OWNER, or else the account the S3 connection authenticates as): it "
                "answers, but that account's ListBuckets does not list it. Nothing was read or written there; "
                "have the bucket removed, or pick another name with REPORTS_S3_BUCKET_TEMPLATE."
            )

    def expire_after(self, days: int, prefix: str = "") -> None:
        """Merge a lifecycle rule expiring objects ``days`` after they were written (old runs' date folders)
        into the bucket's rules: rules of others are kept, the pipeline's own (by its ID) replaced."""
        from botocore.exceptions import ClientError

        rule = {
            "ID": EXPIRE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "Expiration": {"Days": days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        try:
            with self._owned():
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.name, **self._owner())["Rules"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        ours = [r for r in rules if r.get("ID") == EXPIRE_RULE_ID]
        if ours and ours[0].get("Expiration", {}).get("Days") == days and len(ours) == 1:
            return
        merged = [r for r in rules if r.get("ID") != EXPIRE_RULE_ID] + [rule]
        with self._owned():
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.name, LifecycleConfiguration={"Rules": merged}, **self._owner()
            )

    def expiry_days(self) -> int | None:
        """The days of the pipeline's lifecycle rule, or None when the bucket has none."""
        from botocore.exceptions import ClientError

        try:
            with self._owned():
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.name, **self._owner())["Rules"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return None
            raise
        for rule in rules:
            if rule.get("ID") == EXPIRE_RULE_ID and "Days" in rule.get("Expiration", {}):
                return int(rule["Expiration"]["Days"])
        return None

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """Store one object with a single PUT.

        Parts are at most ``part_bytes`` (8 MB by default), far below S3's 5 GB single-PUT limit, so
        there is no multipart upload to abort when a transfer dies halfway: the object either exists
        whole or not at all (``extract`` still aborts any unfinished multipart upload under its prefix).
        """
        with self._owned():
            self.client.put_object(
                Bucket=self.name, Key=key, Body=body, ContentType=content_type, **self._write_args(), **self._owner()
            )

    def get(self, key: str) -> bytes:
        """Read one whole (small) object."""
        with self._owned():
            return bytes(self.client.get_object(Bucket=self.name, Key=key, **self._owner())["Body"].read())

    def download_checked(self, key: str, sha256: str, write: Callable[[bytes], object]) -> int:
        """Stream one part to ``write`` in bounded pieces, then verify it against the manifest's sha256.

        Memory stays at one piece (``DOWNLOAD_PIECE``) whatever the part's size. The caller must discard
        what it wrote when this raises. Returns the bytes read.
        """
        digest = hashlib.sha256()
        size = 0
        with self._owned():
            body = self.client.get_object(Bucket=self.name, Key=key, **self._owner())["Body"]
            try:
                while piece := body.read(DOWNLOAD_PIECE):
                    digest.update(piece)
                    size += len(piece)
                    write(piece)
            finally:
                body.close()
        if digest.hexdigest() != sha256:
            raise TransferError(
                f"s3://{self.name}/{key}: sha256 {digest.hexdigest()} does not match the manifest's {sha256}"
            )
        return size

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        from botocore.exceptions import ClientError

        try:
            with self._owned():
                self.client.head_object(Bucket=self.name, Key=key, **self._owner())
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def keys(self, prefix: str) -> list[str]:
        """Every key under a prefix."""
        return [key for key, _ in self.listing(prefix)]

    def listing(self, prefix: str) -> list[tuple[str, dt.datetime]]:
        """Every key under a prefix with the time the server last wrote it (timezone-aware)."""
        found: list[tuple[str, dt.datetime]] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix, **self._owner())
        with self._owned():
            for page in pages:
                found.extend((o["Key"], o["LastModified"]) for o in page.get("Contents", ()))
        return found

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects (missing ones are fine)."""
        batch = [{"Key": k} for k in keys]
        for i in range(0, len(batch), 1000):
            with self._owned():
                self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch[i : i + 1000], "Quiet": True}, **self._owner()
                )

    def abort_multipart_uploads(self, prefix: str) -> int:
        """Abort unfinished multipart uploads under a prefix; returns how many were aborted."""
        from botocore.exceptions import ClientError

        aborted = 0
        try:
            with self._owned():
                listing = self.client.list_multipart_uploads(Bucket=self.name, Prefix=prefix, **self._owner())
        except ClientError as exc:
            # A cleanup nicety, never a reason to fail a transfer: a role without
            # s3:ListBucketMultipartUploads (or a server without the call) just skips it.
            log.warning("cannot list multipart uploads in s3://%s/%s: %s", self.name, prefix, exc)
            return 0
        for upload in listing.get("Uploads", ()):
            with self._owned():
                self.client.abort_multipart_upload(
                    Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"], **self._owner()
                )
            aborted += 1
        return aborted

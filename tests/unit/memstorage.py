"""An in-memory S3 for ``storage.Bucket`` (the calls a load makes, on a dict, with S3's error codes), and
``stage``: what an extract leaves in it.

``Bucket`` wraps whatever client it is given (in Airflow ``S3Hook.get_conn()``), so this double is the
client, not a second ``Bucket``: every line of ``Bucket`` (sha256 checks, owner arguments, paging) still
runs. Missing objects raise botocore's ``ClientError`` with the codes real S3 answers.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import threading
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError
from tests.unit.memtarget import key_crc

from report_pipeline.chunks import chunks_between
from report_pipeline.csvformat import rows_formatter, type_name
from report_pipeline.manifest import Column, KeySet, Manifest, ManifestRef, Part, extract_prefix, new_extract_id
from report_pipeline.storage import Bucket
from report_pipeline.vocabulary import Chunk, CursorRange


def _missing(operation: str, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "not found"}, "ResponseMetadata": {}}, operation)


class _Paginator:
    def __init__(self, client: MemoryS3) -> None:
        self.client = client

    def paginate(self, Bucket: str, Prefix: str = "", **_: Any) -> Iterator[dict[str, Any]]:
        objects = self.client._objects(Bucket)
        found = [{"Key": k, "LastModified": t} for k, (_, t) in sorted(objects.items()) if k.startswith(Prefix)]
        for start in range(0, max(1, len(found)), 1000):
            yield {"Contents": found[start : start + 1000]} if found else {}


class MemoryS3:
    """The S3 client calls ``storage.Bucket`` makes, on buckets held in memory (thread-safe)."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, tuple[bytes, dt.datetime]]] = {}
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def bucket(self, name: str) -> Bucket:
        """A ``Bucket`` on this client, created if needed."""
        self.buckets.setdefault(name, {})
        return Bucket(self, name)

    def _objects(self, name: str) -> dict[str, tuple[bytes, dt.datetime]]:
        if name not in self.buckets:
            raise _missing("HeadBucket", "NoSuchBucket")
        return self.buckets[name]

    def head_bucket(self, Bucket: str, **_: Any) -> dict[str, Any]:
        self._objects(Bucket)
        return {}

    def create_bucket(self, Bucket: str, **_: Any) -> dict[str, Any]:
        self.buckets.setdefault(Bucket, {})
        return {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        with self._lock:
            self._objects(Bucket)[Key] = (bytes(Body), dt.datetime.now(dt.UTC))
            self.calls.append(("put", Key))
        return {}

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("get", Key))
            found = self._objects(Bucket).get(Key)
        if found is None:
            raise _missing("GetObject", "NoSuchKey")
        return {"Body": io.BytesIO(found[0])}

    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        if Key not in self._objects(Bucket):
            raise _missing("HeadObject", "404")
        return {}

    def get_paginator(self, name: str) -> _Paginator:
        assert name == "list_objects_v2", name
        return _Paginator(self)

    def delete_objects(self, Bucket: str, Delete: dict[str, Any], **_: Any) -> dict[str, Any]:
        with self._lock:
            objects = self._objects(Bucket)
            for item in Delete["Objects"]:
                objects.pop(item["Key"], None)
                self.calls.append(("delete", item["Key"]))
        return {}

    def list_multipart_uploads(self, Bucket: str, **_: Any) -> dict[str, Any]:
        return {"Uploads": []}

    def abort_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}


def stage(
    bucket: Bucket,
    table: str,
    columns: Sequence[tuple[str, int, str]],
    rows: Sequence[Sequence[Any]],
    *,
    logical_date: dt.datetime,
    run_id: str,
    part_rows: int = 2,
    chunk_cuts: Sequence[int] | None = None,
    cursor: CursorRange | None = None,
    key_columns: Sequence[str] = (),
    source_keys: Sequence[Sequence[Any]] | None = None,
) -> list[ManifestRef]:
    """Write what an extract of ``rows`` leaves in ``bucket`` (gzip CSV parts, then the manifest); its refs.

    ``columns``: (name, MySQL type code, SQL type). ``chunk_cuts`` splits the rows on the first column into
    a chunk plan (``chunks.chunks_between``), one manifest per chunk. ``key_columns`` adds the key set of
    ``source_keys`` (default: the keys of ``rows``), with its checksum, for delete detection.
    """
    codes = [code for _, code, _ in columns]
    plan: list[Chunk | None] = list(chunks_between(chunk_cuts)) if chunk_cuts is not None else [None]
    refs = []
    for chunk in plan:
        mine = [r for r in rows if chunk is None or _in_chunk(chunk, r[0])]
        extract_id = new_extract_id(run_id)
        prefix = extract_prefix(table, logical_date, extract_id, chunk.index if chunk else None)
        parts = _put_parts(bucket, prefix, "part", codes, mine, part_rows)
        keys = None
        if key_columns and (chunk is None or chunk.index == 0):
            at = [next(i for i, c in enumerate(columns) if c[0] == k) for k in key_columns]
            held = [tuple(r[i] for i in at) for r in rows] if source_keys is None else [tuple(k) for k in source_keys]
            keys = KeySet(
                columns=tuple(Column(columns[i][0], type_name(columns[i][1])) for i in at),
                parts=_put_parts(bucket, prefix, "keys", [codes[i] for i in at], held, 1000),
                checksum=sum(key_crc(k) for k in held),
            )
        elif key_columns:
            keys = KeySet(columns=tuple(Column(k, "LONG") for k in key_columns), parts=(), checksum=0)
        now = dt.datetime.now(dt.UTC).isoformat()
        manifest = Manifest(
            bucket=bucket.name,
            prefix=prefix,
            extract_id=extract_id,
            company="acme",
            table=table,
            logical_date=logical_date.isoformat(),
            run_id=run_id,
            columns=tuple(Column(name, type_name(code), "text", sql) for name, code, sql in columns),
            parts=parts,
            compression="gzip",
            started_at=now,
            finished_at=now,
            chunk=chunk,
            cursor=cursor,
            keys=keys,
        )
        bucket.put(manifest.key, manifest.to_json(), "application/json")
        refs.append(manifest.ref)
    return refs


def _in_chunk(chunk: Chunk, value: Any) -> bool:
    if chunk.nulls:
        return value is None
    if value is None:
        return False
    return (chunk.low is None or value >= chunk.low) and (chunk.high is None or value < chunk.high)


def _put_parts(
    bucket: Bucket, prefix: str, name: str, codes: Sequence[int], rows: Sequence[Sequence[Any]], per_part: int
) -> tuple[Part, ...]:
    render = rows_formatter(codes)
    parts = []
    for index, start in enumerate(range(0, len(rows), per_part)):
        raw = [[None if v is None else str(v).encode() for v in r] for r in rows[start : start + per_part]]
        csv = b"".join(line + b"\n" for line in render(raw))
        stored = gzip.compress(csv)
        key = f"{prefix}/{name}-{index:05d}.csv.gz"
        bucket.put(key, stored)
        parts.append(Part(key, len(raw), len(csv), len(stored), hashlib.sha256(stored).hexdigest()))
    return tuple(parts)

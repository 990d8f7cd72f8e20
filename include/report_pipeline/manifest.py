"""What an extract leaves in S3 and what a load reads: keys and the manifest (the CSV format: ``csvformat``).

Layout, per company bucket::

    <table>/<run key>/<extract id>/part-00000.csv.gz             one unchunked extract attempt
    <table>/<run key>/<extract id>/manifest.json                 written last
    <table>/<run key>/chunk-0003-<extract id>/part-00000.csv.gz  one attempt of chunk 3
    <table>/<run key>/chunk-0003-<extract id>/manifest.json
    <table>/<run key>/_SUCCESS                                   written by a successful load

``<run key>`` is the logical date; every extract ATTEMPT writes into a folder of its own, named by its
extract id, so two runs of one date (a ``report-pipeline run`` beside the DAG run, a retry, a cleared
task) never overwrite or delete each other's files, and a load reads exactly the folder its extract
wrote. The first 8 hex digits of an extract id are a digest of the run id (``run_tag``), so a folder
without a manifest (an attempt that died, or one still running) still tells which run it belongs to.
Which folders a load may remove afterwards is ``report_pipeline.attempts``' business.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeVar

from report_pipeline.errors import TransferError
from report_pipeline.vocabulary import Chunk, CursorRange, Encoding

# 2: extract attempts in folders of their own, chunks with open ends and a NULL chunk (``Chunk``).
MANIFEST_VERSION = 2
MANIFEST_NAME = "manifest.json"
SUCCESS_NAME = "_SUCCESS"
_ATTEMPT_FOLDER = re.compile(r"(?:chunk-(?P<chunk>[0-9]{4,})-)?(?P<id>[0-9a-f]{32})")


def run_key(logical_date: dt.datetime | dt.date) -> str:
    """The key segment of one logical date, e.g. ``2026-11-26T000000Z`` (UTC, sortable)."""
    if not isinstance(logical_date, dt.datetime):
        logical_date = dt.datetime.combine(logical_date, dt.time(), dt.UTC)
    if logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=dt.UTC)
    return logical_date.astimezone(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")


def table_prefix(table: str, logical_date: dt.datetime | dt.date) -> str:
    """The S3 prefix (without trailing slash) of one table's files for one logical date."""
    return f"{table}/{run_key(logical_date)}"


def run_tag(run_id: str) -> str:
    """The 8 hex digits that name a run inside its extract ids."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def new_extract_id(run_id: str) -> str:
    """A fresh id for one extract attempt of ``run_id``: its run tag, then 24 random hex digits."""
    return run_tag(run_id) + uuid.uuid4().hex[:24]


def attempt_folder(extract_id: str, chunk_index: int | None) -> str:
    """The folder name of one extract attempt, e.g. ``<extract id>`` or ``chunk-0003-<extract id>``."""
    return extract_id if chunk_index is None else f"chunk-{chunk_index:04d}-{extract_id}"


def parse_attempt_folder(name: str) -> tuple[int | None, str] | None:
    """(chunk index, extract id) of an attempt folder name, or None for a name no attempt writes."""
    match = _ATTEMPT_FOLDER.fullmatch(name)
    if match is None:
        return None
    chunk = match.group("chunk")
    return (None if chunk is None else int(chunk)), match.group("id")


def extract_prefix(
    table: str, logical_date: dt.datetime | dt.date, extract_id: str, chunk_index: int | None = None
) -> str:
    """Where one extract attempt (of the whole table, or of one chunk) writes its parts and manifest."""
    return f"{table_prefix(table, logical_date)}/{attempt_folder(extract_id, chunk_index)}"


@dataclass(frozen=True)
class ManifestRef:
    """What an extract tells its load (the XCom): where its manifest is and exactly which one it is.

    The load refuses a manifest whose extract id or sha256 differ: a file replaced or written by
    another attempt is never loaded in place of the one this extract wrote.
    """

    key: str
    extract_id: str
    sha256: str


_Record = TypeVar("_Record")


def _known(cls: type[_Record], data: dict[str, Any]) -> _Record:
    """``cls`` from the keys of ``data`` it knows: a manifest written by newer code (a rolling deploy
    adds a key) still reads on a worker running older code; a missing required key is still a TypeError."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} is not an object: {data!r}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def spec_digest(spec: Any) -> str:
    """A digest of a table spec (``config.TableSpec``) as the extract ran it: the manifest and the
    extract's XCom carry it, and the load refuses an extract whose spec differs from its own (issue 21:
    an admin edit landing between an extract and its load, or two workers reading different snapshots)."""
    body = json.dumps(asdict(spec), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def manifest_digest(raw: bytes) -> str:
    """The sha256 of a manifest as stored, the value its ``ManifestRef`` carries."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Column:
    """One CSV column: its name and source type as the driver described it, and its text encoding.

    ``sql_type`` is the column's SQL type as schema evolution creates it (``evolution.result_type``, e.g.
    ``DECIMAL(10,2) UNSIGNED``); None in manifests written before it was recorded, and for ENUM/SET.
    """

    name: str
    source_type: str
    encoding: Encoding = "text"
    sql_type: str | None = None
    # The source column's collation (character columns; None for others and in older manifests).
    collation: str | None = None


@dataclass(frozen=True)
class Part:
    """One stored CSV object."""

    key: str
    rows: int
    csv_bytes: int
    stored_bytes: int
    sha256: str


@dataclass(frozen=True)
class KeySet:
    """The key values of every row the query returned (or the chunk's share), for delete detection.

    Stored as CSV parts of their own (``keys-00000.csv.gz``), in the format of the row parts.
    """

    columns: tuple[Column, ...]
    parts: tuple[Part, ...]
    # SUM(CRC32(CONCAT_WS('#', key columns))) over the rows, as the target computes it; lets a load
    # skip loading the key set when the target's keys already sum the same (nothing was deleted).
    checksum: int | None = None


@dataclass(frozen=True)
class Manifest:
    """The record of one finished extract; its presence means every listed part is complete."""

    bucket: str
    prefix: str
    extract_id: str
    company: str
    table: str
    logical_date: str
    run_id: str
    columns: tuple[Column, ...]
    parts: tuple[Part, ...]
    compression: Literal["gzip", "none"]
    started_at: str
    finished_at: str
    chunk: Chunk | None = None  # the chunk's bounds and its place in the plan; None when unchunked
    version: int = MANIFEST_VERSION
    # The source server's UTC clock when the extract's consistent snapshot began: what orders loads of one
    # table and what ``report_as_of`` shows. None in manifests written before it was recorded.
    snapshot_at: str | None = None
    # Set by incremental extracts only; manifests without it (older ones too) read as None.
    cursor: CursorRange | None = None
    # Set by extracts of tables with delete detection.
    keys: KeySet | None = None
    # ``spec_digest`` of the table spec the extract ran; None in manifests written before it was recorded.
    spec_digest: str | None = None

    @property
    def key(self) -> str:
        """The S3 key this manifest is stored under."""
        return f"{self.prefix}/{MANIFEST_NAME}"

    @property
    def ref(self) -> ManifestRef:
        """What the extract hands its load: this manifest's key, extract id and stored sha256."""
        return ManifestRef(self.key, self.extract_id, manifest_digest(self.to_json()))

    @property
    def rows(self) -> int:
        """Rows in all parts."""
        return sum(p.rows for p in self.parts)

    @property
    def csv_bytes(self) -> int:
        """Uncompressed CSV bytes in all parts."""
        return sum(p.csv_bytes for p in self.parts)

    @property
    def stored_bytes(self) -> int:
        """Bytes stored in S3 for all parts."""
        return sum(p.stored_bytes for p in self.parts)

    def to_json(self) -> bytes:
        """The manifest as stored: JSON with the totals spelled out for people reading it."""
        body = asdict(self)
        body.update(rows=self.rows, csv_bytes=self.csv_bytes, stored_bytes=self.stored_bytes)
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse a stored manifest; TransferError if it is not one this version understands."""
        try:
            body = json.loads(raw)
            if body.get("version") != MANIFEST_VERSION:
                raise TransferError(f"manifest version {body.get('version')!r} is not {MANIFEST_VERSION}")
            return cls(
                bucket=body["bucket"],
                prefix=body["prefix"],
                extract_id=body["extract_id"],
                company=body["company"],
                table=body["table"],
                logical_date=body["logical_date"],
                run_id=body["run_id"],
                columns=tuple(_known(Column, c) for c in body["columns"]),
                parts=tuple(_known(Part, p) for p in body["parts"]),
                compression=body["compression"],
                started_at=body["started_at"],
                finished_at=body["finished_at"],
                chunk=Chunk.from_json(body["chunk"]) if body.get("chunk") is not None else None,
                cursor=_known(CursorRange, body["cursor"]) if body.get("cursor") else None,
                snapshot_at=body.get("snapshot_at"),
                keys=KeySet(
                    columns=tuple(_known(Column, c) for c in body["keys"]["columns"]),
                    parts=tuple(_known(Part, p) for p in body["keys"]["parts"]),
                    checksum=body["keys"].get("checksum"),
                )
                if body.get("keys")
                else None,
                spec_digest=body.get("spec_digest"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferError(f"manifest is malformed: {exc}") from exc

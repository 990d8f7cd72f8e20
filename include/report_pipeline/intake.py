"""What a load takes in before it touches the target: its manifests (exactly those its extracts reported,
made under this table spec), the identity of the load, and whether the target's engine can do what it asks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from report_pipeline.chunks import chunk_set_problem
from report_pipeline.errors import RefusedError, TransferError
from report_pipeline.manifest import Manifest, ManifestRef, manifest_digest
from report_pipeline.storage import Bucket
from report_pipeline.target import Capabilities


def read_manifests(
    bucket: Bucket, keys: Sequence[str], expected: Sequence[ManifestRef] = (), label: str = "this load"
) -> list[Manifest]:
    """Read the manifests a load was given; every one must exist and describe the same columns.

    With ``expected`` (one per key, in order), each must have the extract id and sha256 its extract
    reported; chunked manifests must be every chunk of one plan, each once.
    """
    if not keys:
        raise TransferError(f"{label}: the load was given no manifest to read")
    if expected and [r.key for r in expected] != list(keys):
        raise TransferError(f"{label}: the manifests to load {list(keys)} are not the ones the extracts reported")
    refs: Sequence[ManifestRef | None] = expected or [None] * len(keys)
    manifests = [_read_manifest(bucket, k, r, label) for k, r in zip(keys, refs, strict=True)]
    problem = chunk_set_problem([m.chunk for m in manifests])
    runs = sorted({m.run_id for m in manifests if m.chunk is not None})
    if problem is None and len(runs) > 1:
        problem = f"the chunks come from different runs {runs}"
    if problem is not None:
        raise RefusedError(
            f"{label}: refusing to load: {problem}; the target was not changed. Re-run the chunk plan and "
            "its extracts (clear the plan_chunks task and everything after it)"
        )
    columns = [(c.name, c.encoding) for c in manifests[0].columns]
    for m in manifests[1:]:
        other = [(c.name, c.encoding) for c in m.columns]
        # An all-NULL column has no values to tell its encoding; names must still agree.
        if [n for n, _ in other] != [n for n, _ in columns]:
            raise TransferError(f"manifest {m.key} has columns {other}, expected {columns}")
    return manifests


def _read_manifest(bucket: Bucket, key: str, expected: ManifestRef | None, label: str) -> Manifest:
    """One manifest, refused unless it is exactly the one its extract reported writing."""
    from botocore.exceptions import ClientError

    try:
        raw = bucket.get(key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        raise RefusedError(
            f"{label}: manifest s3://{bucket.name}/{key} does not exist (its extract attempt's folder was "
            "removed); the target was not changed. Re-run the extract (clear its task)"
        ) from exc
    manifest = Manifest.from_json(raw)
    if expected is not None:
        digest = manifest_digest(raw)
        if (manifest.extract_id, digest) != (expected.extract_id, expected.sha256):
            raise RefusedError(
                f"{label}: refusing to load s3://{bucket.name}/{key}: it holds extract {manifest.extract_id} "
                f"(manifest sha256 {digest}), but the extract task reported extract {expected.extract_id} "
                f"(sha256 {expected.sha256}); the target was not changed. Re-run the extract (clear its task) "
                "so the load reads what that extract wrote"
            )
    return manifest


def spec_problem(manifest: Manifest, label: str, bucket_name: str, spec_digest: str | None) -> str | None:
    """Why a manifest made under another table spec than this load's (``spec_digest``) must not be loaded, or None.

    A manifest without a digest (written before it was recorded) is accepted: it says nothing either way.
    """
    if spec_digest is None or manifest.spec_digest in (None, spec_digest):
        return None
    return (
        f"{label}: refusing to load extract {manifest.extract_id} (s3://{bucket_name}/{manifest.key}): "
        f"it was made under table spec {manifest.spec_digest}, but this load runs table spec {spec_digest} "
        "(the admin tables row changed between the extract and the load, or their workers read different admin "
        "snapshots); the target was not changed. Clear the extract task to extract again under the current spec"
    )


def load_key_of(manifests: Sequence[Manifest]) -> str:
    """The identity of a load: the set of extracts it loads, whatever their order."""
    return hashlib.sha256(",".join(sorted(m.extract_id for m in manifests)).encode()).hexdigest()


def oldest_snapshot(manifests: Sequence[Manifest]) -> dt.datetime | None:
    """The oldest source snapshot of the load's extracts (UTC); None if any was written by older code."""
    taken = [m.snapshot_at for m in manifests]
    if not taken or any(t is None for t in taken):
        return None
    return min(dt.datetime.fromisoformat(t) for t in taken if t is not None)


# What a load needs of its target beyond the protocols' basics: (what asks, the flag, the ability, the fix).
_SWAP = ("load_mode 'swap'", "shadow_swap", "swaps a loaded shadow table in for the live one atomically",
         "set load_mode to 'upsert' in the admin tables row")  # fmt: skip
_TOGETHER = ("publishing the company's tables together", "atomic_multi_table_rename",
             "renames several tables in one atomic statement",
             "set publish_together to 0 in the admin companies row")  # fmt: skip
_KEYS = ("delete_detection 'keys'", "key_checksums", "counts and checksums a table's keys on the server",
         "set delete_detection to 'none' in the admin tables row")  # fmt: skip


def capability_problem(
    capabilities: Capabilities, label: str, load_mode: str | None, hold: bool, detects_deletes: bool
) -> str | None:
    """Why this target's engine cannot do what the load asks (``Capabilities``), or None; checked before the
    target is touched. ``load_mode`` None: a repair's own strategy, which swaps nothing."""
    asks = ((_SWAP, load_mode == "swap" or hold), (_TOGETHER, hold), (_KEYS, detects_deletes))
    for (what, flag, ability, fix), asked in asks:
        if asked and not getattr(capabilities, flag):
            return (
                f"{label}: refusing to load: {what} needs a target that {ability} ({flag}), and this target "
                f"(engine {capabilities.engine!r}) cannot; the target was not changed. Either {fix}, or load this "
                "company into a target engine that can"
            )
    return None

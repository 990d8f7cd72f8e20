"""The hand-offs of a table's tasks: what an extract returns over XCom, what its load accepts of it, and
what the load tells the consumers of its Asset.

The seed passed the extract's output to the load as ``$.guid``; here the extract returns its manifest's
location with the extract id and the manifest's sha256, and the load takes only what it can verify:
this company's bucket, this table's folder for the run's date, the same table spec, an id and a hash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from report_pipeline.config import Company, TableSpec, table_label
from report_pipeline.manifest import SUCCESS_NAME, Manifest, ManifestRef, spec_digest, table_prefix
from report_pipeline.vocabulary import Chunk


def extract_result(manifest: Manifest, chunk: Chunk | None) -> dict[str, Any]:
    """An extract's return value (its XCom): where its manifest is, and how the load verifies it."""
    ref = manifest.ref
    return {
        "bucket": manifest.bucket,
        "manifest_key": ref.key,
        "extract_id": ref.extract_id,
        "sha256": ref.sha256,
        "rows": manifest.rows,
        "chunk": chunk.to_json() if chunk is not None else None,
        "spec_digest": manifest.spec_digest,
    }


def extracted_items(value: Any) -> list[Mapping[str, Any]]:
    """The extract's return value, or every mapped chunk's, as a list.

    A mapped extract arrives as a lazy XCom sequence; indexing up to its length reads exactly the
    chunks that ran, where plain iteration probes one offset past the end (a logged 404).
    """
    if isinstance(value, Mapping):
        return [value]
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [value[i] for i in range(len(value))]
    return list(value)


def manifest_refs(
    items: Sequence[Mapping[str, Any]], company: Company, spec: TableSpec, logical_date: dt.datetime
) -> list[ManifestRef]:
    """The manifests a load may read: each item checked to be this table's, for this run, under this spec.

    An XCom from another table, company or date (a mis-wired or hand-edited value) must never be loaded
    here; AirflowFailException names the item and why, before anything is read.
    """
    label = table_label(company.alias, spec.name, spec.id)
    if not items:
        raise AirflowFailException(f"{label}: the extract returned no manifest")
    prefix = table_prefix(spec.name, logical_date) + "/"
    for item in items:
        if item["bucket"] != company.bucket or not str(item["manifest_key"]).startswith(prefix):
            raise AirflowFailException(
                f"refusing to load s3://{item['bucket']}/{item['manifest_key']}: not under "
                f"s3://{company.bucket}/{prefix} ({label}, this run's logical date)"
            )
        _check_spec(item, spec, label)
    return [_ref(item, label) for item in items]


def _check_spec(item: Mapping[str, Any], spec: TableSpec, label: str) -> None:
    """Refuse an extract made under another table spec than this task's (the load checks the
    manifest's digest as well; this names the difference before anything is read)."""
    made_under, mine = item.get("spec_digest"), spec_digest(spec)
    if made_under is not None and made_under != mine:
        raise AirflowFailException(
            f"{label}: refusing to load extract {item.get('extract_id')} "
            f"(s3://{item['bucket']}/{item['manifest_key']}): it was made under table spec {made_under}, but "
            f"this load runs table spec {mine} (the admin tables row changed between the extract and the load, "
            "or their workers read different admin snapshots); the target was not changed. Clear the extract "
            "task to extract again under the current spec"
        )


def _ref(item: Mapping[str, Any], label: str) -> ManifestRef:
    """What one extract reported writing; an item without its id and hash (an extract of an
    earlier version, or a hand-edited XCom) cannot be verified, so it is refused."""
    extract_id, sha256 = item.get("extract_id"), item.get("sha256")
    if not isinstance(extract_id, str) or not isinstance(sha256, str):
        raise AirflowFailException(
            f"{label}: refusing to load s3://{item['bucket']}/{item['manifest_key']}: the extract's XCom carries "
            "no extract id and sha256 to verify it by; re-run the extract (clear its task)"
        )
    return ManifestRef(str(item["manifest_key"]), extract_id, sha256)


def load_event_extra(
    company: Company, spec: TableSpec, result: Any, logical_date: dt.datetime, run_id: str
) -> dict[str, Any]:
    """What a load attaches to its Asset events, so consumers need not query the target."""
    return {
        "company": company.alias,
        "table": spec.name,
        "schema": company.schema,
        "target_table": spec.target.table,
        "rows": result.rows,
        "skipped": result.skipped,
        "load_key": result.load_key,
        "logical_date": logical_date.isoformat(),
        "run_id": run_id,
        "success_key": f"s3://{company.bucket}/{table_prefix(spec.name, logical_date)}/{SUCCESS_NAME}",
    }

"""Extract attempt folders of one table and date: which of them a successful load may remove.

Every extract attempt writes into a folder of its own (layout: ``report_pipeline.manifest``). After a
load succeeds it removes what OLDER attempts left, and never what another live run may still read,
such as a ``report-pipeline run`` of the same date whose load has not happened yet:

- this load's own folders stay;
- a folder of this load's own run that this load did not take goes: the load runs only after its run's
  extracts succeeded, so it is an attempt that died or was superseded (a retried or cleared task);
- a folder with a manifest of another run goes when that manifest finished before this load's
  extracts started AND it was loaded already (listed in the ``_SUCCESS`` marker this load replaces)
  or is older than the safety age; otherwise its own load may still be to come, and it stays;
- a folder without a manifest of another run (an extract still running, or one that died) goes only
  once its newest object is older than the safety age (``REPORTS_ATTEMPT_MAX_AGE_HOURS``).

Objects of the layout before attempt folders (``<date>/manifest.json``, ``<date>/part-*``,
``<date>/chunk-0003/``) are judged the same way, each old folder as one attempt.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from report_pipeline.manifest import MANIFEST_NAME, SUCCESS_NAME, Manifest, parse_attempt_folder, run_tag
from report_pipeline.storage import Bucket

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Finished:
    """What a cleanup needs to know of another attempt's manifest."""

    run_id: str
    finished_at: dt.datetime


@dataclass(frozen=True)
class ThisLoad:
    """The load that cleans up: its run, its manifests, and what the marker it replaces listed."""

    folder: str  # the table's folder for the date, without the trailing slash
    run_id: str
    manifests: Sequence[Manifest]
    loaded_before: frozenset[str]  # manifest keys the previous successful load of this date loaded
    max_age: dt.timedelta = DEFAULT_MAX_AGE

    @property
    def extracts_started(self) -> dt.datetime:
        """When the earliest of this load's extracts started."""
        return min(_moment(m.started_at) for m in self.manifests)


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _group(folder: str, listing: Iterable[tuple[str, dt.datetime]]) -> dict[str, list[tuple[str, dt.datetime]]]:
    """Objects under ``folder`` by attempt folder name; ``""`` holds loose objects of the old layout."""
    groups: dict[str, list[tuple[str, dt.datetime]]] = defaultdict(list)
    for key, modified in listing:
        rest = key[len(folder) + 1 :]
        if not key.startswith(folder + "/") or rest == SUCCESS_NAME:
            continue
        groups[rest.split("/", 1)[0] if "/" in rest else ""].append((key, modified))
    return groups


def _folder_key(folder: str, name: str) -> str:
    return f"{folder}/{name}" if name else folder


def stale_folders(
    this: ThisLoad,
    listing: Iterable[tuple[str, dt.datetime]],
    finished: Callable[[str], Finished | None],
    now: dt.datetime,
) -> dict[str, list[str]]:
    """The folders this load may remove (by folder name, ``""`` for loose objects), with their keys.

    ``listing`` is every (key, last modified) under the folder; ``finished`` reads a manifest's run and
    finish time, None when it cannot be read (then the folder is judged by age alone).
    """
    own = {m.prefix for m in this.manifests}
    tag, started = run_tag(this.run_id), this.extracts_started
    stale: dict[str, list[str]] = {}
    for name, objects in _group(this.folder, listing).items():
        path = _folder_key(this.folder, name)
        if path in own:
            continue
        old = now - max(m for _, m in objects) > this.max_age
        manifest_key = f"{path}/{MANIFEST_NAME}"
        if any(k == manifest_key for k, _ in objects):
            done = finished(manifest_key)
            if done is None:
                remove = old
            elif done.run_id == this.run_id:
                remove = True
            else:
                remove = done.finished_at < started and (manifest_key in this.loaded_before or old)
        else:
            parsed = parse_attempt_folder(name)
            remove = (parsed is not None and parsed[1].startswith(tag)) or old
        if remove:
            stale[name] = [k for k, _ in objects]
    return stale


def read_finished(bucket: Bucket, key: str) -> Finished | None:
    """The run id and finish time of a stored manifest of any version, or None if unreadable."""
    try:
        body = json.loads(bucket.get(key))
        return Finished(str(body["run_id"]), _moment(str(body["finished_at"])))
    except Exception:  # noqa: BLE001 - a missing or malformed manifest only makes the folder age-judged
        log.debug("cannot read manifest s3://%s/%s", bucket.name, key, exc_info=True)
        return None


def previously_loaded(bucket: Bucket, success_key: str) -> frozenset[str]:
    """The manifest keys the ``_SUCCESS`` marker of the last successful load lists (empty if none)."""
    try:
        body = json.loads(bucket.get(success_key))
        return frozenset(str(k) for k in body.get("manifests", ()))
    except Exception:  # noqa: BLE001 - no marker yet, or an unreadable one: nothing counts as loaded
        return frozenset()


def remove_stale_attempts(bucket: Bucket, this: ThisLoad) -> list[str]:
    """Delete what older attempts of this table and date left (see the module doc); returns the keys."""
    stale = stale_folders(
        this, bucket.listing(this.folder + "/"), lambda key: read_finished(bucket, key), dt.datetime.now(dt.UTC)
    )
    keys = [k for objects in stale.values() for k in objects]
    if keys:
        log.info(
            "removing %d object(s) of %d older extract attempt(s) under s3://%s/%s/: %s",
            len(keys),
            len(stale),
            bucket.name,
            this.folder,
            sorted(stale),
        )
        bucket.delete(keys)
    for name in stale:
        if name:
            # Unfinished multipart uploads are invisible in listings and billed; none of ours makes
            # them (parts are single PUTs), but an older client or a killed worker may have.
            bucket.abort_multipart_uploads(f"{_folder_key(this.folder, name)}/")
    return keys

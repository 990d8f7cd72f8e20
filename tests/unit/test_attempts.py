"""Which extract attempt folders a successful load may remove: the rules, on made-up listings."""

from __future__ import annotations

import datetime as dt

from report_pipeline.attempts import Finished, ThisLoad, stale_folders
from report_pipeline.manifest import Manifest, attempt_folder, new_extract_id, parse_attempt_folder, run_tag

FOLDER = "orders/2026-11-26T000000Z"
RUN = "scheduled__2026-11-26T00:00:00+00:00"
OTHER = "cli__2026-11-26T00:00:00+00:00__x"
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
STARTED = NOW - dt.timedelta(minutes=10)  # when this load's extracts started


def manifest(name: str) -> Manifest:
    return Manifest(
        bucket="b",
        prefix=f"{FOLDER}/{name}",
        extract_id=name[-32:],
        company="acme",
        table="orders",
        logical_date="2026-11-26",
        run_id=RUN,
        columns=(),
        parts=(),
        compression="gzip",
        started_at=STARTED.isoformat(),
        finished_at=(STARTED + dt.timedelta(minutes=1)).isoformat(),
    )


def folder(run_id: str, chunk: int | None = None) -> str:
    return attempt_folder(new_extract_id(run_id), chunk)


def judge(
    folders: dict[str, tuple[dt.timedelta, Finished | None | str]], loaded: set[str] = frozenset(), own: str = ""
) -> set[str]:
    """Folder name -> (age of its newest object, its manifest: Finished, "unreadable", or None for none)."""
    own = own or folder(RUN)
    listing = [(f"{FOLDER}/{own}/part-00000.csv.gz", NOW), (f"{FOLDER}/{own}/manifest.json", NOW)]
    listing.append((f"{FOLDER}/_SUCCESS", NOW - dt.timedelta(days=9)))
    manifests = {}
    for name, (age, done) in folders.items():
        base = f"{FOLDER}/{name}" if name else FOLDER
        listing.append((f"{base}/part-00000.csv.gz", NOW - age))
        if done is not None:
            listing.append((f"{base}/manifest.json", NOW - age))
            manifests[f"{base}/manifest.json"] = None if done == "unreadable" else done
    this = ThisLoad(FOLDER, RUN, [manifest(own)], frozenset(f"{FOLDER}/{n}/manifest.json" for n in loaded))
    stale = stale_folders(this, listing, lambda key: manifests[key], NOW)  # type: ignore[arg-type]
    assert all(k.startswith(f"{FOLDER}/{n}/" if n else f"{FOLDER}/") for n, keys in stale.items() for k in keys)
    return set(stale)


MINUTE, DAY = dt.timedelta(minutes=1), dt.timedelta(days=1)
EARLIER = Finished(OTHER, STARTED - 5 * MINUTE)
LATER = Finished(OTHER, STARTED + 5 * MINUTE)


def test_extract_ids_name_their_run_and_folders_parse_back():
    extract_id = new_extract_id(RUN)
    assert len(extract_id) == 32 and extract_id.startswith(run_tag(RUN)) and not extract_id.startswith(run_tag(OTHER))
    assert parse_attempt_folder(attempt_folder(extract_id, 3)) == (3, extract_id)
    assert parse_attempt_folder(attempt_folder(extract_id, None)) == (None, extract_id)
    assert parse_attempt_folder("chunk-0003") is None  # the layout before attempt folders


def test_the_loads_own_folder_and_the_success_marker_stay():
    assert judge({}) == set()


def test_attempts_of_its_own_run_that_it_did_not_load_go():
    dead, superseded = folder(RUN, 2), folder(RUN, 2)
    assert judge({dead: (MINUTE, None), superseded: (MINUTE, Finished(RUN, STARTED + MINUTE))}) == {dead, superseded}


def test_another_runs_folder_without_a_manifest_stays_until_the_safety_age():
    running, dead = folder(OTHER), folder(OTHER)
    assert judge({running: (MINUTE, None), dead: (2 * DAY, None)}) == {dead}


def test_another_runs_finished_extract_goes_only_once_loaded_or_old_and_only_if_older_than_this_loads():
    pending, loaded, old, newer_loaded = folder(OTHER), folder(OTHER), folder(OTHER), folder(OTHER)
    stale = judge(
        {
            pending: (MINUTE, EARLIER),  # a run whose load may still come: kept
            loaded: (MINUTE, EARLIER),
            old: (2 * DAY, Finished(OTHER, NOW - 2 * DAY)),
            newer_loaded: (MINUTE, LATER),  # newer than this load's extracts: kept even though loaded
        },
        loaded={loaded, newer_loaded},
    )
    assert stale == {loaded, old}


def test_the_layout_before_attempt_folders_is_judged_alike():
    # <date>/manifest.json + parts (loose) and <date>/chunk-0003/ of an earlier, loaded run.
    assert judge({"": (MINUTE, EARLIER), "chunk-0003": (MINUTE, EARLIER)}, loaded={"chunk-0003"}) == {"chunk-0003"}
    assert judge({"": (2 * DAY, EARLIER), "chunk-0001": (MINUTE, None)}) == {""}
    assert judge({"chunk-0001": (MINUTE, "unreadable"), "chunk-0002": (2 * DAY, "unreadable")}) == {"chunk-0002"}


def test_the_safety_age_is_a_setting_of_whole_hours():
    import pytest

    from report_pipeline.errors import ConfigError
    from report_pipeline.settings import Settings

    assert Settings.from_env({}).attempt_max_age_hours == 24
    assert Settings.from_env({"REPORTS_ATTEMPT_MAX_AGE_HOURS": "6"}).attempt_max_age_hours == 6
    with pytest.raises(ConfigError, match="must be at least 1"):
        Settings.from_env({"REPORTS_ATTEMPT_MAX_AGE_HOURS": "0"})

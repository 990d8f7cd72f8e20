"""Unit tests of the parse-time snapshot (``report_pipeline.snapshot.load_plan``): when it reads the
admin DB, when it must not, and what it does when the admin DB cannot be reached."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from report_pipeline.config import AdminRows
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings
from report_pipeline.snapshot import failure_marker, load_plan, write_snapshot

TTL = 300


def _rows(*aliases: str) -> AdminRows:
    return AdminRows(
        companies=[{"id": n, "company_id": 100 + n, "status": 1, "alias": a} for n, a in enumerate(aliases, 1)],
        tables=[
            {
                "id": 1,
                "name": "users",
                "status": 1,
                "query_select": "SELECT id, username FROM users WHERE company = %s",
                "params_select": "company[1]",
                "query_insert": "REPLACE INTO users(id, username) VALUES ",
                "params_insert": "",
            }
        ],
    )


class Fetch:
    """A fetch_rows stand-in that counts its calls and returns or raises what it is given."""

    def __init__(self, result: AdminRows | Exception) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> AdminRows:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(snapshot_path=tmp_path / "snap" / "admin_snapshot.json", snapshot_ttl_seconds=TTL)


def _age(path: Path, seconds: float) -> None:
    """Make a file look ``seconds`` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _aliases(plan) -> list[str]:
    return [c.company.alias for c in plan.companies]


def test_no_snapshot_reads_the_admin_db_once_and_writes_the_snapshot(settings):
    fetch = Fetch(_rows("acme", "globex"))
    plan, source = load_plan(settings, fetch)
    assert fetch.calls == 1
    assert (source.origin, source.admin_queries) == ("admin-db", 1)
    assert _aliases(plan) == ["acme", "globex"]
    body = json.loads(settings.snapshot_path.read_text())
    assert [c["company"]["alias"] for c in body["plan"]["companies"]] == ["acme", "globex"]
    # Nothing but the snapshot is left in its directory (the temp file was renamed over it).
    # (and the refresh lock, which stays: removing a lock file others may hold open would be racy).
    names = sorted(p.name for p in settings.snapshot_path.parent.iterdir())
    assert names == ["admin_snapshot.json", "admin_snapshot.json.lock"]


def test_fresh_snapshot_is_used_without_calling_fetch(settings):
    write_snapshot(settings.snapshot_path, settings, load_plan(settings, Fetch(_rows("acme")))[0])
    fetch = Fetch(RuntimeError("must not be called"))
    plan, source = load_plan(settings, fetch)
    assert fetch.calls == 0
    assert (source.origin, source.admin_queries) == ("snapshot", 0)
    assert _aliases(plan) == ["acme"]


def test_expired_snapshot_is_refreshed_with_exactly_one_fetch_and_replaced_atomically(settings, monkeypatch):
    load_plan(settings, Fetch(_rows("acme")))
    _age(settings.snapshot_path, TTL + 5)
    old_inode = settings.snapshot_path.stat().st_ino
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy_replace(src, dst):
        replaced.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr("report_pipeline.snapshot.os.replace", spy_replace)
    fetch = Fetch(_rows("acme", "umbrella"))
    plan, source = load_plan(settings, fetch)
    assert fetch.calls == 1
    assert source.origin == "admin-db"
    assert _aliases(plan) == ["acme", "umbrella"]
    # Written to a temp file in the same directory, then renamed over the old one: a new inode.
    assert len(replaced) == 1 and replaced[0][1] == "admin_snapshot.json" and replaced[0][0].startswith(".snapshot-")
    assert settings.snapshot_path.stat().st_ino != old_inode
    assert time.time() - settings.snapshot_path.stat().st_mtime < TTL
    # The next parse uses the new snapshot.
    again = Fetch(RuntimeError("must not be called"))
    assert _aliases(load_plan(settings, again)[0]) == ["acme", "umbrella"] and again.calls == 0


def test_unreachable_admin_db_uses_the_stale_snapshot_and_warns(settings, caplog):
    load_plan(settings, Fetch(_rows("acme", "globex")))
    _age(settings.snapshot_path, TTL + 5)
    fetch = Fetch(OSError("(2003, \"Can't connect to MySQL server on '127.0.0.1:1'\")"))
    with caplog.at_level(logging.WARNING, logger="report_pipeline.snapshot"):
        plan, source = load_plan(settings, fetch)
    assert fetch.calls == 1
    assert source.origin == "stale-snapshot"
    assert _aliases(plan) == ["acme", "globex"]
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "admin database unreachable" in warning and "Can't connect" in warning and "2 companies" in warning


def test_after_a_failed_refresh_the_admin_db_is_not_retried_until_the_ttl_passes_again(settings, caplog):
    load_plan(settings, Fetch(_rows("acme")))
    _age(settings.snapshot_path, TTL + 5)
    down = Fetch(OSError("connect timeout"))
    load_plan(settings, down)
    assert down.calls == 1 and failure_marker(settings.snapshot_path).exists()
    # Parses right after the failure do not wait for another connect timeout.
    with caplog.at_level(logging.WARNING, logger="report_pipeline.snapshot"):
        for _ in range(3):
            plan, source = load_plan(settings, down)
            assert (source.origin, source.admin_queries) == ("stale-snapshot", 0)
            assert _aliases(plan) == ["acme"]
    assert down.calls == 1
    assert "was unreachable" in caplog.records[-1].getMessage()
    # Once the failure is a TTL old, the next parse tries again, and success clears the marker.
    _age(failure_marker(settings.snapshot_path), TTL + 1)
    up = Fetch(_rows("acme", "globex"))
    plan, source = load_plan(settings, up)
    assert up.calls == 1 and source.origin == "admin-db"
    assert _aliases(plan) == ["acme", "globex"]
    assert not failure_marker(settings.snapshot_path).exists()


def test_no_snapshot_and_unreachable_admin_db_raises_a_clear_config_error(settings):
    fetch = Fetch(OSError("(2003, \"Can't connect to MySQL server on '127.0.0.1:1'\")"))
    with pytest.raises(ConfigError) as raised:
        load_plan(settings, fetch)
    message = str(raised.value)
    assert "cannot read the admin database" in message
    assert "Can't connect" in message
    assert str(settings.snapshot_path) in message
    assert not settings.snapshot_path.exists()
    # Without a snapshot there is nothing to fall back to, so every parse tries again.
    with pytest.raises(ConfigError):
        load_plan(settings, fetch)
    assert fetch.calls == 2


def test_each_spec_is_stored_once_however_many_companies_run_it(settings):
    """Issue 21: 1,000 companies x 1 spec store the spec's query once, and read back equal."""
    aliases = [f"c{n:04d}" for n in range(1000)]
    plan, _ = load_plan(settings, Fetch(_rows(*aliases)))
    text = settings.snapshot_path.read_text()
    assert text.count("SELECT id, username FROM users") == 1
    again, source = load_plan(settings, Fetch(RuntimeError("within the TTL: no admin read")))
    assert source.origin == "snapshot" and again == plan
    assert again.companies[0].tables[0] is again.companies[999].tables[0]


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"version": 1}', b'{"version": 99, "plan": {}}'])
def test_corrupted_snapshot_is_ignored_and_refetched(settings, garbage, caplog):
    settings.snapshot_path.parent.mkdir(parents=True)
    settings.snapshot_path.write_bytes(garbage)
    fetch = Fetch(_rows("acme"))
    plan, source = load_plan(settings, fetch)
    assert fetch.calls == 1 and source.origin == "admin-db"
    assert _aliases(plan) == ["acme"]
    assert json.loads(settings.snapshot_path.read_text())["version"] == 2


def test_snapshot_built_under_other_naming_settings_is_not_reused(settings):
    load_plan(settings, Fetch(_rows("acme")))
    other = Settings(
        snapshot_path=settings.snapshot_path, snapshot_ttl_seconds=TTL, bucket_template="corp-{alias}-reports"
    )
    fetch = Fetch(_rows("acme"))
    plan, _ = load_plan(other, fetch)
    assert fetch.calls == 1
    assert plan.companies[0].company.bucket == "corp-acme-reports"


def test_snapshot_keeps_broken_rows_with_their_messages(settings):
    rows = _rows("acme")
    bad = dict(rows.tables[0], id=7, name="orders", query_select="DELETE FROM orders")
    load_plan(settings, Fetch(AdminRows(rows.companies, [*rows.tables, bad])))
    plan, source = load_plan(settings, Fetch(RuntimeError("must not be called")))
    assert source.origin == "snapshot"
    (broken,) = plan.companies[0].broken
    assert broken.name == "orders"
    assert str(broken.problem).startswith("admin tables row id=7: ")


def test_expired_by_the_cli_the_next_parse_refreshes_but_keeps_the_fallback(settings):
    from report_pipeline.snapshot import expire_snapshot

    assert expire_snapshot(settings.snapshot_path) is False  # nothing to expire yet
    load_plan(settings, Fetch(_rows("acme")))
    failure_marker(settings.snapshot_path).touch()  # even right after a failed refresh
    assert expire_snapshot(settings.snapshot_path) is True
    up = Fetch(_rows("acme", "newco"))
    plan, source = load_plan(settings, up)
    assert up.calls == 1 and _aliases(plan) == ["acme", "newco"]
    expire_snapshot(settings.snapshot_path)
    down = Fetch(OSError("down"))
    plan, source = load_plan(settings, down)
    assert down.calls == 1 and source.origin == "stale-snapshot" and _aliases(plan) == ["acme", "newco"]


def test_default_snapshot_location_is_under_airflow_home():
    settings = Settings.from_env({"AIRFLOW_HOME": "/opt/airflow"})
    assert settings.snapshot_path == Path("/opt/airflow/report_pipeline/admin_snapshot.json")
    assert Settings.from_env({"REPORTS_SNAPSHOT_PATH": "/var/cache/rp.json"}).snapshot_path == Path(
        "/var/cache/rp.json"
    )

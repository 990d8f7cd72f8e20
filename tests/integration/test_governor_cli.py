"""Issue 24.3 in ``report-pipeline run``: the governor waits in-process, logging the figure, then loads
exactly; past REPORTS_GOVERNOR_MAX_WAIT the command fails naming the figure and loads nothing."""

from __future__ import annotations

import os
import subprocess

import pytest
from tests.conftest import mysql_connect
from tests.integration import test_admin_cli
from tests.integration.test_admin_cli import CLI, _rows, cli
from tests.integration.test_cli_for_people import _onboarded
from tests.integration.test_source_governor import BusySessions, _threads_running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600, method="thread")]
scratch = test_admin_cli.scratch  # the scratch admin/source schemas fixture, shared


def test_run_waits_for_a_busy_source_in_process_and_fails_past_the_bound(scratch):
    alias = _onboarded(scratch)
    run = ("run", "--company", alias, "--table", "users", "--date", "2026-11-26")
    control = mysql_connect()
    base = _threads_running(control)
    env = {**scratch["env"], "REPORTS_SOURCE_MAX_THREADS_RUNNING": str(base), "REPORTS_GOVERNOR_MAX_WAIT": "3"}

    stuck = BusySessions(5, 300)
    stuck.start(control, base)
    try:
        refused = cli(env, *run)
    finally:
        stuck.stop()
        stuck.join()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        f"error: company {alias!r} table 'users' (tables row id=1): the source is too busy to extract from: "
        "Threads_running=" in refused.stderr
    )
    assert "(REPORTS_GOVERNOR_MAX_WAIT=3); nothing was extracted or loaded" in refused.stderr
    assert _rows(alias, "SELECT id FROM users") == []

    # Busy until the command said it waits (however long it takes to start on a loaded machine).
    busy = BusySessions(20, 300)
    busy.start(control, base)
    proc = subprocess.Popen(
        [CLI, *run], env={**os.environ, **env, "REPORTS_GOVERNOR_MAX_WAIT": "300"}, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    said = ""
    try:
        for line in proc.stderr:
            said += line
            if f"REPORTS_SOURCE_MAX_THREADS_RUNNING={base}; waiting 2 s before looking again" in line:
                break
        busy.stop()
        said += proc.stderr.read()
        assert proc.wait(timeout=300) == 0, said
    finally:
        busy.stop()
        busy.join()
    assert "is above REPORTS_SOURCE_MAX_THREADS_RUNNING" in said and "the source is calm again after" in said
    assert _rows(alias, "SELECT id, username FROM users") == _rows(
        scratch["source"], "SELECT id, username FROM users WHERE company = 61"
    )

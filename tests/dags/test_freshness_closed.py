"""Issue 22.3: the freshness page fails closed when Airflow's access check cannot run.

Without Airflow's API security module (a trimmed install, an import error) the page and ``/data`` used
to fall back to no check at all; now every route answers 403 and reads nothing. The real stack's
401/403/200 are in tests/airflow_real/test_freshness_page.py.
"""

from __future__ import annotations

import importlib
import sys

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def without_security(monkeypatch: pytest.MonkeyPatch):
    import report_pipeline.airflow.freshness_app as app_module

    monkeypatch.setitem(sys.modules, "airflow.api_fastapi.core_api.security", None)  # import fails
    reloaded = importlib.reload(app_module)
    reloaded.build_rows = lambda *_: pytest.fail("the page read data without an access check")
    yield reloaded
    monkeypatch.undo()
    importlib.reload(app_module)


def test_every_route_is_refused_when_the_check_cannot_run(without_security):
    client = TestClient(without_security.app)
    for route in ("/", "/data", "/?company=acme", "/data?company=acme"):
        response = client.get(route)
        assert response.status_code == 403, (route, response.status_code)
        assert "access check cannot run" in response.text

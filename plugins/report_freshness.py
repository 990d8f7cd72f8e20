"""Airflow 3 plugin: the "Report freshness" page, served by the API server and linked from the UI's nav.

The page itself lives in the installed package (``report_pipeline.airflow.freshness_app``), so it is
tested and versioned with the pipeline; this file only registers it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from report_pipeline.airflow.freshness_app import URL_PREFIX, app


class ReportFreshnessPlugin(AirflowPlugin):
    """Registers the page's FastAPI app and a navigation entry that shows it inside the UI."""

    name = "report_freshness"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Report freshness"}]
    external_views = [
        {
            "name": "Report freshness",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "report-freshness",
        }
    ]

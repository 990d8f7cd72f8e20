"""populate_report_databases: one task group per active company in the admin DB (see README)."""

from report_pipeline.airflow.factory import dag_from_admin

dag = dag_from_admin()

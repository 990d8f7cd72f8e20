"""The Airflow adapter: hooks, retry policy, operators and the task-group factory.

Everything Airflow-specific lives here; the package above it imports without Airflow.
"""

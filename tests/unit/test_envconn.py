"""The console's direct connections: taken only when the hooks would read the variables alike."""

from __future__ import annotations

import json

from report_pipeline.envconn import env_connections, parse_connection

MYSQL = "mysql://rep%40user:p%2Fw@db.example:3307/reports_admin?charset=utf8mb4"
S3 = json.dumps(
    {
        "conn_type": "aws",
        "login": "key",
        "password": "secret",
        "extra": {"endpoint_url": "http://s3.local:8333", "region_name": "eu-west-1",
                  "config_kwargs": {"s3": {"addressing_style": "path"}}},
    }
)


def _env(**over: str) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": "/nonexistent-airflow-home",
        "AIRFLOW_CONN_REPORTS_ADMIN_DB": MYSQL,
        "AIRFLOW_CONN_REPORTS_SOURCE_DB": MYSQL.replace("reports_admin", "source"),
        "AIRFLOW_CONN_REPORTS_TARGET_DB": MYSQL.replace("reports_admin", "") + "&local_infile=true",
        "AIRFLOW_CONN_REPORTS_S3": S3,
    }
    env.update(over)
    return env


def test_uri_and_json_forms_parse_as_airflow_reads_them():
    conn = parse_connection(MYSQL)
    assert (conn["conn_type"], conn["login"], conn["password"], conn["host"], conn["port"], conn["schema"]) == (
        "mysql", "rep@user", "p/w", "db.example", 3307, "reports_admin"
    )
    assert conn["extra"] == {"charset": "utf8mb4"}
    s3 = parse_connection(S3)
    assert s3["conn_type"] == "aws" and s3["extra"]["endpoint_url"] == "http://s3.local:8333"


def test_plain_variables_are_opened_directly():
    assert env_connections(_env(), 5) is not None


def test_anything_the_direct_path_cannot_honour_goes_to_the_hooks():
    # A secrets backend is asked before the environment, so its connection could differ.
    assert env_connections(_env(AIRFLOW__SECRETS__BACKEND="x.y.Backend"), 5) is None
    # Options only the hooks implement: IAM auth, SSL, a role to assume.
    assert env_connections(_env(AIRFLOW_CONN_REPORTS_SOURCE_DB=MYSQL + "&iam=true"), 5) is None
    assert env_connections(_env(AIRFLOW_CONN_REPORTS_TARGET_DB=MYSQL + '&ssl={"ca":"/ca.pem"}'), 5) is None
    role = json.dumps({"conn_type": "aws", "extra": {"role_arn": "arn:aws:iam::1:role/r"}})
    assert env_connections(_env(AIRFLOW_CONN_REPORTS_S3=role), 5) is None
    # A connection kept in the metadata DB or missing altogether.
    env = _env()
    del env["AIRFLOW_CONN_REPORTS_ADMIN_DB"]
    assert env_connections(env, 5) is None
    # A connection of another type under a contract id.
    assert env_connections(_env(AIRFLOW_CONN_REPORTS_SOURCE_DB="postgres://u:p@h/db"), 5) is None


def test_a_secrets_backend_in_airflow_cfg_also_sends_the_cli_to_the_hooks(tmp_path):
    (tmp_path / "airflow.cfg").write_text("[secrets]\nbackend = some.Backend\n")
    assert env_connections(_env(AIRFLOW_HOME=str(tmp_path)), 5) is None
    (tmp_path / "airflow.cfg").write_text("[secrets]\nbackend =\n")
    assert env_connections(_env(AIRFLOW_HOME=str(tmp_path)), 5) is not None

"""Least privilege: the whole DAG runs with the three accounts `scripts/least_privilege.sh` creates,
and those accounts can do nothing beyond what docs/security.md lists.

Everything lives in scratch objects named after one random tag (admin and source schemas, target
schemas `rpt_<tag>_{alias}`, buckets `rpsec-<tag>-{alias}`, users `rp_*_<tag>`, DAG id
`rp_security_<tag>`), so concurrent test runs on the shared servers never see each other. The
set-up (schemas, demo rows, onboarding) uses the privileged `reports` user, as an operator would;
the run itself sees only the least-privileged connections.

`deploy()` / `run_dag()` / `teardown()` are reused by tests/security/test_secrets.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, execute, mysql_connect, s3_client

pytestmark = pytest.mark.integration

LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
# alias -> (company_id, look-back days): the demo's active companies; umbrella uses the 1-day default.
COMPANIES = {"acme": (1, 60), "globex": (2, 7), "umbrella": (4, 1)}
ROLES = ("admin", "source", "target")
SCRIPT = REPO / "scripts" / "least_privilege.sh"


@dataclass
class Deployment:
    """One scratch deployment: names, credentials, and the environments to run it with."""

    tag: str
    snapshot_dir: Path
    users: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    s3_access_key: str = ""
    s3_secret_key: str = ""
    extra_dag_ids: list[str] = field(default_factory=list)

    @property
    def admin_schema(self) -> str:
        """The scratch admin schema."""
        return f"rpsec_{self.tag}_admin"

    @property
    def source_schema(self) -> str:
        """The scratch source schema."""
        return f"rpsec_{self.tag}_source"

    @property
    def dag_id(self) -> str:
        """The DAG id of this deployment's run (unique, so no other test's run is touched)."""
        return f"rp_security_{self.tag}"

    def target_schema(self, alias: str) -> str:
        """A company's target schema."""
        return f"rpt_{self.tag}_{alias}"

    def bucket(self, alias: str) -> str:
        """A company's bucket."""
        return f"rpsec-{self.tag}-{alias}"

    def grant_env(self) -> dict[str, str]:
        """The variables scripts/least_privilege.sh reads."""
        env = {
            "RP_ADMIN_SCHEMA": self.admin_schema,
            "RP_SOURCE_SCHEMA": self.source_schema,
            # `_` is a LIKE wildcard in a grant's schema name: escaped, the pattern matches only ours.
            "RP_TARGET_SCHEMA_PATTERN": f"rpt\\_{self.tag}\\_%",
        }
        for role in ROLES:
            env[f"RP_{role.upper()}_USER"] = self.users[role]
            env[f"RP_{role.upper()}_PASSWORD"] = self.passwords[role]
        return env

    def connection_uris(self, privileged: bool = False) -> dict[str, str]:
        """AIRFLOW_CONN_* values: the least-privileged users, or the `reports` user for set-up."""
        port = os.environ["REPORTS_MYSQL_PORT"]

        def uri(role: str, schema: str, extra: str = "") -> str:
            user, password = ("reports", "reports") if privileged else (self.users[role], self.passwords[role])
            return f"mysql://{user}:{password}@127.0.0.1:{port}/{schema}?charset=utf8mb4{extra}"

        s3 = {
            "conn_type": "aws",
            "login": self.s3_access_key,
            "password": self.s3_secret_key,
            "extra": {
                "endpoint_url": os.environ["REPORTS_S3_ENDPOINT_URL"],
                "region_name": "us-east-1",
                "config_kwargs": {"s3": {"addressing_style": "path"}},
            },
        }
        return {
            "AIRFLOW_CONN_REPORTS_ADMIN_DB": uri("admin", self.admin_schema),
            "AIRFLOW_CONN_REPORTS_SOURCE_DB": uri("source", self.source_schema),
            "AIRFLOW_CONN_REPORTS_TARGET_DB": uri("target", "", "&local_infile=true"),
            "AIRFLOW_CONN_REPORTS_S3": json.dumps(s3),
        }

    def env(self, privileged: bool = False) -> dict[str, str]:
        """Everything the DAG and the CLI read, pointed at this deployment."""
        return {
            **self.connection_uris(privileged),
            "REPORTS_TARGET_SCHEMA_TEMPLATE": f"rpt_{self.tag}_{{alias}}",
            "REPORTS_S3_BUCKET_TEMPLATE": f"rpsec-{self.tag}-{{alias}}",
            "REPORTS_SNAPSHOT_PATH": str(self.snapshot_dir / ("setup.json" if privileged else "snapshot.json")),
            "REPORTS_SCHEDULE": "none",
        }


def grant_script(command: str, deployment: Deployment) -> str:
    """Run scripts/least_privilege.sh for this deployment; returns its output."""
    done = subprocess.run(
        ["bash", str(SCRIPT), command],
        env={**os.environ, **deployment.grant_env()},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def deploy(snapshot_dir: Path, password_prefix: str = "pw") -> Deployment:
    """Create scratch schemas, demo rows, onboarded companies and least-privileged users."""
    tag = uuid.uuid4().hex[:8]
    deployment = Deployment(tag=tag, snapshot_dir=snapshot_dir)
    for role in ROLES:
        deployment.users[role] = f"rp_{role}_{tag}"
        # Recognisable and unique, so a leak anywhere can be found by plain substring search.
        deployment.passwords[role] = f"{password_prefix}-{role}-{uuid.uuid4().hex}"
    deployment.s3_access_key = f"rp-access-{tag}"
    deployment.s3_secret_key = f"sk-{uuid.uuid4().hex}"
    conn = mysql_connect()
    execute(
        conn,
        f"CREATE DATABASE `{deployment.admin_schema}` CHARACTER SET utf8mb4",
        f"CREATE DATABASE `{deployment.source_schema}` CHARACTER SET utf8mb4",
    )
    conn.close()
    # The operator's set-up, through the CLI exactly as `make demo` does it, as the privileged user.
    setup = subprocess.run(
        ["report-pipeline", "demo-setup"],
        env={**os.environ, **deployment.env(privileged=True)},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    grant_script("apply", deployment)
    return deployment


def teardown(deployment: Deployment) -> None:
    """Drop everything a deployment created (users, schemas, buckets, its DAGs' metadata)."""
    grant_script("drop", deployment)
    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound

    for dag_id in (deployment.dag_id, *deployment.extra_dag_ids):
        try:
            delete_dag(dag_id)
        except DagNotFound:
            pass
    conn = mysql_connect()
    schemas = [deployment.admin_schema, deployment.source_schema] + [deployment.target_schema(a) for a in COMPANIES]
    execute(conn, *(f"DROP DATABASE IF EXISTS `{s}`" for s in schemas))
    conn.close()
    s3 = s3_client()
    for alias in COMPANIES:
        bucket = deployment.bucket(alias)
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
                if keys:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            s3.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - a bucket that was never created is fine
            pass


def register_dag(dag: Any) -> None:
    """Write the DAG to the metadata DB, as a DAG processor would: dag.test() needs a DagVersion."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session
        )


def run_dag(deployment: Deployment, dag_id: str | None = None, run_conf: dict[str, Any] | None = None) -> Any:
    """Build the deployment's DAG from its admin DB and run it with dag.test(); returns the DagRun.

    The caller must have put ``deployment.env()`` into os.environ (tasks run in this process). A
    second run of the same deployment needs another ``dag_id``: dag.test() would find the first run.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    from report_pipeline.airflow.factory import build_dag, current_plan
    from report_pipeline.settings import Settings

    settings = Settings.from_env()
    # What the DAG file does: the plan through the admin snapshot (REPORTS_SNAPSHOT_PATH), read
    # with the admin connection.
    plan, _ = current_plan(settings)
    assert not plan.problems, plan.problems
    if dag_id is not None:
        deployment.extra_dag_ids.append(dag_id)
    dag = build_dag(plan, settings, dag_id=dag_id or deployment.dag_id)
    register_dag(dag)
    with pytest.MonkeyPatch.context() as patch:
        # dag.test() re-parses the DAG's bundle before running; ours is registered above, and
        # parsing dags/ here would overwrite the shared metadata DB's populate_report_databases
        # with this scratch deployment's plan under other tests' feet.
        patch.setattr(DagBundlesManager, "get_all_dag_bundles", lambda self: iter(()))
        return dag.test(logical_date=LOGICAL_DATE, run_conf=run_conf)


def _connect_as(deployment: Deployment, role: str, db: str = "") -> Any:
    import MySQLdb

    return MySQLdb.connect(
        host="127.0.0.1",
        port=int(os.environ["REPORTS_MYSQL_PORT"]),
        user=deployment.users[role],
        passwd=deployment.passwords[role],
        db=db,
        charset="utf8mb4",
    )


def _rows(db: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(sql, args)
    rows = sorted(cursor.fetchall())
    conn.close()
    return rows


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A scratch deployment whose least-privileged users exist; dropped afterwards."""
    created = deploy(tmp_path_factory.mktemp("lp"))
    yield created
    teardown(created)


@pytest.fixture(scope="module")
def dag_run(deployment: Deployment) -> Any:
    """The DAG run with only the least-privileged connections in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in deployment.env().items():
            patch.setenv(name, value)
        return run_dag(deployment)


def test_every_task_succeeds_with_only_the_least_privileged_users(dag_run: Any) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert len(states) == 3 * 3 * 2, states  # companies x tables x (extract, load)
    assert set(states.values()) == {TaskInstanceState.SUCCESS}, states
    assert dag_run.state == DagRunState.SUCCESS


def test_least_privileged_run_copies_every_row_exactly(dag_run: Any, deployment: Deployment) -> None:
    source = deployment.source_schema
    for alias, (company, days) in COMPANIES.items():
        target = deployment.target_schema(alias)
        since = (LOGICAL_DATE - dt.timedelta(days=days)).date().isoformat()
        until = LOGICAL_DATE.date().isoformat()
        assert _rows(target, "SELECT id, username FROM users") == _rows(
            source, "SELECT id, username FROM users WHERE company = %s", (company,)
        )
        orders = _rows(
            source,
            "SELECT id, user_id, amount, status, created_at FROM orders WHERE company = %s AND created_at >= %s",
            (company, since),
        )
        assert orders, f"the window of {alias} must select some orders"
        assert _rows(target, "SELECT id, user_id, amount, status, created_at FROM orders") == orders
        assert _rows(target, "SELECT id, kind, payload, happened_at FROM events") == _rows(
            source,
            "SELECT id, kind, payload, happened_at FROM events WHERE company = %s AND happened_at >= %s "
            "AND happened_at < %s",
            (company, since, until),
        )
        loads = _rows(target, "SELECT table_name, run_id FROM report_loads")
        assert loads == sorted((t, dag_run.run_id) for t in ("events", "orders", "users"))


def _grants(deployment: Deployment, role: str) -> set[str]:
    conn = mysql_connect()
    cursor = conn.cursor()
    cursor.execute(f"SHOW GRANTS FOR '{deployment.users[role]}'@'%'")
    grants = {str(r[0]).split(" IDENTIFIED BY ")[0] for r in cursor.fetchall()}
    conn.close()
    return grants


def test_grants_are_exactly_the_documented_ones(deployment: Deployment) -> None:
    def who(role: str) -> str:
        return f"`{deployment.users[role]}`@`%`"

    assert _grants(deployment, "admin") == {
        f"GRANT USAGE ON *.* TO {who('admin')}",
        f"GRANT SELECT ON `{deployment.admin_schema}`.* TO {who('admin')}",
    }
    assert _grants(deployment, "source") == {
        f"GRANT USAGE ON *.* TO {who('source')}",
        f"GRANT SELECT ON `{deployment.source_schema}`.* TO {who('source')}",
    }
    # No FILE and nothing global: LOAD DATA LOCAL needs only INSERT on the table.
    assert _grants(deployment, "target") == {
        f"GRANT USAGE ON *.* TO {who('target')}",
        f"GRANT SELECT, INSERT, DELETE, CREATE, DROP, ALTER ON `rpt\\_{deployment.tag}\\_%`.* TO {who('target')}",
    }


def _denied(deployment: Deployment, role: str, statement: str, db: str = "") -> None:
    """The statement fails with an access-denied error (1044, 1142, 1143 or 1227), nothing else."""
    import MySQLdb

    conn = _connect_as(deployment, role, db)
    try:
        with pytest.raises(MySQLdb.OperationalError) as failure:
            conn.cursor().execute(statement)
        assert failure.value.args[0] in (1044, 1142, 1143, 1227), failure.value
    finally:
        conn.close()


def test_source_user_can_only_read_the_source(deployment: Deployment) -> None:
    src = deployment.source_schema
    conn = _connect_as(deployment, "source", src)
    cursor = conn.cursor()
    cursor.execute("SELECT COUNT(*) FROM users")
    assert cursor.fetchone()[0] > 0
    conn.close()
    _denied(deployment, "source", "INSERT INTO users (id, company, username) VALUES (999999, 1, 'x')", src)
    _denied(deployment, "source", "DELETE FROM users", src)
    _denied(deployment, "source", "UPDATE users SET username = 'x'", src)
    _denied(deployment, "source", "CREATE TABLE rp_probe (id INT)", src)
    _denied(deployment, "source", f"SELECT * FROM `{deployment.admin_schema}`.companies")
    assert _rows(src, "SELECT COUNT(*) FROM users WHERE id = 999999") == [(0,)]


def test_admin_user_can_only_read_the_admin_schema(deployment: Deployment) -> None:
    adm = deployment.admin_schema
    _denied(deployment, "admin", "UPDATE companies SET status = 0", adm)
    _denied(deployment, "admin", "INSERT INTO companies (company_id, status, alias) VALUES (99, 1, 'evil')", adm)
    _denied(deployment, "admin", "DELETE FROM `tables`", adm)
    _denied(deployment, "admin", "ALTER TABLE companies ADD COLUMN x INT", adm)
    _denied(deployment, "admin", f"SELECT * FROM `{deployment.source_schema}`.users")
    assert _rows(adm, "SELECT COUNT(*) FROM companies WHERE status = 1") == [(len(COMPANIES),)]


def test_target_user_cannot_touch_anything_but_company_schemas(deployment: Deployment) -> None:
    _denied(deployment, "target", f"SELECT * FROM `{deployment.source_schema}`.users")
    _denied(deployment, "target", f"SELECT * FROM `{deployment.admin_schema}`.companies")
    _denied(deployment, "target", "SELECT * FROM `reports_admin`.companies")
    _denied(deployment, "target", "SELECT * FROM mysql.user")
    _denied(deployment, "target", f"CREATE DATABASE `rpsec_{deployment.tag}_other`")
    # A `_` in the pattern is escaped: a schema differing only there is not a company schema.
    _denied(deployment, "target", f"CREATE DATABASE `rptx{deployment.tag}_acme`")


def test_target_user_can_create_a_new_company_schema(deployment: Deployment) -> None:
    """Onboarding a company creates its schema: the grant's pattern must allow that, and only that."""
    schema = deployment.target_schema("newco")
    conn = _connect_as(deployment, "target")
    try:
        execute(
            conn,
            f"CREATE DATABASE `{schema}`",
            # Indexes come with CREATE TABLE (no INDEX privilege); onboarding drops unused columns.
            f"CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, k INT, gone INT, KEY (k))",
            f"ALTER TABLE `{schema}`.t DROP COLUMN gone",
            f"DROP DATABASE `{schema}`",
        )
    finally:
        conn.close()


def test_grant_script_is_idempotent_and_replaces_earlier_grants(deployment: Deployment) -> None:
    """Re-applying with another source schema leaves only the new grant (never an additive pile)."""
    before = _grants(deployment, "source")
    moved = Deployment(
        tag=deployment.tag,
        snapshot_dir=deployment.snapshot_dir,
        users=deployment.users,
        passwords=deployment.passwords,
    )
    env = moved.grant_env() | {"RP_SOURCE_SCHEMA": "rp_elsewhere"}
    try:
        subprocess.run(["bash", str(SCRIPT), "apply"], env={**os.environ, **env}, cwd=REPO, check=True)
        grants = _grants(deployment, "source")
        assert f"GRANT SELECT ON `rp_elsewhere`.* TO `{deployment.users['source']}`@`%`" in grants
        assert not any(deployment.source_schema in g for g in grants), grants
    finally:
        grant_script("apply", deployment)
    assert _grants(deployment, "source") == before

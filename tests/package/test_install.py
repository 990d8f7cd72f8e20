"""The package as a user installs it: a wheel built from this checkout, `pip install`ed with
constraints-3.11.txt into a fresh venv that holds a plain Airflow 3.3 and the providers, then the DAG
parsed from a dags folder that holds nothing but the 3-line DAG file.

Nothing of the checkout leaks in: no PYTHONPATH, the working directory is a scratch folder, and the
package must come from the venv's site-packages. The admin connection points at a closed port, so
the DAG can only come from the snapshot (REPORTS_SNAPSHOT_PATH), as on a worker; no server is needed.

Run alone: ``pytest -m package`` (or ``make test-package``). Timings go to
test-output/package-install.txt; with pip's cache warm the whole module takes about 1.5 min on a
quiet 2-core machine (about 5 min when the machine is busy with other test runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints-3.11.txt"
DAG_FILE = ROOT / "dags" / "populate_report_databases.py"
DAG_ID = "populate_report_databases"
CLOSED_PORT_ADMIN = "mysql://reports:reports@127.0.0.1:1/nowhere?connect_timeout=2"
COMPANIES = ("acme", "globex", "initech")
TABLES = ("users", "orders")
TIMINGS = ROOT / "test-output" / "package-install.txt"


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    work: Path  # scratch working directory, AIRFLOW_HOME and dags folder live below it
    env: dict[str, str] = field(repr=False)
    freeze_before: dict[str, str] = field(repr=False)  # the plain Airflow venv, before our wheel
    freeze_after: dict[str, str] = field(repr=False)

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            list(args), cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out


def _requirements() -> list[str]:
    """apache-airflow==X and the providers, as requirements.txt pins them: the 'plain Airflow' we install."""
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines())
    return [line for line in lines if line.startswith("apache-airflow")]


def _freeze(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(out.stdout)}


def _pip(venv: Path, *args: str) -> None:
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # --no-compile: byte-compiling ~190 packages up front is time the test does not need; Python
    # compiles what it imports.
    out = subprocess.run([*pip, "--no-compile", *args], capture_output=True, text=True, check=False, timeout=1200)
    assert out.returncode == 0, f"pip install {args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that points into the checkout or at the dev venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "REPORTS_", "PYTHON", "VIRTUAL_ENV", "_AIRFLOW"))
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("package")
    timings: list[str] = []

    def timed(label: str, started: float) -> None:
        timings.append(f"{label}: {time.monotonic() - started:.1f} s")

    t0 = time.monotonic()
    started = time.monotonic()
    dist = base / "dist"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = dist.glob("report_pipeline-*.whl")
    timed("build the wheel", started)

    started = time.monotonic()
    venv = base / "venv"
    # The base interpreter, not the dev venv's: a venv made from inside a venv would still be clean,
    # but this is what a user's `python3.11 -m venv` gives.
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    _pip(venv, *_requirements(), "-c", str(CONSTRAINTS))
    timed("fresh venv + apache-airflow and the providers with -c constraints-3.11.txt", started)
    before = _freeze(venv)

    started = time.monotonic()
    _pip(venv, f"{wheel}[airflow]", "-c", str(CONSTRAINTS))
    timed("pip install report_pipeline.whl[airflow] -c constraints-3.11.txt", started)
    after = _freeze(venv)

    work = base / "work"
    dags = work / "dags"
    dags.mkdir(parents=True)
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    env = _clean_env(
        PATH=f"{venv / 'bin'}{os.pathsep}{_clean_env()['PATH']}",
        AIRFLOW_HOME=str(work / "airflow-home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_REPORTS_ADMIN_DB=CLOSED_PORT_ADMIN,
        AIRFLOW_CONN_REPORTS_SOURCE_DB="mysql://reports:reports@127.0.0.1:1/source",
        AIRFLOW_CONN_REPORTS_TARGET_DB="mysql://reports:reports@127.0.0.1:1/",
        AIRFLOW_CONN_REPORTS_S3='{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}',
        REPORTS_SNAPSHOT_PATH=str(work / "snapshot" / "admin_snapshot.json"),
    )
    yield Installed(venv, wheel, work, env, before, after)
    timed("whole fixture", t0)
    TIMINGS.parent.mkdir(exist_ok=True)
    TIMINGS.write_text("\n".join(timings) + "\n")


def _write_snapshot(installed: Installed) -> None:
    """A fresh snapshot of 3 companies x 2 tables, written by the installed package's own code."""
    script = f"""
from report_pipeline.config import AdminRows, build_plan
from report_pipeline.settings import Settings
from report_pipeline.snapshot import write_snapshot

settings = Settings.from_env()
rows = AdminRows(
    companies=[{{"id": n, "company_id": n, "status": 1, "alias": a}} for n, a in enumerate({COMPANIES!r}, 1)],
    tables=[
        {{"id": n, "name": t, "status": 1, "query_select": f"SELECT id FROM {{t}} WHERE company = %s",
          "params_select": "company[1]", "query_insert": f"REPLACE INTO {{t}}(id) VALUES", "params_insert": ""}}
        for n, t in enumerate({TABLES!r}, 1)
    ],
)
write_snapshot(settings.snapshot_path, settings, build_plan(rows, settings))
"""
    installed.run(installed.bin("python"), "-c", script)


def test_the_wheel_carries_the_admin_schema_and_the_console_script(installed: Installed) -> None:
    import zipfile

    names = zipfile.ZipFile(installed.wheel).namelist()
    assert "report_pipeline/sql/admin_schema.sql" in names
    assert "report_pipeline/airflow/factory.py" in names
    assert not [n for n in names if n.startswith(("tests/", "dags/", "include/"))], "only the package goes in"
    entry_points = zipfile.ZipFile(installed.wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    assert b"report-pipeline = report_pipeline.airflow.console:main" in entry_points


def test_installing_the_package_keeps_airflow_and_the_constrained_versions(installed: Installed) -> None:
    pins = dict(
        line.split("==", 1)
        for line in CONSTRAINTS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    assert installed.freeze_after["report-pipeline"] == "0.1.0"
    changed = {
        name: (installed.freeze_before[name], version)
        for name, version in installed.freeze_after.items()
        if name in installed.freeze_before and installed.freeze_before[name] != version
    }
    assert changed == {}, f"installing report-pipeline changed the Airflow environment: {changed}"
    off = {
        name: (version, pins[name])
        for name, version in installed.freeze_after.items()
        if name in pins and pins[name] != version
    }
    assert off == {}, f"versions differ from constraints-3.11.txt: {off}"
    airflow_pin = next(r for r in _requirements() if r.startswith("apache-airflow=="))
    assert installed.freeze_after["apache-airflow"] == airflow_pin.split("==", 1)[1]


def test_the_package_and_its_data_come_from_site_packages(installed: Installed) -> None:
    script = (
        "import importlib.resources, json, report_pipeline\n"
        "schema = importlib.resources.files('report_pipeline').joinpath('sql/admin_schema.sql').read_text()\n"
        "print(json.dumps({'file': report_pipeline.__file__, 'has_companies': 'companies' in schema}))\n"
    )
    found = json.loads(installed.run(installed.bin("python"), "-c", script).stdout)
    assert Path(found["file"]).is_relative_to(installed.venv), found["file"]
    assert found["has_companies"]


def test_report_pipeline_is_on_path_and_runs(installed: Installed) -> None:
    assert shutil.which("report-pipeline", path=installed.env["PATH"]) == installed.bin("report-pipeline")
    out = installed.run("report-pipeline", "--help")
    for command in ("init-admin", "plan", "validate", "onboard", "run", "check-settings"):
        assert command in out.stdout
    assert "settings ok" in installed.run("report-pipeline", "check-settings").stdout


def test_the_dag_parses_from_a_folder_holding_only_the_dag_file(installed: Installed) -> None:
    _write_snapshot(installed)
    assert sorted(p.name for p in Path(installed.env["AIRFLOW__CORE__DAGS_FOLDER"]).iterdir()) == [DAG_FILE.name]
    script = (
        "import json, os\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=os.environ['AIRFLOW__CORE__DAGS_FOLDER'])\n"
        f"dag = bag.dags.get({DAG_ID!r})\n"
        "print('RESULT ' + json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "    'dags': sorted(bag.dags), 'tasks': sorted(dag.task_ids) if dag else []}))\n"
    )
    out = installed.run(installed.bin("python"), "-c", script)
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    found = json.loads(line[len("RESULT ") :])
    assert found["errors"] == {}
    assert found["dags"] == [DAG_ID]
    assert found["tasks"] == sorted(
        f"company_{alias}.{table}__{step}"
        for alias in COMPANIES
        for table in TABLES
        for step in ("mysql_to_s3", "s3_to_mysql")
    )
    # Parsed from the snapshot alone: the admin DB (a closed port) was never needed.
    assert "unreachable" not in out.stdout + out.stderr


def _json_output(out: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """The JSON list a ``-o json`` command printed (Airflow logs warnings to stdout before it)."""
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("[")][-1:]
    return json.loads(line)


def test_airflow_cli_lists_the_dag_without_import_errors(installed: Installed) -> None:
    _write_snapshot(installed)
    # The CLI insists on a migrated metadata DB even for --local: a SQLite one in AIRFLOW_HOME.
    installed.run(installed.bin("airflow"), "db", "migrate")
    local = ("--local", "-o", "json")
    assert _json_output(installed.run(installed.bin("airflow"), "dags", "list-import-errors", *local)) == []
    dags = _json_output(installed.run(installed.bin("airflow"), "dags", "list", *local))
    assert [d["dag_id"] for d in dags] == [DAG_ID]
    # The same command does see a broken DAG: no snapshot and the admin DB unreachable.
    missing = installed.work / "no-snapshot.json"
    broken = dict(installed.env, REPORTS_SNAPSHOT_PATH=str(missing))
    out = subprocess.run(
        [installed.bin("airflow"), "dags", "list-import-errors", *local],
        cwd=installed.work,
        env=broken,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    (error,) = _json_output(out)
    assert str(error["filepath"]).endswith(DAG_FILE.name)
    assert f"no usable snapshot at {missing}" in str(error["error"])


def test_the_providers_the_code_imports_are_dependencies_of_the_package(installed: Installed) -> None:
    """Issue 21: `pip install report-pipeline` into an Airflow without the providers installs them."""
    import zipfile

    with zipfile.ZipFile(installed.wheel) as wheel:
        (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    unconditional = {r.split(">")[0].split("<")[0].split("=")[0].strip() for r in requires if ";" not in r}
    assert {
        "apache-airflow-providers-mysql",
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-common-sql",
    } <= unconditional, requires
    assert "apache-airflow" not in unconditional, "Airflow itself stays the deployment's"


def test_a_missing_provider_fails_the_parse_saying_what_to_install(installed: Installed) -> None:
    """With the MySQL provider hidden from the import system, the DAG file's import error names it."""
    _write_snapshot(installed)
    # Hidden only once Airflow itself is loaded (its configuration reads every provider's metadata).
    script = f"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow.providers.mysql" or name.startswith("airflow.providers.mysql."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
for name in [n for n in sys.modules if n == "airflow.providers.mysql" or n.startswith("airflow.providers.mysql.")]:
    del sys.modules[name]
sys.meta_path.insert(0, Hide())
bag = DagBag(dag_folder={str(installed.work / "dags")!r})
print("RESULT", json.dumps({{k: str(v) for k, v in bag.import_errors.items()}}))
"""
    out = installed.run(installed.bin("python"), "-c", script)
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    ((_, error),) = json.loads(line.removeprefix("RESULT ")).items()
    assert "report-pipeline needs apache-airflow-providers-mysql" in error
    assert "pip install 'apache-airflow-providers-mysql>=6.7.1,<7'" in error

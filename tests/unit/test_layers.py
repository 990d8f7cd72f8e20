"""The layering rule: the pure package imports without Airflow; only report_pipeline.airflow needs it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import report_pipeline

PURE_MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(report_pipeline.__path__, "report_pipeline.")
    if not m.name.startswith("report_pipeline.airflow")
)


def test_the_pure_package_imports_with_airflow_unimportable():
    assert "report_pipeline.extract" in PURE_MODULES and "report_pipeline.cli" in PURE_MODULES
    # A finder that refuses Airflow: any import of it, direct or indirect, fails the child.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'airflow' or name.startswith('airflow.'):\n"
        "            raise ImportError('airflow is blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    __import__(name)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'airflow']\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_the_dag_file_is_a_few_lines_over_the_factory():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "dags" / "populate_report_databases.py").read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", '"""'))]
    assert len(code) <= 5
    assert "report_pipeline.airflow.factory" in text

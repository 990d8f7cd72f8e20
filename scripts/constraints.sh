#!/usr/bin/env bash
# Regenerates constraints-3.11.txt: the exact versions of a clean `pip install` of Airflow, the
# providers this project uses and the package's own dependencies, in the format of Airflow's
# published constraints files (one `name==version` a line, sorted, with a header saying how it was
# made). Airflow publishes such a file per release, but its host is not reachable from our machines;
# this is the same thing made the same way (a fresh venv, then `pip freeze`).
#
#   scripts/constraints.sh [OUTPUT]     (make constraints)
#
# Run it after changing a pin in requirements.txt (Airflow or a provider) and commit the result;
# `make venv`, `make dist`, the Dockerfile and tests/package install with it.
#
# The versions of apache-airflow and of the providers we call come from requirements.txt; the
# providers listed in EXTRA_PROVIDERS (not imported by our code, but part of the deployments we
# support: Celery workers, lineage, mail and Slack notifications) take the newest release that
# resolves with them. PYTHON selects the interpreter (its minor version names the file).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
OUTPUT="${1:-$REPO_ROOT/constraints-3.11.txt}"
EXTRA_PROVIDERS=(
    apache-airflow-providers-celery
    apache-airflow-providers-openlineage
    apache-airflow-providers-smtp
    apache-airflow-providers-slack
)

py_minor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
case "$OUTPUT" in
    *"constraints-$py_minor.txt") ;;
    *) echo "constraints.sh: $PYTHON is Python $py_minor but the output is $OUTPUT" >&2; exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
# requirements.txt: apache-airflow==X, the providers we import, mysqlclient, boto3, sqlglot.
"$work/venv/bin/pip" install -q -r "$REPO_ROOT/requirements.txt" "${EXTRA_PROVIDERS[@]}"
"$work/venv/bin/pip" check
airflow_version="$("$work/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')"
{
    echo "#"
    echo "# Constraints for report-pipeline on Apache Airflow $airflow_version, Python $py_minor, in the format of"
    echo "# Airflow's published constraints-$py_minor.txt: a clean install of requirements.txt plus"
    echo "# ${EXTRA_PROVIDERS[*]},"
    echo "# frozen with pip freeze on $(date -u +%Y-%m-%d). Regenerate with: make constraints"
    echo "#"
    echo "# Use: pip install \"apache-airflow==$airflow_version\" <providers> report-pipeline -c constraints-$py_minor.txt"
    echo "#"
    # pip's own tooling is not part of the environment the constraints describe.
    "$work/venv/bin/pip" freeze --all --exclude-editable \
        | grep -viE '^(pip|setuptools|wheel)==' \
        | LC_ALL=C sort -f
} >"$OUTPUT.tmp"
mv "$OUTPUT.tmp" "$OUTPUT"
echo "constraints.sh: wrote $OUTPUT ($(grep -c '==' "$OUTPUT") pins, Airflow $airflow_version) in $((SECONDS - t0)) s" >&2

#!/usr/bin/env bash
# Entry point of the report-pipeline image (Dockerfile): refuse to start on an unknown or malformed
# REPORTS_* variable, naming it, then hand over to the official image's /entrypoint unchanged.
# A container with a typo in its settings would otherwise run with a default value, silently.
set -euo pipefail
if ! report-pipeline check-settings >&2; then
    echo "report-pipeline: not starting '$*': fix the REPORTS_* variable(s) named above (README \"Settings\")" >&2
    exit 64
fi
exec /entrypoint "$@"

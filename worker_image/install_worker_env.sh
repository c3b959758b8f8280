#!/bin/sh
# Builds the worker's Python environment: the worker requirements (no Airflow) at the exact
# versions of constraints.txt, and the scoring library. The Dockerfile runs this, and so does
# tests/worker/test_worker_image.py, so the image's install steps are exercised on every test run
# even where no Docker engine exists.
# Usage: install_worker_env.sh VENV_DIR SOURCE_DIR
set -eu
venv="$1"
source_dir="$2"
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --disable-pip-version-check -q -r "$source_dir/requirements.txt" \
  -c "$source_dir/constraints.txt"
"$venv/bin/pip" install --no-cache-dir --disable-pip-version-check -q --no-deps "$source_dir"

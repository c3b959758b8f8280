#!/bin/sh
# Builds the worker's Python environment: the worker requirements (no Airflow) at the exact
# versions of constraints.txt, and the scoring library. The Dockerfile runs this, and so does
# tests/worker/test_worker_image.py, so the image's install steps are exercised on every test run
# even where no Docker engine exists.
# Usage: install_worker_env.sh VENV_DIR SOURCE_DIR
# PIP_OPTIONS (environment) is passed to pip, e.g. "--no-index --find-links DIR" for a wheelhouse.
set -eu
venv="$1"
source_dir="$2"
python3 -m venv "$venv"
# shellcheck disable=SC2086  # PIP_OPTIONS is a list of options
"$venv/bin/pip" install --no-cache-dir --disable-pip-version-check -q ${PIP_OPTIONS:-} \
  -r "$source_dir/requirements.txt" -c "$source_dir/constraints.txt"
# shellcheck disable=SC2086
"$venv/bin/pip" install --no-cache-dir --disable-pip-version-check -q ${PIP_OPTIONS:-} --no-deps "$source_dir"

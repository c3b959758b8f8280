#!/usr/bin/env bash
# The README's first command: install, seed local storage with the data and the committed
# models, then run the weekly DAG end to end for the newest week of data on the local backend.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
export FORECAST_STORAGE_ROOT="${FORECAST_STORAGE_ROOT:-file://$PROJECT_DIR/.local/storage}"
model_version="${FORECAST_MODEL_VERSION:-gbm-1250x6-v1}"

echo "== seeding $FORECAST_STORAGE_ROOT with 90 products and model set $model_version"
retail-scoring build-data --storage "$FORECAST_STORAGE_ROOT" --products "${FORECAST_PRODUCTS:-90}" | tail -n 1
retail-scoring upload-models --storage "$FORECAST_STORAGE_ROOT" --source "include/models/$model_version"

airflow db migrate >/dev/null
logical_date="$(python -m scoring_airflow.cli latest-data-week)"
echo "== running weekly_sales_forecast for $logical_date (log: .local/last_run.log)"
airflow dags test weekly_sales_forecast "$logical_date" > .local/last_run.log 2>&1 || {
  grep -E "partition|ERROR|error" .local/last_run.log | tail -n 40
  echo "the run failed; full log in .local/last_run.log"
  exit 1
}
grep -E "partitions finished|published run" .local/last_run.log | sed 's/\[[a-z_.A-Z]*\] loc=.*//' || true
python -m scoring_airflow.cli summary

#!/usr/bin/env bash
# The README's first command: install, seed local storage with the data and the committed
# models, then run the weekly DAG end to end for the newest week of data on the local backend,
# through Airflow's own scheduler (`airflow standalone`), so the run has real start and end times
# and task logs in the UI like any other run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
export FORECAST_STORAGE_ROOT="${FORECAST_STORAGE_ROOT:-file://$PROJECT_DIR/.local/storage}"
model_version="${FORECAST_MODEL_VERSION:-gbm-1250x6-v1}"

echo "== seeding $FORECAST_STORAGE_ROOT with 90 products and model set $model_version"
retail-scoring build-data --storage "$FORECAST_STORAGE_ROOT" --products "${FORECAST_PRODUCTS:-90}" | tail -n 1
# --replace: the demo storage mirrors the committed package (runs pin the manifest they planned with)
retail-scoring upload-package --storage "$FORECAST_STORAGE_ROOT" --source "include/models/$model_version" --replace

airflow db migrate >/dev/null
origin="$(python -m scoring_airflow.cli latest-origin)"
# The run forecasts from the newest week of data: given as origin_week, so running this again makes a
# new run (Airflow 3.3 allows one run per logical date) rather than colliding with the last one.
run_id="weekly__origin-${origin}__$(date -u +%Y%m%dT%H%M%S)"
# Only the run triggered here: the scheduler makes no scheduled runs of its own meanwhile.
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False
echo "== starting Airflow (log: $AIRFLOW_HOME/standalone.log)"
source scripts/airflow_standalone.sh
airflow dags unpause weekly_sales_forecast >/dev/null 2>&1
if ! triggered="$(airflow dags trigger weekly_sales_forecast -r "$run_id" -c "{\"origin_week\": $origin}" 2>&1)"; then
  echo "$triggered" | tail -n 5
  exit 1
fi
echo "== running $run_id (task logs: $AIRFLOW_HOME/logs/dag_id=weekly_sales_forecast/run_id=$run_id/)"
status=0
wait_for_run "$run_id" || status=$?
airflow dags pause weekly_sales_forecast >/dev/null 2>&1
if [ $status -ne 0 ]; then
  grep -rhoE "(partition|error|ERROR)[^\"]*" "$AIRFLOW_HOME/logs/dag_id=weekly_sales_forecast/run_id=$run_id/" | tail -n 20
  exit $status
fi
python -m scoring_airflow.cli summary
echo "== the run in the UI: AIRFLOW__API__PORT=$AIRFLOW_PORT airflow standalone (AIRFLOW_HOME=$AIRFLOW_HOME), then http://localhost:$AIRFLOW_PORT"

#!/usr/bin/env bash
# Screenshots of the Airflow UI as a planner sees it (trigger form, grid with a weekly run and a
# reforecast, the DAG's docs), taken with headless Chromium against `airflow standalone`. Not run
# in CI: it installs Chromium (Debian) and playwright-core (npm), runs real scoring, ~5 minutes.
# Output: .local/screenshots/*.png
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d .local/ui-tools/node_modules/playwright-core ]; then
  mkdir -p .local/ui-tools
  npm install --prefix .local/ui-tools --no-audit --no-fund --silent playwright-core@1.64.1
fi
source scripts/env.sh
export AIRFLOW_HOME="$PROJECT_DIR/.local/airflow-ui"
export FORECAST_STORAGE_ROOT="file://$PROJECT_DIR/.local/ui-storage"
export FORECAST_LOCAL_POOL_DIR="$PROJECT_DIR/.local/ui-pools"
export FORECAST_POOL_SIZE=2 FORECAST_POLL_INTERVAL_S=1
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True  # no login page in the way of the screenshots
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False  # only the runs triggered here
rm -rf "$AIRFLOW_HOME" .local/ui-storage .local/ui-pools
retail-scoring build-data --storage "$FORECAST_STORAGE_ROOT" --products 4 | tail -n 1
retail-scoring upload-package --storage "$FORECAST_STORAGE_ROOT" --source include/models/gbm-1250x6-v1

source scripts/airflow_standalone.sh

airflow dags unpause weekly_sales_forecast >/dev/null
airflow dags trigger weekly_sales_forecast -l 2026-11-23T07:00:00+00:00 -r weekly__origin-107__all-products >/dev/null
airflow dags trigger weekly_sales_forecast -l 2026-11-24T07:00:00+00:00 -r reforecast__origin-107__products-1-2 \
  -c '{"products": "1, 2", "origin_week": 107}' >/dev/null
for run in weekly__origin-107__all-products reforecast__origin-107__products-1-2; do
  wait_for_run "$run" 900
done
airflow dags list-runs weekly_sales_forecast -o table 2>/dev/null | head -n 8
rm -rf .local/screenshots && mkdir -p .local/screenshots
node tests/ui/screenshots.mjs http://localhost:$AIRFLOW_PORT .local/screenshots
# the reforecast the form triggered: its conf as the form sent it, and how it ended
form_run="$(airflow dags list-runs weekly_sales_forecast -o plain 2>/dev/null | awk '$2 ~ /^manual__/ {print $2; exit}')"
wait_for_run "$form_run" 900 || true  # its conf and state are printed below either way
airflow dags list-runs weekly_sales_forecast -o json 2>/dev/null | grep '^\[' | python3 -c '
import json, sys
for run in json.load(sys.stdin):
    print(run["run_id"], run["state"], run.get("conf"))'
node tests/ui/screenshots.mjs http://localhost:$AIRFLOW_PORT .local/screenshots runs-only
ls .local/screenshots

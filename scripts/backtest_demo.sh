#!/usr/bin/env bash
# The demonstration of docs/backtests.md: a gbm package (1,250 trees of depth 6, as the committed
# one) and the ranger package, both trained through week 60, backtested at origins 61..107 and
# calibrated point-in-time; then a second backtest through origin 94 gives the calibrations a
# weekly run at origin 107 may use, and calibrated weekly runs of both packages at 107 show what
# the backtest predicted. Trains what .local/packages lacks (the gbm package: ~20 min on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
export FORECAST_STORAGE_ROOT="${FORECAST_STORAGE_ROOT:-file://$PROJECT_DIR/.local/storage}"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
packages=.local/packages
gbm=gbm-1250x6-w60
ranger=ranger-qrf-w60
mkdir -p "$packages"

echo "== reference data in $FORECAST_STORAGE_ROOT"
retail-scoring build-data --storage "$FORECAST_STORAGE_ROOT" --products "${FORECAST_PRODUCTS:-90}" | tail -n 1

if ! grep -q compiled_engine "$packages/$gbm/manifest.json" 2>/dev/null; then
  echo "== training $gbm on product 1's history through week 60, then compiling it"
  time retail-scoring train --storage "$FORECAST_STORAGE_ROOT" --output "$packages/$gbm" --model-version "$gbm" \
    --n-trees 1250 --interaction-depth 6 --jobs 2 --through-week 60
  time retail-scoring package --source "$packages/$gbm" --compile
fi
if [ ! -f "$packages/$ranger/forest.rds" ]; then
  echo "== training $ranger (include/models/ranger-qrf-v1's code) through week 60"
  rm -rf "$packages/$ranger"
  cp -r include/models/ranger-qrf-v1 "$packages/$ranger"
  rm "$packages/$ranger/forest.rds"
  python - "$packages/$ranger/manifest.json" "$ranger" <<'EOF'
import json, sys
path, version = sys.argv[1:]
manifest = json.load(open(path))
manifest["model_version"] = version
manifest["description"] = manifest["description"].replace("ranger-qrf-v1", version) + " --through-week 60"
json.dump(manifest, open(path, "w"), indent=2)
EOF
  time retail-scoring train-package --storage "$FORECAST_STORAGE_ROOT" --product 1 --source "$packages/$ranger" \
    --through-week 60
fi
for package in "$gbm" "$ranger"; do
  retail-scoring upload-package --storage "$FORECAST_STORAGE_ROOT" --source "$packages/$package" --replace
done

airflow db migrate >/dev/null
backtest() {  # a backtest DAG run in this process (`airflow dags test`), its id printed
  local started=$SECONDS
  airflow dags test backtest_model_package -c "$1" > "$AIRFLOW_HOME/backtest_demo.log" 2>&1 \
    || { tail -n 30 "$AIRFLOW_HOME/backtest_demo.log"; exit 1; }
  echo "   $(python -m scoring_airflow.cli latest-backtest) ($((SECONDS - started)) s)"
}
echo "== backtest 1: origins 61..107, report over 94..107"
backtest "{\"model_versions\": \"$gbm, $ranger\", \"origins\": \"61-107\", \"report_origins\": \"94-107\", \"products\": \"1\"}"
full="$(python -m scoring_airflow.cli latest-backtest)"
echo "== backtest 2: origins 61..94, whose calibrations a run at origin 107 may use"
backtest "{\"model_versions\": \"$gbm, $ranger\", \"origins\": \"61-94\", \"products\": \"1\"}"
through_94="$(python -m scoring_airflow.cli latest-backtest)"

for package in "$gbm" "$ranger"; do
  echo "== weekly run of $package at origin 107, 90 products, calibrated by backtest 2"
  started=$SECONDS
  airflow dags test weekly_sales_forecast -c "{\"model_version\": \"$package\", \"origin_week\": 107, \"publish\": false,
    \"calibration\": \"$through_94:$package\"}" > "$AIRFLOW_HOME/backtest_demo.log" 2>&1 \
    || { tail -n 30 "$AIRFLOW_HOME/backtest_demo.log"; exit 1; }
  echo "   ($((SECONDS - started)) s)"
done
python scripts/backtest_demo_summary.py "$full" "$gbm" "$ranger"

#!/usr/bin/env bash
# Azure Batch's write-grant limit under Airflow's own scheduler and triggerer: a backtest of 20
# origins (20 mapped score tasks, each a job holding write grants) and 4 concurrent weekly runs,
# all on the azure_batch backend against tests/batch_endpoint.py and Azurite, with the committed
# gbm package. A container holds at most 5 stored access policies; the `forecast_write_grants`
# Airflow pool (5 slots, deferred tasks counted) keeps the score tasks within it, so every run
# passes (measured: all 5 in 528 s on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
source scripts/env.sh
workdir="$PROJECT_DIR/.local/batch-concurrency-demo"
rm -rf "$workdir" && mkdir -p "$workdir"
export AIRFLOW_HOME="$workdir/airflow"
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False  # only the runs triggered here
export FORECAST_POLL_INTERVAL_S=2 FORECAST_POOL_SIZE=2

python -m scripts.batch_stand_ins "$workdir" > "$workdir/stand_ins.env" 2> "$workdir/stand_ins.log" &
stand_ins=$!
until grep -q "^# ready" "$workdir/stand_ins.env"; do
  kill -0 $stand_ins 2>/dev/null || { tail -n 20 "$workdir/stand_ins.log"; exit 1; }
  sleep 1
done
source "$workdir/stand_ins.env"
echo "== Azurite and the Batch stand-in up (log: $workdir/stand_ins.log); starting Airflow"
source scripts/airflow_standalone.sh
trap 'stop_airflow; kill $stand_ins 2>/dev/null; wait $stand_ins 2>/dev/null || true' EXIT

for dag in backtest_model_package weekly_sales_forecast; do airflow dags unpause "$dag" >/dev/null; done
started=$SECONDS
airflow dags trigger backtest_model_package -r backtest-20-origins \
  -c "{\"model_versions\": \"$FORECAST_MODEL_VERSION\", \"origins\": \"61-80\", \"products\": \"1\"}" >/dev/null
weekly_runs=()
for origin in 104 105 106 107; do
  weekly_runs+=("weekly-origin-$origin")
  airflow dags trigger weekly_sales_forecast -r "weekly-origin-$origin" -c "{\"origin_week\": $origin}" >/dev/null
done
echo "== triggered backtest-20-origins and ${weekly_runs[*]}"
status=0
wait_for_run backtest-20-origins 2400 backtest_model_package || status=1
for run in "${weekly_runs[@]}"; do wait_for_run "$run" 1200 || status=1; done
echo "== $([ $status -eq 0 ] && echo "all 5 runs passed" || echo "FAILED") in $((SECONDS - started)) s"
exit $status

# Sourced by the scripts that run the DAG as Airflow runs it in production: `airflow standalone`
# (scheduler, triggerer, DAG processor, API server on $AIRFLOW_PORT) in the background, stopped
# when the sourcing script exits. Its log: $AIRFLOW_HOME/standalone.log. Without AIRFLOW_PORT it
# takes 8080, or the next free port when another Airflow has 8080 (its log servers likewise).
if [ -z "${AIRFLOW_PORT:-}" ]; then
  AIRFLOW_PORT="$(python scripts/free_port.py 8080)"
  [ "$AIRFLOW_PORT" = 8080 ] || echo "== port 8080 is taken: this Airflow uses $AIRFLOW_PORT"
fi
export AIRFLOW_PORT
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-$(python scripts/free_port.py 8793)}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-$(python scripts/free_port.py 8794)}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:$AIRFLOW_PORT/execution/"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-1}"  # SQLite answers 500s to parallel task runs

if curl -s -o /dev/null "http://localhost:$AIRFLOW_PORT"; then
  echo "port $AIRFLOW_PORT (AIRFLOW_PORT) is taken: stop what runs there, or unset AIRFLOW_PORT to take a free one"
  exit 1
fi
mkdir -p "$AIRFLOW_HOME"
airflow db migrate >/dev/null
python -m scoring_airflow.cli create-pools  # the pool the scoring tasks run in
# its own process group (setsid), so stopping it stops the scheduler, API server and the rest too
setsid airflow standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
airflow_standalone_pid=$!
stop_airflow() {
  kill -- -"$airflow_standalone_pid" 2>/dev/null || return 0
  for _ in $(seq 60); do
    pgrep -g "$airflow_standalone_pid" >/dev/null || return 0
    sleep 1
  done
  kill -9 -- -"$airflow_standalone_pid" 2>/dev/null || true
}
trap stop_airflow EXIT
deadline=$((SECONDS + 300))
until curl -sf "http://localhost:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null \
  && airflow dags list 2>/dev/null | grep -q weekly_sales_forecast; do
  if [ $SECONDS -ge $deadline ] || ! kill -0 $airflow_standalone_pid 2>/dev/null; then
    echo "Airflow did not start; see $AIRFLOW_HOME/standalone.log"; exit 1
  fi
  sleep 2
done

# wait_for_run RUN_ID [TIMEOUT_S] [DAG_ID]: until the DAG run ends; fails unless it succeeded.
wait_for_run() {
  local run_id="$1" deadline=$((SECONDS + ${2:-1800})) dag_id="${3:-weekly_sales_forecast}" state
  while :; do
    state="$(airflow dags list-runs "$dag_id" -o plain 2>/dev/null | awk -v id="$run_id" '$2 == id {print $3}')"
    case "$state" in
      success) return 0 ;;
      failed) echo "run $run_id failed"; return 1 ;;
    esac
    if [ $SECONDS -ge $deadline ]; then echo "run $run_id did not finish in time"; return 1; fi
    sleep 5
  done
}

#!/usr/bin/env bash
# Installs the project into an Airflow as a team that already runs one would, and runs a scenario
# DAG there (not part of CI: a fresh Airflow install takes minutes):
#   1. both packages built as wheels (worker_image/ -> retail-scoring, plugins/ -> scoring-airflow)
#   2. a fresh virtual environment with only Apache Airflow (the project's constraints), then the
#      two wheels with the dependencies they declare; nothing of this checkout on its path
#   3. a DAG folder outside this repository holding the team's whole DAG file (a few lines naming
#      its scenario document) and that document
#   4. `airflow plugins`: the forecast plugin found through the package's entry point, with an
#      empty plugins folder
#   5. the churn scenario end to end in that environment (scripts/churn_demo.py, 20,000 customers
#      x 2 snapshots, champion and challenger), its DAG read from the outside folder
# Everything lives in a temporary folder, removed at the end.
#   bash scripts/install_test.sh [customers]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PROJECT_DIR="$PWD"
CUSTOMERS="${1:-20000}"
SCRATCH="$(mktemp -d -t install-test-XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
unset PYTHONPATH AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER

# this machine's pip configuration may name package folders it does not have: pip warns per package
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

step_started=$SECONDS
step() {
  echo "== [$(date -u +%T), previous step $((SECONDS - step_started)) s] $*"
  # this machine's pip configuration may name package folders it does not have: pip warns per package
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

step_started=$SECONDS
}

step "wheels of worker_image/ and plugins/"
python3 -m venv "$SCRATCH/build"
mkdir "$SCRATCH/src" && cp -r worker_image plugins "$SCRATCH/src/"  # setuptools builds in the source folder
quiet_pip "$SCRATCH/build/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$SCRATCH/wheels" \
  "$SCRATCH/src/worker_image" "$SCRATCH/src/plugins"
ls "$SCRATCH/wheels"

step "a fresh virtual environment with Apache Airflow only"
python3 -m venv "$SCRATCH/venv"
PIP=(quiet_pip "$SCRATCH/venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt)
airflow_pin="$(grep -E '^apache-airflow==' requirements.txt)"
"${PIP[@]}" "$airflow_pin"

step "the two wheels and what they declare"
"${PIP[@]}" "$SCRATCH"/wheels/*.whl
PYTHON="$SCRATCH/venv/bin/python"
installed="$(cd "$SCRATCH" && "$PYTHON" -c 'import scoring_airflow, retail_scoring; print(scoring_airflow.__file__, retail_scoring.__file__)')"
echo "$installed"
case "$installed" in
  *"$PROJECT_DIR"*) echo "the packages were imported from this checkout, not from the wheels" >&2; exit 1 ;;
esac

step "a team's DAG folder outside this repository"
DAGS="$SCRATCH/team-dags"
mkdir -p "$DAGS"
cp include/scenarios/customer_churn.json "$DAGS/"
cat > "$DAGS/customer_churn.py" <<'EOF'
from pathlib import Path

from scoring_airflow.scenario_dag import scenario_dag

customer_churn = scenario_dag(
    Path(__file__).with_name("customer_churn.json"), model_version="glm-churn-v1", owner="customer-analytics"
)
EOF
cat "$DAGS/customer_churn.py"

step "airflow plugins, with an empty plugins folder"
export AIRFLOW_HOME="$SCRATCH/home/airflow" AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_FOLDER="$DAGS"
plugins="$(cd "$SCRATCH" && "$SCRATCH/venv/bin/airflow" plugins --output json)"
echo "$plugins" | "$PYTHON" -c '
import json, sys
(plugin,) = json.load(sys.stdin)
assert plugin["name"] == "forecast" and "scoring_airflow.plugin:ForecastPlugin" in plugin["source"], plugin
print("plugin", plugin["name"], "from", plugin["source"])'

step "the churn scenario end to end from the outside DAG folder ($CUSTOMERS customers)"
(cd "$SCRATCH" && "$PYTHON" "$PROJECT_DIR/scripts/churn_demo.py" --customers "$CUSTOMERS" --home "$SCRATCH/home" --dags "$DAGS")

step "done"

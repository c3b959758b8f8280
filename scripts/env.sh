# Sourced by the scripts: Airflow's home and database stay inside the project's ignored .local/.
PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PROJECT_DIR/.local/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PROJECT_DIR/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PATH="$PROJECT_DIR/.venv/bin:$PATH"

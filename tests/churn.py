"""The churn scenario's test material, shared by the worker's and Airflow's tests: the committed
scenario file and where a snapshot's customers live; the data and packages themselves come from
retail_scoring.scenarios.churn_data, as the demo builds them."""

from datetime import date
from pathlib import Path

from retail_scoring.scenarios.document import Scenario

SCENARIO_FILE = Path(__file__).resolve().parents[1] / "include" / "scenarios" / "customer_churn.json"
SNAPSHOT = date(2026, 11, 30)


def churn_url(root: str, snapshot: date = SNAPSHOT) -> str:
    """Where the scenario reads a snapshot's customers (its `{as_of}` folder)."""
    return f"{root}/data/churn/{snapshot.isoformat()}"


def predictors(scenario: Scenario) -> tuple[str, ...]:
    """mlc_churn's 19 predictors: what the packages read."""
    return tuple(c for c in scenario.dataset.columns if c not in ("customer_id", "snapshot", "churn"))

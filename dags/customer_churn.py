"""Monthly churn probabilities for every customer: the customer_churn scenario
(include/scenarios/customer_churn.json) scored with the glm champion package. docs/scenarios.md."""

from pathlib import Path

from scoring_airflow.scenario_dag import scenario_dag

customer_churn = scenario_dag(
    Path(__file__).parents[1] / "include" / "scenarios" / "customer_churn.json",
    model_version="glm-churn-v1",
    owner="customer-analytics",
)

"""A scenario document is read whole or refused naming the file and the field."""

import copy
import json

import pytest

from retail_scoring.scenarios.document import Scenario, ScenarioError

SOURCE = "include/scenarios/churn.json"
CHURN = {
    "scenario_version": 1,
    "name": "churn",
    "profile": "classification",
    "parameters": {"label": "churn", "positive_class": "yes", "probability": "p_churn"},
    "dataset": {
        "url": "{storage}/data/churn",
        "format": "parquet",
        "layout": "hive",
        "key": ["customer_id"],
        "columns": {
            "customer_id": {"type": "integer"},
            "state": {"type": "categorical", "levels": ["AK", "AL"]},
            "snapshot": {"type": "date"},
            "total_day_minutes": {"type": "number", "minimum": 0},
            "churn": {"type": "categorical", "levels": ["yes", "no"], "nullable": True},
        },
    },
    "sharding": {"by": ["state"], "max_rows": 100000},
    "output": {
        "columns": {"p_churn": {"type": "number", "minimum": 0, "maximum": 1}},
        "pass_through": ["state", "snapshot"],
        "shape": "per_input_row",
    },
    "publishing": {"mode": "current_per_key", "version_column": "snapshot"},
    "schedule": "@monthly",
}


def read(document: dict) -> Scenario:
    return Scenario.from_json(json.dumps(document).encode(), SOURCE)


def changed(path: str, value) -> dict:
    """CHURN with the field at dotted `path` set to `value` (deleted when value is ...)."""
    document = copy.deepcopy(CHURN)
    *parents, name = path.split(".")
    target = document
    for parent in parents:
        target = target[parent]
    if value is ...:
        del target[name]
    else:
        target[name] = value
    return document


def test_a_scenario_reads_back_typed():
    scenario = read(CHURN)
    assert scenario.dataset.key == ("customer_id",)
    assert scenario.dataset.columns["state"].levels == ("AK", "AL")
    assert scenario.dataset.columns["churn"].nullable and not scenario.dataset.columns["state"].nullable
    assert scenario.sharding.by == ("state",) and scenario.sharding.max_rows == 100000
    assert scenario.output.columns["p_churn"].maximum == 1 and scenario.publishing.version_column == "snapshot"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("scenario_version", 2, "scenario_version 2, but this release reads version 1"),
        ("dataset.format", "xlsx", "field dataset.format is 'xlsx', not one of parquet, csv"),
        ("dataset.columns.state.levels", ..., "dataset.columns.state: levels are declared for a categorical"),
        ("dataset.columns.snapshot.type", "datetime", "field dataset.columns.snapshot.type is 'datetime', not one of"),
        ("dataset.columns.customer_id.nullable", True, "dataset.key column 'customer_id' is nullable"),
        ("dataset.key", ["customer"], "dataset.key names 'customer', which dataset.columns does not declare"),
        ("dataset.url", ..., "missing field dataset.url"),
        ("sharding.by", ["region"], "sharding.by names 'region', not an input column"),
        ("sharding.max_rows", 0, "sharding.max_rows is 0"),
        ("sharding.max_rows", True, "field sharding.max_rows is True, not of type int"),
        ("output.pass_through", ["segment"], "output.pass_through names 'segment', not an input column"),
        ("output.columns.state", {"type": "string"}, "output column 'state' shadows the input column"),
        ("publishing.version_column", "week", "publishing.version_column 'week' is no column of the output"),
        ("publishing.version_column", "churn", "publishing.version_column 'churn' is no column of the output"),
        ("parameters.label", "plan", "profile classification: the label 'plan' is no categorical input column"),
        ("output.columns.p_churn.maximum", 100, "the probability 'p_churn' is no output number with minimum 0 and"),
        ("profile", "ranking", "unknown profile 'ranking'; known profiles: classification, regression"),
        ("output.colour", "blue", "include/scenarios/churn.json: output: unknown fields colour"),
    ],
)
def test_a_scenario_that_cannot_run_is_refused_naming_the_file_and_field(path, value, message):
    with pytest.raises(ScenarioError, match=f"^{SOURCE}") as refused:
        read(changed(path, value))
    assert message in str(refused.value)


def test_a_file_that_is_no_json_is_refused_naming_it():
    with pytest.raises(ScenarioError, match=f"{SOURCE}: not a JSON scenario document"):
        Scenario.from_json(b"name: churn", SOURCE)


def test_the_committed_churn_scenario_is_readable():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "include" / "scenarios" / "customer_churn.json"
    scenario = Scenario.from_json(path.read_bytes(), str(path))
    assert scenario.dataset.columns["state"].levels[:2] == ("AK", "AL") and len(scenario.dataset.columns) == 22, (
        "mlc_churn's 20 columns, the id and the snapshot"
    )

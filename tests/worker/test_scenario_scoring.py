"""A shard of the churn scenario (modeldata's real mlc_churn customers, hive Parquet by state)
reaches R as the scenario declares it and is scored by a base-R glm package exactly as R's own
predict() scores the same rows; bad rows, bad R output and R errors are refused naming the shard,
the column, the customer and the rule."""

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from retail_scoring import rsession
from retail_scoring.scenarios.churn_data import train_ranger, write_by_state
from retail_scoring.scenarios.document import Scenario, ScenarioError, Sharding
from retail_scoring.scenarios.profiles import profile_for
from retail_scoring.scenarios.profiles.base import add_metric_sums
from retail_scoring.scenarios.scoring import TableModel, score_shard
from retail_scoring.scenarios.shards import plan_shards
from retail_scoring.scenarios.table import ShardDataError, checked_table, read_shard
from tests.churn import SNAPSHOT, churn_url, predictors
from tests.worker.conftest import shard_rows


def test_a_shard_reaches_r_as_declared_and_scores_as_r_predict_does(scenario, glm_package, storage_root):
    batch = checked_table(shard_rows(scenario, storage_root), scenario.dataset.columns, scenario.dataset.key, "CA")
    model = TableModel.load(glm_package, "score.R", "model package glm-churn", predictors(scenario))
    result = score_shard(scenario, model, batch, "state=CA", SNAPSHOT.isoformat())

    assert result.output.column_names == ["customer_id", "snapshot", "state", "p_churn"]
    assert result.output["customer_id"].equals(batch["customer_id"])
    own_predict = rsession.r_eval(
        "function(path, ids) { data(mlc_churn, package = 'modeldata');"
        " predict(readRDS(path), newdata = mlc_churn[ids, ], type = 'response') }"
    )(str(glm_package / "glm.rds"), rsession.ro.IntVector(batch["customer_id"].to_numpy()))
    assert np.array_equal(result.output["p_churn"].to_numpy(), np.asarray(own_predict)), "bit for bit"
    assert (
        result.metric_sums["rows"] == len(batch)
        and result.metric_sums["positives"] == pc.sum(pc.equal(batch["churn"], "yes")).as_py()
    )


def test_factors_nulls_and_dates_reach_r_with_their_declared_classes(scenario, storage_root):
    batch = checked_table(shard_rows(scenario, storage_root), scenario.dataset.columns, scenario.dataset.key, "CA")
    batch = batch.set_column(batch.column_names.index("churn"), "churn", pa.array([None] * len(batch), pa.string()))
    columns = {name: (c.type, c.levels) for name, c in scenario.dataset.columns.items()}
    described = rsession.r_eval(
        "function(b) c(class(b$snapshot), paste(levels(b$state)[1:2], collapse = ','), class(b$area_code),"
        " as.character(all(is.na(b$churn))), as.character(b$snapshot[1]), class(b$customer_id))"
    )(rsession.declared_table_to_r(batch, columns))
    assert list(described) == ["Date", "AK,AL", "factor", "TRUE", SNAPSHOT.isoformat(), "integer"]


def test_a_level_unseen_in_the_declaration_is_refused_naming_the_customer(scenario, storage_root):
    rows = shard_rows(scenario, storage_root)
    codes = rows["area_code"].to_pylist()
    codes[3] = "area_code_999"
    rows = rows.set_column(rows.column_names.index("area_code"), "area_code", pa.array(codes))
    customer = rows["customer_id"][3].as_py()
    with pytest.raises(ShardDataError, match=(
        rf"^shard state=CA: column 'area_code' at customer_id={customer}, snapshot={SNAPSHOT}: 'area_code_999' "
        r"breaks the rule one of \['area_code_408'"
    )):  # fmt: skip
        checked_table(rows, scenario.dataset.columns, scenario.dataset.key, "shard state=CA")


def test_a_null_in_a_nullable_categorical_is_kept_as_null(scenario, storage_root):
    """A label not known yet (churn is nullable): the row passes, its label stays null."""
    rows = shard_rows(scenario, storage_root)
    labels = [None, *rows["churn"].to_pylist()[1:]]
    rows = rows.set_column(rows.column_names.index("churn"), "churn", pa.array(labels))
    checked = checked_table(rows, scenario.dataset.columns, scenario.dataset.key, "shard state=CA")
    assert checked["churn"].to_pylist() == labels


@pytest.mark.parametrize(
    ("column", "change", "message"),
    [
        (
            "total_day_minutes",
            lambda v: [None, *v[1:]],
            r"column 'total_day_minutes' at customer_id=\d+, .*: None "
            r"breaks the rule not null",
        ),
        ("customer_id", lambda v: [str(x) for x in v], r"column 'customer_id' is declared integer, but holds string"),
        ("customer_id", lambda v: [v[0], v[0], *v[2:]], r"key customer_id=\d+, snapshot=2026-11-30 appears more than"),
        ("total_eve_calls", lambda v: [-1, *v[1:]], r"column 'total_eve_calls' at .*: -1 breaks the rule >= 0"),
    ],
)
def test_rows_that_break_the_declarations_are_refused_naming_column_key_and_rule(
    scenario, storage_root, column, change, message
):
    rows = shard_rows(scenario, storage_root)
    rows = rows.set_column(rows.column_names.index(column), column, pa.array(change(rows[column].to_pylist())))
    with pytest.raises(ShardDataError, match=f"^shard state=CA: {message}"):
        checked_table(rows, scenario.dataset.columns, scenario.dataset.key, "shard state=CA")


def write_package(folder: Path, score: str, glm_package: Path, scenario: Scenario) -> TableModel:
    folder.mkdir()
    (folder / "glm.rds").write_bytes((glm_package / "glm.rds").read_bytes())
    (folder / "score.R").write_text(
        'load_models <- function(model_dir) readRDS(file.path(model_dir, "glm.rds"))\n'
        f"score <- function(models, batch, context) {{ {score} }}\n"
    )
    return TableModel.load(folder, "score.R", "model package bad", predictors(scenario))


@pytest.mark.parametrize(
    ("score", "message"),
    [
        (
            "p <- predict(models, newdata = batch, type = 'response'); data.frame(p_churn = p * 2)",
            r"output of .*score\(\): column 'p_churn' at customer_id=\d+, snapshot=2026-11-30: [\d.]+ breaks "
            r"the rule <= 1",
        ),
        ("data.frame(p_churn = rep(0.5, nrow(batch) - 1))", r"returned 1?\d+ rows for the \d+ rows of the batch"),
        ("data.frame(p_churn = 0.5, customer_id = rev(seq_len(nrow(batch))))", r"changed the key column 'customer_id'"),
        ("data.frame(p_churn = rep(0.5, nrow(batch)), snapshot = 0)", r"changed the key column 'snapshot'"),
        ("data.frame(p_churn = 0.5, state = batch$state)", r"the scenario's output is \['p_churn'\]"),
        ("list(p_churn = 0.5)", r"returned a list, not a data.frame"),
        (
            "stop('the model has no coefficient for ', nlevels(batch$state), ' states')",
            r"score\(\) failed: the model has no coefficient for 51 states",
        ),
        (
            "data.frame(p_churn = as.character(predict(models, batch, type = 'response')))",
            r"column 'p_churn' is declared number, but holds string",
        ),
    ],
)
def test_bad_output_and_r_errors_are_refused_naming_the_shard(scenario, glm_package, storage_root, tmp_path, score,
                                                              message):  # fmt: skip
    batch = checked_table(shard_rows(scenario, storage_root), scenario.dataset.columns, scenario.dataset.key, "CA")
    model = write_package(tmp_path / "bad", score, glm_package, scenario)
    with pytest.raises(ShardDataError, match=f"^shard state=CA: .*{message}"):
        score_shard(scenario, model, batch, "state=CA", SNAPSHOT.isoformat())


def held_out_batches(scenario, storage_root):
    """Each shard's held-out customers (ids past the 4,000 the models were trained on), checked."""
    for shard in plan_shards(scenario.dataset, scenario.sharding, storage_root):
        rows = read_shard(scenario.dataset, shard, storage_root)
        held_out = rows.filter(pc.greater(rows["customer_id"], 4000))
        if len(held_out):
            yield shard.label, checked_table(held_out, scenario.dataset.columns, scenario.dataset.key, shard.label)


def test_the_classification_metrics_judge_the_held_out_customers(scenario, glm_package, storage_root):
    model = TableModel.load(glm_package, "score.R", "model package glm-churn", predictors(scenario))
    profile_sums = {}
    profile = profile_for(scenario.profile, scenario.parameters, scenario.name)
    for label, batch in held_out_batches(scenario, storage_root):
        profile_sums = add_metric_sums(profile_sums, score_shard(scenario, model, batch, label, None).metric_sums)
    metrics = profile.metrics(profile_sums)
    assert metrics["rows"] == 1000
    assert 0.75 < metrics["auc"] < 0.95 and metrics["brier"] < 0.12, metrics  # a real, imperfect glm


def test_a_file_of_a_shard_gone_since_planning_is_named(scenario, customers, tmp_path):
    root = f"file://{tmp_path}"
    write_by_state(customers, churn_url(root), rows_per_file=40)
    shards = {shard.label: shard for shard in plan_shards(scenario.dataset, scenario.sharding, root)}
    assert len(read_shard(scenario.dataset, shards["state=CA"], root)) == shards["state=CA"].rows
    Path(shards["state=CA"].pieces[1].path).unlink()
    with pytest.raises(ShardDataError, match=r"^shard state=CA: a file of it is gone since the run was planned"):
        read_shard(scenario.dataset, shards["state=CA"], root)


def csv_scenario(scenario: Scenario, folder: Path) -> Scenario:
    dataset = dataclasses.replace(scenario.dataset, url=f"file://{folder}", format="csv", layout="files")
    return dataclasses.replace(scenario, dataset=dataset, sharding=Sharding((), 2000))


def test_a_csv_dataset_is_read_as_declared_not_as_guessed(scenario, customers, tmp_path):
    (tmp_path / "churn").mkdir()
    pacsv.write_csv(customers.slice(0, 3000), tmp_path / "churn" / "customers.csv")
    csv = csv_scenario(scenario, tmp_path / "churn")
    shards = plan_shards(csv.dataset, csv.sharding, "file:///unused")
    assert [(s.label, s.rows) for s in shards] == [("all/part_000", 2000), ("all/part_001", 1000)]
    batch = checked_table(read_shard(csv.dataset, shards[1], "file:///unused"), csv.dataset.columns, csv.dataset.key,
                          shards[1].label)  # fmt: skip
    assert batch["customer_id"].to_pylist()[:2] == [2001, 2002] and batch["snapshot"].type == pa.date32()
    assert batch["churn"].to_pylist()[:3] == customers["churn"].to_pylist()[2000:2003]


def with_bad_calls(rows: pa.Table, row: int) -> pa.Table:
    """`rows` with a word where row `row` has its number of day calls."""
    calls = [str(v) for v in rows["total_day_calls"].to_pylist()]
    calls[row] = "many"
    return rows.set_column(rows.column_names.index("total_day_calls"), "total_day_calls", pa.array(calls))


def test_a_csv_value_of_another_type_is_refused_naming_the_file_and_column(scenario, customers, tmp_path):
    (tmp_path / "churn").mkdir()
    csv = csv_scenario(scenario, tmp_path / "churn")
    pacsv.write_csv(with_bad_calls(customers.slice(0, 10), 5), tmp_path / "churn" / "customers.csv")
    with pytest.raises(ScenarioError, match=r"customers.csv.*In CSV column #9 \('total_day_calls'\): Row #7: .*'many'"):
        plan_shards(csv.dataset, csv.sharding, "file:///unused")

    rows = pa.concat_tables([customers, customers])  # past the first block Arrow reads the columns' names from
    pacsv.write_csv(rows, tmp_path / "churn" / "customers.csv")
    shard = plan_shards(csv.dataset, csv.sharding, "file:///unused")[-1]
    pacsv.write_csv(with_bad_calls(rows, 9000), tmp_path / "churn" / "customers.csv")  # changed after planning
    with pytest.raises(
        ShardDataError, match=r"^shard all/part_004: .*customers.csv: In CSV column #9 \('total_day_calls'\)"
    ):
        read_shard(csv.dataset, shard, "file:///unused")


def test_a_ranger_challenger_is_judged_beside_the_glm_champion_on_the_same_rows(
    scenario, glm_package, storage_root, tmp_path
):
    """The same held-out customers through both packages: ranger's probabilities equal its own
    predict() in R, and each package's metrics come from its shard sums."""
    train_ranger(tmp_path / "ranger")
    packages = {
        "glm": TableModel.load(glm_package, "score.R", "model package glm-churn", predictors(scenario)),
        "ranger": TableModel.load(tmp_path / "ranger", "score.R", "model package ranger-churn", predictors(scenario)),
    }
    profile = profile_for(scenario.profile, scenario.parameters, scenario.name)
    sums = {name: {} for name in packages}
    held_out_ids, ranger_p = [], []
    for label, batch in held_out_batches(scenario, storage_root):
        held_out_ids += batch["customer_id"].to_pylist()
        for name, model in packages.items():
            result = score_shard(scenario, model, batch, label, None)
            sums[name] = add_metric_sums(sums[name], result.metric_sums)
            if name == "ranger":
                ranger_p += result.output["p_churn"].to_pylist()
    metrics = {name: profile.metrics(total) for name, total in sums.items()}
    assert sorted(held_out_ids) == list(range(4001, 5001)), "the same 1,000 customers for both"
    own = rsession.r_eval(
        "function(path, ids) { data(mlc_churn, package = 'modeldata');"
        " predict(readRDS(path), data = mlc_churn[ids, ], num.threads = 1)$predictions[, 'yes'] }"
    )(str(tmp_path / "ranger" / "ranger.rds"), rsession.ro.IntVector(held_out_ids))
    assert np.array_equal(np.array(ranger_p), np.asarray(own)), "ranger's own predict(), bit for bit"
    assert metrics["glm"]["rows"] == metrics["ranger"]["rows"] == 1000
    assert metrics["ranger"]["auc"] > metrics["glm"]["auc"] > 0.75, metrics  # a forest sees the interactions
    assert metrics["ranger"]["brier"] < metrics["glm"]["brier"], metrics

"""The current result per customer is the newest snapshot's, whatever order the runs publish in."""

from datetime import date

import pyarrow as pa

from retail_scoring.scenarios.current import newest_per_key

OCTOBER, NOVEMBER = date(2026, 10, 31), date(2026, 11, 30)


def scores(snapshot: date, customers: list[int], p: float) -> pa.Table:
    return pa.table({
        "customer_id": pa.array(customers, pa.int64()),
        "snapshot": pa.array([snapshot] * len(customers), pa.date32()),
        "p_churn": pa.array([p] * len(customers), pa.float64()),
    })  # fmt: skip


def current_of(table: pa.Table) -> dict[int, tuple[date, float]]:
    rows = table.to_pylist()
    return {row["customer_id"]: (row["snapshot"], row["p_churn"]) for row in rows}


def test_a_newer_snapshot_replaces_an_older_one_per_customer():
    current = newest_per_key(scores(OCTOBER, [1, 2, 3], 0.1), scores(NOVEMBER, [2, 3, 4], 0.2), ("customer_id",),
                             "snapshot")  # fmt: skip
    assert current_of(current) == {1: (OCTOBER, 0.1), 2: (NOVEMBER, 0.2), 3: (NOVEMBER, 0.2), 4: (NOVEMBER, 0.2)}
    assert current.column_names == ["customer_id", "snapshot", "p_churn"] and len(current) == 4


def test_a_backfill_of_an_older_snapshot_fills_gaps_and_changes_nothing_newer():
    november = scores(NOVEMBER, [2, 3], 0.2)
    current = newest_per_key(november, scores(OCTOBER, [1, 2, 3], 0.1), ("customer_id",), "snapshot")
    assert current_of(current) == {1: (OCTOBER, 0.1), 2: (NOVEMBER, 0.2), 3: (NOVEMBER, 0.2)}


def test_a_rerun_of_the_same_snapshot_replaces_what_it_published_before():
    current = newest_per_key(scores(NOVEMBER, [1, 2], 0.2), scores(NOVEMBER, [2], 0.3), ("customer_id",), "snapshot")
    assert current_of(current) == {1: (NOVEMBER, 0.2), 2: (NOVEMBER, 0.3)}

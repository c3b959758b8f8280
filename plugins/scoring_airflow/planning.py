"""Pure planning logic: which week a run forecasts from, and how products become partitions."""

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from retail_scoring.layout import partition_label


class PlanError(ValueError):
    """A run cannot be planned as asked (origin outside the data, unknown products, bad params)."""


def origin_for_logical_date(logical_date: datetime | date, week0_monday: date) -> int:
    """The dataset week a run forecasts from: the last week completed before the logical date.

    Dataset week w spans the seven days from week0_monday + w weeks, so a run on Monday
    2026-11-23 (dataset week 108 with the default week0_monday 2024-10-28) forecasts from week 107.
    """
    day = logical_date.date() if isinstance(logical_date, datetime) else logical_date
    return (day - week0_monday).days // 7 - 1


def run_origin(params: dict, run_date: datetime | date, week0_monday: date) -> int:
    """The week a run forecasts from: its `origin_week` param, else the one its logical date gives."""
    origin = params.get("origin_week")
    if origin is None:
        return origin_for_logical_date(run_date, week0_monday)
    return whole_number("origin_week", origin)


def logical_date_for_origin(origin: int, week0_monday: date) -> date:
    """The Monday whose run forecasts from `origin` (the inverse of origin_for_logical_date)."""
    return week0_monday + timedelta(weeks=origin + 1)


def check_origin(origin: int, first_origin: int, last_origin: int) -> None:
    if not first_origin <= origin <= last_origin:
        raise PlanError(
            f"forecast origin week {origin} is outside the data: origins {first_origin}..{last_origin} have "
            "enough history for the lags and 13 planned weeks after them"
        )


def partition_products(
    products: list[int], task_slots: int, partitioning: str, max_products: int
) -> dict[str, list[int]]:
    """`per_node`: one partition per task slot of the pool (the reference's advice: models loaded
    once per node), and more, of at most `max_products` each, when the products would not fit;
    the pool works through them in turn. `per_product`: one per product."""
    if partitioning == "per_product":
        groups = [[product] for product in products]
    elif partitioning == "per_node":
        count = max(min(task_slots, len(products)), math.ceil(len(products) / max_products))
        groups = [products[i::count] for i in range(count)]
    else:
        raise PlanError(f"partitioning must be 'per_node' or 'per_product', got {partitioning!r}")
    return {partition_label(i): sorted(group) for i, group in enumerate(groups)}


@dataclass(frozen=True)
class ProductSelection:
    """The `products` param as given: single numbers and inclusive ranges, never expanded, so a
    typed range costs the same whatever its size."""

    numbers: tuple[int, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()


NAMED = 10  # messages name at most this many products or ranges, then count the rest


def requested_products(value: str | list | None) -> ProductSelection | None:
    """The `products` param: a list of numbers (API, CLI), or what a person types into the form,
    numbers and ranges like `3, 17, 40-45` (brackets allowed; the form may send the text as one
    string or one per line). None or empty: every product."""
    numbers: list[int] = []
    ranges: list[tuple[int, int]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            typed_numbers, typed_ranges = typed_products(item)
            numbers += typed_numbers
            ranges += typed_ranges
        elif item is not None:
            numbers.append(whole_number("products item", item))
    return ProductSelection(tuple(numbers), tuple(ranges)) if numbers or ranges else None


def typed_products(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    numbers, ranges = [], []
    for token in re.split(r"[,\s]+", text.strip().strip("[]")):
        if re.fullmatch(r"\d+", token):
            numbers.append(int(token))
        elif match := re.fullmatch(r"(\d+)-(\d+)", token):
            low, high = int(match[1]), int(match[2])
            if low > high:
                raise PlanError(f"products: the range {token!r} is reversed; write it as {high}-{low}")
            ranges.append((low, high))
        elif token:
            raise PlanError(f"products: {token[:40]!r} is neither a product number nor a range like 40-45")
    return numbers, ranges


def select_products(available: list[int], requested: ProductSelection | None) -> list[int]:
    """The requested products among `available` (sorted), in time and memory of the catalogue's
    size, not of the numbers typed. Numbers the catalogue lacks are refused, counted and named
    briefly, a range reaching beyond it too."""
    if not available:
        raise PlanError("no products found in storage; seed the data first")
    if requested is None:
        return available
    catalogue = np.sort(np.asarray(available))
    chosen = np.isin(catalogue, np.asarray(requested.numbers, dtype=np.int64))
    unknown = np.setdiff1d(np.asarray(requested.numbers, dtype=np.int64), catalogue)
    outside = []
    for low, high in requested.ranges:
        first, last = np.searchsorted(catalogue, [low, high + 1])
        chosen[first:last] = True
        if last - first < high - low + 1:
            outside.append(f"{low}-{high} ({high - low + 1 - (last - first)} of its numbers)")
    where = f"storage has {len(catalogue)} products, {catalogue[0]}..{catalogue[-1]}"
    if len(unknown) or outside:
        named = ", ".join(map(str, unknown[:NAMED])) + (
            f" and {len(unknown) - NAMED} more" if len(unknown) > NAMED else ""
        )
        ranges = ", ".join(outside[:NAMED]) + (
            f" and {len(outside) - NAMED} more ranges" if len(outside) > NAMED else ""
        )
        found = "; ".join(
            part
            for part in (named and f"unknown products {named}", ranges and f"ranges beyond the catalogue: {ranges}")
            if part
        )
        raise PlanError(f"{found}; {where}")
    return catalogue[chosen].tolist()


def batch_id(text: str, limit: int = 64) -> str:
    """`text` if it fits Azure Batch's id limit, else its head plus a hash of the whole: still
    readable, still unique per run."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{text[: limit - 11]}-{digest}"


def job_id(run_id: str, try_number: int) -> str:
    """The compute job of one try of a run's scoring task: a retry is a new job, never a reuse."""
    return f"{batch_id(run_id, 56)}-try{try_number}"


def is_job_of_run(job: str, run_id: str) -> bool:
    """Exactly the run's own job ids: run `x` never matches the jobs of a run `x-try2`."""
    return re.fullmatch(re.escape(batch_id(run_id, 56)) + r"-try\d+", job) is not None


def storage_run_id(dag_id: str, airflow_run_id: str) -> str:
    """A folder- and Batch-safe id, unique per DAG run, stable across its retries: the run's id
    with characters that must be folded (':', '+', '.', ...) folded, and always a hash of the
    original, so no run's id can name another run's folder, whatever it is called."""
    original = f"{dag_id}__{airflow_run_id}"
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", original).strip("-")[:100]
    return f"{readable}-{hashlib.sha256(original.encode()).hexdigest()[:16]}"


def whole_number(name: str, value: object) -> int:
    """A param that must be an integer: JSON Schema's "integer" lets 1.0 through, we do not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{name} must be a whole number, got {value!r}")
    return value

"""Pure planning logic: which week a run forecasts from, and how products become partitions."""

import hashlib
import math
import re
from datetime import date, datetime, timedelta

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


def requested_products(value: str | list | None) -> list[int] | None:
    """The `products` param: a list of numbers (API, CLI), or what a person types into the form,
    numbers and ranges like `3, 17, 40-45` (brackets allowed; the form may send the text as one
    string or one per line). None or empty: every product."""
    products = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            products += typed_products(item)
        elif item is not None:
            products.append(whole_number("products item", item))
    return products or None


def typed_products(text: str) -> list[int]:
    products = []
    for token in re.split(r"[,\s]+", text.strip().strip("[]")):
        if re.fullmatch(r"\d+", token):
            products.append(int(token))
        elif match := re.fullmatch(r"(\d+)-(\d+)", token):
            products.extend(range(int(match[1]), int(match[2]) + 1))
        elif token:
            raise PlanError(f"products: {token!r} is neither a product number nor a range like 40-45")
    return products


def select_products(available: list[int], requested: list[int] | None) -> list[int]:
    if not available:
        raise PlanError("no products found in storage; seed the data first")
    if not requested:
        return available
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise PlanError(f"unknown products {unknown}; storage has products {available[0]}..{available[-1]}")
    return sorted(set(requested))


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

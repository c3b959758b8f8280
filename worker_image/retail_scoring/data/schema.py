"""The one place that says what the tables look like.

Product files (one set per product of 11 SKUs x all stores):
  history  sku, base_sku, store, week, deal, feat, price1..price11, sales
  futurex  sku, base_sku, store, week, deal, feat, price1..price11   (planned, no sales)
  actuals  sku, store, week, sales                                    (held back for evaluation)
Forecast files (one per product and run):
  forecast sku, store, week, q5, q25, q50, q75, q95, forecast_origin, model_version
           (one q column per quantile of the model package's output contract; these are the reference's)

`sku` is the SKU's unique id across all products; `base_sku` is the orangeJuice brand (1..11)
the SKU replicates, which is what the models know as their `sku` feature.
"""

import re

import pyarrow as pa


def quantile_column(quantile: float) -> str:
    """The forecast column of a quantile level: 0.05 -> q5, 0.975 -> q97.5."""
    return f"q{quantile * 100:g}"


QUANTILE_COLUMN = re.compile(r"q\d+(\.\d+)?")
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS: tuple[str, ...] = tuple(quantile_column(q) for q in QUANTILES)
HORIZON = 13
STEPS_WITH_OWN_MODEL = 6  # steps 1..6 have a model each; steps 7..13 share the "t7" model
N_LAGS = 5
SKUS_PER_PRODUCT = 11
KNOWN_BASE_SKUS = range(1, SKUS_PER_PRODUCT + 1)  # the orangeJuice brands the models were trained on
# Every number in a product table is finite and at most this in size: inf or 1e300 sales or prices
# are broken data that would silently move forecasts, not a week's sales.
MAX_PLAUSIBLE_VALUE = 1e9

PRICE_COLUMNS: tuple[str, ...] = tuple(f"price{i}" for i in range(1, 12))
SERIES_KEY: tuple[str, ...] = ("sku", "store")
ROW_KEY: tuple[str, ...] = ("sku", "store", "week")

LAGGED_FEATURES: tuple[str, ...] = (
    "sku",
    "deal",
    "feat",
    "level",
    "month_mean",
    "month_max",
    "month_min",
    "lag1",
) + PRICE_COLUMNS
UNLAGGED_FEATURES: tuple[str, ...] = ("sku", "deal", "feat", "level") + PRICE_COLUMNS

_EXOGENOUS = [("deal", pa.int64()), ("feat", pa.int64())] + [(p, pa.float64()) for p in PRICE_COLUMNS]
_IDS = [("sku", pa.int64()), ("base_sku", pa.int64()), ("store", pa.int64()), ("week", pa.int64())]


def forecast_schema(quantile_columns: tuple[str, ...]) -> pa.Schema:
    """A forecast file's schema for a package's quantile columns (the reference's: q5..q95)."""
    return pa.schema(
        [("sku", pa.int64()), ("store", pa.int64()), ("week", pa.int64())]
        + [(q, pa.float64()) for q in quantile_columns]
        + [("forecast_origin", pa.int64()), ("model_version", pa.string())]
    )


TABLES: dict[str, pa.Schema] = {
    "history": pa.schema(_IDS + _EXOGENOUS + [("sales", pa.float64())]),
    "futurex": pa.schema(_IDS + _EXOGENOUS),
    "actuals": pa.schema([("sku", pa.int64()), ("store", pa.int64()), ("week", pa.int64()), ("sales", pa.float64())]),
    "forecast": forecast_schema(QUANTILE_COLUMNS),
}


def model_name(step: int, quantile: float) -> str:
    """Name of the model scoring `step` at `quantile`, as the reference architecture named them."""
    model_step = min(step, STEPS_WITH_OWN_MODEL + 1)
    return f"gbm_t{model_step}_q{round(quantile * 100)}"


def features_for_step(step: int) -> tuple[str, ...]:
    """Steps beyond 6 are too far ahead for lags to help; their model sees no lag features."""
    return LAGGED_FEATURES if step <= STEPS_WITH_OWN_MODEL else UNLAGGED_FEATURES

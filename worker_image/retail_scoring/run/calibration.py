"""Calibrated quantiles: per horizon step and quantile level, a multiplicative correction of what the
package forecast, learned from its out-of-sample residuals, so that its intervals cover what they say.

The method is conformalized quantile regression in its asymmetric form (Romano, Patterson and
Candès, "Conformalized Quantile Regression", NeurIPS 2019, section 6), on the log scale, per
horizon step, with recency weights for drift (Barber, Candès, Ramdas and Tibshirani, "Conformal
prediction beyond exchangeability", Annals of Statistics 2023): the level-`tau` quantile of a
package is moved by the weighted `tau`-quantile of log(actual / forecast) over the calibration
rows of its step, where rows of an origin `age` weeks older than the newest count
2^(-age / half_life). A shift is a whole number of `GRID_STEP`s, so the workers' residual
profiles (`residual_sums`, additive like the accuracy sums) give any shift's coverage and
pinball loss exactly, without reading a forecast.

A calibration learned from origins up to X uses sales through week X + horizon: it may calibrate
forecasts from origin X + horizon on (`usable_from`), never earlier ones."""

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

import numpy as np
import pandas as pd

from retail_scoring import storage
from retail_scoring.data.schema import quantile_column
from retail_scoring.errors import ScoringError
from retail_scoring.run.accuracy import central_intervals
from retail_scoring.typed_json import check_types

CALIBRATION_VERSION = 1
METHOD = "log-scale conformalized quantile regression per step, recency-weighted"
GRID_STEP = 0.01  # log sales: a shift is a multiple of 1%
GRID_BINS = 300  # shifts and residuals beyond +-3 (a factor of 20) land in the outermost bins
DEFAULT_HALF_LIFE_WEEKS = 13.0


class CalibrationError(ScoringError):
    """A calibration file that cannot be used: another version, another package's quantiles, not the
    content the run pinned, or learned from sales the forecast's origin may not see."""


def _bins(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The grid bin of each row's log(actual / predicted): bin k holds (k-1)*GRID_STEP < r <= k*GRID_STEP,
    so a forecast moved by k steps covers exactly the rows of bins up to k. No sales below a positive
    forecast is the lowest bin, sales above a forecast of 0 the highest, both 0 bin 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(actual) - np.log(predicted)
    ratio = np.where((actual <= 0) & (predicted <= 0), 0.0, ratio)
    ratio = np.nan_to_num(ratio, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return np.clip(np.ceil(ratio / GRID_STEP), -GRID_BINS, GRID_BINS).astype(np.int64)


PROFILE_SUMS = ("count", "actual", "predicted", "ratio")
HITS = len(PROFILE_SUMS)  # the dense row of rows whose sales equal the forecast (bin 0 only)


def residual_sums(joined: pd.DataFrame, quantiles: tuple[float, ...], horizon: int) -> np.ndarray:
    """Over forecast rows joined with their actual `sales`: per horizon step, quantile and grid bin
    of log(actual / forecast), the PROFILE_SUMS (rows, summed sales, summed forecasts, summed
    forecast / sales) and the hits, rows whose sales equal the forecast (they fall in bin 0):
    integer sales and forecasts drawn from past sales (a quantile forest's) meet often, and an
    interval holds them. A (horizon + 1, quantiles, 5, bins) array, additive, row 0 unused."""
    width = 2 * GRID_BINS + 1
    predicted = joined[[quantile_column(q) for q in quantiles]].to_numpy(dtype="float64")
    actual = np.repeat(joined["sales"].to_numpy(dtype="float64")[:, None], len(quantiles), axis=1)
    step = (joined["week"] - joined["forecast_origin"]).to_numpy()
    index = (step[:, None] * len(quantiles) + np.arange(len(quantiles))) * width + _bins(actual, predicted) + GRID_BINS
    with np.errstate(divide="ignore", invalid="ignore"):
        values = [np.ones_like(actual), actual, predicted, predicted / actual, (actual == predicted).astype("float64")]
    size = (horizon + 1) * len(quantiles) * width
    sums = np.stack([np.bincount(index.ravel(), value.ravel(), minlength=size) for value in values])
    return sums.reshape(HITS + 1, horizon + 1, len(quantiles), width).transpose(1, 2, 0, 3)


def profile_document(sums: np.ndarray, quantiles: tuple[float, ...]) -> dict:
    """`residual_sums` as a summary holds them: per step with rows, per quantile column, the bins
    from the first to the last used one, `{"first": lowest bin, "count": [...], "actual": [...],
    ..., "hits": n}`."""
    return {
        str(step): {quantile_column(q): _sparse(sums[step, i]) for i, q in enumerate(quantiles)}
        for step in range(1, len(sums))
        if sums[step, 0, 0].any()
    }


def _dense(bins: dict, weight: float = 1.0) -> np.ndarray:
    """One quantile's profile as a (5, 2*GRID_BINS+1) array of the PROFILE_SUMS and the hits, weighted."""
    dense = np.zeros((HITS + 1, 2 * GRID_BINS + 1))
    start = bins["first"] + GRID_BINS
    for row, name in enumerate(PROFILE_SUMS):
        values = np.asarray(bins[name], dtype="float64")
        dense[row, start : start + len(values)] = values * weight
    dense[HITS, GRID_BINS] = bins["hits"] * weight
    return dense


def add_profiles(total: dict, more: dict) -> dict:
    """Two residual profiles added up, step by step and quantile by quantile."""
    added = {step: dict(columns) for step, columns in total.items()}
    for step, columns in more.items():
        for column, bins in columns.items():
            if column in added.get(step, {}):
                dense = _dense(added[step][column]) + _dense(bins)
                added[step][column] = _sparse(dense)
            else:
                added.setdefault(step, {})[column] = bins
    return added


def _sparse(dense: np.ndarray, offset: int = 0) -> dict:
    """The bins from the first to the last used one (`offset`: the array's first bin, counted from
    the lowest), sums to 9 significant digits of their largest: far finer than any figure
    reported, and summaries stay small."""
    used = np.flatnonzero(dense[0])
    first, last = (int(used[0]), int(used[-1])) if len(used) else (0, 0)
    part = dense[:, first : last + 1]
    compact = {}
    for row, name in enumerate(PROFILE_SUMS[1:], start=1):
        largest = float(np.max(np.abs(part[row]), initial=0.0))
        digits = 8 - math.floor(math.log10(largest)) if largest > 0 and math.isfinite(largest) else 0
        compact[name] = np.round(part[row], digits).tolist()
    return {
        "first": first + offset - GRID_BINS,
        "count": np.rint(part[0]).astype(int).tolist(),
        **compact,
        "hits": int(round(dense[HITS].sum())),
    }


def covered_rows(bins: np.ndarray, shift: int) -> float:
    """Rows whose sales are at most the forecast moved by `shift` grid steps."""
    return float(bins[0, : shift + GRID_BINS + 1].sum())


def rows_below(bins: np.ndarray, shift: int) -> float:
    """Rows whose sales are below the forecast moved by `shift` grid steps (hits only meet an
    unmoved forecast)."""
    return covered_rows(bins, shift) - float(bins[HITS, shift + GRID_BINS])


def pinball_sum(bins: np.ndarray, shift: int, quantile: float) -> float:
    """Summed pinball loss of the forecast moved by `shift` grid steps: exact, since every row of a
    bin lies on one side of the moved forecast."""
    factor = math.exp(shift * GRID_STEP)
    cut = shift + GRID_BINS + 1
    below, above = bins[:, :cut], bins[:, cut:]
    over = factor * below[2].sum() - below[1].sum()  # forecast above the sales
    under = above[1].sum() - factor * above[2].sum()
    return quantile * under + (1 - quantile) * over


def absolute_percentage_error_sum(bins: np.ndarray, shift: int) -> float:
    """Summed |sales - moved forecast| / sales, exact for the same reason."""
    factor = math.exp(shift * GRID_STEP)
    cut = shift + GRID_BINS + 1
    below, above = bins[:, :cut], bins[:, cut:]
    return (factor * below[3].sum() - below[0].sum()) + (above[0].sum() - factor * above[3].sum())


def learned_shift(bins: np.ndarray, quantile: float) -> int:
    """The shift whose share of (weighted) rows below the moved forecast is nearest `quantile`,
    hits counted half below, half above."""
    total = bins[0].sum()
    if total <= 0:
        return 0
    below = np.cumsum(bins[0]) - bins[HITS] / 2
    inner = slice(1, 2 * GRID_BINS)  # the outermost bins hold everything beyond the grid
    return int(np.argmin(np.abs(below[inner] - quantile * total))) + 1 - GRID_BINS


def origin_weights(origins: list[int], half_life_weeks: float | None) -> dict[int, float]:
    """Each calibration origin's weight: 1 for the newest, halving every `half_life_weeks` older
    (None: all equal)."""
    newest = max(origins)
    return {o: 1.0 if half_life_weeks is None else 0.5 ** ((newest - o) / half_life_weeks) for o in origins}


@dataclass(frozen=True)
class Calibration:
    """What a calibration file holds: the package (and content) it was learned on, the backtest it
    came from, the origins whose out-of-sample rows it learned from, and per horizon step and
    quantile column the shift in grid steps (the forecast is multiplied by exp(shift * grid_step))."""

    model_version: str
    package_sha256: str
    backtest_id: str
    method: str
    half_life_weeks: float | None
    origins: list[int]
    rows: int
    horizon: int
    quantiles: list[float]
    grid_step: float
    shifts: dict[str, dict[str, int]]

    @property
    def learned_through(self) -> int:
        return max(self.origins)

    @property
    def usable_from(self) -> int:
        """The first origin whose own sales include every week this calibration learned from."""
        return self.learned_through + self.horizon

    def to_json(self) -> bytes:
        return json.dumps({"calibration_version": CALIBRATION_VERSION, **asdict(self)}, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Self:
        try:
            document: Any = json.loads(data)
        except ValueError as error:
            raise CalibrationError(f"{source}: not a calibration file: not JSON ({error})") from error
        names = [f.name for f in fields(cls)]
        if not isinstance(document, dict) or document.get("calibration_version") != CALIBRATION_VERSION:
            version = document.get("calibration_version") if isinstance(document, dict) else None
            raise CalibrationError(
                f"{source}: calibration version {version}, but this release reads version {CALIBRATION_VERSION}"
            )
        missing = [name for name in names if name not in document]
        if missing:
            raise CalibrationError(f"{source}: not a calibration file: missing {', '.join(missing)}")
        check_types(cls, document, source, CalibrationError)
        if document["grid_step"] != GRID_STEP:
            raise CalibrationError(f"{source}: grid step {document['grid_step']}, this release uses {GRID_STEP}")
        calibration = cls(**{name: document[name] for name in names})
        calibration.check_shifts(source)
        return calibration

    def check_shifts(self, source: str) -> None:
        """Shifts for exactly steps 1..horizon and the calibration's quantile columns, each one the
        learner can give (|shift| < GRID_BINS): a file that says otherwise was not written by it."""
        steps = [str(step) for step in range(1, self.horizon + 1)]
        columns = sorted(quantile_column(q) for q in self.quantiles)
        if set(self.shifts) != set(steps):
            raise CalibrationError(f"{source}: shifts for steps {sorted(self.shifts)}, not steps 1..{self.horizon}")
        for step, shifts in self.shifts.items():
            if sorted(shifts) != columns:
                raise CalibrationError(f"{source}: step {step} shifts columns {sorted(shifts)}, not {columns}")
            beyond = {column: shift for column, shift in shifts.items() if abs(shift) >= GRID_BINS}
            if beyond:
                raise CalibrationError(
                    f"{source}: step {step} shifts {beyond} beyond what calibration learns (|shift| < {GRID_BINS})"
                )

    def factors(self, columns: tuple[str, ...]) -> np.ndarray:
        """(horizon + 1, quantiles) multipliers, row `step`; row 0 unused."""
        factors = np.ones((self.horizon + 1, len(columns)))
        for step, shifts in self.shifts.items():
            factors[int(step)] = [math.exp(shifts[column] * self.grid_step) for column in columns]
        return factors

    def apply(self, forecast: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        """The forecast with its quantile columns moved by their step's shift, sorted per row so
        quantiles never cross; every other column as it was."""
        step = (forecast["week"] - forecast["forecast_origin"]).to_numpy()
        moved = forecast[list(columns)].to_numpy(dtype="float64") * self.factors(columns)[step]
        return forecast.assign(**dict(zip(columns, np.sort(moved, axis=1).T, strict=True)))

    def check_fits(self, model_version: str, horizon: int, quantiles: tuple[float, ...], source: str) -> None:
        """Refuse a package whose forecasts this calibration does not describe."""
        if self.horizon != horizon or tuple(self.quantiles) != tuple(quantiles):
            raise CalibrationError(
                f"{source}: learned for {self.horizon} weeks at quantiles {self.quantiles}, but model package "
                f"{model_version} forecasts {horizon} weeks at quantiles {list(quantiles)}"
            )


def read_calibration(url: str, pinned_sha256: str | None = None) -> tuple[Calibration, str]:
    """A calibration file and its sha256; with `pinned_sha256` (the run's), refused unless it is
    that content."""
    try:
        data = storage.read_bytes(url)
    except FileNotFoundError as error:
        raise CalibrationError(f"{url}: no calibration file") from error
    sha256 = storage.sha256_hex(data)
    if pinned_sha256 is not None and sha256 != pinned_sha256:
        raise CalibrationError(
            f"{url}: content {sha256[:12]} is not the calibration the run pinned ({pinned_sha256[:12]}): "
            "it was written again after the run was planned"
        )
    return Calibration.from_json(data, url), sha256


def learn_calibration(
    profiles: dict[int, dict],
    quantiles: tuple[float, ...],
    horizon: int,
    half_life_weeks: float | None = DEFAULT_HALF_LIFE_WEEKS,
    **provenance: Any,
) -> Calibration:
    """The calibration learned from the residual profiles of out-of-sample origins (origin ->
    profile), each quantile level on its own. Where the shifts would make a row's quantiles cross
    (narrowed intervals of nearly equal quantiles), `Calibration.apply` sorts them (a monotone
    rearrangement: Chernozhukov, Fernández-Val and Galichon, Econometrica 2010)."""
    weights = origin_weights(list(profiles), half_life_weeks)
    shifts: dict[str, dict[str, int]] = {}
    for step in range(1, horizon + 1):
        shifts[str(step)] = {}
        for quantile in quantiles:
            column = quantile_column(quantile)
            parts = [
                _dense(profile[str(step)][column], weights[origin])
                for origin, profile in profiles.items()
                if column in profile.get(str(step), {})
            ]
            shifts[str(step)][column] = learned_shift(sum(parts), quantile) if parts else 0
    first_column = quantile_column(quantiles[0])
    rows = sum(sum(columns[first_column]["count"]) for profile in profiles.values() for columns in profile.values())
    return Calibration(
        method=METHOD,
        half_life_weeks=half_life_weeks,
        origins=sorted(profiles),
        rows=rows,
        horizon=horizon,
        quantiles=list(quantiles),
        grid_step=GRID_STEP,
        shifts=shifts,
        **provenance,
    )


def shifted_accuracy(profile: dict, shifts: dict[str, dict[str, int]] | None, quantiles: tuple[float, ...]) -> dict:
    """Pinball loss sums per quantile and rows inside each central interval, per step, of the
    forecasts behind `profile` moved by `shifts` (None: as forecast): additive like
    accuracy.accuracy_sums, for accuracy.combine_accuracy."""
    steps = {}
    for step, columns in profile.items():
        dense = {column: _dense(bins) for column, bins in columns.items()}
        shift = {column: (shifts or {}).get(step, {}).get(column, 0) for column in dense}
        rows = int(next(iter(dense.values()))[0].sum())
        sums: dict = {"rows": rows, "forecast_rows": rows}
        for quantile in quantiles:
            column = quantile_column(quantile)
            sums[f"pinball_{column}"] = pinball_sum(dense[column], shift[column], quantile)
        for level, (low, high) in central_intervals(quantiles).items():
            low_column, high_column = quantile_column(low), quantile_column(high)
            below = rows_below(dense[low_column], shift[low_column])
            above = rows - covered_rows(dense[high_column], shift[high_column])
            sums[f"inside_{level}"] = rows - below - above
        if 0.5 in quantiles:
            median = quantile_column(0.5)
            sums["ape_q50"] = absolute_percentage_error_sum(dense[median], shift[median])
        steps[step] = sums
    total: dict = {}
    for sums in steps.values():
        total = {key: total.get(key, 0) + value for key, value in sums.items()}
    return {**total, "steps": steps}

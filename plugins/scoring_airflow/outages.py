"""Storage outages as Airflow's tasks live through them: each read or write already retries inside
the Azure SDK (about a minute and a half); a task whose storage stays away longer waits for it,
logging once when it went and once when it is back, up to FORECAST_STORAGE_OUTAGE_S, and only
then fails, saying since when storage has been unreachable."""

import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from retail_scoring.errors import StorageUnavailableError
from scoring_airflow.settings import ForecastSettings

log = logging.getLogger(__name__)

Result = TypeVar("Result")


class OutageWatch:
    """One outage as seen by one waiter: when it began, whether it was logged, whether it is over."""

    def __init__(self, deadline_s: float):
        self.deadline_s = deadline_s
        self.since: float | None = None

    def failed(self, error: StorageUnavailableError, what: str) -> None:
        """Storage did not answer: log it the first time, raise once the outage passed the deadline."""
        now = time.time()
        if self.since is None:
            self.since = now
            log.warning(
                "storage unreachable since %s (%s); %s goes on when it is back, for up to %.0f s "
                "(FORECAST_STORAGE_OUTAGE_S)",
                _clock(now),
                error,
                what,
                self.deadline_s,
            )
        elif now - self.since > self.deadline_s:
            raise StorageUnavailableError(
                f"storage unreachable since {_clock(self.since)} ({now - self.since:.0f} s, longer than "
                f"FORECAST_STORAGE_OUTAGE_S = {self.deadline_s:.0f} s): {error}"
            ) from error

    def answered(self) -> None:
        if self.since is not None:
            log.info("storage is back after %.0f s", time.time() - self.since)
            self.since = None


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def through_outages(operation: Callable[[], Result], what: str, settings: ForecastSettings | None = None) -> Result:
    """`operation()`, run again while storage is unreachable, until FORECAST_STORAGE_OUTAGE_S. The
    operation must be safe to run again (every task step here writes whole files or merges)."""
    settings = settings or ForecastSettings()
    watch = OutageWatch(settings.storage_outage_s)
    while True:
        try:
            result = operation()
        except StorageUnavailableError as error:
            watch.failed(error, what)
            time.sleep(settings.storage_outage_poll_s)
            continue
        watch.answered()
        return result


def survives_outages(step: Callable[..., Result]) -> Callable[..., Result]:
    """A task step that waits out storage outages (through_outages) instead of failing on them."""

    @functools.wraps(step)
    def guarded(*args, **kwargs) -> Result:
        return through_outages(lambda: step(*args, **kwargs), step.__name__)

    return guarded

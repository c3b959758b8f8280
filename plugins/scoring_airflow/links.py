"""Extra links on the forecast tasks: the run's report and forecasts (served by the outputs app in
Airflow's API server) and, on Azure Batch, the Batch account in the Azure portal."""

from airflow.configuration import conf
from airflow.sdk import BaseOperatorLink

from retail_scoring.layout import backtest_of_run
from scoring_airflow.planning import read_plan
from scoring_airflow.settings import ForecastSettings

URL_PREFIX = "/forecast-outputs"  # where the plugin mounts outputs_app in the API server


def outputs_url(page: str | None) -> str:
    """A page of the outputs app (`page` relative to it), relative to the UI's own server unless
    [api] base_url says where the API server is; empty (no link shown) for no page."""
    if page is None:
        return ""
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{URL_PREFIX}/{page}"


class ForecastReportLink(BaseOperatorLink):
    name = "Forecast report"

    def get_link(self, operator, *, ti_key) -> str:
        return outputs_url(operator.scoring_run.page(ti_key.dag_id, "report"))


class ForecastFilesLink(BaseOperatorLink):
    name = "Forecasts"

    def get_link(self, operator, *, ti_key) -> str:
        return outputs_url(operator.scoring_run.page(ti_key.dag_id, "files"))


class BacktestReportLink(BaseOperatorLink):
    name = "Backtest report"

    def get_link(self, operator, *, ti_key) -> str:
        return outputs_url(f"backtests/{backtest_of_run(read_plan(operator.runs[0]).run_id)}/report/")


class BatchAccountLink(BaseOperatorLink):
    """The Batch account in the Azure portal, where the run's job (`{run}-try{n}`, named in the task
    log) is under Jobs: the portal documents no deep link to one job. Shown when
    FORECAST_BATCH_ACCOUNT_RESOURCE_ID holds the account's resource id."""

    name = "Azure Batch account"

    def get_link(self, operator, *, ti_key) -> str:
        account = ForecastSettings().batch_account_resource_id
        if operator.scoring_run.plan.compute_backend != "azure_batch" or not account:
            return ""
        return f"https://portal.azure.com/#resource{account}/overview"

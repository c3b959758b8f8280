"""The compose deployment's connections are written without a secret reaching Airflow's audit
log, which records every CLI command's arguments."""

import json
import os
import subprocess
import sys

from airflow.models import Connection
from airflow.utils.session import create_session
from sqlalchemy import text

from tests.airflow.conftest import PROJECT

STORAGE_KEY = "c2VjcmV0LXN0b3JhZ2Uta2V5LW5ldmVyLWxvZ2dlZA=="
BATCH_KEY = "YmF0Y2gta2V5LW5ldmVyLWxvZ2dlZA=="


def audit_log() -> str:
    with create_session() as session:
        rows = session.execute(text("SELECT event, extra FROM log")).all()
    return "\n".join(f"{event} {extra}" for event, extra in rows)


def test_the_init_writes_the_connections_and_no_key_reaches_the_audit_log(airflow_db):
    environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT / "plugins"),
        "WASB_CONNECTION_STRING": f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={STORAGE_KEY};",
        "AZURE_BATCH_ACCOUNT_NAME": "batchacct",
        "AZURE_BATCH_ACCOUNT_KEY": BATCH_KEY,
        "AZURE_BATCH_ACCOUNT_URL": "https://batchacct.westeurope.batch.azure.com",
    }
    for _ in range(2):  # the init runs on every `compose up`: the second time overwrites
        subprocess.run(
            [sys.executable, "-m", "scoring_airflow.cli", "import-connections"],
            env=environment,
            check=True,
            capture_output=True,
        )
    logged = audit_log()
    assert logged.count("cli_connections_import") >= 2, "the commands themselves are audited"
    assert STORAGE_KEY not in logged and BATCH_KEY not in logged
    with create_session() as session:
        wasb = session.query(Connection).filter_by(conn_id="wasb_default").one()
        batch = session.query(Connection).filter_by(conn_id="azure_batch_default").one()
        assert STORAGE_KEY in json.loads(wasb.extra)["connection_string"]
        assert (batch.login, batch.password) == ("batchacct", BATCH_KEY)

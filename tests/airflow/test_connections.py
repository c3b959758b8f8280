"""The compose deployment's connections are written without a secret reaching Airflow's audit
log, which records every CLI command's arguments."""

import json
import os
import subprocess
import sys

from airflow.utils.session import create_session
from cryptography.fernet import Fernet
from sqlalchemy import text

STORAGE_KEY = "c2VjcmV0LXN0b3JhZ2Uta2V5LW5ldmVyLWxvZ2dlZA=="
BATCH_KEY = "YmF0Y2gta2V5LW5ldmVyLWxvZ2dlZA=="
FERNET_KEY = Fernet.generate_key().decode()  # how the deployment encrypts connections (compose sets one)


def audit_log() -> str:
    with create_session() as session:
        rows = session.execute(text("SELECT event, extra FROM log")).all()
    return "\n".join(f"{event} {extra}" for event, extra in rows)


def test_the_init_writes_the_connections_and_no_key_reaches_the_audit_log(airflow_db):
    with create_session() as session:  # left by an earlier session, encrypted with another key
        session.execute(text("DELETE FROM connection WHERE conn_id IN ('wasb_default', 'azure_batch_default')"))
    environment = {
        **os.environ,
        "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
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
        stored = dict(
            session.execute(text("SELECT conn_id, extra FROM connection WHERE conn_id = 'wasb_default'")).all()
        )
        login, password = session.execute(
            text("SELECT login, password FROM connection WHERE conn_id = 'azure_batch_default'")
        ).one()
    fernet = Fernet(FERNET_KEY.encode())
    assert STORAGE_KEY not in stored["wasb_default"], "stored encrypted"
    extra = json.loads(fernet.decrypt(stored["wasb_default"].encode()))
    assert STORAGE_KEY in extra["connection_string"]
    assert (login, fernet.decrypt(password.encode()).decode()) == ("batchacct", BATCH_KEY)

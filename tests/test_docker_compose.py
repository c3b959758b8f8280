"""docker-compose.yaml as the compose client renders it (no Docker engine needed for `config`)."""

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed; scripts/setup.sh installs it")


SECRETS = {"AIRFLOW_FERNET_KEY": "k" * 44, "AIRFLOW_JWT_SECRET": "jwt-secret", "AIRFLOW_ADMIN_PASSWORD": "pw"}


def render(env_file: Path, **variables: str) -> subprocess.CompletedProcess:
    """`compose config` with exactly these variables: none from the caller's environment or .env."""
    environment = {k: v for k, v in os.environ.items() if k not in SECRETS} | variables
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "-f", str(PROJECT / "docker-compose.yaml"), "config"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=environment,
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    empty = tmp_path_factory.mktemp("compose") / "empty.env"
    empty.touch()
    rendered = render(empty, **SECRETS)
    assert rendered.returncode == 0, rendered.stderr
    return yaml.safe_load(rendered.stdout)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_the_stack_refuses_to_start_without_each_of_its_secrets(tmp_path, missing):
    empty = tmp_path / "empty.env"
    empty.touch()
    rendered = render(empty, **{k: v for k, v in SECRETS.items() if k != missing})
    assert rendered.returncode != 0
    assert f"set {missing}" in rendered.stderr


def test_compose_env_writes_the_secrets_once_and_the_stack_uses_them(tmp_path):
    env_file = tmp_path / "stack.env"
    subprocess.run(["bash", str(PROJECT / "scripts" / "compose_env.sh"), str(env_file)], check=True)
    written = env_file.read_text()
    subprocess.run(["bash", str(PROJECT / "scripts" / "compose_env.sh"), str(env_file)], check=True)
    assert env_file.read_text() == written, "an existing file is never replaced"
    assert env_file.stat().st_mode & 0o077 == 0, "only its owner can read it"
    secrets = dict(line.split("=", 1) for line in written.splitlines())
    assert set(secrets) == set(SECRETS)
    assert len(base64.urlsafe_b64decode(secrets["AIRFLOW_FERNET_KEY"])) == 32, "a valid Fernet key"
    rendered = render(env_file)
    assert rendered.returncode == 0, rendered.stderr
    environment = yaml.safe_load(rendered.stdout)["services"]["airflow-scheduler"]["environment"]
    assert environment["AIRFLOW__CORE__FERNET_KEY"] == secrets["AIRFLOW_FERNET_KEY"]
    assert environment["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["AIRFLOW_JWT_SECRET"]


def test_stack_has_airflow_on_postgres_and_azurite(compose):
    assert set(compose["services"]) == {"postgres", "azurite", "airflow-init", *AIRFLOW_SERVICES}
    for service, command in AIRFLOW_SERVICES.items():
        definition = compose["services"][service]
        assert definition["command"] in (command, [command])
        assert definition["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert definition["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert definition["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["services"]["azurite"]["image"].startswith("mcr.microsoft.com/azure-storage/azurite:")
    assert {"postgres-db", "azurite-data", "airflow-auth", "local-pools"} <= set(compose["volumes"])


def test_project_folders_are_mounted_into_every_airflow_service(compose):
    """DAGs and scenarios are mounted; the Airflow side is the image's installed package, its plugin
    found by entry point (a mounted plugins folder would register it twice)."""
    for service in [*AIRFLOW_SERVICES, "airflow-init"]:
        targets = {
            volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
            for volume in compose["services"][service]["volumes"]
        }
        assert {"/opt/airflow/dags", "/opt/airflow/include"} <= targets, service
        assert "/opt/airflow/plugins" not in targets, service


def test_init_creates_user_connections_and_seeds_azurite(compose):
    init = compose["services"]["airflow-init"]
    script = " ".join(init["command"])
    assert "airflow db migrate" in script
    assert "passwords.json" in script
    assert "python -m scoring_airflow.cli import-connections" in script
    assert "connections add" not in script, "a secret on a command line lands in Airflow's audit log"
    assert "PYTHONPATH" not in init["environment"], "the image installs scoring_airflow; no path edits"
    assert {"AZURE_BATCH_ACCOUNT_NAME", "AZURE_BATCH_ACCOUNT_KEY", "AZURE_BATCH_ACCOUNT_URL"} <= set(
        init["environment"]
    )
    assert "retail-scoring build-data" in script and "retail-scoring upload-package" in script
    assert "BlobEndpoint=http://azurite:10000/devstoreaccount1" in init["environment"]["WASB_CONNECTION_STRING"]
    assert init["environment"]["FORECAST_WASB_CONN_ID"] == "wasb_default"
    assert init["environment"]["FORECAST_STORAGE_ROOT"] == "abfs://forecast"


def test_orchestrator_image_pins_airflow_and_installs_the_pinned_requirements():
    dockerfile = (PROJECT / "Dockerfile").read_text()
    assert "apache-airflow==3.3.2" in (PROJECT / "requirements.txt").read_text()
    assert "-r /opt/project/requirements.txt -c /opt/project/constraints.txt" in dockerfile

"""The worker image's Python environment, built by the same script the Dockerfile runs."""

import json
import subprocess
from pathlib import Path

import pytest

from retail_scoring import storage
from tests.conftest import write_plan

WORKER_IMAGE = Path(__file__).resolve().parents[2] / "worker_image"


def test_dockerfile_builds_its_environment_with_the_shared_install_script():
    dockerfile = (WORKER_IMAGE / "Dockerfile").read_text()
    assert "install_worker_env.sh /opt/worker" in dockerfile
    assert 'ENTRYPOINT ["/opt/worker/bin/retail-scoring"]' in dockerfile
    assert "USER scorer" in dockerfile


def test_the_images_r_packages_are_the_list_planning_checks_and_this_machine_has():
    """The image installs worker_r_packages.txt (pinned Debian packages), planning reads the same
    list, and setup.sh installed it here: the R versions it names are the ones R loads."""
    from retail_scoring import rsession
    from retail_scoring.packages.base import worker_r_packages

    dockerfile = (WORKER_IMAGE / "Dockerfile").read_text()
    assert (
        "COPY retail_scoring/worker_r_packages.txt" in dockerfile and "$(cat /tmp/worker_r_packages.txt)" in dockerfile
    )
    listed = worker_r_packages()
    assert {"gbm", "ranger", "dplyr"} <= set(listed)
    assert rsession.installed_packages(listed) == listed


def pins(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {name.lower(): version for name, version in (line.split("==") for line in lines)}


def test_worker_pins_every_package_at_the_orchestrators_version():
    worker, orchestrator = pins(WORKER_IMAGE / "constraints.txt"), pins(WORKER_IMAGE.parent / "constraints.txt")
    assert {name: version for name, version in worker.items() if orchestrator.get(name) != version} == {}


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("image") / "worker"
    subprocess.run(["sh", str(WORKER_IMAGE / "install_worker_env.sh"), str(venv), str(WORKER_IMAGE)], check=True)
    return venv


def test_worker_environment_holds_exactly_the_pinned_packages(worker_env):
    frozen = subprocess.run(
        [str(worker_env / "bin/pip"), "freeze", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    installed = {
        name.lower(): version
        for name, version in (line.split("==") for line in frozen.splitlines() if "==" in line)
        if name.lower().replace("_", "-") != "retail-scoring"
    }
    assert installed == pins(WORKER_IMAGE / "constraints.txt")


def test_worker_environment_has_no_airflow(worker_env):
    result = subprocess.run([str(worker_env / "bin/python"), "-c", "import airflow"], capture_output=True)
    assert result.returncode != 0


def test_worker_cli_from_the_image_environment_scores_a_partition(worker_env, layout):
    write_plan(layout, "image", {"partition_000": [1]})
    result = subprocess.run(
        [str(worker_env / "bin/retail-scoring"), "score", "--storage", layout.root, "--run-id", "image",
         "--partition", "partition_000"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "product_001: 858 rows scored" in result.stdout
    summary = json.loads(storage.read_bytes(layout.partition_summary("image", "partition_000")))
    assert (summary["rows"], summary["products_scored"], summary["predict_calls"]) == (858, [1], 35)
    assert summary["problems"] == {} and summary["failures"] == [] and summary["accuracy"]["forecast_rows"] == 858

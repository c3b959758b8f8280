"""Both images install the worker's R packages from the one list, so a model package that scores
on Azure Batch (worker image) scores on the local backend inside docker-compose (orchestrator
image) too; scripts/containers_test.sh builds and runs them."""

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
R_PACKAGES = "worker_image/retail_scoring/worker_r_packages.txt"
DOCKERFILES = {"worker": PROJECT / "worker_image" / "Dockerfile", "orchestrator": PROJECT / "Dockerfile"}


def final_stage(dockerfile: Path) -> str:
    """The instructions after the last FROM: what the image that runs is made of."""
    return re.split(r"^FROM ", dockerfile.read_text(), flags=re.MULTILINE)[-1]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_image_installs_the_one_list_of_r_packages(image):
    stage = final_stage(DOCKERFILES[image])
    source = R_PACKAGES if image == "orchestrator" else R_PACKAGES.removeprefix("worker_image/")
    assert f"COPY {source} /tmp/worker_r_packages.txt" in stage
    install = next(run for run in stage.replace("\\\n", " ").splitlines() if "apt-get install" in run)
    assert "r-base-core=" in install and "$(cat /tmp/worker_r_packages.txt)" in install
    others = set(re.findall(r"r-cran-[a-z0-9.]+", stage))
    assert others <= {"r-cran-bayesm"}, f"R packages outside the list: {others}"


def test_the_list_pins_debian_packages_the_worker_checks_against():
    entries = (PROJECT / R_PACKAGES).read_text().split()
    assert entries and all(re.fullmatch(r"r-cran-[a-z0-9.]+=[0-9][^ ]*", entry) for entry in entries), entries


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_base_and_the_python_packages_can_come_from_here(image):
    """BASE_IMAGE and PIP_OPTIONS let a machine without Docker Hub or PyPI in its builds use a
    debootstrap base and a wheelhouse, as scripts/containers_test.sh does."""
    text = DOCKERFILES[image].read_text()
    assert "ARG BASE_IMAGE=debian:12.8-slim" in text
    assert text.count("FROM ${BASE_IMAGE}") == 2
    assert "ARG PIP_OPTIONS" in text and "${PIP_OPTIONS}" in text


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_image_pins_the_r_whose_own_packages_planning_counts_on(image):
    from retail_scoring.packages.base import R_VERSION

    assert f"r-base-core={R_VERSION}." in final_stage(DOCKERFILES[image])

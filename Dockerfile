# The orchestrator image: Apache Airflow 3.3 with the Azure provider, installed from PyPI with the
# project's pinned constraints on a Debian base (the Airflow docs' custom-image route), the
# plugins and the scoring library; R and the worker's R packages (worker_r_packages.txt, the one
# list shared with the worker image) so the local backend scores inside docker-compose too. On
# Azure Batch the scoring itself runs in the worker image (worker_image/Dockerfile).
#   docker build -t retail-forecast-airflow:3.3.2 .
# Build arguments:
#   BASE_IMAGE   another Debian bookworm image (scripts/containers_test.sh passes a debootstrap one
#                where Docker Hub cannot be reached)
#   PIP_OPTIONS  e.g. "--no-index --find-links /opt/project/.wheelhouse" to install from a wheelhouse
#                placed in .wheelhouse instead of PyPI
ARG BASE_IMAGE=debian:12.8-slim

FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
ARG PIP_OPTIONS=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3=3.11.2-1+b1 python3-venv python3-dev gcc \
      r-base-core=4.2.2.20221110-2 r-base-dev=4.2.2.20221110-2 \
 && rm -rf /var/lib/apt/lists/*
COPY . /opt/project
RUN python3 -m venv /opt/airflow-venv \
 && /opt/airflow-venv/bin/pip install --no-cache-dir --disable-pip-version-check -q ${PIP_OPTIONS} \
      -r /opt/project/requirements.txt -c /opt/project/constraints.txt \
 && /opt/airflow-venv/bin/pip install --no-cache-dir --disable-pip-version-check -q ${PIP_OPTIONS} --no-deps \
      /opt/project/worker_image /opt/project/plugins

FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
# Metadata first, while the layers are small (a copying storage driver copies them per instruction).
# The folders compose mounts volumes on are the airflow user's, so new volumes are too.
ENV PATH=/opt/airflow-venv/bin:$PATH AIRFLOW_HOME=/opt/airflow
WORKDIR /opt/airflow
ENTRYPOINT ["airflow"]
CMD ["version"]
COPY worker_image/retail_scoring/worker_r_packages.txt /tmp/worker_r_packages.txt
# r-cran-bayesm: the reference data (orangeJuice) that `retail-scoring build-data` seeds storage with
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3=3.11.2-1+b1 r-base-core=4.2.2.20221110-2 r-cran-bayesm $(cat /tmp/worker_r_packages.txt) \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --home-dir /opt/airflow --uid 50000 --gid 0 airflow \
 && mkdir -p /opt/airflow/auth /opt/airflow/pools /opt/airflow/logs \
 && chown -R airflow:0 /opt/airflow
COPY --from=build /opt/airflow-venv /opt/airflow-venv
USER airflow

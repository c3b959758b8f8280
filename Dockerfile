# The orchestrator image: Airflow 3.3 with the Azure provider, the DAG's plugins and the scoring
# library. R is included so the local backend also works inside docker-compose; on Azure Batch
# the scoring itself runs in the worker image (worker_image/Dockerfile).
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends r-base-core r-cran-gbm r-cran-bayesm \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow requirements.txt constraints.txt /opt/project/
COPY --chown=airflow worker_image /opt/project/worker_image
RUN pip install --no-cache-dir -r /opt/project/requirements.txt -c /opt/project/constraints.txt \
 && pip install --no-cache-dir --no-deps /opt/project/worker_image

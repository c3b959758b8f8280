#!/usr/bin/env bash
# Builds both images and runs them for real, on a Debian machine with nothing but this checkout
# (not part of CI; see docs/deployment.md for how long each step takes):
#   1. a Docker engine: the one `docker info` reaches, or a private one (Debian's docker.io;
#      dockerd --storage-driver=vfs --iptables=false --bridge=none, data under .local/containers),
#      started here and stopped at the end; builds use the host's network (no default bridge)
#   2. a Debian base: debian:12.8-slim when it can be pulled, else `debootstrap --variant=minbase
#      bookworm` imported as a local image; stand-ins for postgres and azurite likewise
#   3. a wheelhouse of the pinned Python packages made on this machine (.local/wheelhouse), which
#      the builds install from (pip inside a build does not see this machine's package index)
#   4. the README's main job, whose forecasts the containers must reproduce byte for byte
#   5. both images; the compose stack (it must refuse to start without its secrets), the weekly
#      DAG at origin 107 in it, its forecasts compared with the main job's, the ranger package
#      scored in it, the report and forecasts opened through the API server with a token
#   6. the worker image as Azure Batch runs it: the DAG on the azure_batch backend through the
#      Batch test endpoint in container mode (tests/airflow/test_worker_image_on_batch.py)
#   7. the stack brought down with its volumes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PROJECT_DIR="$PWD"
STATE="$PROJECT_DIR/.local/containers"
WORKER_IMAGE="retail-scoring-worker:1.0.0"
AIRFLOW_IMAGE="retail-forecast-airflow:3.3.2"
OFFICIAL_BASE="debian:12.8-slim"
mkdir -p "$STATE"

step_started=$SECONDS
step() {
  echo "== [$(date -u +%T), previous step $((SECONDS - step_started)) s] $*"
  step_started=$SECONDS
}

step "tools: Python environment, Azurite, Docker engine packages, debootstrap, compose"
bash scripts/setup.sh >/dev/null
bash scripts/install_azurite.sh
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then missing+=(docker-compose); fi
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(--project-name retail-forecast-containers -f docker-compose.yaml -f scripts/containers/compose.here.yaml)
export COMPOSE_HTTP_TIMEOUT=600  # a copying storage driver (vfs) takes minutes to create a container

step "Docker engine"
engine_pid=""
stop_engine() {
  [ -n "$engine_pid" ] || return 0
  kill "$engine_pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$engine_pid" 2>/dev/null || true
  # dockerd leaves its network namespace mounted, which would keep .local from being removed
  for namespace in "$STATE"/docker/exec/netns/*; do umount "$namespace" 2>/dev/null || true; done
}
if docker info >/dev/null 2>&1; then
  echo "using the Docker engine at ${DOCKER_HOST:-the default socket}"
else
  mkdir -p "$STATE/docker"
  export DOCKER_HOST="unix://$STATE/docker/docker.sock"
  dockerd --storage-driver=vfs --iptables=false --bridge=none --data-root "$STATE/docker/data" \
    --exec-root "$STATE/docker/exec" --pidfile "$STATE/docker/docker.pid" --host "$DOCKER_HOST" \
    >"$STATE/docker/dockerd.log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $STATE/docker/dockerd.log"; exit 1; }
  echo "started a private Docker engine (vfs storage, host networking only) at $DOCKER_HOST"
fi
cleanup() {
  "${compose[@]}" --env-file "$STATE/compose.env" down --volumes --remove-orphans >/dev/null 2>&1 || true
  stop_engine
}
trap cleanup EXIT

step "Debian base image"
base="$OFFICIAL_BASE"
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull "$base" >/dev/null 2>&1; then
  base="local/debian:bookworm-minbase"
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "$OFFICIAL_BASE cannot be pulled here: building $base with debootstrap from Debian's packages"
    rootfs="$STATE/debian-rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1
    # the official image's package sources: bookworm, its updates and security
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "base image: $base (a stand-in for $OFFICIAL_BASE)"
fi

step "wheelhouse of the pinned Python packages"
wheelhouse="$PROJECT_DIR/.local/wheelhouse"
.venv/bin/pip wheel -q --disable-pip-version-check -w "$wheelhouse" -r requirements.txt -c constraints.txt \
  setuptools wheel 2>&1 | grep -v "^WARNING: Location" || true
echo "$(ls "$wheelhouse" | wc -l) wheels in $wheelhouse"
for context in .wheelhouse worker_image/.wheelhouse; do
  rm -rf "$context"
  cp -al "$wheelhouse" "$context"
done
trap 'rm -rf .wheelhouse worker_image/.wheelhouse; cleanup' EXIT

step "the README's main job (the forecasts the containers must reproduce)"
bash scripts/run_weekly_forecast.sh | tail -n 3

build() {  # build IMAGE CONTEXT [docker build options]: on the host's network (the engine may have no bridge)
  local image="$1" context="$2" started=$SECONDS log="$STATE/build-${1%%:*}.log"
  shift 2
  if ! docker build --network host -t "$image" --build-arg BASE_IMAGE="$base" "$@" "$context" >"$log" 2>&1; then
    tail -n 30 "$log"
    echo "building $image failed; the whole log: $log"
    exit 1
  fi
  echo "built $image in $((SECONDS - started)) s: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
}
step "images"
build "$WORKER_IMAGE" worker_image --build-arg PIP_OPTIONS="--no-index --find-links /src/worker_image/.wheelhouse"
build "$AIRFLOW_IMAGE" . --build-arg PIP_OPTIONS="--no-index --find-links /opt/project/.wheelhouse"
if ! docker pull postgres:16.4 >/dev/null 2>&1; then
  build retail-forecast-postgres-standin:15 scripts/containers/postgres
fi
if ! docker pull mcr.microsoft.com/azure-storage/azurite:3.35.0 >/dev/null 2>&1; then
  rm -rf "$STATE/azurite-context"
  mkdir -p "$STATE/azurite-context"
  cp scripts/containers/azurite/Dockerfile "$STATE/azurite-context/"
  cp -al .local/azurite/node_modules "$STATE/azurite-context/node_modules"
  build retail-forecast-azurite-standin:3 "$STATE/azurite-context"
fi

step "the worker image scores as Azure Batch runs it (Batch test endpoint, container mode, Azurite)"
CONTAINERS_TEST_WORKER_IMAGE="$WORKER_IMAGE" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/airflow/test_worker_image_on_batch.py

step "the compose stack refuses to start without its secrets"
empty_env="$STATE/empty.env"
: >"$empty_env"
if refused="$("${compose[@]}" --env-file "$empty_env" config 2>&1)"; then
  echo "the stack rendered without secrets"; exit 1
fi
echo "$refused" | grep -o "set AIRFLOW_[A-Z_]*" | sort -u | sed 's/^/refused: /'

step "the compose stack up"
bash scripts/compose_env.sh "$STATE/compose.env" >/dev/null
"${compose[@]}" --env-file "$STATE/compose.env" up -d
deadline=$((SECONDS + 600))
until curl -sf http://127.0.0.1:8080/api/v2/monitor/health >/dev/null \
  && "${compose[@]}" --env-file "$STATE/compose.env" exec -T airflow-scheduler airflow dags list 2>/dev/null \
  | grep -q weekly_sales_forecast; do
  if [ $SECONDS -ge $deadline ]; then
    "${compose[@]}" --env-file "$STATE/compose.env" logs --tail 30
    echo "the stack did not come up in 600 s"; exit 1
  fi
  sleep 5
done
echo "stack up"

step "the weekly DAG in compose, then the ranger package as a challenger"
CONTAINERS_COMPOSE="${compose[*]} --env-file $STATE/compose.env" CONTAINERS_COMPOSE_ENV="$STATE/compose.env" \
  .venv/bin/python scripts/containers/check_compose_run.py

step "done; bringing the stack down with its volumes"

#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, idempotently: R and its packages from
# Debian (the worker's, as the worker image pins them; bayesm for the data; dplyr for the parity
# test), then a virtualenv from the pins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# docker-compose renders docker-compose.yaml for its test (no engine needed) where the
# `docker compose` plugin is absent.
worker_r_packages=($(sed 's/=.*//' worker_image/retail_scoring/worker_r_packages.txt))
debian_packages=(r-base-core r-base-dev "${worker_r_packages[@]}" r-cran-bayesm r-cran-modeldata r-cran-dplyr docker-compose)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing from Debian: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e worker_image -e plugins

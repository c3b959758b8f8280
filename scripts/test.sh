#!/usr/bin/env bash
# The README's second command: install what is missing, lint, run every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Azurite, the Azure Storage emulator, for the blob storage tests (npm registry).
if [ ! -x .local/azurite/node_modules/.bin/azurite-blob ]; then
  mkdir -p .local/azurite
  npm install --prefix .local/azurite --no-audit --no-fund --silent azurite@3.37.0
fi
source scripts/env.sh
ruff check .
ruff format --check .
pytest -p no:cacheprovider "$@"

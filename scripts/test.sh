#!/usr/bin/env bash
# The README's second command: install what is missing, lint, run every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/install_azurite.sh
source scripts/env.sh
ruff check .
ruff format --check .
pytest -p no:cacheprovider "$@"

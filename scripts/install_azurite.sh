#!/usr/bin/env bash
# Azurite, the Azure Storage emulator, into .local/azurite (npm registry), once: the tests' blob
# storage, and the source of the Azurite stand-in image scripts/containers_test.sh builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .local/azurite/node_modules/.bin/azurite-blob ]; then
  mkdir -p .local/azurite
  npm install --prefix .local/azurite --no-audit --no-fund --silent azurite@3.37.0
fi

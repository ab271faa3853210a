#!/usr/bin/env bash
# Quickstart 2: install dependencies, build everything, run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2

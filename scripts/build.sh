#!/usr/bin/env bash
# Configures and builds Affinity (Release, warnings as errors) into ./build.
#   scripts/build.sh [ninja targets...]     (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DAFFINITY_WERROR=ON >/dev/null
ninja -C build -j "${AFFINITY_JOBS:-2}" "$@"

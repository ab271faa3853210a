#!/usr/bin/env bash
# Installs the Debian packages Affinity needs to build and test. Idempotent and non-interactive:
# packages already installed are left alone, and apt is not touched at all when nothing is
# missing. Runs apt-get through sudo when not root.
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config
  zlib1g-dev librocksdb-dev nlohmann-json3-dev libcli11-dev libeigen3-dev
  libgtest-dev libbenchmark-dev
)
if [[ "${AFFINITY_DEV_TOOLS:-0}" == 1 ]]; then
  packages+=(clang-format)  # CI's format check
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

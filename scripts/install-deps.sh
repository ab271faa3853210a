#!/usr/bin/env bash
# Installs the Debian packages Affinity needs to build and test. Idempotent and non-interactive:
# packages already installed are left alone, and apt is not touched at all when nothing is
# missing. Runs apt-get through sudo when not root.
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config
  zlib1g-dev librocksdb-dev nlohmann-json3-dev libcli11-dev libeigen3-dev
  libgtest-dev libbenchmark-dev
  # Serving: Faiss (static; its CMake target pulls OpenMP, BLAS and LAPACK) and cpp-httplib.
  # OpenBLAS replaces the reference BLAS behind libblas.so.3: Faiss's k-means (the IVF index)
  # builds about 5x faster on it.
  libfaiss-dev libblas-dev liblapack-dev libopenblas0-pthread libcpp-httplib-dev libjemalloc-dev
  # Campaigns: Mustache letters, SMTP delivery (libcurl), HMAC unsubscribe tokens (OpenSSL);
  # the SMTP test's local server (aiosmtpd on Debian's python3).
  libkainjow-mustache-dev libcurl4-openssl-dev libssl-dev python3-aiosmtpd
)
if [[ "${AFFINITY_DEV_TOOLS:-0}" == 1 ]]; then
  packages+=(clang-format wrk)  # CI's format check; the HTTP load benchmark
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

#!/usr/bin/env bash
# HTTP load benchmark (run by hand; needs wrk: AFFINITY_DEV_TOOLS=1 scripts/install-deps.sh).
#
#   benchmarks/serve_load.sh [WORK_DIR] [CUSTOMERS] [PRODUCTS]
#
# Builds a synthetic shop (1M customers, 100k products, 3 purchases each, 64 factors) in WORK_DIR
# (default /tmp/affinity-load) unless it is there, starts `affinity serve` on it, and runs wrk
# against each route over keep-alive connections on loopback: /healthz first (the bare HTTP
# path), then recommendations (k=10), similar (k=10), audience (limit=1000) and POST /v1/events
# (batches of 100). Prints one Markdown table row per route: req/s, p50, p99, non-2xx, and how
# long the VM's CPUs were stopped by its host during the measured run (build/benchmarks/vm_stalls:
# stops of whole host time slices, counted from a 1 ms sleeper per CPU; every request in flight
# during one waits that long, so a run with stalls has a p99 set by the host, not the server).
# Knobs: CONNECTIONS (32), DURATION (20s), WARMUP (5s, unrecorded, before each route),
# WRK_THREADS (2), ROUTES (a subset of the five, space-separated), SHOW_ERRORS=1 (wrk prints the
# body of each non-2xx answer; costs wrk CPU on large answers), AFFINITY (the binary to serve
# with, default build/affinity: for A/B runs of two builds), AUDIENCE_MODEL=1 (build the shop's
# snapshot with an audience model, see make_serving_shop.cc; use another WORK_DIR than a shop
# built without), THINK_MS (each connection pauses this long on average before each request, see
# wrk/route.lua: latency at a rate below saturation; unset, the connections never pause).
set -euo pipefail
source "$(dirname "$0")/wait_ready.sh"
cd "$(dirname "$0")/.."
work=${1:-/tmp/affinity-load}
customers=${2:-1000000}
products=${3:-100000}
connections=${CONNECTIONS:-32}
duration=${DURATION:-20s}
warmup=${WARMUP:-5s}
threads=${WRK_THREADS:-2}
port=${PORT:-18090}
key=load-bench-key-0123456789

scripts/build.sh affinity make_serving_shop vm_stalls >/dev/null
mkdir -p "$work"
if [[ ! -d "$work/db" ]]; then
  build/benchmarks/make_serving_shop "$work" "$customers" "$products" 3 64 "${AUDIENCE_MODEL:-0}"
fi
echo "write $key" >"$work/keys"
"${AFFINITY:-build/affinity}" serve --db "$work/db" --snapshots "$work/snapshots" --listen "127.0.0.1:$port" \
  --api-key-file "$work/keys" --no-insights >"$work/serve.out" 2>"$work/serve.err" &
server=$!
probe=
trap 'kill $server $probe 2>/dev/null; wait $server $probe 2>/dev/null || true' EXIT
wait_ready $server "$work/serve.out" "$work/serve.err" || exit 1
cat "$work/serve.err"
echo "server RSS after start: $(($(ps -o rss= -p $server) / 1024)) MB"
echo
echo "| route | req/s | p50 ms | p99 ms | non-2xx | VM stalls |"
echo "|---|---|---|---|---|---|"
for route in ${ROUTES:-healthz recommendations similar audience events}; do
  # Unrecorded warm-up: the first seconds after start fault in pages and fill caches.
  ROUTE=$route CUSTOMERS=$customers PRODUCTS=$products API_KEY=$key THINK_MS=${THINK_MS:-0} \
    wrk -t"$threads" -c"$connections" -d"$warmup" -s benchmarks/wrk/route.lua \
    "http://127.0.0.1:$port" >/dev/null 2>&1
  build/benchmarks/vm_stalls >"$work/stalls-$route.out" &
  probe=$!
  out=$(ROUTE=$route CUSTOMERS=$customers PRODUCTS=$products API_KEY=$key THINK_MS=${THINK_MS:-0} \
    wrk -t"$threads" -c"$connections" -d"$duration" --latency -s benchmarks/wrk/route.lua \
    "http://127.0.0.1:$port" 2>"$work/wrk-$route.err")
  kill -INT $probe && wait $probe
  probe=
  # "stalls N, M ms in all (P% of CPU time), longest L ms" -> "N, P%, max L ms"
  stalls=$(awk '{gsub(/[,(%]/, ""); print $2 ", " $7 "%, max " $12 " ms"}' "$work/stalls-$route.out")
  echo "$out" >"$work/wrk-$route.out"
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  ms() {  # wrk prints 1.23ms / 456.00us / 1.02s
    awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.2f", v}' <<<"$out"
  }
  errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "| $route | $rps | $(ms 50%) | $(ms 99%) | ${errors:-0} | $stalls |"
done
echo
echo "server RSS at the end: $(($(ps -o rss= -p $server) / 1024)) MB"
curl -s "http://127.0.0.1:$port/v1/model"
echo

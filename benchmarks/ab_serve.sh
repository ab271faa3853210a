#!/usr/bin/env bash
# Interleaved HTTP A/B of two builds of `affinity` on one route (run by hand; needs wrk).
#
#   benchmarks/ab_serve.sh OLD_BINARY NEW_BINARY [WORK_DIR]
#
# Serves the same shop (WORK_DIR, default /tmp/affinity-load-am, made by serve_load.sh) from both
# binaries at once, on two ports (the new one from a fresh copy of the store and snapshots in
# WORK_DIR/ab-copy: a store has one writer), and measures them in turns: a short wrk slice against
# one, then against the other; one unrecorded warm-up pair, then SLICES recorded pairs. On this
# VM a binary's throughput moves by ±20% from one minute to the next; slices a few seconds apart
# see the same machine, so the ratio of each pair is steadier than runs minutes apart. Prints each
# pair (req/s and p99), then the medians and the median of the per-pair ratios new/old.
# Knobs: ROUTE (audience; recommendations, similar), CONNECTIONS (32), SLICE (5s), SLICES (8),
# CUSTOMERS / PRODUCTS (the shop's id ranges, 1000000 / 100000), OLD_FLAGS / NEW_FLAGS (more
# `affinity serve` flags for each side, e.g. NEW_FLAGS="--audience-slots 2" with one binary on
# both sides).
set -euo pipefail
source "$(dirname "$0")/wait_ready.sh"
old=$(realpath "$1")
new=$(realpath "$2")
work=$(realpath "${3:-/tmp/affinity-load-am}")
cd "$(dirname "$0")/.."
route=${ROUTE:-audience}
connections=${CONNECTIONS:-32}
slice=${SLICE:-5s}
slices=${SLICES:-8}
customers=${CUSTOMERS:-1000000}
products=${PRODUCTS:-100000}
key=load-bench-key-0123456789
[[ -d "$work/db" ]] || { echo "no shop in $work: run benchmarks/serve_load.sh first" >&2; exit 2; }
echo "write $key" >"$work/keys"
rm -rf "$work/ab-copy"
mkdir -p "$work/ab-copy"
cp -r "$work/db" "$work/snapshots" "$work/ab-copy/"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true' EXIT
start() {  # start BINARY PORT NAME DIR [FLAGS...]
  # shellcheck disable=SC2086  # FLAGS are words
  "$1" serve --db "$4/db" --snapshots "$4/snapshots" --listen "127.0.0.1:$2" \
    --api-key-file "$work/keys" --no-insights ${5:-} >"$work/ab-$3.out" 2>"$work/ab-$3.err" &
  pids+=($!)
  wait_ready "${pids[-1]}" "$work/ab-$3.out" "$work/ab-$3.err" || exit 1
}
start "$old" 18191 old "$work" "${OLD_FLAGS:-}"
start "$new" 18192 new "$work/ab-copy" "${NEW_FLAGS:-}"

rate() {  # rate PORT: "req/s p99_ms" of one slice; exits on any error answer
  local out
  out=$(ROUTE=$route CUSTOMERS=$customers PRODUCTS=$products API_KEY=$key THINK_MS=0 \
    wrk -t2 -c"$connections" -d"$slice" --latency -s benchmarks/wrk/route.lua \
    "http://127.0.0.1:$1") || { echo "wrk failed against port $1" >&2; exit 1; }
  if grep -qE "Non-2xx|Socket errors" <<<"$out"; then
    echo "errors from the server on port $1:" >&2
    echo "$out" >&2
    exit 1
  fi
  # wrk prints 1.23ms / 456.00us / 1.02s
  awk '/Requests\/sec/ {r = $2}
       $1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else {sub(/s/, "", v); v *= 1000}}
       END {if (r == "" || v == "") exit 1; printf "%s %.1f\n", r, v}' <<<"$out" ||
    { echo "no rate or p99 in wrk's output for port $1:" >&2; echo "$out" >&2; exit 1; }
}
echo "| slice | old req/s | new req/s | new/old | old p99 ms | new p99 ms |"
echo "|---|---|---|---|---|---|"
olds=() news=() ratios=() old99=() new99=()
for i in $(seq 0 "$slices"); do
  # Alternate which goes first, so that neither always follows the other.
  if ((i % 2 == 0)); then
    a=$(rate 18191)
    b=$(rate 18192)
  else
    b=$(rate 18192)
    a=$(rate 18191)
  fi
  read -r o o99 <<<"$a"
  read -r n n99 <<<"$b"
  ((i == 0)) && continue  # warm-up
  r=$(awk -v o="$o" -v n="$n" 'BEGIN {printf "%.3f", (o > 0 ? n / o : 0)}')
  olds+=("$o") news+=("$n") ratios+=("$r") old99+=("$o99") new99+=("$n99")
  echo "| $i | $o | $n | $r | $o99 | $n99 |"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
echo "median: old $(median "${olds[@]}") req/s, new $(median "${news[@]}") req/s, new/old $(median "${ratios[@]}")"
echo "median p99: old $(median "${old99[@]}") ms, new $(median "${new99[@]}") ms"

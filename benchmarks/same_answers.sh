#!/usr/bin/env bash
# Saves the answers of one build of `affinity serve` on a shop, to compare two builds byte for byte
# (a change meant to be faster, not different):
#
#   benchmarks/same_answers.sh BINARY OUT_DIR [WORK_DIR]
#   benchmarks/same_answers.sh /tmp/affinity-old /tmp/answers-old
#   benchmarks/same_answers.sh build/affinity /tmp/answers-new && diff -r /tmp/answers-old /tmp/answers-new
#
# WORK_DIR is a shop of make_serving_shop (default /tmp/affinity-load-am, the load benchmark's with
# an audience model: `AUDIENCE_MODEL=1 benchmarks/serve_load.sh /tmp/affinity-load-am` builds it).
# Writes the audiences (limit 1,000) of 20 products and the recommendations (k=10) of 5 customers,
# one JSON file each.
set -euo pipefail
source "$(dirname "$0")/wait_ready.sh"
bin=${1:?binary}
out=${2:?output directory}
work=${3:-/tmp/affinity-load-am}
port=${PORT:-18097}
mkdir -p "$out"
key="same-answers-key-$RANDOM$RANDOM"
keys=$(mktemp)
echo "admin $key" >"$keys"
"$bin" serve --db "$work/db" --snapshots "$work/snapshots" --listen "127.0.0.1:$port" \
  --api-key-file "$keys" --no-insights >"$out.serve.out" 2>"$out.serve.err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$keys"' EXIT
wait_ready $server "$out.serve.out" "$out.serve.err" || exit 1
get() { curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port$1" >"$2"; }
for p in 17 523 1999 4242 10001 23456 31337 40000 55555 60606 70001 77777 81234 88888 90909 \
  93000 95959 97000 98765 99999; do
  get "/v1/products/p$p/audience?limit=1000" "$out/audience_p$p.json"
done
for c in 1 77 4242 500000 999990; do
  get "/v1/customers/c$c/recommendations?k=10" "$out/recommendations_c$c.json"
done
echo "$(ls "$out" | wc -l) answers in $out"

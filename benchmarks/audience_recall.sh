#!/usr/bin/env bash
# Audience candidate recall: how much of the audience model's own best customers (every customer
# scored: --audience-candidates 1000000) the candidate sources find at smaller multiples.
#
#   benchmarks/audience_recall.sh DB SNAPSHOTS PRODUCTS_FILE [LIMITS="1000 100"] [MULTIPLES="4 2 1"]
#
# PRODUCTS_FILE lists product ids, one per line (e.g. 40 drawn at random). For each multiple it
# starts `affinity serve` (AFFINITY, default build/affinity) on a loopback port, asks
# GET /v1/products/{id}/audience?limit=L for every product and limit, and prints per limit and
# multiple: the mean (and least) share of the exhaustive top L returned, the expected buyers of
# the answer over those of the exhaustive one (Σ probabilities), and the median candidates.
# For the 1M-customer load shop: make it with `make_serving_shop DIR 1000000 100000 3 64 1`,
# then products p<n> for n drawn from 0..99999.
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n 2,14p "$0"; exit 2; }
db=$1 snapshots=$2 products=$3
limits=${4:-1000 100}
multiples=${5:-4 2 1}
port=${PORT:-18099}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "write audience-recall-key-0123456789" >"$out/keys"
for m in 1000000 $multiples; do
  "${AFFINITY:-build/affinity}" serve --db "$db" --snapshots "$snapshots" --listen "127.0.0.1:$port" \
    --api-key-file "$out/keys" --no-insights --audience-candidates "$m" >"$out/serve.out" \
    2>"$out/serve.err" &
  server=$!
  for _ in $(seq 1 300); do
    grep -q ready "$out/serve.out" 2>/dev/null && break
    kill -0 $server 2>/dev/null || { cat "$out/serve.err"; exit 1; }
    sleep 1
  done
  for limit in $limits; do
    while read -r p; do
      [[ -n "$p" ]] || continue
      curl -sf -H "Authorization: Bearer audience-recall-key-0123456789" \
        "http://127.0.0.1:$port/v1/products/$p/audience?limit=$limit" \
        >"$out/$m-$limit-$p.json" || rm -f "$out/$m-$limit-$p.json"
    done <"$products"
  done
  kill $server
  wait $server 2>/dev/null || true
done
python3 - "$out" "$products" "$limits" "$multiples" <<'PY'
import json, statistics, sys, os
out, products, limits, multiples = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
ids = [l.strip() for l in open(products) if l.strip()]
print("| limit | multiple | products | recall of the exhaustive top (min) | expected buyers vs exhaustive | candidates (median) |")
print("|---|---|---|---|---|---|")
for limit in limits:
    for m in multiples:
        recall, ratio, candidates = [], [], []
        for p in ids:
            a, b = f"{out}/1000000-{limit}-{p}.json", f"{out}/{m}-{limit}-{p}.json"
            if not (os.path.exists(a) and os.path.exists(b)):
                continue
            best, got = json.load(open(a)), json.load(open(b))
            top = {c["customer"] for c in best["customers"]}
            if not top:
                continue
            recall.append(len(top & {c["customer"] for c in got["customers"]}) / len(top))
            want = sum(c.get("probability") or 0 for c in best["customers"])
            if want > 0:
                ratio.append(sum(c.get("probability") or 0 for c in got["customers"]) / want)
            candidates.append(got["candidates"])
        if recall:
            print(f"| {limit} | {m} | {len(recall)} | {statistics.mean(recall):.4f} ({min(recall):.3f}) | "
                  f"{statistics.mean(ratio) if ratio else float('nan'):.4f} | {statistics.median(candidates):.0f} |")
PY

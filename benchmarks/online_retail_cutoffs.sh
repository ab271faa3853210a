#!/usr/bin/env bash
# The Online Retail time split over five monthly cutoffs (the "over 5 cutoffs" table in the
# README; run by hand, about 2 minutes): imports the UCI file into WORK_DIR/db unless it is there,
# runs `affinity evaluate --protocol time-split` at each cutoff with a 30-day horizon and no
# model options (so the built-in tuning runs, on the 30 days before each cutoff), and prints per
# cutoff and then weighted by test customers: Recall@20 and NDCG@10 of the main model, iALS alone
# and each baseline.
#
#   benchmarks/online_retail_cutoffs.sh [WORK_DIR] [-- extra evaluate options]
#
# WORK_DIR defaults to /tmp/affinity-retail. Extra options go to every evaluate call, e.g.
# `-- --no-tune --unobserved-weight 0.1 --regularization 0.01`.
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/affinity-retail
if [[ $# -gt 0 && "$1" != "--" ]]; then
  work=$1
  shift
fi
[[ "${1:-}" == "--" ]] && shift
bin=build/affinity
csv=../shared/data/online-retail/online_retail.csv.gz

scripts/build.sh affinity >/dev/null
mkdir -p "$work/runs"
if [[ ! -d "$work/db" ]]; then
  $bin import --quiet --db "$work/db" --preset online-retail "$csv"
fi
cutoffs=(2011-07-01 2011-08-01 2011-09-01 2011-10-01 2011-11-01)
for c in "${cutoffs[@]}"; do
  $bin evaluate --protocol time-split --db "$work/db" --cutoff "$c" --horizon-days 30 --json -q \
    "$@" >"$work/runs/$c.json"
done

/usr/bin/python3 - "$work/runs" "${cutoffs[@]}" <<'PY'
import json, sys
runs, cutoffs = sys.argv[1], sys.argv[2:]
sums, order = {}, []
print("| cutoff | test customers | α₀, λ | model | Recall@20 | NDCG@10 |")
print("|---|---|---|---|---|---|")
for c in cutoffs:
    j = json.load(open(f"{runs}/{c}.json"))
    n = j["data"]["test_users"]
    models = {j["model"]: j["metrics"]}
    models.update({k: v for k, v in j["baselines"].items() if "recall@20" in v})
    o = j["options"]
    for name, m in models.items():
        if name not in sums:
            sums[name] = [0.0, 0.0, 0]
            order.append(name)
        s = sums[name]
        s[0] += n * m["recall@20"]
        s[1] += n * m["ndcg@10"]
        s[2] += n
        print(f"| {c} | {n} | {o['unobserved_weight']:g}, {o['regularization']:g} | {name} "
              f"| {m['recall@20']:.4f} | {m['ndcg@10']:.4f} |")
print()
print("| over the cutoffs (weighted by test customers) | Recall@20 | NDCG@10 |")
print("|---|---|---|")
for name in order:
    r, nd, n = sums[name]
    print(f"| {name} | {r / n:.4f} | {nd / n:.4f} |")
PY

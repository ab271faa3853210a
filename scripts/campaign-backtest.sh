#!/usr/bin/env bash
# Back-test of `affinity campaign` on Online Retail: did the customers written to buy what their
# letter named? The store is cut at T (only rows before T are imported), the model is trained on
# it, and the campaign runs at T for the products first sold in the 30 days before T; then the real
# purchases of [T, T+30 days) are compared with the letters: hits (a letter's customer bought a
# product it named), the model's expected hits (Σ calibrated probability), and the base rate of
# each product among customers who had not bought it (what untargeted letters would hit).
#   scripts/campaign-backtest.sh [T [WORKDIR [campaign flags...]]]
#   (defaults 2011-11-09, /tmp/affinity-campaign-bt)
set -euo pipefail
cd "$(dirname "$0")/.."
cutoff=${1:-2011-11-09}
work=${2:-/tmp/affinity-campaign-bt}
shift $(($# < 2 ? $# : 2))  # the rest goes to `affinity campaign`
bin=build/affinity
csv=../shared/data/online-retail/online_retail.csv.gz
since=$(date -u -d "$cutoff - 30 days" +%F)
rm -rf "$work"
mkdir -p "$work"

# The file up to T, and one synthetic contact per customer (the dataset is anonymous).
/usr/bin/python3 - "$csv" "$cutoff" "$work" <<'PY'
import csv, gzip, sys
src, cutoff, work = sys.argv[1], sys.argv[2], sys.argv[3]
ids = set()
with gzip.open(src, "rt", encoding="latin-1", newline="") as f, \
     gzip.open(f"{work}/before.csv.gz", "wt", encoding="latin-1", newline="") as out:
    r = csv.reader(f)
    w = csv.writer(out)
    w.writerow(next(r))
    for row in r:
        if row[4] < cutoff:
            w.writerow(row)
            if row[6].strip():
                ids.add(str(int(float(row[6]))))
with open(f"{work}/contacts.csv", "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["customer_id", "email"])
    for c in sorted(ids):
        w.writerow([c, f"customer-{c}@example.invalid"])
PY
$bin import --quiet --db "$work/db" --preset online-retail "$work/before.csv.gz" >/dev/null
$bin import --quiet --db "$work/db" --kind customers --columns customer=customer_id \
  "$work/contacts.csv" >/dev/null
$bin train --db "$work/db" --snapshots "$work/snapshots" 2>&1 | grep -E "^published|^audience"
$bin campaign --quiet --db "$work/db" --snapshots "$work/snapshots" --since "$since" \
  --now "$cutoff" --out "$work/letters" --json "$@" >"$work/report.json"

# The letters against what happened.
/usr/bin/python3 - "$csv" "$cutoff" "$work" <<'PY'
import csv, datetime, email, email.policy, glob, gzip, json, re, sys
src, cutoff, work = sys.argv[1], sys.argv[2], sys.argv[3]
end = (datetime.date.fromisoformat(cutoff) + datetime.timedelta(days=30)).isoformat()
before, after = {}, {}  # customer -> products bought before T / in [T, T+30d)
with gzip.open(src, "rt", encoding="latin-1", newline="") as f:
    r = csv.reader(f)
    next(r)
    for inv, code, _, qty, when, price, cust, _ in r:
        if not cust.strip() or inv.startswith("C") or int(qty) <= 0 or float(price) <= 0:
            continue
        c = str(int(float(cust)))
        if when < cutoff:
            before.setdefault(c, set()).add(code)
        elif when < end:
            after.setdefault(c, set()).add(code)
report = json.load(open(f"{work}/report.json"))
products = {p["product"] for p in report["products"]}
customers = set(before)  # the customers the store knew at T
pairs = hits = letters_hit = 0
per_product = {}
written = set()
for path in glob.glob(f"{work}/letters/*.eml"):
    m = email.message_from_bytes(open(path, "rb").read(), policy=email.policy.default)
    c = re.match(r"customer-(\d+)@", m["To"].addresses[0].addr_spec).group(1)
    named = re.findall(r"https://shop\.example/products/([^\s\"<]+)", m.get_body(("plain",)).get_content())
    written.add(c)
    hit = [p for p in named if p in after.get(c, ())]
    pairs += len(named)
    hits += len(hit)
    letters_hit += bool(hit)
    for p in named:
        s = per_product.setdefault(p, [0, 0])
        s[0] += 1
        s[1] += p in after.get(c, ())
# Base rate of each product: buyers in the window among known customers who had not bought it.
base = {}
for p in products:
    eligible = [c for c in customers if p not in before[c]]
    base[p] = sum(p in after.get(c, ()) for c in eligible) / max(1, len(eligible))
untargeted = sum(n * base[p] for p, (n, _) in per_product.items())
n_letters = report["letters_planned"]
buyers = {c for c in customers if any(p in after.get(c, ()) and p not in before[c] for p in products)}
print(json.dumps({
    "cutoff": cutoff, "window_end": end, "new_products": len(products),
    "letters": n_letters, "product_mentions": pairs,
    "hits": hits, "expected_hits": round(report["expected_buyers"], 1),
    "letters_with_a_hit": letters_hit,
    "hit_rate_per_mention": round(hits / max(1, pairs), 4),
    "untargeted_hits": round(untargeted, 1),
    "lift_over_untargeted": round(hits / untargeted, 2) if untargeted else None,
    "customers": len(customers),
    "buyers_of_new_products_in_window": len(buyers),
    "buyers_written_to": len(buyers & written),
}, indent=1))
PY

#!/usr/bin/env bash
# The campaign on Online Retail, end to end (the figures in docs/campaigns.md): import the UCI
# file, give every customer a contact (the dataset is anonymous, so each gets the synthetic address
# customer-<id>@example.invalid; a few opt out, to exercise the rule), train with the audience
# model, then run the campaign for the products first sold in the data's last month
# (2011-11-09 .. 2011-12-09), writing one .eml file per letter; then run it again (nothing new is
# sent) and print both reports.
#   scripts/online-retail-campaign.sh [WORKDIR]      (default /tmp/affinity-or-campaign; made
#                                                     afresh, so the campaign is new each time)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/affinity-or-campaign}
bin=build/affinity
csv=../shared/data/online-retail/online_retail.csv.gz
rm -rf "$work"
mkdir -p "$work"

$bin import --quiet --db "$work/db" --preset online-retail "$csv"
# One contact per customer id (the integer part of CustomerID, as the preset imports it);
# every 50th customer has opted out.
/usr/bin/python3 - "$csv" "$work/contacts.csv" <<'PY'
import csv, gzip, sys
ids = set()
with gzip.open(sys.argv[1], "rt", encoding="latin-1", newline="") as f:
    for row in csv.DictReader(f):
        c = row["CustomerID"].strip()
        if c:
            ids.add(str(int(float(c))))
with open(sys.argv[2], "w", newline="") as out:
    w = csv.writer(out)
    w.writerow(["customer_id", "email", "opted_out"])
    for i, c in enumerate(sorted(ids)):
        w.writerow([c, f"customer-{c}@example.invalid", "true" if i % 50 == 0 else "false"])
PY
$bin import --quiet --db "$work/db" --kind customers --columns customer=customer_id \
  "$work/contacts.csv"
$bin train --db "$work/db" --snapshots "$work/snapshots"
timer=(); [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -v)
"${timer[@]}" $bin campaign --db "$work/db" --snapshots "$work/snapshots" --since 2011-11-09 \
  --now 2011-12-10 --out "$work/letters" --json >"$work/report.json" 2>"$work/campaign.log"
grep -E "Elapsed|Maximum resident" "$work/campaign.log" || true
$bin campaign --db "$work/db" --snapshots "$work/snapshots" --since 2011-11-09 --now 2011-12-10 \
  --out "$work/letters" --json >"$work/report-again.json"
echo "letters written: $(ls "$work/letters" | wc -l)"
echo "report: $work/report.json; second run: $work/report-again.json"

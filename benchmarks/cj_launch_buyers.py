#!/usr/bin/env python3
"""Who buys a Complete Journey launch: did they buy in its category before?

For each cutoff, counts the launches of `affinity evaluate --protocol new-products` (products first
sold in the 30 days from the cutoff whose 30-day window closes before the newest purchase), their
buyers among the customers with a purchase before the cutoff, and the share of those buyers who
had bought before in the product's type (deepest category level), its category, its department,
and of its manufacturer. It reads the two CSV files directly, with the import preset's rules
(docs/import.md: zero-quantity lines dropped, levels stop at the first NA), as an independent
check of the C++ study's counts and a bound on what category history can find.

usage: benchmarks/cj_launch_buyers.py [--data DIR] CUTOFF [CUTOFF ...]   (dates as YYYY-MM-DD)
"""
import argparse
import collections
import csv
import datetime
import gzip

HORIZON = 30 * 86400


def parse_time(text):
    t = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/completejourney-sample")
    ap.add_argument("cutoffs", nargs="+")
    args = ap.parse_args()

    products = {}  # id -> (category paths, top level first; manufacturer)
    with gzip.open(args.data + "/products.csv.gz", "rt") as f:
        for r in csv.DictReader(f):
            levels = []
            for key in ("department", "product_category", "product_type"):
                if r[key] in ("NA", ""):
                    break
                levels.append(r[key])
            paths = tuple("/".join(levels[: i + 1]) for i in range(len(levels)))
            products[r["product_id"]] = (paths, r["manufacturer_id"])
    purchases = []
    with gzip.open(args.data + "/transactions_sample.csv.gz", "rt") as f:
        for r in csv.DictReader(f):
            if float(r["quantity"]) <= 0:
                continue
            purchases.append((parse_time(r["transaction_timestamp"]), r["household_id"],
                              r["product_id"]))
    purchases.sort()
    first_sale = {}
    for t, _, p in purchases:
        first_sale.setdefault(p, t)
    newest = purchases[-1][0]

    for text in args.cutoffs:
        cutoff = datetime.datetime.strptime(text, "%Y-%m-%d").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        bought = collections.defaultdict(set)  # customer -> products bought before the cutoff
        for t, h, p in purchases:
            if t < cutoff:
                bought[h].add(p)
        launches = {p for p, t in first_sale.items()
                    if cutoff <= t < cutoff + HORIZON and t + HORIZON <= newest}
        buyers = collections.defaultdict(set)
        for t, h, p in purchases:
            if p in launches and h in bought and t < first_sale[p] + HORIZON:
                buyers[p].add(h)
        paths = {h: collections.Counter(c for p in ps for c in products.get(p, ((), ""))[0])
                 for h, ps in bought.items()}
        makers = {h: collections.Counter(products.get(p, ((), ""))[1] for p in ps)
                  for h, ps in bought.items()}
        had = collections.Counter()
        pairs = 0
        with_type = 0.0
        for p, who in buyers.items():
            levels, maker = products.get(p, ((), ""))
            for h in who:
                pairs += 1
                had["type"] += bool(levels) and paths[h][levels[-1]] > 0
                had["category"] += len(levels) > 1 and paths[h][levels[1]] > 0
                had["department"] += bool(levels) and paths[h][levels[0]] > 0
                had["manufacturer"] += makers[h][maker] > 0
            if levels:
                with_type += sum(1 for h in bought if paths[h][levels[-1]] > 0) / len(bought)
        print(f"{text}: {len(bought)} customers, {len(launches)} launches "
              f"({len(buyers)} with a buyer), {pairs} buyers")
        print("  buyers who had bought before: " +
              ", ".join(f"{label} {had[k] / pairs:.2f}"
                        for k, label in (("type", "in its type"), ("category", "in its category"),
                                         ("department", "in its department"),
                                         ("manufacturer", "of its manufacturer"))))
        print(f"  customers with a purchase in the launch's type: {with_type / len(buyers):.3f}")


if __name__ == "__main__":
    main()

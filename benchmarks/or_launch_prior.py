#!/usr/bin/env python3
"""Can a product's attributes predict how many buyers a month's Online Retail launches draw?

The audience model's calibration misses on Online Retail come from the month-to-month swing in
buyers per launch (docs/audiences.md). This checks whether a product-level prior from attributes
could have foreseen it. For each cutoff T it takes the launches of the window the retraining job
fits on ([T - 60 d, T - 30 d)) and of the evaluated one ([T, T + 30 d)): products first sold in
the window whose 30 days close before the data ends, and their buyers within 30 days of the first
sale among the customers with a purchase before the window (the C++ study's rules; lines with a customer, a positive quantity and no
cancellation). A ridge regression from the title words and a log-price bucket (the cold-start
features, roughly) to log(1 + buyers), fitted on the products sold before each window, predicts
every launch (each product described by its sales before the fit: its most frequent title and
median price; a launch by its sales in its window and the 30 days after, as the import would
describe it then). The script prints the observed and predicted buyers per launch of both
windows; the prior's targets count every buyer, so compare the ratios, not the levels.
Two targets for the prior: `rate`, each product's buyers per 30 days since its first sale (every
product sold before), and `launch`, the buyers in its own first 30 days (products first sold at
least 30 days after the data begins and 30 days before the window).

usage: benchmarks/or_launch_prior.py [--data FILE] CUTOFF [CUTOFF ...]   (dates as YYYY-MM-DD)
needs: python3-pandas, python3-sklearn (Debian)
"""
import argparse

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import Ridge

H = pd.Timedelta(days=30)


def load(path):
    df = pd.read_csv(path, dtype={"StockCode": str, "InvoiceNo": str})
    df = df[df.CustomerID.notna() & (df.Quantity > 0) & ~df.InvoiceNo.str.startswith("C")]
    df = df.assign(t=pd.to_datetime(df.InvoiceDate))
    return df


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default="../shared/data/online-retail/online_retail.csv.gz")
    ap.add_argument("cutoffs", nargs="+")
    args = ap.parse_args()
    df = load(args.data)
    first = df.groupby("StockCode").t.min()
    first_seen = df.groupby("CustomerID").t.min()
    start, end = df.t.min(), df.t.max()

    def attributes(before):
        """Each product's most frequent title and median price over the sales before `before`
        (for a launch of the window, over its sales in the window's first 30 days at most)."""
        d = df[df.t < before]
        desc = d.groupby("StockCode").Description.agg(lambda s: s.mode().iloc[0] if len(s.mode()) else "")
        return desc, d.groupby("StockCode").UnitPrice.median()

    def text(codes, attrs):
        desc, price = attrs
        # The price bucket as a word of letters and digits only (floor(2 log2 p) + 40 >= 0).
        return [f"{desc[c]} pb{int(np.floor(2 * np.log2(max(price[c], 0.01)))) + 40}" for c in codes]

    def launches(a, b):
        # Launches whose 30 days close before the data ends, as in the C++ study.
        codes = first[(first >= a) & (first < b) & (first + H <= end)].index
        known = set(first_seen[first_seen < a].index)
        g = df[df.StockCode.isin(codes) & df.CustomerID.isin(known)]
        g = g[g.t < g.StockCode.map(first) + H]
        return g.groupby("StockCode").CustomerID.nunique().reindex(codes, fill_value=0)

    def prior(before, target):
        d = df[df.t < before]
        if target == "rate":
            codes = first[first < before].index
            days = (before - first[codes]).dt.days.clip(lower=30)
            y = np.log1p(d.groupby("StockCode").CustomerID.nunique().reindex(codes, fill_value=0) / days * 30)
        else:
            codes = first[(first >= start + H) & (first < before - H)].index
            g = d[d.StockCode.isin(codes)]
            g = g[g.t < g.StockCode.map(first) + H]
            y = np.log1p(g.groupby("StockCode").CustomerID.nunique().reindex(codes, fill_value=0))
        attrs = attributes(before)
        vec = CountVectorizer(binary=True, min_df=2, token_pattern=r"(?u)\bpb\d+\b|\b[a-zA-Z]{2,}\b")
        model = Ridge(alpha=1.0).fit(vec.fit_transform(text(codes, attrs)), np.asarray(y))
        # The window's launches are described by their first 30 days of sales (none are before).
        return lambda codes, window_end: np.expm1(
            model.predict(vec.transform(text(codes, attributes(window_end + H))))).clip(0)

    print("| cutoff | prior | launches fit / evaluated | observed buyers per launch, fit -> evaluated | prior's, fit -> evaluated |")
    print("|---|---|---|---|---|")
    for cutoff in args.cutoffs:
        t = pd.Timestamp(cutoff)
        fit, evaluated = launches(t - 2 * H, t - H), launches(t, t + H)
        for target in ("rate", "launch"):
            pf = prior(t - 2 * H, target)(fit.index, t - H)
            pe = prior(t, target)(evaluated.index, t + H)
            print(f"| {cutoff} | {target} | {len(fit)} / {len(evaluated)} | {fit.mean():.1f} -> {evaluated.mean():.1f} "
                  f"(x{evaluated.mean() / fit.mean():.2f}) | {pf.mean():.1f} -> {pe.mean():.1f} (x{pe.mean() / pf.mean():.2f}) |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the importer test fixtures and their expected counts, independently of the C++ code.

Run from the repository root:  python3 tests/data/make_fixtures.py
Reads ../shared/data (read-only), writes tests/data/{online_retail_slice.csv[.gz],
completejourney_transactions_slice.csv, completejourney_products_slice.csv, expected_counts.json}.
Deterministic: the slices are fixed lists of invoices / households / products chosen below.

Online Retail rules (row classified in this order):
  1 rejected     wrong field count, empty InvoiceNo/StockCode, Quantity not an integer, UnitPrice not a
                 decimal, InvoiceDate not "YYYY-MM-DD HH:MM:SS".
  2 non_product  StockCode starts neither with 5 ASCII digits nor with "DCGS".
  3 adjustment   UnitPrice <= 0, or non-'C' invoice with Quantity <= 0, or 'C' invoice with Quantity >= 0.
  4 anonymous    CustomerID empty.
  5 kept         'C' invoice -> return, else purchase; quantity = |Quantity|; customer = integer part of
                 CustomerID; event id "OR:<InvoiceNo>:<line>", line = 1-based position among ALL rows of
                 that InvoiceNo in file order (dropped rows counted).
  Rows passing 1-3 register their product (StockCode as is). Product created_at = earliest non-'C'
  registered row (else earliest registered row); title = most frequent non-empty Description among
  registered rows, raw (not trimmed), tie -> first seen in file; price = UnitPrice of the latest
  non-'C' registered row (ties -> later in file), else of the latest registered row.
  Customer created_at = earliest kept event; country = Country of the last kept row in file order.
Complete Journey rules:
  products.csv: one product per row ("NA" = missing; empty product_id -> rejected); category levels =
  [department, product_category, product_type] up to the first missing, '/' in a level -> '-';
  title = product_type or product_category or department, + " " + package_size if present.
  transactions: malformed (field count, empty ids, non-numeric quantity/sales_value, bad timestamp)
  -> rejected; quantity <= 0 -> dropped zero_quantity; else purchase, unit_price = sales_value/quantity,
  event id "CJ:<basket_id>:<product_id>". products = catalog ids U kept-event product ids.
Statistics: events_per_customer uses nearest rank c[ceil(p/100*n)-1]; revenue is summed exactly
(Decimal; for CJ sum(quantity*sales_value/quantity) = sum(sales_value)) and rounded half-up to cents.
Histories are sorted by (time, event id as a plain string).
"""

import csv
import gzip
import io
import json
import os
import re
import sys
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal, ROUND_HALF_UP

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
OR_FILE = os.path.join(DATA, "online-retail", "online_retail.csv.gz")
CJ_TX_FILE = os.path.join(DATA, "completejourney-sample", "transactions_sample.csv.gz")
CJ_PROD_FILE = os.path.join(DATA, "completejourney-sample", "products.csv.gz")

OR_SLICE = os.path.join(HERE, "online_retail_slice.csv")
CJ_TX_SLICE = os.path.join(HERE, "completejourney_transactions_slice.csv")
CJ_PROD_SLICE = os.path.join(HERE, "completejourney_products_slice.csv")
EXPECTED = os.path.join(HERE, "expected_counts.json")

OR_HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
             "CustomerID", "Country"]

# --- Online Retail slice: every row of these invoices (file order is kept) ---------------------------
OR_INVOICES = [
    "536381", "C536383",                 # customer 15311: sale (quoted "A,B" description) + cancellation
    "C536379",                           # cancellation with customer, StockCode D (discount)
    "C536391", "550755", "C552049",      # customer 17548: returns before purchases, 3 invoices
    "536403",                            # POST
    "536414",                            # anonymous, UnitPrice 0, empty Description
    "536477",                            # description with embedded "" quote
    "536589",                            # non-cancellation, negative quantity, price 0, anonymous
    "536555", "536596",                  # anonymous sales of real products (leading-space description)
    "536866",                            # lowercase StockCode suffix, anonymous
    "536779",                            # BANK CHARGES with customer
    "C537572", "C537600",                # anonymous cancellations: BANK CHARGES, AMAZONFEE
    "537963",                            # C2 (carriage)
    "538147", "C538124",                 # M (manual) sale and cancellation with customers
    "547966",                            # DOT
    "C538686", "C542540",                # anonymous cancellations of real products (+ POST, DOT)
    "541109",                            # UnitPrice 0 row with a customer
    "542529", "561249",                  # DCGS* codes (anonymous)
    "556955", "564761",                  # gift_0001_* vouchers
    "A563185", "A563186",                # 'A' invoices: StockCode B, "Adjust bad debt", negative price
    "C542805", "542806",                 # 542806 is split in two by C542805 (non-contiguous invoice)
    "550713", "564161", "C568584",       # 23071: typo description first, correct one twice later
    "545904", "C555337",                 # 84906: two descriptions, 1:1 tie (first seen wins)
    "568375",                            # BANK CHARGES with 3-decimal price 0.001
    "C564763",                           # CRUK
    "550188", "550281", "C550668", "550671", "C550672", "C562118",   # customer 12457: many invoices,
    "566916", "567188", "569489", "C569490", "C570835",              # country Switzerland/Cyprus
    "537159", "C537164",                 # customer 14527
    "551340",                            # anonymous order with a sellable DCGS0004 row (registers it)
    "540238",                            # anonymous order with a "... Gift Voucher \u00a340.00" row
]

# --- Complete Journey slice --------------------------------------------------------------------------
CJ_HOUSEHOLDS = [
    "243",   # buys product 1093587, absent from the catalog
    "2223",  # quantity-0 row whose basket_id is written "4.0128e+10"
    "2491",  # quantity-0 row whose sales_value is written "4.440892e-16"
    "1756",  # buys 893651 (product_category NA, product_type present) + quantity-0 row
    "2404",  # fuel: quantity 29945
    "1498",  # quantity-0 row of 5978656 (not in catalog)
    "726",   # three events on 2017-12-31/2018-01-01
    "2106",  # single quantity-0 row only -> no kept event, not a customer
    # then: households with 10..14 rows, ascending numeric id
    "2", "15", "16", "21", "33", "35", "43", "44", "48", "53", "59", "106", "116", "122", "126",
    "142", "146", "148", "152", "158", "160", "171",
]
CJ_EXTRA_PRODUCTS = 20  # catalog products never sold in the slice (chosen below by rule)


def die(msg):
    sys.exit("make_fixtures: " + msg)


# ===================================================================================================
# helpers
# ===================================================================================================
INT_RE = re.compile(r"[+-]?\d+\Z")
DEC_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)\Z")
NUM_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")   # decimal or scientific notation
TS_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\Z")
PRODUCT_CODE_RE = re.compile(r"[0-9]{5}")


def parse_ts(s):
    if not TS_RE.match(s):
        return None
    try:
        datetime.strptime(s, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return s  # canonical form sorts chronologically as a string


def iso(ts):
    return ts.replace(" ", "T") + "Z" if ts else None


def percentiles(counts):
    c = sorted(counts)
    n = len(c)
    if n == 0:
        return {"p50": None, "p90": None, "p99": None, "max": None}

    def rank(p):  # nearest rank: c[ceil(p/100*n)-1], exact integer arithmetic
        return c[-(-p * n // 100) - 1]
    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": c[-1]}


def money(d):
    return float(d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def num(s):
    return float(s)


def read_text_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    return raw.decode("utf-8")


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


# ===================================================================================================
# Online Retail
# ===================================================================================================
def or_apply(text, sample_products, sample_customers, history_customer):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, data = rows[0], rows[1:]
    if header != OR_HEADER:
        die("unexpected Online Retail header %r" % header)

    dropped = Counter({"non_product": 0, "adjustment": 0, "anonymous": 0})
    rejected = 0
    line_of = Counter()                 # InvoiceNo -> rows seen so far
    events = []                         # dicts
    # product registration
    reg_desc = defaultdict(Counter)     # code -> description -> count
    reg_desc_first = defaultdict(dict)  # code -> description -> first row index
    reg_noncancel = {}                  # code -> [earliest_ts, (latest_ts, idx, price)]
    reg_any = {}
    cust_country = {}
    raw_stats = Counter()

    for idx, f in enumerate(data):
        if len(f) >= 1 and f[0]:
            line_of[f[0]] += 1
        if len(f) == 8:
            if f[0].startswith("C"):
                raw_stats["cancellation_rows"] += 1
            if f[6] == "":
                raw_stats["rows_without_customer"] += 1
        # 1. malformed
        if (len(f) != 8 or not f[0] or not f[1] or not INT_RE.match(f[3]) or not DEC_RE.match(f[5])
                or parse_ts(f[4]) is None):
            rejected += 1
            continue
        inv, code, desc, qty_s, ts, price_s, cust_s, country = f
        line = line_of[inv]
        # 2. non-product
        if not (PRODUCT_CODE_RE.match(code) or code.startswith("DCGS")):
            dropped["non_product"] += 1
            continue
        # 3. adjustment
        qty = int(qty_s)
        price = Decimal(price_s)
        cancel = inv.startswith("C")
        if price <= 0 or (not cancel and qty <= 0) or (cancel and qty >= 0):
            dropped["adjustment"] += 1
            continue
        # registers the product
        if desc:
            reg_desc[code][desc] += 1
            reg_desc_first[code].setdefault(desc, idx)
        for table, applies in ((reg_any, True), (reg_noncancel, not cancel)):
            if not applies:
                continue
            cur = table.get(code)
            if cur is None:
                table[code] = [ts, (ts, idx, price_s)]
            else:
                if ts < cur[0]:
                    cur[0] = ts
                if (ts, idx) >= cur[1][:2]:
                    cur[1] = (ts, idx, price_s)
        # 4. anonymous
        if cust_s == "":
            dropped["anonymous"] += 1
            continue
        # 5. kept
        cust = cust_s.split(".", 1)[0]
        events.append({
            "id": "OR:%s:%d" % (inv, line), "customer": cust, "product": code, "time": ts,
            "type": "return" if cancel else "purchase", "quantity": abs(qty),
            "amount": abs(qty) * price,
        })
        cust_country[cust] = country

    products = {}
    for code in reg_any:
        descs = reg_desc.get(code)
        title = None
        if descs:
            title = max(descs, key=lambda d: (descs[d], -reg_desc_first[code][d]))
        src = reg_noncancel.get(code) or reg_any[code]
        products[code] = {"title": title, "price": num(src[1][2]), "created_at": iso(src[0])}

    # title sensitivity to trimming (informational)
    trim_changes = 0
    for code, descs in reg_desc.items():
        t = Counter()
        first = {}
        for d, n in descs.items():
            k = d.strip()
            if not k:
                continue
            t[k] += n
            first[k] = min(first.get(k, 1 << 60), reg_desc_first[code][d])
        if t:
            tt = max(t, key=lambda d: (t[d], -first[d]))
            raw_title = products[code]["title"]
            if raw_title is None or raw_title.strip() != tt:
                trim_changes += 1

    return _summarise(
        rows=len(data), rejected=rejected, dropped=dict(dropped), events=events,
        products=products, cust_country=cust_country, sample_products=sample_products,
        sample_customers=sample_customers, history_customer=history_customer,
        extra={"raw_stats": dict(raw_stats), "title_changes_if_trimmed": trim_changes,
               "products_from_cancellations_only": sum(1 for c in reg_any if c not in reg_noncancel)})


def _summarise(rows, rejected, dropped, events, products, cust_country, sample_products,
               sample_customers, history_customer, extra):
    per_cust = Counter(e["customer"] for e in events)
    cust_created = {}
    for e in events:
        c = e["customer"]
        if c not in cust_created or e["time"] < cust_created[c]:
            cust_created[c] = e["time"]
    ids = Counter(e["id"] for e in events)
    by_type = Counter({"purchase": 0, "return": 0})
    by_type.update(e["type"] for e in events)
    purchases = [e for e in events if e["type"] == "purchase"]
    times = [e["time"] for e in events]

    samples = {"products": {}, "customers": {}, "history": {}}
    for p in sample_products:
        if p not in products:
            die("sample product %s missing" % p)
        samples["products"][p] = products[p]
    for c in sample_customers:
        if c not in per_cust:
            die("sample customer %s has no events" % c)
        s = {"events": per_cust[c], "created_at": iso(cust_created[c])}
        if cust_country is not None:
            s["country"] = cust_country[c]
        samples["customers"][c] = s
    hist = sorted((e for e in events if e["customer"] == history_customer),
                  key=lambda e: (e["time"], e["id"]))
    # make sure the order does not depend on string-vs-numeric comparison of the event id
    alt = sorted(hist, key=lambda e: (e["time"], [int(x) if x.isdigit() else x
                                                  for x in re.split(r"(\d+)", e["id"])]))
    if [e["id"] for e in alt] != [e["id"] for e in hist]:
        die("history of %s is ambiguous (string vs numeric id order)" % history_customer)
    samples["history"] = {"customer": history_customer,
                          "events": [[iso(e["time"]), e["product"], e["type"], e["quantity"]]
                                     for e in hist]}

    out = {
        "rows": rows,
        "rejected": rejected,
        "dropped": dropped,
        "customers": len(per_cust),
        "products": len(products),
        "events": len(events),
        "events_by_type": dict(by_type),
        "first_event": iso(min(times)) if times else None,
        "last_event": iso(max(times)) if times else None,
        "duplicate_event_ids": sum(n - 1 for n in ids.values() if n > 1),
        "events_per_customer": percentiles(per_cust.values()),
        "quantity": sum(e["quantity"] for e in purchases),
        "revenue": money(sum((e["amount"] for e in purchases), Decimal(0))),
        "products_without_title": sum(1 for p in products.values() if not p["title"]),
        "samples": samples,
    }
    out.update(extra)
    return out


def make_or_slice(full_text):
    lines = full_text.split("\r\n")
    if lines[-1] != "":
        die("Online Retail file does not end with CRLF")
    lines = lines[:-1]
    rows = list(csv.reader(io.StringIO(full_text, newline="")))
    if len(rows) != len(lines):
        die("Online Retail has embedded line breaks; slice logic needs updating")
    wanted = set(OR_INVOICES)
    found = {r[0] for r in rows[1:] if r[0] in wanted}
    missing = wanted - found
    if missing:
        die("invoices not found: %s" % sorted(missing))
    keep = [i for i in range(1, len(rows)) if rows[i][0] in wanted]
    buf = io.StringIO(newline="")
    w = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(rows[0])
    for i in keep:
        w.writerow(rows[i])
    text = buf.getvalue()
    # the csv-module output must be byte-identical to the original lines
    original = "".join(lines[i] + "\r\n" for i in [0] + keep)
    if text != original:
        die("csv writer did not reproduce the original quoting")
    data = text.encode("utf-8")
    with open(OR_SLICE, "wb") as f:
        f.write(data)
    with open(OR_SLICE + ".gz", "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    return len(keep)


# ===================================================================================================
# Complete Journey
# ===================================================================================================
def cj_split_lines(text):
    if "\r" in text:
        die("unexpected CR in Complete Journey file")
    lines = text.split("\n")
    if lines[-1] != "":
        die("Complete Journey file does not end with LF")
    return lines[:-1]


def cj_missing(v):
    return v == "NA" or v == ""


def cj_product_record(f):
    pid, _mfr, dept, brand, cat, ptype, size = f
    levels = []
    for v in (dept, cat, ptype):
        if cj_missing(v):
            break
        levels.append(v.replace("/", "-"))  # '/' separates a path's levels
    title = None
    for v in (ptype, cat, dept):
        if not cj_missing(v):
            title = v
            break
    if title is not None and not cj_missing(size):
        title += " " + size
    return {"title": title, "brand": None if cj_missing(brand) else brand, "category": levels}


def cj_apply(prod_text, tx_text, sample_products, sample_customers, history_customer):
    prows = list(csv.reader(io.StringIO(prod_text, newline="")))
    trows = list(csv.reader(io.StringIO(tx_text, newline="")))
    if prows[0] != ["product_id", "manufacturer_id", "department", "brand", "product_category",
                    "product_type", "package_size"]:
        die("unexpected products header")
    if trows[0][:6] != ["household_id", "store_id", "basket_id", "product_id", "quantity",
                        "sales_value"] or trows[0][-1] != "transaction_timestamp":
        die("unexpected transactions header")
    ncol = len(trows[0])

    rejected_p = 0
    catalog = {}
    for f in prows[1:]:
        if len(f) != 7 or f[0] == "":
            rejected_p += 1
            continue
        catalog[f[0]] = cj_product_record(f)

    rejected_t = 0
    dropped = Counter({"zero_quantity": 0})
    events = []
    for f in trows[1:]:
        if (len(f) != ncol or not f[0] or not f[2] or not f[3] or not NUM_RE.match(f[4])
                or not NUM_RE.match(f[5]) or parse_ts(f[-1]) is None):
            rejected_t += 1
            continue
        qty = Decimal(f[4])
        if qty <= 0:
            dropped["zero_quantity"] += 1
            continue
        if qty != qty.to_integral_value():
            die("fractional quantity %r" % f[4])
        sales = Decimal(f[5])
        events.append({"id": "CJ:%s:%s" % (f[2], f[3]), "customer": f[0], "product": f[3],
                       "time": f[-1], "type": "purchase", "quantity": int(qty),
                       # quantity * (sales_value / quantity) == sales_value
                       "amount": sales})
    first_sale = {}
    for e in events:
        p = e["product"]
        if p not in first_sale or e["time"] < first_sale[p]:
            first_sale[p] = e["time"]
    products = {}
    for pid in set(catalog) | set(first_sale):
        rec = dict(catalog.get(pid) or {"title": None, "brand": None, "category": []})
        rec["price"] = None
        rec["created_at"] = iso(first_sale.get(pid))
        rec["in_catalog"] = pid in catalog
        products[pid] = rec

    out = _summarise(
        rows={"transactions": len(trows) - 1, "products": len(prows) - 1},
        rejected=rejected_p + rejected_t, dropped=dict(dropped), events=events, products=products,
        cust_country=None, sample_products=sample_products, sample_customers=sample_customers,
        history_customer=history_customer,
        extra={"rejected_by_file": {"transactions": rejected_t, "products": rejected_p},
               "sold_products_not_in_catalog": sorted(p for p in first_sale if p not in catalog),
               "catalog_products_never_sold": sum(1 for p in catalog if p not in first_sale)})
    return out


def make_cj_slices(tx_text, prod_text):
    tlines = cj_split_lines(tx_text)
    plines = cj_split_lines(prod_text)
    want = set(CJ_HOUSEHOLDS)
    t_keep = [l for l in tlines[1:] if next(csv.reader([l]))[0] in want]
    t_fields = [next(csv.reader([l])) for l in t_keep]
    got = {f[0] for f in t_fields}
    if got != want:
        die("households not found: %s" % sorted(want - got))
    with open(CJ_TX_SLICE, "w", encoding="utf-8", newline="") as fh:
        fh.write(tlines[0] + "\n" + "".join(l + "\n" for l in t_keep))

    sold_slice = {f[3] for f in t_fields}
    sold_full = {next(csv.reader([l]))[3] for l in tlines[1:]}
    pf = [(l, next(csv.reader([l]))) for l in plines[1:]]
    chosen = set(i for i, (_, f) in enumerate(pf) if f[0] in sold_slice)

    # 20 catalog products never sold (anywhere in the sample), picked in file order by kind
    def pick(pred, n):
        k = 0
        for i, (_, f) in enumerate(pf):
            if k == n:
                break
            if i in chosen or f[0] in sold_full or not pred(f):
                continue
            chosen.add(i)
            k += 1
        if k != n:
            die("not enough catalog rows for a kind")
        return n
    total = 0
    total += pick(lambda f: not f[0].isdigit(), 1)                             # "9e+05"
    total += pick(lambda f: f[4] == "NA" and f[5] != "NA", 4)                  # category NA only
    total += pick(lambda f: f[4] == "NA" and f[5] == "NA", 4)                  # title = department
    total += pick(lambda f: f[4] != "NA" and f[5] == "NA", 3)                  # title = category
    total += pick(lambda f: "/" in f[5] and f[6] != "NA", 4)                   # '/' in type + size
    total += pick(lambda f: "/" in f[5] and f[6] == "NA", 4)                   # '/' in type, size NA
    assert total == CJ_EXTRA_PRODUCTS
    with open(CJ_PROD_SLICE, "w", encoding="utf-8", newline="") as fh:
        fh.write(plines[0] + "\n" + "".join(pf[i][0] + "\n" for i in sorted(chosen)))
    return len(t_keep), len(chosen)


# ===================================================================================================
def fixture_checks(or_text, cj_tx_text):
    """Assert the slices contain the cases they are meant to exercise."""
    rows = list(csv.reader(io.StringIO(or_text, newline="")))[1:]
    is_c = lambda r: r[0].startswith("C")
    need = {
        "cancellation invoices with customer": len({r[0] for r in rows if is_c(r) and r[6]}) >= 3,
        "anonymous cancellation": any(is_c(r) and not r[6] for r in rows),
        "anonymous sale": any(not is_c(r) and not r[6] and float(r[5]) > 0 for r in rows),
        "DCGS": any(r[1].startswith("DCGS") for r in rows),
        "gift": any(r[1].startswith("gift_0001_") for r in rows),
        "price 0": any(float(r[5]) == 0 for r in rows),
        "non-C negative qty": any(not is_c(r) and int(r[3]) < 0 for r in rows),
    }
    for code in ("POST", "DOT", "M", "C2", "D", "BANK CHARGES"):
        need[code] = any(r[1] == code for r in rows)
    bad = [k for k, v in need.items() if not v]
    if bad:
        die("Online Retail slice lacks: %s" % bad)
    t = list(csv.reader(io.StringIO(cj_tx_text, newline="")))[1:]
    if not any(r[4] == "0" for r in t):
        die("CJ slice lacks quantity-0 rows")


def main():
    or_full = read_text_gz(OR_FILE)
    if or_full.startswith("\ufeff"):
        die("BOM in Online Retail file")
    n_or = make_or_slice(or_full)
    cj_tx_full = read_text_gz(CJ_TX_FILE)
    cj_prod_full = read_text_gz(CJ_PROD_FILE)
    n_tx, n_prod = make_cj_slices(cj_tx_full, cj_prod_full)

    or_slice = read_text(OR_SLICE)
    if gzip.decompress(open(OR_SLICE + ".gz", "rb").read()).decode("utf-8") != or_slice:
        die("gz slice differs")
    cj_tx_slice = read_text(CJ_TX_SLICE)
    cj_prod_slice = read_text(CJ_PROD_SLICE)
    fixture_checks(or_slice, cj_tx_slice)

    or_products = ["23071", "84906", "DCGS0004", "22467"]
    result = {
        "online_retail_slice": or_apply(or_slice, or_products, ["12457", "17548"], "17548"),
        "online_retail_full": or_apply(or_full, ["23071", "84906", "85123A", "DCGS0004"],
                                       ["12457", "17548"], "17548"),
        "completejourney_slice": cj_apply(cj_prod_slice, cj_tx_slice,
                                          ["893651", "1093587", "6534178", "9e+05"],
                                          ["2491", "726"], "2223"),
        "completejourney_full": cj_apply(cj_prod_full, cj_tx_full,
                                         ["893651", "1093587", "6534178", "9e+05"],
                                         ["2491", "726"], "2223"),
    }

    full = result["online_retail_full"]
    prov = {"rows": 541909, "cancellation_rows": 9288, "rows_without_customer": 135080}
    got = {"rows": full["rows"], **full["raw_stats"]}
    for k, v in prov.items():
        if got[k] != v:
            die("PROVENANCE mismatch %s: %s != %s" % (k, got[k], v))

    with open(EXPECTED, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(result, fh, indent=1, sort_keys=True, ensure_ascii=False)
        fh.write("\n")

    print("wrote %s (%d rows), %s.gz" % (os.path.relpath(OR_SLICE, ROOT), n_or,
                                         os.path.relpath(OR_SLICE, ROOT)))
    print("wrote %s (%d rows), %s (%d rows)" % (os.path.relpath(CJ_TX_SLICE, ROOT), n_tx,
                                                os.path.relpath(CJ_PROD_SLICE, ROOT), n_prod))
    print("wrote %s" % os.path.relpath(EXPECTED, ROOT))
    print("PROVENANCE cross-check OK: %s" % got)
    for name, r in result.items():
        print("%-22s rows=%s rejected=%s dropped=%s" % (name, r["rows"], r["rejected"], r["dropped"]))
        print("%-22s customers=%d products=%d events=%d %s %s..%s dup_ids=%d qty=%d revenue=%.2f"
              % ("", r["customers"], r["products"], r["events"], r["events_by_type"],
                 r["first_event"], r["last_event"], r["duplicate_event_ids"], r["quantity"],
                 r["revenue"]))
        print("%-22s events/customer %s" % ("", r["events_per_customer"]))


if __name__ == "__main__":
    main()

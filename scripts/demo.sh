#!/usr/bin/env bash
# Quickstart 1: install dependencies, build, generate a synthetic demo shop, import it into an
# embedded RocksDB store under ./data/shop, and run the main jobs on it: stats, customer insights,
# and the retraining job (a model snapshot under ./data/snapshots).
# Re-running it is safe: the generator is deterministic and imports are idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh affinity

bin=build/affinity
$bin demo-data --out data/demo
$bin import --db data/shop --kind customers --columns customer=customer_id data/demo/customers.csv
$bin import --db data/shop --kind products --columns product=product_id data/demo/products.csv
$bin import --db data/shop --kind purchases \
  --columns customer=customer_id,product=product_id,invoice=order_id,price=unit_price \
  data/demo/purchases.csv
$bin stats --db data/shop
$bin insights --db data/shop
$bin train --db data/shop --snapshots data/snapshots

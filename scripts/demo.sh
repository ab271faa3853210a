#!/usr/bin/env bash
# Quickstart 1: install dependencies, build, generate a synthetic demo shop, import it into an
# embedded RocksDB store under ./data/shop, and run the main jobs on it: stats, customer insights,
# the retraining job (a model snapshot under ./data/snapshots), the audience of the newest
# product, the campaign letters for the last month's products (./data/letters), and finally the
# HTTP server on 127.0.0.1:8080 (Ctrl-C stops it) after printing example calls.
# AFFINITY_DEMO_SERVE=0 skips the server; AFFINITY_DEMO_LISTEN changes the address.
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
# Who to tell about the newest product (ids follow launch order), with calibrated probabilities.
$bin audience --db data/shop --snapshots data/snapshots --product P1500 --limit 10
# One letter per interested customer about the products launched in the last month, as .eml files
# (re-running sends nothing new: the ledger remembers the campaign).
$bin campaign --db data/shop --snapshots data/snapshots --since 2025-12-01 --out data/letters

[[ "${AFFINITY_DEMO_SERVE:-1}" == 1 ]] || exit 0
# An admin key for the demo (kept across runs; data/ is not in git).
if [[ ! -s data/api-keys ]]; then
  echo "admin demo-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >data/api-keys
  chmod 600 data/api-keys
fi
key=$(awk '{print $2}' data/api-keys)
listen=${AFFINITY_DEMO_LISTEN:-127.0.0.1:8080}
url="http://$listen"
cat <<EOF

Starting the server on $url (Ctrl-C stops it). Try, from another terminal (what concerns a
customer needs a key; the catalog does not):
  auth='Authorization: Bearer $key'
  curl -s -H "\$auth" '$url/v1/customers/C00264/recommendations?k=5'
  curl -s -H "\$auth" '$url/v1/customers/C00264/recommendations?k=5&category=Sports'
  curl -s '$url/v1/products/P0821/similar?k=5'
  curl -s -H "\$auth" '$url/v1/products/P0821/audience?limit=10'
  curl -s -H "\$auth" -d '{"product":{"title":"Trail running shoe","category":"Sports/Running"},"limit":5}' $url/v1/audience
  curl -s -H "\$auth" '$url/v1/customers/C00264/interests'
  curl -s -H "\$auth" '$url/v1/customers/C00264/insights'
  curl -s -H "\$auth" -d '{"events":[{"customer":"C00264","product":"P0002"}]}' $url/v1/events
  curl -s -H "\$auth" $url/v1/customers/C00264
  curl -s -X POST -H "\$auth" -H 'Content-Length: 0' $url/v1/admin/reload
  curl -s $url/metrics
API reference: docs/api.md (OpenAPI: docs/openapi.yaml).
EOF
exec $bin serve --db data/shop --snapshots data/snapshots --listen "$listen" --api-key-file data/api-keys

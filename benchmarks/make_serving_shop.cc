// Writes a synthetic shop for the HTTP load benchmark (benchmarks/serve_load.sh): a store with
// N customers, M products and E purchases per customer, and a model snapshot of d factors whose
// vectors agree with those purchases (customers and products fall into 64 taste clusters; a
// customer buys products of their cluster, and both sides' vectors are the cluster centre plus
// noise). Training is skipped on purpose: this measures serving, not learning.
//
//   make_serving_shop OUT_DIR [customers=1000000] [products=100000] [events=3] [factors=64]
//                     [audience_model=0]
//
// With audience_model 1 the snapshot also carries an audience model (new_products.h), so that
// audiences are served as with a trained shop's snapshot: a ridge cold-start map fitted on the
// products' attributes (department, category, price) and the factors, and the logistic weights
// that the Complete Journey evaluation fitted at 2017-11-01 (fixed constants: the synthetic shop
// has no launches to fit them on; they set what a request costs, not how good its answer is).
//
// Writes OUT_DIR/db and OUT_DIR/snapshots; refuses to overwrite an existing OUT_DIR/db.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "affinity/new_products.h"
#include "affinity/snapshot.h"
#include "affinity/store.h"

namespace {

using affinity::RowMajorMatrixXf;

std::string CustomerName(int64_t i) { return "c" + std::to_string(i); }
std::string ProductName(int64_t i) { return "p" + std::to_string(i); }

int Fail(const affinity::Status& s) {
  std::fprintf(stderr, "make_serving_shop: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr,
                 "usage: make_serving_shop OUT_DIR [customers] [products] [events per customer] "
                 "[factors] [audience_model 0|1]\n");
    return 2;
  }
  const std::string out = argv[1];
  const int64_t customers = argc > 2 ? std::atoll(argv[2]) : 1'000'000;
  const int64_t products = argc > 3 ? std::atoll(argv[3]) : 100'000;
  const int events_per_customer = argc > 4 ? std::atoi(argv[4]) : 3;
  const int d = argc > 5 ? std::atoi(argv[5]) : 64;
  const bool audience_model = argc > 6 && std::string(argv[6]) == "1";
  constexpr int kClusters = 64;
  if (customers < 1 || products < kClusters || events_per_customer < 1 || d < 1) {
    std::fprintf(stderr, "make_serving_shop: sizes must be positive (products >= 64)\n");
    return 2;
  }
  if (std::filesystem::exists(out + "/db")) {
    std::fprintf(stderr, "make_serving_shop: %s/db exists; remove it first\n", out.c_str());
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  auto store = affinity::Store::Open(out + "/db", affinity::StoreOptions());
  if (!store.ok()) return Fail(store.status());

  // Products first, so that their internal ids are 0..M-1 in order.
  std::mt19937_64 rng(11);
  std::vector<affinity::ItemAttributes> items(static_cast<size_t>(products));
  std::vector<int32_t> buyers(static_cast<size_t>(products), 0);
  {
    std::vector<std::pair<std::string, affinity::ProductAttributes>> batch;
    for (int64_t p = 0; p < products; ++p) {
      affinity::ProductAttributes a;
      a.title = "Product " + std::to_string(p);
      a.category = std::vector<std::string>{"Dept" + std::to_string(p % 8),
                                            "Cat" + std::to_string(p % kClusters)};
      a.price = 5.0 + static_cast<double>(p % 100);
      items[static_cast<size_t>(p)] = affinity::ToItemAttributes(a);
      batch.emplace_back(ProductName(p), std::move(a));
      if (batch.size() == 20'000 || p + 1 == products) {
        if (auto r = (*store)->UpsertProducts(batch); !r.ok()) return Fail(r.status());
        batch.clear();
      }
    }
  }
  // Purchases: customer i (cluster i % 64) buys products of the same cluster.
  const int64_t per_cluster = products / kClusters;
  std::uniform_int_distribution<int64_t> pick(0, per_cluster - 1);
  std::uniform_int_distribution<int64_t> when(0, 365LL * 86400);
  constexpr int64_t kStart = 1735689600;  // 2025-01-01
  std::vector<affinity::EventInput> batch;
  for (int64_t c = 0; c < customers; ++c) {
    for (int e = 0; e < events_per_customer; ++e) {
      affinity::EventInput in;
      in.customer = CustomerName(c);
      const int64_t p = (c % kClusters) + kClusters * pick(rng);
      ++buyers[static_cast<size_t>(p)];
      in.product = ProductName(p);
      in.time = kStart + when(rng);
      in.unit_price = 10;
      in.event_id = in.customer + "/" + std::to_string(e);
      batch.push_back(std::move(in));
    }
    if (batch.size() >= 30'000 || c + 1 == customers) {
      if (auto r = (*store)->AppendEvents(batch); !r.ok()) return Fail(r.status());
      batch.clear();
      if ((c + 1) % 200'000 == 0) {
        std::fprintf(stderr, "  %lld customers written\n", static_cast<long long>(c + 1));
      }
    }
  }
  if (auto s = (*store)->Flush(); !s.ok()) return Fail(s);

  // Factors: cluster centre + noise, both sides, rows by internal id.
  std::normal_distribution<float> normal(0, 1);
  RowMajorMatrixXf centres(kClusters, d);
  for (int64_t i = 0; i < centres.size(); ++i) centres.data()[i] = normal(rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  affinity::Snapshot snapshot;
  snapshot.user_factors.resize(customers, d);
  snapshot.item_factors.resize(products, d);
  snapshot.customer_ids.resize(static_cast<size_t>(customers));
  snapshot.product_ids.resize(static_cast<size_t>(products));
  for (int64_t p = 0; p < products; ++p) {
    auto id = (*store)->FindProduct(ProductName(p));
    if (!id.ok()) return Fail(id.status());
    for (int j = 0; j < d; ++j) {
      snapshot.item_factors(id->value, j) =
          scale * (centres(p % kClusters, j) + 0.7f * normal(rng));
    }
    snapshot.product_ids[id->value] = ProductName(p);
  }
  for (int64_t c = 0; c < customers; ++c) {
    auto id = (*store)->FindCustomer(CustomerName(c));
    if (!id.ok()) return Fail(id.status());
    for (int j = 0; j < d; ++j) {
      snapshot.user_factors(id->value, j) =
          scale * (centres(c % kClusters, j) + 0.7f * normal(rng));
    }
    snapshot.customer_ids[id->value] = CustomerName(c);
  }
  affinity::IalsOptions options;
  options.factors = d;
  snapshot.manifest = {{"model", "synthetic"},
                       {"options", affinity::IalsOptionsJson(options)},
                       {"source", {{"reference_time", kStart + 365 * 86400}}}};
  if (audience_model) {
    // Products were created first, in order, so internal id p is product p: `items` and
    // `buyers` line up with the rows of item_factors.
    affinity::ColdStartModel map;
    auto report = map.Fit(items, buyers, snapshot.item_factors, affinity::ColdStartOptions());
    if (!report.ok()) return Fail(report.status());
    snapshot.cold_start = std::move(map);
    affinity::LogisticCalibration audience;
    audience.features.assign(affinity::kAudienceFeatureNames.begin(),
                             affinity::kAudienceFeatureNames.end());
    audience.weights = {-0.173, 0.714, 0.680, 0.198, 0.013, 0.221, 0.104, 0.228};
    audience.intercept = -10.566;
    audience.horizon_days = 30;
    snapshot.audience = audience;
    snapshot.score_scale = affinity::ScoreScale(snapshot.user_factors, snapshot.item_factors);
  }
  auto version = affinity::PublishSnapshot(out + "/snapshots", snapshot);
  if (!version.ok()) return Fail(version.status());
  std::fprintf(stderr,
               "make_serving_shop: %lld customers, %lld products, %lld purchases, %d factors in "
               "%.0f s\n",
               static_cast<long long>(customers), static_cast<long long>(products),
               static_cast<long long>(customers * events_per_customer), d,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

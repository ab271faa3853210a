// A tiny shop with a planted answer, for the serving tests: two tastes that never mix.
//   customers a00..a29 buy only kitchen products k00..k19 (category Home/Kitchen/...),
//   customers b00..b29 buy only running products r00..r19 (category Sports/Running/...).
// Each customer buys 6 random products of their side.
// A model trained on it must keep the sides apart: kitchen products for a-customers, running
// products for b-customers, kitchen customers as the audience of a kitchen product.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "affinity/interactions.h"
#include "affinity/models/ials.h"
#include "affinity/serving.h"
#include "affinity/snapshot.h"
#include "affinity/store.h"
#include "test_util.h"

namespace affinity::testing {

inline std::string PlantedId(char side, int i) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%c%02d", side, i);
  return buf;
}

inline constexpr UnixSeconds kPlantedStart = 1735689600;  // 2025-01-01T00:00:00Z

// The products bought by customer i of a side (6 distinct indices of 0..19, a fixed random
// draw per customer: no structure inside a side beyond popularity noise).
inline std::vector<int> PlantedBasket(int i, char side = 'a') {
  std::mt19937 rng(static_cast<uint32_t>(i * 7919 + (side == 'a' ? 1 : 2)));
  std::vector<int> all(20);
  for (int k = 0; k < 20; ++k) all[k] = k;
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(6);
  return all;
}

inline void FillPlantedShop(Store* store) {
  std::vector<std::pair<std::string, ProductAttributes>> products;
  for (int i = 0; i < 20; ++i) {
    ProductAttributes k;
    k.title = "Kitchen thing " + std::to_string(i);
    k.category = std::vector<std::string>{"Home", "Kitchen", i < 10 ? "Mugs" : "Pans"};
    k.price = 10 + i;
    products.emplace_back(PlantedId('k', i), k);
    ProductAttributes r;
    r.title = "Running thing " + std::to_string(i);
    r.category = std::vector<std::string>{"Sports", "Running", i < 10 ? "Shoes" : "Shirts"};
    r.price = 30 + i;
    products.emplace_back(PlantedId('r', i), r);
  }
  ASSERT_TRUE(store->UpsertProducts(products).ok());
  std::vector<std::pair<std::string, CustomerProfile>> customers;
  std::vector<EventInput> events;
  for (char side : {'a', 'b'}) {
    for (int i = 0; i < 30; ++i) {
      CustomerProfile p;
      p.email = PlantedId(side, i) + "@example.com";
      p.name = "Customer " + PlantedId(side, i);
      customers.emplace_back(PlantedId(side, i), p);
      const std::vector<int> basket = PlantedBasket(i, side);
      for (size_t j = 0; j < basket.size(); ++j) {
        EventInput e;
        e.customer = PlantedId(side, i);
        e.product = PlantedId(side == 'a' ? 'k' : 'r', basket[j]);
        e.time = kPlantedStart + static_cast<int64_t>(j) * 86400 + i * 60;
        e.quantity = 1;
        e.unit_price = 10;
        e.event_id = e.customer + "-" + std::to_string(j);
        events.push_back(e);
      }
    }
  }
  ASSERT_TRUE(store->UpsertCustomers(customers).ok());
  ASSERT_TRUE(store->AppendEvents(events).ok());
}

// A snapshot of a trained model: its factors and the store's ids for its rows.
inline Snapshot SnapshotOf(const Store& store, const IalsModel& model, const CsrMatrix& matrix) {
  Snapshot s;
  s.user_factors = model.user_factors();
  s.item_factors = model.item_factors();
  s.item_weights = model.item_weights();
  for (int64_t u = 0; u < matrix.rows; ++u) {
    auto id = store.CustomerExternalId(CustomerId{static_cast<uint32_t>(u)});
    s.customer_ids.push_back(id.ok() ? *id : "");
  }
  for (int64_t i = 0; i < matrix.cols; ++i) {
    auto id = store.ProductExternalId(ProductId{static_cast<uint32_t>(i)});
    s.product_ids.push_back(id.ok() ? *id : "");
  }
  return s;
}

// Trains iALS on the store as `affinity train` does and publishes a snapshot under `root`.
// Returns the version.
inline int64_t TrainPlantedSnapshot(const Store& store, const std::string& root,
                                    uint64_t seed = 1) {
  InteractionOptions io;
  io.reference_time = kPlantedStart + 30 * 86400;
  auto m = ReadPurchaseMatrix(store, io);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  IalsOptions o;
  o.factors = 8;
  o.iterations = 15;
  o.unobserved_weight = 1.0;
  o.regularization = 0.01;
  o.num_threads = 1;
  o.seed = seed;
  o.compute_loss = false;
  IalsModel model(o);
  EXPECT_TRUE(model.Fit(*m).ok());
  Snapshot s = SnapshotOf(store, model, *m);
  s.manifest = {{"model", "ials"},
                {"options", IalsOptionsJson(o)},
                {"source", {{"reference_time", *io.reference_time}}}};
  auto v = PublishSnapshot(root, s);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : -1;
}

// Opens a store in dir/db, fills it with `fill`, publishes snapshot v1 under dir/snaps with
// `train` (which returns the version), and opens a ServingEngine on them (left null on failure,
// with the failure reported).
template <typename Fill, typename Train>
void OpenShopEngine(const ScratchDir& dir, const Fill& fill, const Train& train,
                    std::unique_ptr<Store>* store, std::unique_ptr<ServingEngine>* engine,
                    const ServingOptions& options = ServingOptions()) {
  auto opened = Store::Open(dir.Sub("db"), StoreOptions());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  *store = std::move(*opened);
  fill(store->get());
  ASSERT_EQ(train(**store, dir.Sub("snaps")), 1);
  auto serving = ServingEngine::Open(store->get(), dir.Sub("snaps"), options);
  ASSERT_TRUE(serving.ok()) << serving.status().ToString();
  *engine = std::move(*serving);
}

// The planted shop, served.
inline void OpenPlantedEngine(const ScratchDir& dir, std::unique_ptr<Store>* store,
                              std::unique_ptr<ServingEngine>* engine) {
  OpenShopEngine(
      dir, FillPlantedShop,
      [](const Store& s, const std::string& root) { return TrainPlantedSnapshot(s, root); }, store,
      engine);
}

}  // namespace affinity::testing

// A shop with a planted answer and a history of product launches, for the new-product tests.
//   customers a00..a39 buy only kitchen products, b00..b39 only running products;
//   base products k00..k19 (Home/Kitchen/Mugs|Pans) and r00..r19 (Sports/Running/Shoes|Shirts),
//   each customer buying 6 of their side on days 0..59;
//   launches every 4 days from day 60 to day 116: kitchen product kn<j> and running product
//   rn<j>, each first sold on its launch day and bought by 10 customers of its side within
//   8 days (so the newest event is on day 123).
// A model must place a launch by its attributes on its side: kitchen customers are the audience
// of a new kitchen product.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "affinity/interactions.h"
#include "affinity/new_products.h"
#include "affinity/serving.h"
#include "affinity/snapshot.h"
#include "affinity/store.h"
#include "planted_shop.h"
#include "test_util.h"

namespace affinity::testing {

inline constexpr UnixSeconds kLaunchStart = 1735689600;  // 2025-01-01T00:00:00Z
inline constexpr int kLaunchCustomers = 40;              // per side
inline constexpr int kLaunches = 15;                     // per side

inline UnixSeconds LaunchDay(double day) {
  return kLaunchStart + static_cast<int64_t>(day * 86400);
}

inline ProductAttributes LaunchProduct(char side, int i, bool launch) {
  ProductAttributes p;
  const bool first = i % 2 == 0;
  if (side == 'k') {
    p.category = std::vector<std::string>{"Home", "Kitchen", first ? "Mugs" : "Pans"};
    p.title = std::string(first ? "Enamel mug" : "Cast iron pan") + (launch ? " new " : " ") +
              std::to_string(i);
    p.price = 12 + i % 5;
  } else {
    p.category = std::vector<std::string>{"Sports", "Running", first ? "Shoes" : "Shirts"};
    p.title = std::string(first ? "Trail shoe" : "Running shirt") + (launch ? " new " : " ") +
              std::to_string(i);
    p.price = 60 + i % 5;
  }
  return p;
}

inline std::string LaunchCustomer(char side, int i) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%c%02d", side, i);
  return buf;
}

inline void FillLaunchShop(Store* store) {
  std::mt19937 rng(5);
  std::vector<std::pair<std::string, ProductAttributes>> products;
  std::vector<std::pair<std::string, CustomerProfile>> customers;
  std::vector<EventInput> events;
  auto buy = [&](const std::string& customer, const std::string& product, UnixSeconds time) {
    EventInput e;
    e.customer = customer;
    e.product = product;
    e.time = time;
    e.unit_price = 10;
    e.event_id = customer + "|" + product + "|" + std::to_string(time);
    events.push_back(e);
  };
  for (char side : {'a', 'b'}) {
    const char kind = side == 'a' ? 'k' : 'r';
    for (int i = 0; i < 20; ++i) {
      products.emplace_back(std::string(1, kind) + (i < 10 ? "0" : "") + std::to_string(i),
                            LaunchProduct(kind, i, false));
    }
    for (int c = 0; c < kLaunchCustomers; ++c) {
      CustomerProfile p;
      p.name = "Customer " + LaunchCustomer(side, c);
      customers.emplace_back(LaunchCustomer(side, c), p);
      std::vector<int> basket(20);
      for (int i = 0; i < 20; ++i) basket[i] = i;
      std::shuffle(basket.begin(), basket.end(), rng);
      for (int j = 0; j < 6; ++j) {
        const int i = basket[j];
        buy(LaunchCustomer(side, c), std::string(1, kind) + (i < 10 ? "0" : "") + std::to_string(i),
            LaunchDay(std::uniform_real_distribution<double>(0, 59)(rng)));
      }
    }
    for (int j = 0; j < kLaunches; ++j) {
      const std::string id = std::string(1, kind) + "n" + std::to_string(j);
      products.emplace_back(id, LaunchProduct(kind, j, true));
      std::vector<int> who(kLaunchCustomers);
      for (int c = 0; c < kLaunchCustomers; ++c) who[c] = c;
      std::shuffle(who.begin(), who.end(), rng);
      for (int b = 0; b < 10; ++b) {
        const double day =
            60 + 4 * j + (b == 0 ? 0.01 : std::uniform_real_distribution<double>(0.1, 8)(rng));
        buy(LaunchCustomer(side, who[b]), id, LaunchDay(day));
      }
    }
  }
  ASSERT_TRUE(store->UpsertProducts(products).ok());
  ASSERT_TRUE(store->UpsertCustomers(customers).ok());
  ASSERT_TRUE(store->AppendEvents(events).ok());
}

inline IalsOptions LaunchIalsOptions() {
  IalsOptions o;
  o.factors = 8;
  o.iterations = 15;
  o.unobserved_weight = 1.0;
  o.regularization = 0.01;
  o.num_threads = 1;
  o.compute_loss = false;
  return o;
}

// Trains on every purchase before `end` as `affinity train` does (with the audience model:
// horizon 10 days) and publishes the snapshot under `root`. Returns the version (-1 on failure,
// reported).
inline int64_t TrainLaunchSnapshot(const Store& store, const std::string& root,
                                   UnixSeconds end = LaunchDay(124)) {
  InteractionOptions io;
  io.to = end;
  io.reference_time = end;
  auto m = ReadPurchaseMatrix(store, io);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return -1;
  const IalsOptions o = LaunchIalsOptions();
  IalsModel model(o);
  EXPECT_TRUE(model.Fit(*m).ok());
  Snapshot s = SnapshotOf(store, model, *m);
  AudienceModelOptions ao;
  ao.horizon_days = 10;
  auto audience = FitAudienceModel(store, *m, model, o, std::nullopt, end, ao);
  EXPECT_TRUE(audience.ok()) << audience.status().ToString();
  if (!audience.ok()) return -1;
  EXPECT_TRUE(audience->cold_start) << audience->cold_start_skipped;
  EXPECT_TRUE(audience->calibration) << audience->calibration_skipped;
  s.cold_start = audience->cold_start;
  s.audience = audience->calibration;
  s.score_scale = audience->score_scale;
  s.manifest = {
      {"model", "ials"}, {"options", IalsOptionsJson(o)}, {"source", {{"reference_time", end}}}};
  auto v = PublishSnapshot(root, s);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : -1;
}

// The launch shop, served (snapshot v1 with the audience model).
inline void OpenLaunchEngine(const ScratchDir& dir, std::unique_ptr<Store>* store,
                             std::unique_ptr<ServingEngine>* engine,
                             const ServingOptions& options = ServingOptions()) {
  OpenShopEngine(
      dir, FillLaunchShop,
      [](const Store& s, const std::string& root) { return TrainLaunchSnapshot(s, root); }, store,
      engine, options);
}

}  // namespace affinity::testing

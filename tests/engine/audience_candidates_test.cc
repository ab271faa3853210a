// Audience candidates on a shop too large to score every customer per request: the candidate
// sources (customer index, category buyers by prior at two levels, customers by prior) must find
// the audience model's own best customers, those that scoring every customer ranks first, and
// read each source only as deep as it keeps adding to the audience.
//
// The shop: 6,000 customers in 8 taste clusters, 800 products; product p is in category
// Dept<p % 2>/Cat<p % 8>, and customer i buys 2-7 products of cluster i % 8 at random times over
// a year (so tenure, rate and recent purchases differ). The snapshot's factors are the cluster
// centre plus noise, with a ridge cold-start map and fixed logistic weights (those Complete
// Journey fitted; the score's weight is negative), as benchmarks/make_serving_shop builds.
// Within a category every buyer has a similar count, so the order comes from the prior (rate,
// recency) and the score: candidates taken in arbitrary order from the category's buyers, or
// from the customers with the most distinct products, miss most of the model's top.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <set>

#include "affinity/new_products.h"
#include "affinity/serving.h"
#include "affinity/snapshot.h"
#include "planted_shop.h"
#include "test_util.h"

namespace affinity {
namespace {

constexpr int kCustomers = 6000, kProducts = 800, kClusters = 8, kFactors = 16;
constexpr UnixSeconds kStart = 1735689600;  // 2025-01-01

std::string Customer(int i) { return "c" + std::to_string(i); }
std::string Product(int p) { return "p" + std::to_string(p); }

ProductAttributes Attributes(int p) {
  ProductAttributes a;
  a.title = "Product " + std::to_string(p);
  a.category = std::vector<std::string>{"Dept" + std::to_string(p % 2),
                                        "Cat" + std::to_string(p % kClusters)};
  a.price = 5.0 + p % 50;
  return a;
}

void FillClusteredShop(Store* store) {
  std::vector<std::pair<std::string, ProductAttributes>> products;
  for (int p = 0; p < kProducts; ++p) products.emplace_back(Product(p), Attributes(p));
  ASSERT_TRUE(store->UpsertProducts(products).ok());
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> count(2, 7), pick(0, kProducts / kClusters - 1);
  std::uniform_int_distribution<int64_t> when(0, 365LL * 86400);
  std::vector<EventInput> events;
  for (int c = 0; c < kCustomers; ++c) {
    const int n = count(rng);
    for (int e = 0; e < n; ++e) {
      EventInput in;
      in.customer = Customer(c);
      in.product = Product(c % kClusters + kClusters * pick(rng));
      in.time = kStart + when(rng);
      in.unit_price = 10;
      in.event_id = in.customer + "/" + std::to_string(e);
      events.push_back(std::move(in));
    }
  }
  ASSERT_TRUE(store->AppendEvents(events).ok());
}

// The audience model's intercept and weights on the features after the score (new_products.h).
constexpr double kIntercept = -10.566;
constexpr std::array<double, kAudienceFeatures - 1> kWeightsButTheScores = {
    0.714, 0.680, 0.198, 0.013, 0.221, 0.104, 0.228};

// `score_weight`: the audience model's weight on the score (Complete Journey's by default;
// Online Retail's was about +1).
int64_t PublishClusteredSnapshot(const Store& store, const std::string& root,
                                 double score_weight = -0.173) {
  std::mt19937_64 rng(4);
  std::normal_distribution<float> normal(0, 1);
  RowMajorMatrixXf centres(kClusters, kFactors);
  for (int64_t i = 0; i < centres.size(); ++i) centres.data()[i] = normal(rng);
  Snapshot s;
  s.user_factors.resize(kCustomers, kFactors);
  s.item_factors.resize(kProducts, kFactors);
  s.customer_ids.resize(kCustomers);
  s.product_ids.resize(kProducts);
  std::vector<ItemAttributes> items(kProducts);
  std::vector<int32_t> buyers(kProducts, 10);  // every product is a fitting target
  for (int p = 0; p < kProducts; ++p) {
    auto id = store.FindProduct(Product(p));
    EXPECT_TRUE(id.ok());
    if (!id.ok()) return -1;
    for (int j = 0; j < kFactors; ++j) {
      s.item_factors(id->value, j) = centres(p % kClusters, j) + 0.7f * normal(rng);
    }
    s.product_ids[id->value] = Product(p);
    items[id->value] = ToItemAttributes(Attributes(p));
  }
  for (int c = 0; c < kCustomers; ++c) {
    auto id = store.FindCustomer(Customer(c));
    EXPECT_TRUE(id.ok());
    if (!id.ok()) return -1;
    for (int j = 0; j < kFactors; ++j) {
      s.user_factors(id->value, j) = centres(c % kClusters, j) + 0.7f * normal(rng);
    }
    s.customer_ids[id->value] = Customer(c);
  }
  ColdStartModel map;
  EXPECT_TRUE(map.Fit(items, buyers, s.item_factors, ColdStartOptions()).ok());
  s.cold_start = std::move(map);
  LogisticCalibration audience;
  audience.features.assign(kAudienceFeatureNames.begin(), kAudienceFeatureNames.end());
  audience.weights = {score_weight};
  audience.weights.insert(audience.weights.end(), kWeightsButTheScores.begin(),
                          kWeightsButTheScores.end());
  audience.intercept = kIntercept;
  audience.horizon_days = 30;
  s.audience = audience;
  s.score_scale = ScoreScale(s.user_factors, s.item_factors);
  IalsOptions options;
  options.factors = kFactors;
  s.manifest = {{"model", "synthetic"},
                {"options", IalsOptionsJson(options)},
                {"source", {{"reference_time", kStart + 365 * 86400}}}};
  auto v = PublishSnapshot(root, s);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : -1;
}

// The audiences of every 53rd product at `limit`, served through the sources and with every
// customer scored: the share of the latter's top found, of its expected buyers kept, and the
// mean candidates scored.
struct SourcesAgainstEveryone {
  double recall = 0, expected_ratio = 0, candidates = 0;
};
SourcesAgainstEveryone CompareAudiences(const ServingEngine& engine, int limit) {
  SourcesAgainstEveryone out;
  double found = 0, expected = 0, expected_best = 0, candidates = 0;
  int audiences = 0;
  for (int p = 0; p < kProducts; p += 53) {
    AudienceRequest request;
    request.product = Product(p);
    request.limit = limit;
    auto served = engine.Audience(request);
    EXPECT_TRUE(served.ok()) << served.status().ToString();
    if (!served.ok()) return out;
    EXPECT_TRUE(served->calibrated);
    request.all_customers = true;
    auto best = engine.Audience(request);
    EXPECT_TRUE(best.ok()) << best.status().ToString();
    if (!best.ok()) return out;
    EXPECT_GT(best->candidates, kCustomers - 200) << "every customer but its buyers is scored";
    EXPECT_EQ(served->customers.size(), static_cast<size_t>(limit));
    EXPECT_EQ(best->customers.size(), static_cast<size_t>(limit));
    std::set<std::string> top;
    for (const auto& m : best->customers) top.insert(m.customer);
    for (const auto& m : served->customers) found += top.count(m.customer);
    expected += served->expected_buyers;
    expected_best += best->expected_buyers;
    candidates += static_cast<double>(served->candidates);
    ++audiences;
  }
  out.recall = found / (static_cast<double>(limit) * audiences);
  out.expected_ratio = expected / expected_best;
  out.candidates = candidates / audiences;
  return out;
}

class AudienceCandidates : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::OpenShopEngine(
        dir_, FillClusteredShop,
        [](const Store& s, const std::string& root) { return PublishClusteredSnapshot(s, root); },
        &store_, &engine_);
    ASSERT_TRUE(engine_);
  }
  testing::ScratchDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ServingEngine> engine_;
};

TEST_F(AudienceCandidates, FindTheModelsBestCustomers) {
  // Limit 20: four sources (the index, the category's buyers at two levels, the priors) of
  // 4 × 20 + 64 = 84 each at most. All 320 of the exhaustive top 20s were found. Candidates
  // taken from the sources in arbitrary order (the category's buyers as listed, the customers
  // with the most distinct products; the build of 48caf5b) found 0.33 of them, with 0.72 of the
  // expected buyers.
  const SourcesAgainstEveryone twenty = CompareAudiences(*engine_, 20);
  EXPECT_GE(twenty.recall, 0.9);
  EXPECT_GE(twenty.expected_ratio, 0.97);
  EXPECT_LE(twenty.expected_ratio, 1.0 + 1e-9);
  EXPECT_LE(twenty.candidates, 4 * 84);
  // Limit 100: up to 4 × 400 candidates, but the sources are read in rounds of 64 and a source
  // whose round adds none to the best 100 so far is closed; the first round is 100 of the
  // category's prospects alone, so that the others are judged against a full best 100. Here
  // 452 on average were scored, all of the exhaustive top found (576 without the head start,
  // when every source's first round entered a best 100 not yet full; 1,600 in the build of
  // 18cc584, which read every source to its end).
  const SourcesAgainstEveryone hundred = CompareAudiences(*engine_, 100);
  EXPECT_GE(hundred.recall, 0.9);
  EXPECT_GE(hundred.expected_ratio, 0.97);
  EXPECT_LE(hundred.expected_ratio, 1.0 + 1e-9);
  EXPECT_LE(hundred.candidates, 500) << "sources that stopped paying were read on";
}

// A category path of two levels repeats its department as the third (Small/Tiny: Small/Tiny,
// Small, Small). When the department has fewer buyers than a source holds, its list is still the
// audience's category source. The build before skipped Small/Tiny (too few: "try the level
// above"), then Small for the same reason (the third level, a repeat, counted as one above it),
// then Small again as a repeat, so the audience came from the index and the priors alone: 3 of
// the model's own top 20 found here.
TEST(AudienceCandidatesSmallCategory, ASmallTwoLevelCategoryIsASource) {
  // 40 customers of cluster 5 bought one Small/Tiny product each, 200 days before the snapshot's
  // reference time (not a recent purchase), in the store the snapshot was trained on (so they are
  // not folded in since, which would make them a source of their own): fewer than the
  // 4 × 20 + 64 = 84 a source holds at limit 20.
  ProductAttributes tiny;
  tiny.title = "Tiny thing";
  tiny.category = std::vector<std::string>{"Small", "Tiny"};
  tiny.price = 12;
  std::set<std::string> tiny_buyers;
  auto fill = [&](Store* store) {
    FillClusteredShop(store);
    std::vector<std::pair<std::string, ProductAttributes>> products;
    for (int k = 0; k < 5; ++k) products.emplace_back("tiny" + std::to_string(k), tiny);
    ASSERT_TRUE(store->UpsertProducts(products).ok());
    std::vector<EventInput> events;
    for (int i = 0; i < 40; ++i) {
      EventInput in;
      in.customer = Customer(5 + kClusters * i);
      in.product = "tiny" + std::to_string(i % 4);
      in.time = kStart + 165 * 86400;
      in.unit_price = 10;
      in.event_id = "tiny/" + std::to_string(i);
      tiny_buyers.insert(in.customer);
      events.push_back(std::move(in));
    }
    ASSERT_TRUE(store->AppendEvents(events).ok());
  };
  testing::ScratchDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<ServingEngine> engine;
  testing::OpenShopEngine(
      dir, fill,
      [](const Store& s, const std::string& root) { return PublishClusteredSnapshot(s, root); },
      &store, &engine);
  ASSERT_TRUE(engine);

  AudienceRequest request;
  request.product = "tiny4";  // nobody bought it: placed from its attributes
  request.limit = 20;
  auto served = engine->Audience(request);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  request.all_customers = true;
  auto best = engine->Audience(request);
  ASSERT_TRUE(best.ok()) << best.status().ToString();
  ASSERT_EQ(best->customers.size(), 20u);
  ASSERT_EQ(served->customers.size(), 20u);
  std::set<std::string> top;
  for (const auto& m : best->customers) top.insert(m.customer);
  const auto planted = std::count_if(top.begin(), top.end(),
                                     [&](const std::string& c) { return tiny_buyers.count(c); });
  EXPECT_GE(planted, 15) << "the category's buyers lead the model's own top";
  int found = 0;
  for (const auto& m : served->customers) found += static_cast<int>(top.count(m.customer));
  EXPECT_EQ(found, 20);
  EXPECT_LT(served->candidates, kCustomers / 4) << "scored through the sources, not everyone";
}

// Where the score weighs in the logit (here +1, about what Online Retail fitted), a category's
// buyers ranked without it are in the wrong order for each product: the prospect lists rank them
// by their expected score for a product of the category too (w_u · its mean item vector).
TEST(AudienceCandidatesScoreWeighs, ProspectsRankedByTheExpectedScore) {
  testing::ScratchDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<ServingEngine> engine;
  testing::OpenShopEngine(
      dir, FillClusteredShop,
      [](const Store& s, const std::string& root) {
        return PublishClusteredSnapshot(s, root, 1.0);
      },
      &store, &engine);
  ASSERT_TRUE(engine);
  // Measured: 436 candidates at limit 100 and all of the exhaustive top 20s; ranked without the
  // score (the build before), 604 candidates and 318 of the 320 members of the top 20s.
  const SourcesAgainstEveryone hundred = CompareAudiences(*engine, 100);
  EXPECT_GE(hundred.recall, 0.99);
  EXPECT_LE(hundred.candidates, 500) << "the lists' order misses the score";
  const SourcesAgainstEveryone twenty = CompareAudiences(*engine, 20);
  EXPECT_EQ(twenty.recall, 1.0);
  EXPECT_LE(twenty.expected_ratio, 1.0 + 1e-9);
}

// Serving scores customers from its caches (purchase lists, times, a per-request mask over the
// catalog): the audience over every customer must be the model's own top, with its logits, as
// scored here from the store's histories (PurchaseProfile) and the snapshot's rows.
TEST_F(AudienceCandidates, RankedByTheModelsLogits) {
  auto snapshot = LoadSnapshot(dir_.Sub("snaps"));
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().ToString();
  ASSERT_TRUE(snapshot->cold_start && snapshot->audience);
  auto catalog = ReadCatalog(*store_);
  ASSERT_TRUE(catalog.ok());
  const UnixSeconds now = kStart + 365 * 86400;  // the snapshot's reference time (the latest)
  // Every customer's profile, once.
  std::vector<PurchaseProfile> profiles(kCustomers);
  std::vector<std::set<uint32_t>> bought(kCustomers);
  std::vector<uint32_t> rows(kCustomers);
  for (int c = 0; c < kCustomers; ++c) {
    auto id = store_->FindCustomer(Customer(c));
    ASSERT_TRUE(id.ok());
    rows[static_cast<size_t>(c)] = id->value;
    auto history = store_->CustomerHistory(*id);
    ASSERT_TRUE(history.ok());
    PurchaseProfile& profile = profiles[static_cast<size_t>(c)];
    for (const Event& e : *history) {
      if (e.type != EventType::kPurchase) continue;
      profile.tenure_days =
          std::max(profile.tenure_days, static_cast<double>(now - e.time) / 86400);
      if (bought[static_cast<size_t>(c)].insert(e.product.value).second) {
        profile.Add(catalog->items[e.product.value]);
      }
      if (e.time >= now - 30 * 86400) ++profile.recent_purchases;
    }
  }
  constexpr int kLimit = 50;
  for (int p : {3, 250, 611}) {
    SCOPED_TRACE(Product(p));
    auto pid = store_->FindProduct(Product(p));
    ASSERT_TRUE(pid.ok());
    const ItemAttributes item = ToItemAttributes(Attributes(p));
    auto h = snapshot->cold_start->Embed(item);  // the score feature's vector
    ASSERT_TRUE(h.ok());
    std::vector<std::pair<double, std::string>> reference;
    for (int c = 0; c < kCustomers; ++c) {
      if (bought[static_cast<size_t>(c)].count(pid->value)) continue;
      const float raw = snapshot->user_factors.row(rows[static_cast<size_t>(c)]).dot(*h);
      std::array<float, kAudienceFeatures> x{};
      AudienceFeatures(static_cast<float>(raw / snapshot->score_scale),
                       profiles[static_cast<size_t>(c)], ProductKeys(item), x);
      const std::vector<double> xd(x.begin(), x.end());
      reference.emplace_back(snapshot->audience->Logit(xd), Customer(c));
    }
    std::sort(reference.begin(), reference.end(), std::greater<>());
    AudienceRequest request;
    request.product = Product(p);
    request.limit = kLimit;
    request.all_customers = true;
    auto served = engine_->Audience(request);
    ASSERT_TRUE(served.ok()) << served.status().ToString();
    ASSERT_EQ(served->customers.size(), static_cast<size_t>(kLimit));
    std::set<std::string> want, got;
    for (int i = 0; i < kLimit; ++i) {
      want.insert(reference[static_cast<size_t>(i)].second);
      const AudienceMember& m = served->customers[static_cast<size_t>(i)];
      got.insert(m.customer);
      EXPECT_NEAR(m.score, reference[static_cast<size_t>(i)].first, 1e-4) << "rank " << i;
    }
    EXPECT_EQ(got, want);
  }
}

// An audience of 20 for a product described in the request, in a category nobody bought from
// (Dept1/NewCat).
AudienceRequest NewCategoryProduct() {
  AudienceRequest request;
  request.attributes = ProductAttributes{};
  request.attributes->title = "Something new";
  request.attributes->category = std::vector<std::string>{"Dept1", "NewCat"};
  request.limit = 20;
  return request;
}

// A customer who buys after the engine opened counts in an audience's scores at once, but in the
// choice of its candidates only after RefreshCandidates: here a new customer with seven recent
// purchases in Cat3 (the best prospect there) is outranked in the folded-in customers' source by
// 150 other newcomers (that source takes those the index would rank first, and the model's
// weight on the score is negative), and the category's prospects and the priors were computed
// before they bought. The refresh takes them in.
// Customers who stated an interest are candidates deepest first: 600 who stated the department
// of a product in a category nobody has bought yet, then one who stated the category itself. The
// latter is in the model's own top 20 (a stated interest counts as a purchase there, one more
// level than the department's), but the build before read the department's 600 first and the
// source closed (or was spent: 84 at most) before reaching them.
TEST_F(AudienceCandidates, AStatedCategoryIsReadBeforeItsDepartment) {
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(engine_->SetInterests("dept" + std::to_string(i), {"Dept1"}).ok());
  }
  ASSERT_TRUE(engine_->SetInterests("fan", {"Dept1 / NewCat"}).ok());
  const AudienceRequest request = NewCategoryProduct();
  AudienceRequest everyone = request;
  everyone.all_customers = true;
  auto best = engine_->Audience(everyone);
  ASSERT_TRUE(best.ok()) << best.status().ToString();
  auto fan = std::find_if(best->customers.begin(), best->customers.end(),
                          [](const AudienceMember& m) { return m.customer == "fan"; });
  ASSERT_NE(fan, best->customers.end()) << "the model's own top 20 has the fan";
  EXPECT_EQ(fan->reason_kind, "stated_interest");
  auto served = engine_->Audience(request);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_TRUE(std::any_of(served->customers.begin(), served->customers.end(),
                          [](const AudienceMember& m) { return m.customer == "fan"; }));

  // A stated interest counts as one purchase in its category (docs/audiences.md): the fan, who
  // bought nothing (no vector, no tenure, nothing recent), is scored as a customer with one
  // product, in this category at each of its levels. The build before left it out of the
  // products.
  KeyCounts counts;
  counts.products = 1;
  counts.category = counts.parent = counts.department = 1;
  std::array<float, kAudienceFeatures> x{};
  AudienceFeatures(0.0f, counts, ProductKeys(ToItemAttributes(*request.attributes)), x);
  double logit = kIntercept;
  for (size_t k = 1; k < kAudienceFeatures; ++k) logit += kWeightsButTheScores[k - 1] * x[k];
  EXPECT_NEAR(fan->score, logit, 1e-4);
}

TEST_F(AudienceCandidates, ACustomerStatingSeveralPathsTakesOnePlaceInTheStatedList) {
  // 200 customers who opted out (not in audiences) state two subcategories of the product's
  // category each; the list of staters holds 4 × 84 (the source's share for a limit of 20: room
  // for those who cannot be taken). Counted once per path, they filled it before the fan, who
  // states three others.
  CustomerProfile opted_out;
  opted_out.opted_out = true;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "two" + std::to_string(i);
    ASSERT_TRUE(engine_->UpsertCustomer(id, opted_out).ok());
    ASSERT_TRUE(engine_->SetInterests(id, {"Dept1/NewCat/A", "Dept1/NewCat/B"}).ok());
  }
  ASSERT_TRUE(
      engine_->SetInterests("fan", {"Dept1/NewCat/C", "Dept1/NewCat/D", "Dept1/NewCat/E"}).ok());
  const AudienceRequest request = NewCategoryProduct();
  AudienceRequest everyone = request;
  everyone.all_customers = true;
  auto is_fan = [](const AudienceMember& m) { return m.customer == "fan"; };
  auto best = engine_->Audience(everyone);
  ASSERT_TRUE(best.ok()) << best.status().ToString();
  ASSERT_TRUE(std::any_of(best->customers.begin(), best->customers.end(), is_fan))
      << "the model's own top 20 has the fan";
  auto served = engine_->Audience(request);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  ASSERT_LT(served->candidates, 1000) << "the shop is large enough not to score everyone";
  EXPECT_TRUE(std::any_of(served->customers.begin(), served->customers.end(), is_fan));
}

TEST_F(AudienceCandidates, PurchasesSinceCountAfterARefresh) {
  constexpr int kLimit = 20;
  AudienceRequest request;
  request.product = Product(3);  // Cat3
  request.limit = kLimit;
  ASSERT_TRUE(engine_->Audience(request).ok());  // Cat3's prospects, ranked now
  EXPECT_FALSE(engine_->RefreshCandidates()) << "no purchase since the engine opened";

  const UnixSeconds now = kStart + 365 * 86400;  // the snapshot's reference time
  std::vector<EventInput> events;
  auto buy = [&](const std::string& customer, int product, UnixSeconds when) {
    EventInput in;
    in.customer = customer;
    in.product = Product(product);
    in.time = when;
    in.unit_price = 10;
    in.event_id = customer + "/" + std::to_string(events.size());
    events.push_back(std::move(in));
  };
  for (int i = 0; i < 150; ++i) {  // other clusters than 3
    const int cluster = i % 7 < 3 ? i % 7 : i % 7 + 1;
    buy("late" + std::to_string(i), cluster + kClusters * (i % 50), now - 200 * 86400);
  }
  for (int k = 0; k < 7; ++k) buy("star", 3 + kClusters * (10 + k), now - (k + 1) * 86400);
  auto added = engine_->AddEvents(events);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_TRUE(added->errors.empty());

  auto listed = [&](const AudienceResult& r) {
    return std::any_of(r.customers.begin(), r.customers.end(),
                       [](const AudienceMember& m) { return m.customer == "star"; });
  };
  AudienceRequest everyone = request;
  everyone.all_customers = true;
  auto best = engine_->Audience(everyone);
  ASSERT_TRUE(best.ok()) << best.status().ToString();
  ASSERT_TRUE(listed(*best)) << "the model's own top 20 has the new customer";

  auto before = engine_->Audience(request);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_FALSE(listed(*before)) << "found by a source chosen before they bought";

  EXPECT_TRUE(engine_->RefreshCandidates());
  EXPECT_FALSE(engine_->RefreshCandidates()) << "nothing new since";
  auto after = engine_->Audience(request);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(listed(*after));
  EXPECT_EQ(after->customers.front().customer, best->customers.front().customer);
}

}  // namespace
}  // namespace affinity

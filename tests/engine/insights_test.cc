#include "affinity/insights.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "affinity/import.h"
#include "affinity/time_util.h"
#include "test_util.h"

namespace affinity {
namespace {

using testing::ScratchDir;

constexpr int64_t kDay = 86400;
const UnixSeconds kStart = *ParseTimestamp("2025-01-01");
const UnixSeconds kEnd = kStart + 365 * kDay;  // calibration end: "now" of the report

// A store with planted histories. Products "home" (Home) and "garden" (Garden).
class PlantedShop : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(Store::Open(dir_.Sub("db"), {}).value());
    std::vector<std::pair<std::string, ProductAttributes>> products;
    for (const char* cat : {"Home", "Garden"}) {
      ProductAttributes a;
      a.category = std::vector<std::string>{cat, "Things"};
      products.emplace_back(std::string(cat) == "Home" ? "home" : "garden", a);
    }
    ASSERT_TRUE(store_->UpsertProducts(products).ok());

    // 100 regulars: weekly all year, 20.00 per order (the population that sets the shop's rhythm).
    for (int c = 0; c < 100; ++c) {
      for (int d = c % 7; d < 365; d += 7) Buy("regular" + std::to_string(c), d, 20);
    }
    // A whale: weekly, 2000 per order.
    for (int d = 3; d < 365; d += 7) Buy("whale", d, 2000);
    // Stopped: weekly until day 280, then silence (85 days against a 7-day rhythm).
    for (int d = 0; d <= 280; d += 7) Buy("stopped", d, 20);
    // Faller: weekly; the last third of orders are worth a fifth; silent for the last 30 days.
    std::vector<int> faller_days;
    for (int d = 0; d <= 335; d += 7) faller_days.push_back(d);
    for (size_t i = 0; i < faller_days.size(); ++i) {
      Buy("faller", faller_days[i], i >= faller_days.size() * 2 / 3 ? 4 : 20);
    }
    // Drifter: weekly; Home for two thirds, then only Garden; silent for the last 30 days.
    std::vector<int> drifter_days = faller_days;
    for (size_t i = 0; i < drifter_days.size(); ++i) {
      Buy("drifter", drifter_days[i], 20, i >= drifter_days.size() * 2 / 3 ? "garden" : "home");
    }
    Buy("newbie", 355, 30);     // one purchase 10 days ago
    Buy("one-timer", 200, 30);  // one purchase 165 days ago: at risk (90 < 165 <= 180)
    Buy("gone", 10, 30);        // one purchase 355 days ago: lapsed
    Buy("twice", 340, 25);      // two purchases, recent
    Buy("twice", 350, 25);
    Buy("late", 364, 10);  // bought after the calibration end too (holdout)
    Buy("late", 370, 10);
    Buy("late", 380, 10);
    Flush();
  }

  void Buy(const std::string& customer, int day, double value,
           const std::string& product = "home") {
    EventInput e;
    e.customer = customer;
    e.product = product;
    e.time = kStart + day * kDay + 12 * 3600;
    e.quantity = 1;
    e.unit_price = value;
    e.event_id = customer + ":" + std::to_string(day) + ":" + product;
    pending_.push_back(std::move(e));
  }
  void Flush() {
    ASSERT_TRUE(store_->AppendEvents(pending_).ok());
    pending_.clear();
  }

  const CustomerInsight& Find(const ShopInsights& s, const std::string& id) {
    for (const auto& c : s.customers) {
      if (c.external_id == id) return c;
    }
    ADD_FAILURE() << "no insight for " << id;
    return s.customers.front();
  }
  static bool HasReason(const CustomerInsight& c, const std::string& code) {
    return std::any_of(c.reasons.begin(), c.reasons.end(),
                       [&](const ChurnReason& r) { return r.code == code; });
  }
  static const ChurnReason& Reason(const CustomerInsight& c, const std::string& code) {
    return *std::find_if(c.reasons.begin(), c.reasons.end(),
                         [&](const ChurnReason& r) { return r.code == code; });
  }

  InsightsOptions Options() {
    InsightsOptions o;
    o.calibration_end = kEnd;
    return o;
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
  std::vector<EventInput> pending_;
};

TEST_F(PlantedShop, StagesFollowTheDocumentedRules) {
  auto s = ComputeShopInsights(*store_, Options());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->customers.size(), 109u);
  EXPECT_EQ(Find(*s, "regular7").stage, LoyaltyStage::kLoyal);
  EXPECT_EQ(Find(*s, "whale").stage, LoyaltyStage::kLoyal);
  EXPECT_EQ(Find(*s, "newbie").stage, LoyaltyStage::kNew);
  EXPECT_EQ(Find(*s, "one-timer").stage, LoyaltyStage::kAtRisk);
  EXPECT_EQ(Find(*s, "gone").stage, LoyaltyStage::kLapsed);
  EXPECT_EQ(Find(*s, "twice").stage, LoyaltyStage::kRepeat);
  const auto& stopped = Find(*s, "stopped");
  EXPECT_TRUE(stopped.stage == LoyaltyStage::kAtRisk || stopped.stage == LoyaltyStage::kLapsed);
  EXPECT_LT(stopped.p_alive, Find(*s, "regular7").p_alive);
  int64_t total = 0;
  for (const auto& [stage, n] : s->stages) total += n;
  EXPECT_EQ(total, 109);
  EXPECT_EQ(s->stages.at("new"), 2);  // newbie, and late (one purchase day in the calibration)
}

TEST_F(PlantedShop, ChurnReasonsCarryTheirFigures) {
  auto s = ComputeShopInsights(*store_, Options());
  ASSERT_TRUE(s.ok());
  const auto& stopped = Find(*s, "stopped");
  ASSERT_TRUE(HasReason(stopped, "recency_gap"));
  const auto& gap = Reason(stopped, "recency_gap");
  EXPECT_NEAR(gap.figures.at("gap_days"), 84.5, 1e-9);  // noon of day 280 to midnight of 365
  EXPECT_NEAR(gap.figures.at("usual_gap_days"), 7, 0.01);
  EXPECT_FALSE(HasReason(stopped, "falling_spend"));
  EXPECT_FALSE(HasReason(stopped, "category_drift"));

  const auto& faller = Find(*s, "faller");
  ASSERT_EQ(faller.stage, LoyaltyStage::kAtRisk);
  ASSERT_TRUE(HasReason(faller, "falling_spend"));
  EXPECT_NEAR(Reason(faller, "falling_spend").figures.at("ratio"), 0.2, 0.05);
  EXPECT_FALSE(HasReason(faller, "category_drift"));

  const auto& drifter = Find(*s, "drifter");
  ASSERT_EQ(drifter.stage, LoyaltyStage::kAtRisk);
  ASSERT_TRUE(HasReason(drifter, "category_drift"));
  EXPECT_NEAR(Reason(drifter, "category_drift").figures.at("similarity"), 0.0, 1e-9);
  EXPECT_NE(Reason(drifter, "category_drift").detail.find("from Home to Garden"),
            std::string::npos);
  EXPECT_FALSE(HasReason(drifter, "falling_spend"));
  // Healthy customers carry no reasons.
  EXPECT_TRUE(Find(*s, "regular3").reasons.empty());
}

TEST_F(PlantedShop, RfmAndCoreCustomers) {
  auto s = ComputeShopInsights(*store_, Options());
  ASSERT_TRUE(s.ok());
  const auto& whale = Find(*s, "whale");
  EXPECT_EQ(whale.m_score, 5);
  // 52 purchase days: fewer than the regulars who started on day 0 (53), so a low F score.
  EXPECT_EQ(whale.f_score, 1);
  EXPECT_EQ(whale.purchase_days, 52);
  EXPECT_NEAR(whale.monetary, 52 * 2000.0, 1e-6);
  EXPECT_EQ(Find(*s, "gone").r_score, 1);
  EXPECT_EQ(Find(*s, "late").r_score, 5);
  // Value: whale 104,000; regulars 100 x ~52 x 20 = ~104,000; others ~3,000. The whale alone
  // carries ~49%; core (80%) = the whale + the top regulars.
  EXPECT_TRUE(whale.core);
  EXPECT_FALSE(Find(*s, "gone").core);
  double total = 0;
  for (const auto& c : s->customers) total += std::max(0.0, c.monetary);
  EXPECT_NEAR(s->pareto.front().customer_share, 0.01, 1e-12);
  // The top 1% (2 customers by ceil) holds the whale and one regular.
  EXPECT_NEAR(s->pareto.front().value_share, (104000.0 + 53 * 20.0) / total, 1e-9);
  EXPECT_GE(s->core_share_of_value, 0.8);
  double core_value = 0;
  for (const auto& c : s->customers) core_value += c.core ? c.monetary : 0;
  EXPECT_NEAR(core_value / total, s->core_share_of_value, 1e-9);
  // The smallest such set: without its smallest member it carries less than 80%.
  double smallest = whale.monetary;
  for (const auto& c : s->customers) {
    if (c.core) smallest = std::min(smallest, c.monetary);
  }
  EXPECT_LT((core_value - smallest) / total, 0.8);
  EXPECT_EQ(s->core_count, std::count_if(s->customers.begin(), s->customers.end(),
                                         [](const CustomerInsight& c) { return c.core; }));
  // CLV ranks the whale first.
  for (const auto& c : s->customers) EXPECT_LE(c.clv, whale.clv);
}

TEST_F(PlantedShop, OneCustomerMatchesTheFullRunAndMovesWithNewEvents) {
  auto s = ComputeShopInsights(*store_, Options());
  ASSERT_TRUE(s.ok());
  for (const char* id : {"stopped", "faller", "whale", "newbie"}) {
    auto one = ComputeCustomerInsight(*store_, s->model, *store_->FindCustomer(id));
    ASSERT_TRUE(one.ok());
    const auto& full = Find(*s, id);
    EXPECT_EQ(one->stage, full.stage) << id;
    EXPECT_DOUBLE_EQ(one->p_alive, full.p_alive) << id;
    EXPECT_DOUBLE_EQ(one->clv, full.clv) << id;
    EXPECT_EQ(one->r_score, full.r_score) << id;
    EXPECT_EQ(one->reasons.size(), full.reasons.size()) << id;
  }
  // "stopped" comes back: as of a later time, they are alive and loyal again. The whale's
  // spending beyond everyone in the fitted population still scores 5, not 6.
  Buy("whale", 368, 50000);
  Buy("stopped", 370, 20);
  Flush();
  auto back = ComputeCustomerInsight(*store_, s->model, *store_->FindCustomer("stopped"),
                                     kStart + 371 * kDay);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->stage, LoyaltyStage::kLoyal);
  EXPECT_NEAR(back->recency_days, 0.5, 1e-9);
  EXPECT_TRUE(back->reasons.empty());
  auto whale = ComputeCustomerInsight(*store_, s->model, *store_->FindCustomer("whale"),
                                      kStart + 371 * kDay);
  ASSERT_TRUE(whale.ok());
  EXPECT_EQ(whale->m_score, 5);
  EXPECT_EQ(whale->f_score, 5);
  EXPECT_EQ(ComputeCustomerInsight(*store_, s->model, CustomerId{9999}).status().code(),
            StatusCode::kNotFound);
}

TEST_F(PlantedShop, HoldoutCountsPurchaseDaysAfterTheCalibrationEnd) {
  InsightsOptions o = Options();
  o.holdout_end = kEnd + 30 * kDay;
  auto s = ComputeShopInsights(*store_, o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->holdout.has_value());
  // Only "late" bought after the calibration end: days 370 and 380.
  EXPECT_EQ(*Find(*s, "late").holdout_purchase_days, 2);
  EXPECT_EQ(*Find(*s, "whale").holdout_purchase_days, 0);
  EXPECT_EQ(s->holdout->actual_total, 2);
  EXPECT_EQ(s->holdout->customers, 109);
  EXPECT_NEAR(s->holdout->period_units, 30.0 / 7.0, 1e-12);
  EXPECT_GT(s->holdout->predicted_total, 0);
  int64_t binned = 0;
  for (const auto& b : s->holdout->p_alive_bins) binned += b.customers;
  EXPECT_EQ(binned, 109);
  // By stage: only "late" (new) bought.
  EXPECT_EQ(s->holdout->bought_by_stage.at("new").first, 2);
  EXPECT_DOUBLE_EQ(s->holdout->bought_by_stage.at("new").second, 0.5);
  EXPECT_DOUBLE_EQ(s->holdout->bought_by_stage.at("loyal").second, 0.0);
  // The calibration ignores events after its end: "late" has 1 purchase day in it.
  EXPECT_EQ(Find(*s, "late").purchase_days, 1);
}

TEST(Insights, OptionErrorsNameTheField) {
  auto field = [](auto mutate) {
    InsightsOptions o;
    mutate(o);
    return o.Validate().field();
  };
  EXPECT_EQ(field([](InsightsOptions& o) { o.time_unit_seconds = 0; }), "time_unit_seconds");
  EXPECT_EQ(field([](InsightsOptions& o) { o.horizon_days = -1; }), "horizon_days");
  EXPECT_EQ(field([](InsightsOptions& o) { o.core_value_share = 1.5; }), "core_value_share");
  EXPECT_EQ(field([](InsightsOptions& o) { o.annual_discount_rate = -0.1; }),
            "annual_discount_rate");
  EXPECT_EQ(field([](InsightsOptions& o) { o.holdout_end = 5; }), "holdout_end");
  EXPECT_EQ(field([](InsightsOptions& o) {
              o.calibration_end = 10;
              o.holdout_end = 5;
            }),
            "holdout_end");
  EXPECT_EQ(field([](InsightsOptions& o) { o.loyal_min_purchase_days = 1; }),
            "loyal_min_purchase_days");
  ScratchDir dir;
  auto store = std::move(Store::Open(dir.Sub("db"), {}).value());
  EXPECT_EQ(ComputeShopInsights(*store, {}).status().code(), StatusCode::kInvalidArgument);
}

// The published CDNOW parameters, reproduced through the store: import preset, then insights.
TEST(Insights, ReproducesCdnowThroughTheStore) {
  std::string path = std::string(AFFINITY_SHARED_DATA_DIR) + "/cdnow/CDNOW_sample.txt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  ScratchDir dir;
  auto store = std::move(Store::Open(dir.Sub("db"), {}).value());
  auto r = ImportPresetFiles(*store, ImportPreset::kCdnow, {path}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].events_written, 6919);
  InsightsOptions o;
  o.calibration_end = *ParseTimestamp("1997-09-30");
  auto s = ComputeShopInsights(*store, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->customers.size(), 2357u);
  const auto& bg = s->model.bgnbd;
  EXPECT_NEAR(bg.r, 0.243, 0.01 * 0.243);
  EXPECT_NEAR(bg.alpha, 4.414, 0.01 * 4.414);
  EXPECT_NEAR(bg.a, 0.793, 0.01 * 0.793);
  EXPECT_NEAR(bg.b, 2.426, 0.01 * 2.426);
  ASSERT_TRUE(s->model.gamma_gamma_fitted);
  const auto& gg = s->model.gamma_gamma;
  EXPECT_NEAR(gg.p, 6.25, 0.01 * 6.25);
  EXPECT_NEAR(gg.q, 3.74, 0.01 * 3.74);
  EXPECT_NEAR(gg.gamma, 15.44, 0.01 * 15.44);
}

}  // namespace
}  // namespace affinity

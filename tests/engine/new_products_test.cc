#include "affinity/new_products.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "launch_shop.h"
#include "test_util.h"

namespace affinity {
namespace {

class NewProductsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::Open(dir_.Sub("db"), StoreOptions());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
    testing::FillLaunchShop(store_.get());
  }
  LaunchStudyOptions Options(double cutoff_day) const {
    LaunchStudyOptions o;
    o.cutoff = testing::LaunchDay(cutoff_day);
    o.horizon_days = 10;
    o.ials = testing::LaunchIalsOptions();
    o.half_life_days.reset();
    o.compare_methods = {ColdStartMethod::kKnn};
    return o;
  }
  testing::ScratchDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(NewProductsTest, CatalogFirstSalesAreTheFirstPurchases) {
  auto catalog = ReadCatalog(*store_);
  ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
  auto id = store_->FindProduct("kn5");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(catalog->first_sale[id->value]);
  // Launch 5 is on day 80; its first buyer comes 0.01 days in.
  EXPECT_NEAR(static_cast<double>(*catalog->first_sale[id->value] - testing::LaunchDay(80)),
              0.01 * 86400, 1);
  EXPECT_EQ(catalog->items[id->value].category,
            (std::vector<std::string>{"Home", "Kitchen", "Pans"}));
}

TEST_F(NewProductsTest, StudyWithholdsLaunchesAndLabelsTheirBuyers) {
  auto catalog = ReadCatalog(*store_);
  ASSERT_TRUE(catalog.ok());
  auto study = RunLaunchStudy(*store_, *catalog, Options(100));
  ASSERT_TRUE(study.ok()) << study.status().ToString();
  // Launches on days 100, 104 and 108, one per side each; every customer bought before day 100.
  EXPECT_EQ(study->launches.size(), 6u);
  EXPECT_EQ(study->universe.size(), 80u);
  for (const Launch& launch : study->launches) {
    EXPECT_EQ(launch.buyers.size(), 10u);
    ASSERT_EQ(launch.features.size(), 80 * kAudienceFeatures);
    ASSERT_EQ(launch.compare_scores.size(), 1u);
  }
  // The count features are per year of the customer's tenure before the cutoff.
  const Launch& launch = study->launches.front();
  for (size_t k = 0; k < study->universe.size(); k += 7) {
    auto history = store_->CustomerHistory(study->universe[k]);
    ASSERT_TRUE(history.ok());
    std::set<uint32_t> products;
    UnixSeconds first_purchase = study->cutoff;
    for (const Event& e : *history) {
      if (e.type != EventType::kPurchase || e.time >= study->cutoff) continue;
      products.insert(e.product.value);
      first_purchase = std::min(first_purchase, e.time);
    }
    ASSERT_FALSE(products.empty());
    const double tenure = static_cast<double>(study->cutoff - first_purchase) / 86400;
    const double rate = kRateDays / std::max(tenure, kMinTenureDays);
    EXPECT_FLOAT_EQ(launch.features[k * kAudienceFeatures + 1],
                    static_cast<float>(std::log1p(rate * static_cast<double>(products.size()))))
        << k;
  }
  // A cutoff whose launches' windows run past the data: left out, counted.
  auto late = RunLaunchStudy(*store_, *catalog, Options(116));
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->launches.empty());
  EXPECT_EQ(late->censored, 2);
  // Nothing before the cutoff: nothing to learn from.
  EXPECT_EQ(RunLaunchStudy(*store_, *catalog, Options(-10)).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(NewProductsTest, ModelFindsTheRightSideAndBeatsMostActive) {
  auto run = EvaluateNewProducts(*store_, Options(100));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->new_products, 6);
  EXPECT_EQ(run->model.products, 6);
  // Ten buyers among the forty customers of the product's side. A ranking that keeps the sides
  // apart (but cannot tell buyers within a side, where every customer is alike) has an AUC of
  // (40 · 1 + 30 · 1/2) / 70 = 0.786; most-active ranks across sides (about 0.5).
  EXPECT_GT(run->model.auc, 0.74);
  EXPECT_GT(run->methods.at("ridge").auc, 0.74);
  EXPECT_GT(run->methods.at("knn").auc, 0.74);
  EXPECT_GT(run->baselines.at("category_affinity").auc, 0.74);
  EXPECT_LT(run->baselines.at("most_active").auc, 0.65);
  EXPECT_GT(run->model.auc, run->baselines.at("most_active").auc + 0.15);
  // Calibrated on the launches of days 80..88: the same process, so the expected number of
  // buyers is close to the observed 60.
  EXPECT_EQ(run->calibration_report.observed_positives, 60);
  EXPECT_GT(run->calibration_report.predicted_positives, 60 * 0.6);
  EXPECT_LT(run->calibration_report.predicted_positives, 60 / 0.6);
  EXPECT_LT(run->calibration_report.ece, 0.1);
  EXPECT_EQ(run->calibration.features.size(), kAudienceFeatures);
}

// A launch every customer bought has no (buyer, non-buyer) pair to order: its AUC is undefined
// and left out of the average, which the other launches still give (it had made the macro AUC
// NaN); recall and NDCG count it.
TEST_F(NewProductsTest, ALaunchEveryoneBoughtLeavesTheAucToTheOthers) {
  const std::vector<std::pair<std::string, ProductAttributes>> product{
      {"everyone", testing::LaunchProduct('k', 0, /*launch=*/true)}};
  ASSERT_TRUE(store_->UpsertProducts(product).ok());
  std::vector<EventInput> events;
  for (char side : {'a', 'b'}) {
    for (int i = 0; i < testing::kLaunchCustomers; ++i) {
      EventInput e;
      e.customer = testing::LaunchCustomer(side, i);
      e.product = "everyone";
      e.time = testing::LaunchDay(101 + 0.05 * i);
      e.unit_price = 5;
      e.event_id = "everyone/" + e.customer;
      events.push_back(std::move(e));
    }
  }
  ASSERT_TRUE(store_->AppendEvents(events).ok());
  auto run = EvaluateNewProducts(*store_, Options(100));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->new_products, 7);
  EXPECT_EQ(run->model.products, 7);
  EXPECT_EQ(run->model.auc_products, 6);
  EXPECT_GT(run->model.auc, 0.74) << "the six launches of one side each";
  EXPECT_EQ(run->baselines.at("most_active").auc_products, 6);
  EXPECT_FALSE(std::isnan(run->baselines.at("most_active").auc));
}

TEST(ToItemAttributes, KeepsTheDescriptionsWordsOnly) {
  ProductAttributes a;
  a.title = "Enamel mug";
  std::string text = "Dishwasher safe.\nThe enamel is hard-wearing; ";
  for (int i = 0; i < 1000; ++i) text += "word" + std::to_string(i) + " and more, ";
  a.description = text;
  const ItemAttributes item = ToItemAttributes(a);
  EXPECT_EQ(item.title, "Enamel mug");
  EXPECT_TRUE(item.description.starts_with("dishwasher safe enamel hard wearing word0 more word1"))
      << item.description;
  EXPECT_LT(item.description.size(), text.size() / 10);  // not the whole text, held per product
  // The same features as the whole description.
  ItemAttributes whole = item;
  whole.description = text;
  EXPECT_EQ(AttributeFeatures(item, ColdStartOptions()),
            AttributeFeatures(whole, ColdStartOptions()));
}

TEST(AudienceFeatures, CountsWhatTheCustomerBoughtByAttribute) {
  PurchaseProfile profile;
  ItemAttributes mug;
  mug.category = {"Home", "Kitchen", "Mugs"};
  mug.title = "Red enamel mug";
  mug.tags = {"maker:acme"};
  ItemAttributes pan;
  pan.category = {"Home", "Kitchen", "Pans"};
  pan.title = "Iron pan";
  ItemAttributes lamp;
  lamp.category = {"Home", "Lighting"};
  lamp.title = "Desk lamp";
  profile.Add(mug);
  profile.Add(mug);
  profile.Add(pan);
  profile.Add(lamp);
  profile.recent_purchases = 4;
  profile.tenure_days = 730;  // a customer of two years: counts per year are half the totals
  ItemAttributes fresh;
  fresh.category = {"Home", "Kitchen", "Mugs"};
  fresh.title = "Blue enamel mug";
  fresh.tags = {"maker:acme"};
  std::array<float, kAudienceFeatures> x{};
  AudienceFeatures(0.5f, profile, ProductKeys(fresh), x);
  EXPECT_FLOAT_EQ(x[0], 0.5f);
  EXPECT_FLOAT_EQ(x[1], std::log1p(2.0f));
  EXPECT_FLOAT_EQ(x[2], std::log1p(1.0f));  // two mugs
  EXPECT_FLOAT_EQ(x[3], std::log1p(1.5f));  // and a pan in Home/Kitchen
  EXPECT_FLOAT_EQ(x[4], std::log1p(2.0f));  // all four are Home
  // Words blue (0), enamel (2), mug (2): mean 4/3.
  EXPECT_FLOAT_EQ(x[5], std::log1p(2.0f / 3.0f));
  EXPECT_FLOAT_EQ(x[6], std::log1p(1.0f));  // two products of the same maker
  EXPECT_FLOAT_EQ(x[7], std::log1p(4.0f));  // recent purchases: a count in the horizon
  ASSERT_EQ(kAudienceFeatures, 8u);
  // A customer of a month counts as one of kMinTenureDays: 365 / 90 times the totals.
  profile.tenure_days = 30;
  AudienceFeatures(0.5f, profile, ProductKeys(fresh), x);
  EXPECT_FLOAT_EQ(x[2], std::log1p(2.0f * 365.0f / 90.0f));
  profile.tenure_days = 730;  // back to two years for the comparison below
  AudienceFeatures(0.5f, profile, ProductKeys(fresh), x);

  // The counts serving takes from its caches give the same features.
  KeyCounts counts;
  counts.products = 4;
  counts.category = 2;
  counts.parent = 3;
  counts.department = 4;
  counts.words = 0 + 2 + 2;
  counts.tags = 2;
  counts.recent = 4;
  counts.tenure_days = 730;
  std::array<float, kAudienceFeatures> y{};
  AudienceFeatures(0.5f, counts, ProductKeys(fresh), y);
  for (size_t j = 0; j < kAudienceFeatures; ++j) EXPECT_FLOAT_EQ(y[j], x[j]) << j;
  // A product without a category: the level counts do not count.
  ItemAttributes bare;
  bare.title = "Blue enamel mug";
  AudienceFeatures(0.5f, counts, ProductKeys(bare), y);
  EXPECT_FLOAT_EQ(y[2], 0.0f);
  EXPECT_FLOAT_EQ(y[3], 0.0f);
  EXPECT_FLOAT_EQ(y[4], 0.0f);
}

TEST(ScoreScale, IsTheRmsScore) {
  RowMajorMatrixXf users(2, 1), items(3, 1);
  users << 1, 3;
  items << 2, 0, 1;  // the zero row is not a product
  // Scores 2, 1, 6, 3: mean square 50 / 4.
  EXPECT_NEAR(ScoreScale(users, items), std::sqrt(12.5), 1e-9);
}

}  // namespace
}  // namespace affinity

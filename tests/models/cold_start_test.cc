#include "affinity/models/cold_start.h"

#include <gtest/gtest.h>

#include <random>

#include "affinity/models/calibration.h"

namespace affinity {
namespace {

// Planted: four categories, each with its own direction in a 6-dimensional item space; a
// product's factors are its category's center plus noise, and its title names the category.
struct PlantedCatalog {
  std::vector<ItemAttributes> items;
  std::vector<int32_t> support;
  RowMajorMatrixXf factors;
  Eigen::MatrixXf centers;
};

PlantedCatalog MakeCatalog(int per_category, uint32_t seed = 3) {
  const char* names[] = {"Mugs", "Pans", "Shoes", "Shirts"};
  const char* top[] = {"Home", "Home", "Sports", "Sports"};
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.15f);
  PlantedCatalog c;
  c.centers = Eigen::MatrixXf::Zero(4, 6);
  for (int k = 0; k < 4; ++k) c.centers(k, k) = 1.0f;
  c.factors.resize(4 * per_category, 6);
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < per_category; ++i) {
      ItemAttributes item;
      item.category = {top[k], names[k]};
      item.title = std::string(names[k]) + " model " + std::to_string(i);
      item.price = 5.0 + k * 10 + i % 3;
      const int row = k * per_category + i;
      c.items.push_back(item);
      c.support.push_back(3);
      for (int d = 0; d < 6; ++d) c.factors(row, d) = c.centers(k, d) + noise(rng);
    }
  }
  return c;
}

int NearestCenter(const PlantedCatalog& c, const Eigen::VectorXf& v) {
  int best = -1;
  float best_cos = -2;
  for (int k = 0; k < 4; ++k) {
    const float cos = c.centers.row(k).dot(v) / (c.centers.row(k).norm() * v.norm());
    if (cos > best_cos) {
      best_cos = cos;
      best = k;
    }
  }
  return best;
}

TEST(TitleWords, LowerCasesAndDropsStopWordsDigitsAndShortTokens) {
  EXPECT_EQ(TitleWords("SET OF 3 RED Mugs, enamel-coated x"),
            (std::vector<std::string>{"red", "mugs", "enamel", "coated"}));
  EXPECT_TRUE(TitleWords("").empty());
}

TEST(AttributeFeatures, EveryCategoryLevelBrandPriceWordsAndTags) {
  ItemAttributes item;
  item.category = {"Home", "Kitchen", "Mugs"};
  item.brand = "Acme";
  item.price = 8.0;  // log2 = 3: fine bucket 6, coarse 1
  item.title = "Red mug";
  item.tags = {"Gift"};
  std::map<std::string, float> f;
  for (const auto& [name, value] : AttributeFeatures(item, ColdStartOptions())) f[name] = value;
  for (const char* name : {"bias", "c1:Home", "c2:Home/Kitchen", "c3:Home/Kitchen/Mugs", "b:acme",
                           "p:6", "P:1", "w:red", "w:mug", "t:gift"}) {
    EXPECT_TRUE(f.count(name)) << name;
  }
  // Each group's squared values sum to its weight (1): three levels of 1/3 each.
  EXPECT_NEAR(f["c1:Home"] * f["c1:Home"] * 3, 1.0, 1e-6);
  EXPECT_NEAR(f["w:red"] * f["w:red"] * 2, 1.0, 1e-6);

  // A word or tag repeated counts once: the same features (the build before summed repeats, so
  // "Pillow" 140 times in a title weighed the product up).
  ItemAttributes repeated = item;
  repeated.title = "Red mug red MUG red";
  repeated.tags = {"Gift", "gift", "Gift"};
  EXPECT_EQ(AttributeFeatures(repeated, ColdStartOptions()),
            AttributeFeatures(item, ColdStartOptions()));
}

TEST(AttributeFeatures, DescriptionWordsAreAGroupOfTheirOwn) {
  ItemAttributes item;
  item.title = "Red mug";
  item.description = "A red enamel mug.\nDishwasher safe; the enamel is chip proof.";
  std::map<std::string, float> f;
  for (const auto& [name, value] : AttributeFeatures(item, ColdStartOptions())) f[name] = value;
  // Distinct words, stop words out; the title's "red" and "mug" are features of both groups.
  const std::vector<std::string> words = {"red",  "enamel", "mug",  "dishwasher",
                                          "safe", "chip",   "proof"};
  EXPECT_EQ(DescriptionWords(item.description), words);
  for (const auto& w : words) {
    ASSERT_TRUE(f.count("d:" + w)) << w;
    EXPECT_NEAR(f["d:" + w] * f["d:" + w] * 7, 1.0, 1e-6) << w;
  }
  EXPECT_NEAR(f["w:red"] * f["w:red"] * 2, 1.0, 1e-6);  // the title's weight is its own
  EXPECT_FALSE(f.count("d:the"));
  // A long description counts its first kMaxDescriptionWords distinct words.
  ItemAttributes wordy;
  for (int i = 0; i < 100; ++i) wordy.description += "w" + std::to_string(i) + " w0 ";
  const auto first = DescriptionWords(wordy.description);
  ASSERT_EQ(first.size(), kMaxDescriptionWords);
  EXPECT_EQ(first.back(), "w" + std::to_string(kMaxDescriptionWords - 1));
  // Weight 0 leaves the group out.
  ColdStartOptions none;
  none.description_weight = 0;
  for (const auto& [name, value] : AttributeFeatures(item, none))
    EXPECT_NE(name.rfind("d:", 0), 0u);
}

TEST(ColdStart, ADescriptionAlonePlacesAProductInItsCategory) {
  // The planted catalog with uninformative titles and no categories: only the descriptions
  // name the category (among words every product shares).
  PlantedCatalog c = MakeCatalog(30);
  const char* names[] = {"mugs", "pans", "shoes", "shirts"};
  for (size_t i = 0; i < c.items.size(); ++i) {
    c.items[i].category.clear();
    c.items[i].price.reset();
    c.items[i].title = "Item " + std::to_string(i);
    c.items[i].description =
        std::string("Great value. Our ") + names[i / 30] + " ship fast, great value.";
  }
  ColdStartModel model;
  auto report = model.Fit(c.items, c.support, c.factors, ColdStartOptions());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_LT(report->train_rmse, report->target_rms / 2);
  for (int k = 0; k < 4; ++k) {
    ItemAttributes fresh;
    fresh.title = "Item new";
    fresh.description = std::string("New in: ") + names[k] + ", great value.";
    auto v = model.Embed(fresh);
    ASSERT_TRUE(v.ok());
    ASSERT_GT(v->norm(), 0.1f) << names[k];
    EXPECT_EQ(NearestCenter(c, *v), k) << names[k];
  }
}

class ColdStartMethods : public ::testing::TestWithParam<ColdStartMethod> {};

TEST_P(ColdStartMethods, PlacesAnUnseenProductInItsCategory) {
  const PlantedCatalog c = MakeCatalog(30);
  ColdStartOptions o;
  o.method = GetParam();
  ColdStartModel model;
  auto report = model.Fit(c.items, c.support, c.factors, o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->targets, 120);
  EXPECT_LT(report->train_rmse, report->target_rms / 2);
  const char* names[] = {"Mugs", "Pans", "Shoes", "Shirts"};
  const char* top[] = {"Home", "Home", "Sports", "Sports"};
  for (int k = 0; k < 4; ++k) {
    ItemAttributes fresh;
    fresh.category = {top[k], names[k]};
    fresh.title = std::string("brand new ") + names[k];
    auto v = model.Embed(fresh);
    ASSERT_TRUE(v.ok());
    ASSERT_GT(v->norm(), 0.1f) << names[k];
    EXPECT_EQ(NearestCenter(c, *v), k) << names[k];
  }
  // Only the title: the word alone still says which category.
  ItemAttributes titled;
  titled.title = "Shoes for trail running";
  auto v = model.Embed(titled);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(NearestCenter(c, *v), 2);
  // Nothing the model knows: no vector.
  ItemAttributes unknown;
  unknown.title = "zzz qqq";
  auto zero = model.Embed(unknown);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->squaredNorm(), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Both, ColdStartMethods,
                         ::testing::Values(ColdStartMethod::kRidge, ColdStartMethod::kKnn));

TEST(ColdStart, ProductsWithTooFewBuyersAreNotTargets) {
  PlantedCatalog c = MakeCatalog(10);
  for (int i = 0; i < 10; ++i) c.support[i] = 1;  // the Mugs
  ColdStartModel model;
  auto report = model.Fit(c.items, c.support, c.factors, ColdStartOptions());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->targets, 30);
  // "Mugs" is no longer in the vocabulary: a new mug is placed by its top level only.
  for (const auto& name : model.vocabulary()) EXPECT_EQ(name.find("Mugs"), std::string::npos);
}

TEST(ColdStart, RidgeRoundTripsThroughItsParts) {
  const PlantedCatalog c = MakeCatalog(10);
  ColdStartModel model;
  ASSERT_TRUE(model.Fit(c.items, c.support, c.factors, ColdStartOptions()).ok());
  auto copy = ColdStartModel::FromParts(model.options(), model.vocabulary(), model.weights());
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  for (const ItemAttributes& item : c.items) {
    EXPECT_TRUE(copy->Embed(item)->isApprox(*model.Embed(item)));
  }
  auto bad = ColdStartModel::FromParts(model.options(), {"bias"}, model.weights());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(ColdStart, Errors) {
  ColdStartModel model;
  EXPECT_EQ(model.Embed(ItemAttributes{}).status().code(), StatusCode::kFailedPrecondition);
  const PlantedCatalog c = MakeCatalog(5);
  ColdStartOptions o;
  o.regularization = -1;
  EXPECT_EQ(model.Fit(c.items, c.support, c.factors, o).status().field(), "regularization");
  std::vector<int32_t> short_support(3, 5);
  EXPECT_EQ(model.Fit(c.items, short_support, c.factors, ColdStartOptions()).status().code(),
            StatusCode::kInvalidArgument);
  std::vector<int32_t> none(c.items.size(), 0);
  EXPECT_EQ(model.Fit(c.items, none, c.factors, ColdStartOptions()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseColdStartMethod("lasso").status().field(), "method");
}

// ---- Calibration ----

TEST(FitLogistic, RecoversPlantedWeightsAndMatchesTheBuyerCount) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const double w0 = 1.5, w1 = -0.7, b = -3.0;
  std::vector<float> x;
  std::vector<uint8_t> y;
  for (int i = 0; i < 200000; ++i) {
    const float a = normal(rng), c = normal(rng);
    x.push_back(a);
    x.push_back(c);
    y.push_back(uniform(rng) < 1 / (1 + std::exp(-(w0 * a + w1 * c + b))) ? 1 : 0);
  }
  auto fit = FitLogistic(x, y, {}, {"a", "c"}, 30);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  EXPECT_NEAR(fit->weights[0], w0, 0.05);
  EXPECT_NEAR(fit->weights[1], w1, 0.05);
  EXPECT_NEAR(fit->intercept, b, 0.05);
  double predicted = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double row[] = {x[2 * i], x[2 * i + 1]};
    predicted += fit->Probability(row);
  }
  EXPECT_NEAR(predicted, static_cast<double>(fit->positives), 1e-3 * fit->positives);
  // Subsampled negatives, weighted back, give the same model.
  std::vector<float> xs, ws;
  std::vector<uint8_t> ys;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!y[i] && i % 5 != 0) continue;
    xs.insert(xs.end(), {x[2 * i], x[2 * i + 1]});
    ys.push_back(y[i]);
    ws.push_back(y[i] ? 1.0f : 5.0f);
  }
  auto weighted = FitLogistic(xs, ys, ws, {"a", "c"}, 30);
  ASSERT_TRUE(weighted.ok());
  EXPECT_NEAR(weighted->intercept, b, 0.1);
  EXPECT_NEAR(weighted->weights[0], w0, 0.1);
  // A longer horizon is more likely, a shorter one less (constant hazard).
  const double row[] = {1.0, 0.0};
  EXPECT_GT(fit->Probability(row, 60), fit->Probability(row));
  EXPECT_LT(fit->Probability(row, 7), fit->Probability(row));
}

TEST(FitLogistic, Errors) {
  const std::vector<float> x = {1, 2, 3};
  EXPECT_EQ(FitLogistic(x, std::vector<uint8_t>{0, 0, 0}, {}, {"s"}, 30).status().field(),
            "labels");
  EXPECT_EQ(FitLogistic(x, std::vector<uint8_t>{0, 1}, {}, {"s"}, 30).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<float> bad = {1, std::nanf(""), 3};
  EXPECT_EQ(FitLogistic(bad, std::vector<uint8_t>{0, 1, 0}, {}, {"s"}, 30).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Auc, RanksAndTies) {
  const std::vector<uint8_t> labels = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{1, 2, 3, 4}, labels), 1.0);
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{4, 3, 2, 1}, labels), 0.0);
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{1, 1, 1, 1}, labels), 0.5);
  // One of the four (positive, negative) pairs is ordered wrongly.
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{1, 3, 2, 4}, labels), 0.75);
  EXPECT_TRUE(std::isnan(Auc(std::vector<float>{1, 2}, std::vector<uint8_t>{1, 1})));
}

TEST(MeasureCalibration, ExpectedErrorAndTotals) {
  // Predicted about 0.5 everywhere, observed 1 in 4 (one per equal-count bin of 4): off by about
  // 0.25 in every bin.
  std::vector<double> p;
  std::vector<uint8_t> y;
  for (int i = 0; i < 40; ++i) {
    p.push_back(0.5 + 1e-4 * i);
    y.push_back(i % 4 == 0 ? 1 : 0);
  }
  auto r = MeasureCalibration(p, y);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->ece, 0.25, 0.01);
  EXPECT_NEAR(r->ece_quantile, 0.25, 0.01);
  ASSERT_EQ(r->bins.size(), 10u);
  for (const auto& bin : r->bins) EXPECT_DOUBLE_EQ(bin.observed, 0.25);
  EXPECT_NEAR(r->predicted_positives, 20.0, 0.1);
  EXPECT_EQ(r->observed_positives, 10);
  // Calibrated: predicted rates equal observed ones.
  const std::vector<double> q = {0, 0, 0, 0, 1, 1, 1, 1};
  const std::vector<uint8_t> z = {0, 0, 0, 0, 1, 1, 1, 1};
  EXPECT_NEAR(MeasureCalibration(q, z)->ece, 0.0, 1e-12);
  EXPECT_EQ(MeasureCalibration({}, {}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace affinity

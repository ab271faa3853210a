#include "affinity/models/item_filter.h"

#include <gtest/gtest.h>

#include <cmath>

namespace affinity {
namespace {

// u0: {i0, i1}, u1: {i1, i2}, u2: {i0}. Degrees: users 2, 2, 1; items 2, 2, 1.
// R̃ = D_U^-1/2 R D_I^-1/2: (u0,i0) = (u0,i1) = (u1,i1) = 1/2, (u1,i2) = (u2,i0) = 1/√2.
// P = R̃ᵀR̃: P00 = 1/4 + 1/2 = 3/4, P01 = 1/4, P02 = 0, P11 = 1/2, P12 = 1/(2√2), P22 = 1/2.
CsrMatrix Tiny() {
  CsrBuilder b(3);
  EXPECT_TRUE(b.Add(0, 0, 1).ok());
  EXPECT_TRUE(b.Add(0, 1, 3).ok());  // weights are binarized
  EXPECT_TRUE(b.Add(1, 1, 1).ok());
  EXPECT_TRUE(b.Add(1, 2, 2).ok());
  EXPECT_TRUE(b.Add(2, 0, 1).ok());
  return std::move(b.Finish(3).value());
}

TEST(ItemFilter, ScoresAreTheHistoryTimesTheNormalizedCooccurrence) {
  ItemFilterRecommender f;
  ASSERT_TRUE(f.Fit(Tiny()).ok());
  EXPECT_EQ(f.filter_nonzeros(), 7);  // P02 = P20 = 0 are not stored
  RowMajorMatrixXf s;
  std::vector<int32_t> users = {2, 0, 1};
  f.ScoreBatch(users, &s);
  const float r = 1 / (2 * std::sqrt(2.0f));
  // u2 = P row 0; u0 = P0 + P1; u1 = P1 + P2.
  std::vector<std::vector<float>> want = {
      {0.75f, 0.25f, 0.0f}, {1.0f, 0.75f, r}, {0.25f, 0.5f + r, r + 0.5f}};
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(s(k, i), want[k][i], 1e-6) << k << "," << i;
  }
  ItemFilterRecommender empty;
  EXPECT_EQ(empty.Fit(CsrMatrix{}).code(), StatusCode::kInvalidArgument);
}

// A model with fixed scores, for the blend.
class Fixed final : public Recommender {
 public:
  explicit Fixed(std::vector<float> scores) : scores_(std::move(scores)) {}
  std::string_view name() const override { return "fixed"; }
  Status Fit(const CsrMatrix&) override { return Status::Ok(); }
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override {
    out->resize(static_cast<Eigen::Index>(users.size()), static_cast<Eigen::Index>(scores_.size()));
    for (size_t k = 0; k < users.size(); ++k) {
      for (size_t i = 0; i < scores_.size(); ++i) (*out)(k, i) = scores_[i];
    }
  }

 private:
  std::vector<float> scores_;
};

TEST(Blend, StandardizesEachModelThenWeights) {
  std::vector<std::pair<std::unique_ptr<Recommender>, double>> parts;
  // Model A: 0, 2, 4, 6 -> mean 3, std √5 -> z = (-3, -1, 1, 3)/√5.
  // Model B: 10, 10, 10, 50 -> mean 20, std √300 -> z = (-10, -10, -10, 30)/√300.
  parts.emplace_back(std::make_unique<Fixed>(std::vector<float>{0, 2, 4, 6}), 0.7);
  parts.emplace_back(std::make_unique<Fixed>(std::vector<float>{10, 10, 10, 50}), 0.3);
  BlendRecommender blend("blend", std::move(parts));
  ASSERT_TRUE(blend.Fit(Tiny()).ok());
  RowMajorMatrixXf s;
  std::vector<int32_t> users = {0, 1};
  blend.ScoreBatch(users, &s);
  const double za[] = {-3, -1, 1, 3}, zb[] = {-10, -10, -10, 30};
  for (int i = 0; i < 4; ++i) {
    double want = 0.7 * za[i] / std::sqrt(5.0) + 0.3 * zb[i] / std::sqrt(300.0);
    EXPECT_NEAR(s(0, i), want, 1e-5);
    EXPECT_NEAR(s(1, i), want, 1e-5);
  }
  std::vector<std::pair<std::unique_ptr<Recommender>, double>> bad;
  bad.emplace_back(std::make_unique<Fixed>(std::vector<float>{1}), 0.0);
  BlendRecommender zero("zero", std::move(bad));
  EXPECT_EQ(zero.Fit(Tiny()).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace affinity

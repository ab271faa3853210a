#include "affinity/models/ials.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <random>

namespace affinity {
namespace {

// Two taste groups: users 0..49 buy among items 0..19, users 50..99 among items 20..39, each
// user a random 6 of their group's items (seeded). The planted answer: a user's top unseen items
// come from their own group.
CsrMatrix PlantedGroups(uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  CsrBuilder b(40);
  for (int u = 0; u < 100; ++u) {
    int base = u < 50 ? 0 : 20;
    std::vector<int> items(20);
    for (int i = 0; i < 20; ++i) items[i] = base + i;
    std::shuffle(items.begin(), items.end(), rng);
    for (int k = 0; k < 6; ++k)
      EXPECT_TRUE(b.Add(u, items[k], 1.0f + static_cast<float>(k % 3)).ok());
  }
  return std::move(b.Finish(100).value());
}

IalsOptions Small() {
  IalsOptions o;
  o.factors = 8;
  o.iterations = 10;
  o.unobserved_weight = 0.1;
  o.regularization = 0.01;
  o.num_threads = 2;
  return o;
}

TEST(Ials, RanksTheUsersOwnGroupFirst) {
  CsrMatrix m = PlantedGroups();
  IalsModel model(Small());
  ASSERT_TRUE(model.Fit(m).ok());
  RowMajorMatrixXf scores;
  std::vector<int32_t> users(100);
  std::iota(users.begin(), users.end(), 0);
  model.ScoreBatch(users, &scores);
  ASSERT_EQ(scores.rows(), 100);
  ASSERT_EQ(scores.cols(), 40);
  double own_in_top5 = 0;
  for (int u = 0; u < 100; ++u) {
    const int own = u < 50 ? 0 : 20, other = u < 50 ? 20 : 0;
    // Every user scores their own group higher on average ...
    double own_mean = 0, other_mean = 0;
    for (int i = 0; i < 20; ++i) {
      own_mean += scores(u, own + i) / 20;
      other_mean += scores(u, other + i) / 20;
    }
    EXPECT_GT(own_mean, other_mean) << "user " << u;
    // ... and their top 5 unseen items come from it.
    std::vector<int> unseen;
    for (int i = 0; i < 40; ++i) {
      if (m.At(u, i) == 0) unseen.push_back(i);
    }
    std::partial_sort(unseen.begin(), unseen.begin() + 5, unseen.end(),
                      [&](int a, int b) { return scores(u, a) > scores(u, b); });
    for (int k = 0; k < 5; ++k) own_in_top5 += (unseen[k] >= own && unseen[k] < own + 20) ? 0.2 : 0;
  }
  EXPECT_GE(own_in_top5 / 100, 0.95);
}

TEST(Ials, LossDecreasesAndCgApproachesTheExactSolve) {
  CsrMatrix m = PlantedGroups(2);
  std::vector<double> losses;
  IalsOptions o = Small();
  o.confidence_alpha = 2.0;  // exercise confidence weights too
  IalsModel cg(o);
  cg.set_progress_callback([&](const IalsProgress& p) { losses.push_back(p.loss); });
  ASSERT_TRUE(cg.Fit(m).ok());
  ASSERT_EQ(losses.size(), 10u);
  for (size_t i = 1; i < losses.size(); ++i) EXPECT_LE(losses[i], losses[i - 1] * 1.0001) << i;
  EXPECT_NEAR(losses.back(), cg.Loss(m), 1e-9);

  IalsOptions exact_options = o;
  exact_options.solver = IalsSolver::kCholesky;
  IalsModel exact(exact_options);
  std::vector<double> exact_losses;
  exact.set_progress_callback([&](const IalsProgress& p) { exact_losses.push_back(p.loss); });
  ASSERT_TRUE(exact.Fit(m).ok());
  // Exact ALS decreases the loss monotonically; CG with warm starts ends close to it.
  for (size_t i = 1; i < exact_losses.size(); ++i)
    EXPECT_LE(exact_losses[i], exact_losses[i - 1] + 1e-9);
  EXPECT_NEAR(losses.back(), exact_losses.back(), 0.02 * exact_losses.back());
}

TEST(Ials, FoldInSolvesTheUserRowExactly) {
  CsrMatrix m = PlantedGroups(3);
  IalsOptions o = Small();
  o.confidence_alpha = 1.5;
  IalsModel model(o);
  ASSERT_TRUE(model.Fit(m).ok());
  std::vector<int32_t> items = {1, 4, 7};
  std::vector<float> weights = {1, 3, 2};
  auto w = model.FoldInUser(items, weights);
  ASSERT_TRUE(w.ok());
  // Independent dense solve: (α₀ HᵀH + λ_u I + Σ c h hᵀ) w = Σ c h, c = 1 + α log(1 + r),
  // λ_u = λ (3 + α₀ · 40)^1.
  const auto& h = model.item_factors();
  Eigen::MatrixXd a = 0.1 * (h.transpose() * h).cast<double>();
  a.diagonal().array() += 0.01 * (3 + 0.1 * 40);
  Eigen::VectorXd b = Eigen::VectorXd::Zero(8);
  for (size_t k = 0; k < items.size(); ++k) {
    Eigen::VectorXd hk = h.row(items[k]).transpose().cast<double>();
    double c = 1 + 1.5 * std::log1p(weights[k]);
    a += c * hk * hk.transpose();
    b += c * hk;
  }
  Eigen::VectorXd expected = a.ldlt().solve(b);
  for (int j = 0; j < 8; ++j) EXPECT_NEAR((*w)(j), expected(j), 1e-4);
  // The folded-in user prefers the items' own group.
  Eigen::VectorXf s = h * *w;
  EXPECT_GT(s.head(20).mean(), s.tail(20).mean());
  // Errors.
  std::vector<int32_t> bad = {99};
  std::vector<float> one = {1};
  EXPECT_EQ(model.FoldInUser(bad, one).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> zero = {0};
  std::vector<int32_t> ok = {1};
  EXPECT_EQ(model.FoldInUser(ok, zero).status().code(), StatusCode::kInvalidArgument);
  IalsModel unfitted(o);
  EXPECT_EQ(unfitted.FoldInUser(ok, one).status().code(), StatusCode::kFailedPrecondition);
}

TEST(Ials, ThreadCountDoesNotChangeTheResult) {
  CsrMatrix m = PlantedGroups(4);
  IalsOptions one = Small();
  one.num_threads = 1;
  IalsOptions two = Small();
  two.num_threads = 2;
  IalsModel a(one), b(two);
  ASSERT_TRUE(a.Fit(m).ok());
  ASSERT_TRUE(b.Fit(m).ok());
  // Each row is solved independently of the others, so the factors are identical.
  EXPECT_EQ(a.user_factors(), b.user_factors());
  EXPECT_EQ(a.item_factors(), b.item_factors());
}

TEST(Ials, OptionAndInputErrors) {
  auto field = [](auto mutate) {
    IalsOptions o;
    mutate(o);
    return o.Validate().field();
  };
  EXPECT_EQ(field([](IalsOptions& o) { o.factors = 0; }), "factors");
  EXPECT_EQ(field([](IalsOptions& o) { o.unobserved_weight = -1; }), "unobserved_weight");
  EXPECT_EQ(field([](IalsOptions& o) { o.regularization = -1; }), "regularization");
  EXPECT_EQ(field([](IalsOptions& o) { o.cg_steps = 0; }), "cg_steps");
  EXPECT_EQ(field([](IalsOptions& o) { o.init_stddev = 0; }), "init_stddev");
  EXPECT_EQ(field([](IalsOptions& o) { o.num_threads = -2; }), "num_threads");
  IalsModel model;
  CsrMatrix empty;
  EXPECT_EQ(model.Fit(empty).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace affinity

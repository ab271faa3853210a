#include "affinity/models/baselines.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

namespace affinity {
namespace {

using Triplet = std::tuple<int64_t, int32_t, float>;  // (user, item, weight), rows ascending

CsrMatrix Build(int64_t rows, int64_t cols, const std::vector<Triplet>& entries) {
  CsrBuilder b(cols);
  for (const auto& [r, c, v] : entries) EXPECT_TRUE(b.Add(r, c, v).ok());
  return std::move(b.Finish(rows).value());
}

// 4 users x 5 items; item 4 has no users.
//   u0: 0 (w 1), 1 (w 2)          U_0 = {u0, u1}       n = (2, 3, 2, 2, 0)
//   u1: 0 (1), 1 (1), 2 (3)       U_1 = {u0, u1, u3}
//   u2: 2 (1), 3 (1)              U_2 = {u1, u2}
//   u3: 1 (2), 3 (1)              U_3 = {u2, u3}
// Co-occurrences c_ij = |U_i ∩ U_j|: c01 = 2, c02 = 1, c03 = 0, c12 = 1, c13 = 1, c23 = 1, so
// the cosines are sim01 = 2/√6, sim02 = 1/2, sim03 = 0, sim12 = sim13 = 1/√6, sim23 = 1/2.
CsrMatrix Tiny() {
  return Build(4, 5,
               {{0, 0, 1.0f},
                {0, 1, 2.0f},
                {1, 0, 1.0f},
                {1, 1, 1.0f},
                {1, 2, 3.0f},
                {2, 2, 1.0f},
                {2, 3, 1.0f},
                {3, 1, 2.0f},
                {3, 3, 1.0f}});
}

// Two taste groups: users 0..49 buy among items 0..19, users 50..99 among items 20..39, each
// user a random 6 of their group's items (seeded), with weights 1..3.
CsrMatrix PlantedGroups(uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<Triplet> entries;
  for (int u = 0; u < 100; ++u) {
    const int base = u < 50 ? 0 : 20;
    std::vector<int> items(20);
    std::iota(items.begin(), items.end(), base);
    std::shuffle(items.begin(), items.end(), rng);
    for (int k = 0; k < 6; ++k) entries.emplace_back(u, items[k], 1.0f + static_cast<float>(k % 3));
  }
  return Build(100, 40, entries);
}

// A random sparse users x items matrix with about `density` of its cells set (weights 1..4).
CsrMatrix RandomSparse(int64_t users, int32_t items, double density, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution on(density);
  std::uniform_int_distribution<int> weight(1, 4);
  std::vector<Triplet> entries;
  for (int64_t u = 0; u < users; ++u) {
    for (int32_t i = 0; i < items; ++i) {
      if (on(rng)) entries.emplace_back(u, i, static_cast<float>(weight(rng)));
    }
  }
  return Build(users, items, entries);
}

RowMajorMatrixXf Score(const Recommender& model, std::vector<int32_t> users) {
  RowMajorMatrixXf out;
  model.ScoreBatch(users, &out);
  return out;
}

RowMajorMatrixXf ScoreAll(const Recommender& model, int64_t rows) {
  std::vector<int32_t> users(static_cast<size_t>(rows));
  std::iota(users.begin(), users.end(), 0);
  return Score(model, users);
}

// X = [R > 0] as a dense double matrix.
Eigen::MatrixXd DenseBinary(const CsrMatrix& m) {
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(m.rows, m.cols);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t k = m.RowBegin(r); k < m.RowEnd(r); ++k) x(r, m.indices[k]) = m.values[k] > 0;
  }
  return x;
}

// EASE scores computed independently: dense G, a general (LU) inverse, B, then X B.
Eigen::MatrixXd DirectEaseScores(const CsrMatrix& m, double lambda) {
  const Eigen::MatrixXd x = DenseBinary(m);
  Eigen::MatrixXd g = x.transpose() * x;
  g.diagonal().array() += lambda;
  const Eigen::MatrixXd p = g.inverse();
  Eigen::MatrixXd b(p.rows(), p.cols());
  for (Eigen::Index j = 0; j < p.cols(); ++j) b.col(j) = -p.col(j) / p(j, j);
  b.diagonal().setZero();
  return x * b;
}

// For every user: each unseen item of their own group scores above every item of the other.
void ExpectOwnGroupFirst(const Recommender& model, const CsrMatrix& m) {
  const RowMajorMatrixXf scores = ScoreAll(model, m.rows);
  ASSERT_EQ(scores.rows(), 100);
  ASSERT_EQ(scores.cols(), 40);
  for (int u = 0; u < 100; ++u) {
    const int own = u < 50 ? 0 : 20, other = u < 50 ? 20 : 0;
    float own_unseen_min = std::numeric_limits<float>::infinity();
    float other_max = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < 20; ++i) {
      if (m.At(u, own + i) == 0) own_unseen_min = std::min(own_unseen_min, scores(u, own + i));
      other_max = std::max(other_max, scores(u, other + i));
    }
    EXPECT_GT(own_unseen_min, other_max) << model.name() << " user " << u;
  }
}

// ScoreBatch on a batch (with a repeated user) equals one call per user, row for row.
void ExpectBatchEqualsSingles(const Recommender& model) {
  const std::vector<int32_t> users = {7, 0, 63, 7, 99};
  const RowMajorMatrixXf batch = Score(model, users);
  ASSERT_EQ(batch.rows(), static_cast<Eigen::Index>(users.size()));
  for (size_t k = 0; k < users.size(); ++k) {
    const RowMajorMatrixXf single = Score(model, {users[k]});
    ASSERT_EQ(single.rows(), 1);
    EXPECT_EQ(single.row(0), batch.row(static_cast<Eigen::Index>(k)))
        << model.name() << " user " << users[k];
  }
  EXPECT_EQ(Score(model, {}).rows(), 0);
}

// Every model rejects an empty matrix, an all-empty matrix and a negative weight.
void ExpectRejectsBadMatrices(Recommender& model) {
  EXPECT_EQ(model.Fit(CsrMatrix{}).code(), StatusCode::kInvalidArgument) << model.name();
  const Status no_entries = model.Fit(Build(3, 4, {}));
  EXPECT_EQ(no_entries.code(), StatusCode::kInvalidArgument) << model.name();
  EXPECT_EQ(no_entries.field(), "interactions");
  CsrMatrix negative = Build(2, 2, {{0, 0, 1.0f}, {1, 1, 2.0f}});
  negative.values[1] = -1.0f;
  EXPECT_EQ(model.Fit(negative).code(), StatusCode::kInvalidArgument) << model.name();
  CsrMatrix out_of_range = Build(2, 2, {{0, 0, 1.0f}, {1, 1, 2.0f}});
  out_of_range.indices[1] = 5;
  EXPECT_EQ(model.Fit(out_of_range).code(), StatusCode::kInvalidArgument) << model.name();
}

// ---------------------------------------------------------------------------------------------

TEST(Popularity, ScoresDistinctUsersPerItem) {
  PopularityRecommender model;
  EXPECT_EQ(model.name(), "popularity");
  ASSERT_TRUE(model.Fit(Tiny()).ok());
  const RowMajorMatrixXf scores = ScoreAll(model, 4);
  ASSERT_EQ(scores.cols(), 5);
  // Weights do not matter (u1 bought 3 of item 2): n = (2, 3, 2, 2, 0) for every user.
  for (int u = 0; u < 4; ++u) {
    EXPECT_EQ(scores.row(u), (Eigen::RowVectorXf(5) << 2, 3, 2, 2, 0).finished()) << u;
  }
}

TEST(Popularity, ZeroWeightsAreNotInteractions) {
  CsrMatrix m = Build(2, 3, {{0, 0, 1.0f}, {0, 1, 1.0f}, {1, 1, 4.0f}});
  m.values[0] = 0.0f;  // a stored zero (e.g. a cancelled purchase) counts for nobody
  PopularityRecommender model;
  ASSERT_TRUE(model.Fit(m).ok());
  EXPECT_EQ(model.popularity(), Eigen::Vector3f(0, 2, 0));
}

TEST(Popularity, RejectsBadMatricesAndBatchesLikeSingles) {
  PopularityRecommender model;
  ExpectRejectsBadMatrices(model);
  ASSERT_TRUE(model.Fit(PlantedGroups()).ok());
  ExpectBatchEqualsSingles(model);
}

// ---------------------------------------------------------------------------------------------

TEST(ItemKnn, CosineSimilaritiesAndScoresByHand) {
  ItemKnnRecommender model;
  EXPECT_EQ(model.name(), "item_knn");
  ASSERT_TRUE(model.Fit(Tiny()).ok());
  const double r6 = std::sqrt(6.0);
  const CsrMatrix& s = model.similarities();
  ASSERT_EQ(s.rows, 5);
  // Row 0: items 1 (2/√6) and 2 (1/2); c03 = 0 so item 3 is not stored; no self-similarity.
  EXPECT_EQ(s.RowEnd(0) - s.RowBegin(0), 2);
  EXPECT_NEAR(s.At(0, 1), 2 / r6, 1e-6);
  EXPECT_NEAR(s.At(0, 2), 0.5, 1e-6);
  EXPECT_EQ(s.At(0, 0), 0.0f);
  EXPECT_NEAR(s.At(2, 3), 0.5, 1e-6);
  EXPECT_NEAR(s.At(3, 1), 1 / r6, 1e-6);
  EXPECT_EQ(s.RowEnd(4) - s.RowBegin(4), 0);  // item 4 has no users

  const RowMajorMatrixXf scores = ScoreAll(model, 4);
  // u0 = {0, 1}: score(i) = sim(0, i) + sim(1, i).
  const Eigen::RowVectorXf u0 =
      (Eigen::RowVectorXf(5) << 2 / r6, 2 / r6, 0.5 + 1 / r6, 1 / r6, 0).finished();
  EXPECT_TRUE(scores.row(0).isApprox(u0, 1e-6f)) << scores.row(0);
  // u2 = {2, 3}: score(i) = sim(2, i) + sim(3, i).
  const Eigen::RowVectorXf u2 = (Eigen::RowVectorXf(5) << 0.5, 2 / r6, 0.5, 0.5, 0).finished();
  EXPECT_TRUE(scores.row(2).isApprox(u2, 1e-6f)) << scores.row(2);
}

TEST(ItemKnn, KeepsTopNeighborsWithTiesToLowerIds) {
  ItemKnnOptions o;
  o.neighbors = 1;
  ItemKnnRecommender model(o);
  ASSERT_TRUE(model.Fit(Tiny()).ok());
  const CsrMatrix& s = model.similarities();
  // Each item keeps its single best neighbour; item 2 ties 0 and 3 at 1/2 and keeps item 0.
  const std::vector<std::vector<int32_t>> expected = {{1}, {0}, {0}, {2}, {}};
  for (int32_t i = 0; i < 5; ++i) {
    std::vector<int32_t> row(s.indices.begin() + s.RowBegin(i), s.indices.begin() + s.RowEnd(i));
    EXPECT_EQ(row, expected[i]) << "item " << i;
  }
  // score(u2 = {2, 3}, ·) = S_2· + S_3· = (1/2 at item 0) + (1/2 at item 2).
  const RowMajorMatrixXf scores = Score(model, {2});
  EXPECT_TRUE(scores.row(0).isApprox(
      Eigen::RowVectorXf((Eigen::RowVectorXf(5) << 0.5, 0, 0.5, 0, 0).finished()), 1e-6f))
      << scores;
}

TEST(ItemKnn, ShrinkDampsTheCosine) {
  ItemKnnOptions o;
  o.shrink = 1.0;
  ItemKnnRecommender model(o);
  ASSERT_TRUE(model.Fit(Tiny()).ok());
  // sim01 = c01 / (√n0 √n1 + 1) = 2 / (√6 + 1).
  EXPECT_NEAR(model.similarities().At(0, 1), 2 / (std::sqrt(6.0) + 1), 1e-6);
  EXPECT_NEAR(model.similarities().At(2, 3), 1 / (2.0 + 1), 1e-6);
}

TEST(ItemKnn, RanksTheUsersOwnGroupFirst) {
  const CsrMatrix m = PlantedGroups();
  ItemKnnRecommender model;
  ASSERT_TRUE(model.Fit(m).ok());
  ExpectOwnGroupFirst(model, m);
}

TEST(ItemKnn, SameResultForAnyThreadCount) {
  const CsrMatrix m = RandomSparse(200, 150, 0.05, 3);
  ItemKnnOptions o;
  o.neighbors = 10;
  o.num_threads = 1;
  ItemKnnRecommender one(o);
  o.num_threads = 2;
  ItemKnnRecommender two(o);
  ASSERT_TRUE(one.Fit(m).ok());
  ASSERT_TRUE(two.Fit(m).ok());
  EXPECT_EQ(one.similarities().indices, two.similarities().indices);
  EXPECT_EQ(one.similarities().values, two.similarities().values);
  // At most `neighbors` per row.
  for (int64_t i = 0; i < m.cols; ++i) {
    EXPECT_LE(one.similarities().RowEnd(i) - one.similarities().RowBegin(i), 10);
  }
}

TEST(ItemKnn, RejectsBadOptionsNamingTheField) {
  auto field = [](ItemKnnOptions o) {
    ItemKnnRecommender model(o);
    const Status st = model.Fit(Tiny());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(o.Validate().field(), st.field());
    return st.field();
  };
  ItemKnnOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.neighbors = 0;
  EXPECT_EQ(field(o), "neighbors");
  o = {};
  o.shrink = -1;
  EXPECT_EQ(field(o), "shrink");
  o.shrink = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(field(o), "shrink");
  o = {};
  o.num_threads = -1;
  EXPECT_EQ(field(o), "num_threads");
}

TEST(ItemKnn, RejectsBadMatricesAndBatchesLikeSingles) {
  ItemKnnRecommender model;
  ExpectRejectsBadMatrices(model);
  ASSERT_TRUE(model.Fit(PlantedGroups()).ok());
  ExpectBatchEqualsSingles(model);
}

// ---------------------------------------------------------------------------------------------

TEST(Repeat, ScoresOwnWeightsThenPopularity) {
  RepeatRecommender model;
  EXPECT_EQ(model.name(), "repeat");
  ASSERT_TRUE(model.Fit(Tiny()).ok());
  const RowMajorMatrixXf scores = ScoreAll(model, 4);
  // score(u, i) = r_ui + 1e-6 · n_i / 3, n = (2, 3, 2, 2, 0).
  const double e = 1e-6;
  const Eigen::RowVectorXf u1 =
      (Eigen::RowVectorXf(5) << 1 + e * 2 / 3, 1 + e, 3 + e * 2 / 3, e * 2 / 3, 0).finished();
  EXPECT_TRUE(scores.row(1).isApprox(u1, 1e-7f)) << scores.row(1);
  // u0 = {0 (w 1), 1 (w 2)}: own items by weight, then unseen by popularity (2 ≈ 3 > 4).
  EXPECT_FLOAT_EQ(scores(0, 0), static_cast<float>(1 + e * 2 / 3));
  EXPECT_FLOAT_EQ(scores(0, 1), static_cast<float>(2 + e));
  EXPECT_FLOAT_EQ(scores(0, 2), static_cast<float>(e * 2 / 3));
  EXPECT_FLOAT_EQ(scores(0, 3), static_cast<float>(e * 2 / 3));
  EXPECT_EQ(scores(0, 4), 0.0f);
  EXPECT_GT(scores(0, 1), scores(0, 0));
  EXPECT_GT(scores(0, 0), scores(0, 2));
  EXPECT_GT(scores(0, 2), scores(0, 4));
}

TEST(Repeat, UnseenItemsFollowPopularity) {
  // u0 bought item 0 only; items 1, 2, 3 have 3, 2, 1 users among the others.
  const CsrMatrix m = Build(4, 4,
                            {{0, 0, 5.0f},
                             {1, 1, 1.0f},
                             {1, 2, 1.0f},
                             {1, 3, 1.0f},
                             {2, 1, 1.0f},
                             {2, 2, 1.0f},
                             {3, 1, 1.0f}});
  RepeatRecommender model;
  ASSERT_TRUE(model.Fit(m).ok());
  const RowMajorMatrixXf s = Score(model, {0});
  EXPECT_GT(s(0, 0), s(0, 1));
  EXPECT_GT(s(0, 1), s(0, 2));
  EXPECT_GT(s(0, 2), s(0, 3));
  EXPECT_GT(s(0, 3), 0.0f);
}

TEST(Repeat, RejectsBadOptionsNamingTheField) {
  RepeatOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.popularity_weight = -1;
  RepeatRecommender model(o);
  const Status st = model.Fit(Tiny());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.field(), "popularity_weight");
  o.popularity_weight = std::numeric_limits<double>::infinity();
  EXPECT_EQ(o.Validate().field(), "popularity_weight");
}

TEST(Repeat, RejectsBadMatricesAndBatchesLikeSingles) {
  RepeatRecommender model;
  ExpectRejectsBadMatrices(model);
  ASSERT_TRUE(model.Fit(PlantedGroups()).ok());
  ExpectBatchEqualsSingles(model);
}

// ---------------------------------------------------------------------------------------------

TEST(Ease, TwoItemsByHand) {
  // u0 = {0, 1}, u1 = {0}, u2 = {0}, u3 = {1}; λ = 1:
  //   G = [[3+1, 1], [1, 2+1]],  P = G⁻¹ = [[3, -1], [-1, 4]] / 11,
  //   B01 = -P01 / P11 = 1/4,  B10 = -P10 / P00 = 1/3.
  const CsrMatrix m =
      Build(4, 2, {{0, 0, 1.0f}, {0, 1, 7.0f}, {1, 0, 2.0f}, {2, 0, 1.0f}, {3, 1, 1.0f}});
  EaseOptions o;
  o.lambda = 1.0;
  EaseRecommender model(o);
  EXPECT_EQ(model.name(), "ease");
  ASSERT_TRUE(model.Fit(m).ok());
  EXPECT_FLOAT_EQ(model.weights()(0, 1), 0.25f);
  EXPECT_FLOAT_EQ(model.weights()(1, 0), 1.0f / 3);
  EXPECT_EQ(model.weights()(0, 0), 0.0f);
  EXPECT_EQ(model.weights()(1, 1), 0.0f);
  // score(u, i) = Σ_{j ∈ I_u} B_ji (weights binarized: u0's 7 counts as 1).
  const RowMajorMatrixXf scores = ScoreAll(model, 4);
  EXPECT_FLOAT_EQ(scores(0, 0), 1.0f / 3);
  EXPECT_FLOAT_EQ(scores(0, 1), 0.25f);
  EXPECT_FLOAT_EQ(scores(1, 0), 0.0f);
  EXPECT_FLOAT_EQ(scores(1, 1), 0.25f);
  EXPECT_FLOAT_EQ(scores(3, 0), 1.0f / 3);
  EXPECT_FLOAT_EQ(scores(3, 1), 0.0f);
}

TEST(Ease, MatchesADirectInverseOnTheTinyMatrix) {
  EaseOptions o;
  o.lambda = 2.0;
  EaseRecommender model(o);
  const CsrMatrix m = Tiny();
  ASSERT_TRUE(model.Fit(m).ok());
  const Eigen::MatrixXd expected = DirectEaseScores(m, 2.0);
  const RowMajorMatrixXf scores = ScoreAll(model, 4);
  for (int u = 0; u < 4; ++u) {
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(scores(u, i), expected(u, i), 1e-6) << u << "," << i;
  }
  // Item 4 has no users: its column of B is 0, and so are its scores.
  EXPECT_TRUE(model.weights().col(4).isZero());
}

TEST(Ease, MatchesADirectInverseAcrossSeveralBlocks) {
  // 600 items: the blocked inverse runs 3 column blocks (256, 256, 88).
  const CsrMatrix m = RandomSparse(500, 600, 0.02, 11);
  EaseOptions o;
  o.lambda = 5.0;
  o.num_threads = 2;
  EaseRecommender model(o);
  ASSERT_TRUE(model.Fit(m).ok());
  const Eigen::MatrixXd expected = DirectEaseScores(m, 5.0);
  const RowMajorMatrixXf scores = ScoreAll(model, m.rows);
  const double max_error = (scores.cast<double>() - expected).cwiseAbs().maxCoeff();
  EXPECT_LT(max_error, 1e-5 * std::max(1.0, expected.cwiseAbs().maxCoeff()));
  EXPECT_TRUE(model.weights().diagonal().isZero());

  o.num_threads = 1;
  EaseRecommender serial(o);
  ASSERT_TRUE(serial.Fit(m).ok());
  EXPECT_EQ(serial.weights(), model.weights());
}

TEST(Ease, RanksTheUsersOwnGroupFirst) {
  const CsrMatrix m = PlantedGroups();
  EaseRecommender model;
  ASSERT_TRUE(model.Fit(m).ok());
  ExpectOwnGroupFirst(model, m);
}

TEST(Ease, RefusesCatalogsAboveMaxItems) {
  EaseOptions o;
  o.max_items = 4;
  EaseRecommender model(o);
  const Status st = model.Fit(Tiny());  // 5 items
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("max_items"), std::string::npos) << st.ToString();
  o.max_items = 5;
  EXPECT_TRUE(EaseRecommender(o).Fit(Tiny()).ok());
}

TEST(Ease, RejectsBadOptionsNamingTheField) {
  auto field = [](EaseOptions o) {
    EaseRecommender model(o);
    const Status st = model.Fit(Tiny());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(o.Validate().field(), st.field());
    return st.field();
  };
  EaseOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.lambda = 0;
  EXPECT_EQ(field(o), "lambda");
  o.lambda = std::numeric_limits<double>::infinity();
  EXPECT_EQ(field(o), "lambda");
  o = {};
  o.max_items = 0;
  EXPECT_EQ(field(o), "max_items");
  o = {};
  o.num_threads = -2;
  EXPECT_EQ(field(o), "num_threads");
}

TEST(Ease, RejectsBadMatricesAndBatchesLikeSingles) {
  EaseRecommender model;
  ExpectRejectsBadMatrices(model);
  ASSERT_TRUE(model.Fit(PlantedGroups()).ok());
  ExpectBatchEqualsSingles(model);
}

}  // namespace
}  // namespace affinity

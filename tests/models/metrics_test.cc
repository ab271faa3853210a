#include "affinity/models/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace affinity {
namespace {

using Ids = std::vector<int32_t>;

constexpr double kEps = 1e-12;

// 1 / log2(i + 2): the NDCG discount of 0-based rank i. D(0) = 1, D(1) = 0.6309297535714575,
// D(2) = 0.5, D(3) = 0.43067655807339306.
double D(int i) { return 1.0 / std::log2(i + 2.0); }

// A matrix with `cols` columns whose row r holds the items rows[r] (weight 1).
CsrMatrix Matrix(int64_t cols, const std::vector<Ids>& rows) {
  CsrBuilder b(cols);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int32_t c : rows[r]) EXPECT_TRUE(b.Add(static_cast<int64_t>(r), c, 1.0f).ok());
  }
  auto m = b.Finish(static_cast<int64_t>(rows.size()));
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : CsrMatrix{};
}

// A Recommender that returns a fixed users x items score table (or, to test the shape check,
// pretends to have `cols` items).
class FixedScores final : public Recommender {
 public:
  explicit FixedScores(RowMajorMatrixXf scores, int64_t cols = -1)
      : scores_(std::move(scores)), cols_(cols < 0 ? scores_.cols() : cols) {}
  std::string_view name() const override { return "fixed"; }
  Status Fit(const CsrMatrix&) override { return Status::Ok(); }
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override {
    out->setZero(static_cast<Eigen::Index>(users.size()), cols_);
    const Eigen::Index n = std::min<Eigen::Index>(cols_, scores_.cols());
    for (size_t j = 0; j < users.size(); ++j) {
      out->row(static_cast<Eigen::Index>(j)).head(n) = scores_.row(users[j]).head(n);
    }
  }

 private:
  RowMajorMatrixXf scores_;
  Eigen::Index cols_;
};

// ---- Per-user metrics. Relevant set R = {1, 3, 5} unless stated. ----

TEST(Metrics, PerfectRanking) {
  const Ids ranked = {1, 3, 5, 0, 2};
  const Ids relevant = {1, 3, 5};
  // k = 3: all 3 of R in the top 3. recall 3/3; DCG = IDCG = D(0)+D(1)+D(2); hit.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 3), 1.0);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 3), 1.0, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 3), 1.0);
  // k = 5: still 3/3; IDCG runs over min(|R|, k) = 3 items, so NDCG stays 1.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 5), 1.0);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 5), 1.0, kEps);
  // k = 1: 1 of 3 relevant; DCG = D(0) = IDCG over min(3, 1) = 1 item.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 1), 1.0 / 3);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 1), 1.0, kEps);
}

TEST(Metrics, NoHits) {
  const Ids ranked = {0, 2, 4, 6};
  const Ids relevant = {1, 3, 5};
  for (int k : {1, 3, 4, 10}) {
    EXPECT_EQ(RecallAt(ranked, relevant, k), 0.0) << k;
    EXPECT_EQ(NdcgAt(ranked, relevant, k), 0.0) << k;
    EXPECT_EQ(HitRateAt(ranked, relevant, k), 0.0) << k;
  }
}

TEST(Metrics, PartialRanking) {
  const Ids ranked = {0, 1, 2, 3, 4};
  const Ids relevant = {1, 3, 5};
  // k = 5: hits at ranks 1 and 3. recall = 2/3.
  // DCG = D(1) + D(3) = 0.63093 + 0.43068 = 1.06161; IDCG = D(0)+D(1)+D(2) = 2.13093;
  // NDCG = 0.49818925746641285.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 5), 2.0 / 3);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 5), 0.49818925746641285, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 5), 1.0);
  // k = 2: one hit at rank 1. recall 1/3; DCG = D(1); IDCG over 2 items = D(0) + D(1);
  // NDCG = 0.63093 / 1.63093 = 0.38685280723454163.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 2), 1.0 / 3);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 2), 0.38685280723454163, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 2), 1.0);
  // k = 1: rank 0 holds item 0, a miss.
  EXPECT_EQ(RecallAt(ranked, relevant, 1), 0.0);
  EXPECT_EQ(NdcgAt(ranked, relevant, 1), 0.0);
  EXPECT_EQ(HitRateAt(ranked, relevant, 1), 0.0);
}

TEST(Metrics, MoreRelevantThanK) {
  const Ids ranked = {3, 1, 0};
  const Ids relevant = {1, 3, 5};
  // k = 2 < |R| = 3, both slots hit. LightGCN recall divides by |R|: 2/3, not 2/min(2, 3) = 1.
  // DCG = D(0) + D(1) = IDCG over min(3, 2) = 2 items: NDCG = 1.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 2), 2.0 / 3);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 2), 1.0, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 2), 1.0);
}

TEST(Metrics, FewerRelevantThanK) {
  const Ids ranked = {0, 1, 4, 2, 3};
  const Ids relevant = {4};
  // k = 5: the single relevant item at rank 2. recall 1/1; DCG = D(2) = 0.5; IDCG = D(0) = 1.
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 5), 1.0);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 5), 0.5, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 5), 1.0);
  // k = 2: the item is below the cut.
  EXPECT_EQ(RecallAt(ranked, relevant, 2), 0.0);
  EXPECT_EQ(NdcgAt(ranked, relevant, 2), 0.0);
  EXPECT_EQ(HitRateAt(ranked, relevant, 2), 0.0);
}

TEST(Metrics, RepeatedItemCountsOnceAtItsFirstRank) {
  // Item 3 appears at ranks 1 and 2; R = {3, 5}. Counted once, at rank 1:
  // recall 1/2 (not 2/2); DCG = D(1) (not D(1) + D(2)); IDCG = D(0) + D(1);
  // NDCG = 0.63093 / 1.63093 = 0.38685280723454163.
  const Ids ranked = {0, 3, 3};
  const Ids relevant = {3, 5};
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 3), 0.5);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 3), 0.38685280723454163, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 3), 1.0);
  // A list that is one relevant item repeated: recall 1/1, NDCG 1 (never above 1).
  const Ids same = {7, 7, 7};
  const Ids seven = {7};
  EXPECT_DOUBLE_EQ(RecallAt(same, seven, 3), 1.0);
  EXPECT_NEAR(NdcgAt(same, seven, 3), 1.0, kEps);
}

TEST(Metrics, RankedListShorterThanK) {
  // Only 1 item ranked, k = 10, R = {1, 3}: recall 1/2; DCG = D(0) = 1; IDCG runs over
  // min(|R|, k) = 2 items = 1 + 0.63093: NDCG = 0.6131471927654584.
  const Ids ranked = {1};
  const Ids relevant = {1, 3};
  EXPECT_DOUBLE_EQ(RecallAt(ranked, relevant, 10), 0.5);
  EXPECT_NEAR(NdcgAt(ranked, relevant, 10), 0.6131471927654584, kEps);
  EXPECT_EQ(HitRateAt(ranked, relevant, 10), 1.0);
  EXPECT_EQ(RecallAt({}, relevant, 10), 0.0);
}

TEST(Metrics, EmptyRelevantOrNonPositiveKGivesZero) {
  const Ids ranked = {1, 2, 3};
  const Ids relevant = {1};
  EXPECT_EQ(RecallAt(ranked, {}, 3), 0.0);
  EXPECT_EQ(NdcgAt(ranked, {}, 3), 0.0);
  EXPECT_EQ(HitRateAt(ranked, {}, 3), 0.0);
  EXPECT_EQ(RecallAt(ranked, relevant, 0), 0.0);
  EXPECT_EQ(NdcgAt(ranked, relevant, -1), 0.0);
  EXPECT_EQ(HitRateAt(ranked, relevant, 0), 0.0);
}

// ---- RankTopK ----

TEST(Metrics, RankTopKBreaksTiesByLowerId) {
  //                 item:  0     1     2     3     4     5
  const std::vector<float> scores = {0.5f, 0.9f, 0.5f, 0.9f, 0.1f, 0.5f};
  Ids top;
  // 0.9 ties {1, 3} -> 1, 3; then 0.5 ties {0, 2, 5} -> 0, 2, 5; then 4.
  RankTopK(scores, {}, 6, &top);
  EXPECT_EQ(top, (Ids{1, 3, 0, 2, 5, 4}));
  // The cut falls inside the 0.5 tie: the lower ids win.
  RankTopK(scores, {}, 4, &top);
  EXPECT_EQ(top, (Ids{1, 3, 0, 2}));
  // k beyond the item count returns every item; k <= 0 none.
  RankTopK(scores, {}, 100, &top);
  EXPECT_EQ(top.size(), 6u);
  RankTopK(scores, {}, 0, &top);
  EXPECT_TRUE(top.empty());
}

TEST(Metrics, RankTopKLeavesOutExcludedAndSinksNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  //                 item:  0     1    2     3    4     5
  const std::vector<float> scores = {0.2f, nan, 0.8f, -inf, 0.7f, 1.0f};
  Ids top;
  // Excluding {2, 5} (and out-of-range ids, ignored): 4 (0.7), 0 (0.2), then NaN and -inf tie
  // at the bottom, broken by id: 1, 3.
  RankTopK(scores, Ids{-1, 2, 5, 99}, 10, &top);
  EXPECT_EQ(top, (Ids{4, 0, 1, 3}));
  RankTopK(scores, Ids{2, 5}, 2, &top);
  EXPECT_EQ(top, (Ids{4, 0}));
  // Everything excluded: nothing left.
  RankTopK(scores, Ids{0, 1, 2, 3, 4, 5}, 3, &top);
  EXPECT_TRUE(top.empty());
}

// ---- EvaluateTopK on a hand-made 4 users x 6 items example. ----
//
//            scores by item 0..5             train    test
//   user 0:  .9  .5  .7  .7  .1  .2          {0}      {2, 4}
//   user 1:  .3  .9  .8  .4  .4  .0          {1, 2}   {0}
//   user 2:  .0  .0  .0  .0  .0  1.          {}       {}        (no test items: skipped)
//   user 3:  .2  .1  .6  .3  .2  1.          {5}      {0, 1, 3}
//
// Rankings without train items (ties by lower id):
//   user 0: 2 (.7), 3 (.7), 1, 5, 4      top 3 = [2, 3, 1]   (item 0, scored .9, is train)
//   user 1: 3 (.4), 4 (.4), 0, 5         top 3 = [3, 4, 0]   (items 1, 2 are train)
//   user 3: 2, 3, 0 (.2), 4 (.2), 1      top 3 = [2, 3, 0]   (item 5, scored 1., is train;
//                                                           the .2 tie at the cut keeps 0)
//
// Per user, k = 1 and k = 3:
//   user 0: @1 [2] hit: recall 1/2, NDCG D(0)/D(0) = 1, hit 1.
//           @3 hit at rank 0 only: recall 1/2, NDCG D(0)/(D(0)+D(1)) = 0.6131471927654584.
//   user 1: @1 [3] miss: 0, 0, 0.
//           @3 hit at rank 2: recall 1/1, NDCG D(2)/D(0) = 0.5, hit 1.
//   user 3: @1 [2] miss: 0, 0, 0.
//           @3 hits at ranks 1, 2: recall 2/3,
//              NDCG (D(1)+D(2))/(D(0)+D(1)+D(2)) = 1.13093/2.13093 = 0.5307212739772434.
// Means over the 3 evaluated users:
//   recall@1 = 1/6, ndcg@1 = 1/3, hitrate@1 = 1/3,
//   recall@3 = (1/2 + 1 + 2/3)/3 = 13/18, hitrate@3 = 1,
//   ndcg@3 = (0.6131471927654584 + 0.5 + 0.5307212739772434)/3 = 0.5479561555809006.
// Coverage: @1 items {2, 3} = 2/6; @3 items {0, 1, 2, 3, 4} = 5/6 (item 5 only tops user 2,
// who is skipped, and user 3, who trained on it).
struct Example {
  CsrMatrix train = Matrix(6, {{0}, {1, 2}, {}, {5}});
  CsrMatrix test = Matrix(6, {{2, 4}, {0}, {}, {0, 1, 3}});
  FixedScores model{[] {
    RowMajorMatrixXf s(4, 6);
    s << .9f, .5f, .7f, .7f, .1f, .2f,  //
        .3f, .9f, .8f, .4f, .4f, .0f,   //
        .0f, .0f, .0f, .0f, .0f, 1.f,   //
        .2f, .1f, .6f, .3f, .2f, 1.f;
    return s;
  }()};
};

EvalOptions OneAndThree(int threads = 1, int batch_size = 1024) {
  EvalOptions o;
  o.ks = {1, 3};
  o.num_threads = threads;
  o.batch_size = batch_size;
  return o;
}

TEST(Metrics, EvaluateTopKMatchesTheHandWorkedExample) {
  Example ex;
  auto r = EvaluateTopK(ex.model, ex.train, ex.test, OneAndThree());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->users_evaluated, 3);
  EXPECT_GE(r->seconds, 0.0);
  const auto& m = r->metrics;
  EXPECT_EQ(m.size(), 8u);
  EXPECT_NEAR(m.at("recall@1"), 1.0 / 6, kEps);
  EXPECT_NEAR(m.at("ndcg@1"), 1.0 / 3, kEps);
  EXPECT_NEAR(m.at("hitrate@1"), 1.0 / 3, kEps);
  EXPECT_NEAR(m.at("coverage@1"), 2.0 / 6, kEps);
  EXPECT_NEAR(m.at("recall@3"), 13.0 / 18, kEps);
  EXPECT_NEAR(m.at("ndcg@3"), 0.5479561555809006, kEps);
  EXPECT_NEAR(m.at("ndcg@3"),
              (D(0) / (D(0) + D(1)) + D(2) + (D(1) + D(2)) / (D(0) + D(1) + D(2))) / 3, kEps);
  EXPECT_NEAR(m.at("hitrate@3"), 1.0, kEps);
  EXPECT_NEAR(m.at("coverage@3"), 5.0 / 6, kEps);
}

TEST(Metrics, EvaluateTopKExcludesTrainItems) {
  // Were train items not left out, the top-1s would be user 0 -> item 0 (.9), user 1 -> item 1,
  // user 3 -> item 5 (coverage@1 = 3/6). Giving user 0 a test item 0 that is also train: it can
  // never be hit, yet counts in |R|, so user 0's recall@3 drops from 1/2 to 1/3.
  Example ex;
  ex.test = Matrix(6, {{0, 2, 4}, {0}, {}, {0, 1, 3}});
  auto r = EvaluateTopK(ex.model, ex.train, ex.test, OneAndThree());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NEAR(r->metrics.at("recall@3"), (1.0 / 3 + 1 + 2.0 / 3) / 3, kEps);
  // Top-1 lists are unchanged ({2, 3}): train items 0 (user 0) and 5 (user 3) never appear.
  EXPECT_NEAR(r->metrics.at("coverage@1"), 2.0 / 6, kEps);
}

TEST(Metrics, EvaluateTopKDefaultKsReportEveryKey) {
  // k = 10 and 20 exceed the 6 items: every non-train item is ranked, so every test item that
  // is not a train item is hit. Users 0 and 1 together rank all 6 items.
  Example ex;
  auto r = EvaluateTopK(ex.model, ex.train, ex.test, EvalOptions{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const char* key : {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "hitrate@10",
                          "hitrate@20", "coverage@10", "coverage@20"}) {
    ASSERT_TRUE(r->metrics.count(key)) << key;
  }
  EXPECT_EQ(r->metrics.size(), 8u);
  EXPECT_NEAR(r->metrics.at("recall@10"), 1.0, kEps);
  EXPECT_NEAR(r->metrics.at("hitrate@20"), 1.0, kEps);
  EXPECT_NEAR(r->metrics.at("coverage@10"), 1.0, kEps);
  EXPECT_EQ(r->metrics.at("ndcg@10"), r->metrics.at("ndcg@20"));
}

TEST(Metrics, EvaluateTopKSkipsUsersWithoutTestItems) {
  // With only user 1 holding test items, the means are user 1's own values.
  Example ex;
  ex.test = Matrix(6, {{}, {0}, {}, {}});
  auto r = EvaluateTopK(ex.model, ex.train, ex.test, OneAndThree());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->users_evaluated, 1);
  EXPECT_NEAR(r->metrics.at("recall@1"), 0.0, kEps);
  EXPECT_NEAR(r->metrics.at("recall@3"), 1.0, kEps);
  EXPECT_NEAR(r->metrics.at("ndcg@3"), 0.5, kEps);
  EXPECT_NEAR(r->metrics.at("coverage@1"), 1.0 / 6, kEps);  // {3}
  EXPECT_NEAR(r->metrics.at("coverage@3"), 3.0 / 6, kEps);  // {3, 4, 0}
}

TEST(Metrics, EvaluateTopKIsIndependentOfThreadsAndBatchSize) {
  Example ex;
  auto one = EvaluateTopK(ex.model, ex.train, ex.test, OneAndThree(1));
  auto two = EvaluateTopK(ex.model, ex.train, ex.test, OneAndThree(2, 1));
  ASSERT_TRUE(one.ok() && two.ok());
  EXPECT_EQ(one->metrics, two->metrics);
  EXPECT_EQ(one->users_evaluated, two->users_evaluated);

  // A larger random case (fixed seed) with many tied scores and uneven batches: the doubles
  // must be bit-identical, not just close.
  std::mt19937_64 rng(7);
  const int users = 300, items = 40;
  std::bernoulli_distribution in_train(0.2), in_test(0.05);
  std::uniform_int_distribution<int> level(0, 4);  // 5 score levels: plenty of ties
  std::vector<Ids> train_rows(users), test_rows(users);
  RowMajorMatrixXf scores(users, items);
  for (int u = 0; u < users; ++u) {
    for (int i = 0; i < items; ++i) {
      scores(u, i) = static_cast<float>(level(rng));
      if (in_train(rng)) {
        train_rows[u].push_back(i);
      } else if (in_test(rng)) {
        test_rows[u].push_back(i);
      }
    }
  }
  const CsrMatrix train = Matrix(items, train_rows), test = Matrix(items, test_rows);
  const FixedScores model(scores);
  EvalOptions base;
  base.ks = {1, 5, 10};
  base.num_threads = 1;
  base.batch_size = 1024;
  auto want = EvaluateTopK(model, train, test, base);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  EXPECT_GT(want->users_evaluated, 100);
  EXPECT_LT(want->users_evaluated, users);
  for (int threads : {2, 3}) {
    for (int batch : {1, 7, 64}) {
      EvalOptions o = base;
      o.num_threads = threads;
      o.batch_size = batch;
      auto got = EvaluateTopK(model, train, test, o);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->metrics, want->metrics) << threads << " threads, batch " << batch;
      EXPECT_EQ(got->users_evaluated, want->users_evaluated);
    }
  }
}

TEST(Metrics, EvaluateTopKRejectsShapeMismatch) {
  Example ex;
  auto fewer_rows = EvaluateTopK(ex.model, ex.train, Matrix(6, {{2}, {0}, {}}), OneAndThree());
  EXPECT_EQ(fewer_rows.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fewer_rows.status().field(), "test");
  auto more_cols = EvaluateTopK(ex.model, ex.train, Matrix(7, {{2}, {0}, {}, {6}}), OneAndThree());
  EXPECT_EQ(more_cols.status().code(), StatusCode::kInvalidArgument);
}

TEST(Metrics, EvaluateTopKRejectsNoTestUsers) {
  Example ex;
  auto r = EvaluateTopK(ex.model, ex.train, Matrix(6, {{}, {}, {}, {}}), OneAndThree());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no user"), std::string::npos);
}

TEST(Metrics, EvaluateTopKRejectsAModelOfAnotherWidth) {
  Example ex;
  const FixedScores narrow(RowMajorMatrixXf::Zero(4, 6), /*cols=*/5);  // scores 5 of 6 items
  for (int threads : {1, 2}) {
    auto r = EvaluateTopK(narrow, ex.train, ex.test, OneAndThree(threads, 1));
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
  }
}

TEST(Metrics, EvalOptionsValidate) {
  EXPECT_TRUE(EvalOptions{}.Validate().ok());
  auto field_of = [](EvalOptions o) {
    Status s = o.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.field();
  };
  EvalOptions o;
  o.ks = {};
  EXPECT_EQ(field_of(o), "ks");
  o.ks = {10, 0};
  EXPECT_EQ(field_of(o), "ks");
  o.ks = {10, 20, 10};
  EXPECT_EQ(field_of(o), "ks");
  o = EvalOptions{};
  o.num_threads = -1;
  EXPECT_EQ(field_of(o), "num_threads");
  o = EvalOptions{};
  o.batch_size = 0;
  EXPECT_EQ(field_of(o), "batch_size");

  // EvaluateTopK checks the options first.
  Example ex;
  o = EvalOptions{};
  o.ks = {};
  EXPECT_EQ(EvaluateTopK(ex.model, ex.train, ex.test, o).status().field(), "ks");
}

}  // namespace
}  // namespace affinity

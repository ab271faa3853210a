#include "affinity/evaluation.h"

#include <gtest/gtest.h>

#include <random>

#include "affinity/datasets.h"
#include "test_util.h"

namespace affinity {
namespace {

// Two taste groups of 60 users over 30 items each; each user has 8 items of their group, the
// last 2 of them held out as the test set.
std::pair<CsrMatrix, CsrMatrix> PlantedSplit() {
  std::mt19937_64 rng(3);
  CsrBuilder train(60), test(60);
  for (int u = 0; u < 120; ++u) {
    const int base = u < 60 ? 0 : 30;
    std::vector<int> items(30);
    std::iota(items.begin(), items.end(), base);
    std::shuffle(items.begin(), items.end(), rng);
    std::sort(items.begin(), items.begin() + 6);
    std::sort(items.begin() + 6, items.begin() + 8);
    for (int k = 0; k < 6; ++k) EXPECT_TRUE(train.Add(u, items[k], 1).ok());
    for (int k = 6; k < 8; ++k) EXPECT_TRUE(test.Add(u, items[k], 1).ok());
  }
  return {std::move(train.Finish(120).value()), std::move(test.Finish(120).value())};
}

EvaluationOptions Small() {
  EvaluationOptions o;
  o.ials.factors = 8;
  o.ials.iterations = 8;
  o.ials.num_threads = 2;
  o.tuning.grid = {{0.05, 0.01}, {0.5, 0.05}};
  return o;
}

TEST(Evaluation, ModelsBeatPopularityOnPlantedTastes) {
  auto [train, test] = PlantedSplit();
  auto run = EvaluateModels(train, test, Small());
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->test_users, 120);
  EXPECT_EQ(run->ials.name, "ials+filter");
  ASSERT_TRUE(run->plain_ials.has_value());
  ASSERT_TRUE(run->tuning.has_value());
  EXPECT_EQ(run->tuning->trials.size(), 2u);
  // The chosen setting is one of the candidates.
  const double chosen = run->ials_options.unobserved_weight;
  EXPECT_TRUE(chosen == 0.05 || chosen == 0.5) << chosen;
  std::map<std::string, double> popularity;
  for (const auto& b : run->baselines) {
    if (b.name == "popularity") popularity = b.metrics;
  }
  for (const char* key :
       {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "hitrate@20", "coverage@20"}) {
    EXPECT_TRUE(run->ials.metrics.count(key)) << key;
  }
  // With planted groups, the personal models find the group; popularity cannot.
  EXPECT_GT(run->ials.metrics.at("recall@20"), popularity.at("recall@20") + 0.1);
  EXPECT_GT(run->plain_ials->metrics.at("recall@20"), popularity.at("recall@20") + 0.1);
  EXPECT_EQ(run->progress.size(), 8u);
  EXPECT_EQ(run->baselines.size(), 4u);
}

TEST(Evaluation, TuningUsesOnlyTheTrainingData) {
  auto [train, test] = PlantedSplit();
  IalsOptions base = Small().ials;
  TuningOptions tuning;
  tuning.grid = {{0.05, 0.01}};
  auto t = TuneIals(train, base, 0.3, tuning);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->trials.size(), 1u);
  // Validation users hold out 20% of their 6 training items (1 item each), never a test item,
  // so the validation scores differ from anything computed on `test`.
  EXPECT_GT(t->trials[0].recall20, 0);
  // A matrix where no user has two items leaves nothing to validate on.
  CsrBuilder one(3);
  ASSERT_TRUE(one.Add(0, 1, 1).ok());
  ASSERT_TRUE(one.Add(1, 2, 1).ok());
  CsrMatrix single = std::move(one.Finish(2).value());
  EXPECT_EQ(TuneIals(single, base, 0.3, tuning).status().code(), StatusCode::kInvalidArgument);
}

TEST(Evaluation, ErrorsAndSkippedBaselines) {
  auto [train, test] = PlantedSplit();
  EvaluationOptions o = Small();
  o.baselines = {"popularity", "magic"};
  EXPECT_EQ(EvaluateModels(train, test, o).status().field(), "baselines");
  // A LightGCN file whose ids are far from dense is refused, not allocated.
  testing::ScratchDir dir;
  const std::string sparse = dir.Write("ids.txt", "0 1 2\n1 2000000000\n");
  EXPECT_EQ(ReadLightGcnSplit(sparse, sparse).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadLightGcnFile(dir.Write("neg.txt", "0 -3\n")).status().code(),
            StatusCode::kInvalidArgument);
  // A LightGCN slice with 40k item ids: EASE is above its item limit and reported as skipped.
  auto split = ReadLightGcnSplit(testing::DataPath("gowalla_train_slice.txt"),
                                 testing::DataPath("gowalla_test_slice.txt"));
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->train.rows, 300);
  EvaluationOptions e = Small();
  e.tuning.enabled = false;
  e.baselines = {"ease"};
  auto run = EvaluateModels(split->train, split->test, e);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_EQ(run->baselines.size(), 1u);
  EXPECT_FALSE(run->baselines[0].skipped.empty());
  EXPECT_TRUE(run->baselines[0].metrics.empty());
}

}  // namespace
}  // namespace affinity

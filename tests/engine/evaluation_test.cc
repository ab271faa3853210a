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

TEST(Evaluation, RandomHoldoutSplitsEachUsersItems) {
  auto [train, test] = PlantedSplit();
  TuningOptions tuning;
  tuning.max_validation_users = 50;
  auto split = RandomHoldoutSplit(train, tuning);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_NE(split->description.find("20%"), std::string::npos) << split->description;
  int held_users = 0;
  for (int64_t u = 0; u < train.rows; ++u) {
    // 20% of 6 items: one held out, five kept to fit on; a held item is never also fitted.
    EXPECT_EQ(split->fit.RowEnd(u) - split->fit.RowBegin(u), 5) << u;
    const int64_t held = split->held.RowEnd(u) - split->held.RowBegin(u);
    EXPECT_TRUE(held == 0 || held == 1) << u;
    held_users += held > 0;
    for (int64_t k = split->held.RowBegin(u); k < split->held.RowEnd(u); ++k) {
      EXPECT_EQ(split->fit.At(u, split->held.indices[k]), 0);
      EXPECT_GT(train.At(u, split->held.indices[k]), 0);
    }
  }
  EXPECT_EQ(held_users, 50);  // the sample of validation users
  // The same seed gives the same split.
  auto again = RandomHoldoutSplit(train, tuning);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->held.indices, split->held.indices);
}

TEST(Evaluation, TuningScoresTheGivenSplit) {
  auto [train, test] = PlantedSplit();
  IalsOptions base = Small().ials;
  TuningOptions tuning;
  tuning.grid = {{0.05, 0.01}, {0.5, 0.05}};
  // Held out: more of each user's own group. Against it, the model scores well...
  auto own = TuneIals(ValidationSplit{train, test, "own group"}, base, 0, tuning);
  ASSERT_TRUE(own.ok()) << own.status().ToString();
  EXPECT_EQ(own->validation, "own group");
  ASSERT_EQ(own->trials.size(), 2u);
  // ...and the choice is the better trial.
  const TuningTrial& best =
      own->trials[0].ndcg20 >= own->trials[1].ndcg20 ? own->trials[0] : own->trials[1];
  EXPECT_EQ(own->chosen.unobserved_weight, best.unobserved_weight);
  EXPECT_EQ(own->chosen.regularization, best.regularization);
  EXPECT_GT(best.recall20, 0.5);
  // Held out: items of the other group, which the planted tastes never predict.
  CsrBuilder other(60);
  for (int u = 0; u < 120; ++u) ASSERT_TRUE(other.Add(u, u < 60 ? 45 : 15, 1).ok());
  auto wrong = TuneIals(ValidationSplit{train, std::move(other.Finish(120).value()), "other"}, base,
                        0, tuning);
  ASSERT_TRUE(wrong.ok()) << wrong.status().ToString();
  for (const auto& t : wrong->trials) EXPECT_LT(t.recall20, 0.2);
  // Shapes must match, and something must be held out.
  CsrBuilder narrow(30);
  EXPECT_EQ(
      TuneIals(ValidationSplit{train, std::move(narrow.Finish(120).value()), ""}, base, 0, tuning)
          .status()
          .field(),
      "validation");
  CsrBuilder empty(60);
  EXPECT_EQ(
      TuneIals(ValidationSplit{train, std::move(empty.Finish(120).value()), ""}, base, 0, tuning)
          .status()
          .code(),
      StatusCode::kInvalidArgument);
  // EvaluateModels tunes on the split it is given.
  EvaluationOptions o = Small();
  o.baselines = {};
  o.validation = ValidationSplit{train, test, "given"};
  auto run = EvaluateModels(train, test, o);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  ASSERT_TRUE(run->tuning.has_value());
  EXPECT_EQ(run->tuning->validation, "given");
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

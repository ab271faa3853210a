// Offline evaluation runs: fit iALS and the baselines on one train/test split and report the
// same metrics for each (the numbers we steer by; see README).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "affinity/models/ials.h"
#include "affinity/models/metrics.h"
#include "affinity/models/recommender.h"

namespace affinity {

struct ModelEvaluation {
  std::string name;
  std::map<std::string, double> metrics;  // EvalResult::metrics; empty when skipped
  double train_seconds = 0;
  double eval_seconds = 0;
  std::string skipped;  // why the model was not evaluated (e.g. EASE on a large catalog)
};

// Built-in tuning of iALS's unobserved weight α₀ and regularization λ (the two settings whose
// best values differ most between data sets), on a validation split carved from the TRAINING
// data, never the test data. Each candidate is fitted on the split's fit part and scored by
// NDCG@20 (ties: recall) on at most `max_validation_users` users of its held-out part;
// candidates are tried in order until the time budget runs out, and the best one is kept.
struct TuningOptions {
  bool enabled = true;
  double budget_seconds = 240;
  // (α₀, λ) candidates, from settings for sparse data (Gowalla-like) to dense shop data.
  std::vector<std::pair<double, double>> grid = {
      {0.02, 0.003}, {0.05, 0.005}, {0.1, 0.01}, {0.2, 0.01}, {0.5, 0.02}};
  // The random holdout (used when the caller gives no split): this fraction of each user's
  // training items, for users with >= 2 items.
  double holdout_fraction = 0.2;
  int max_validation_users = 3000;
  uint64_t seed = 7;
};

// What the candidates are fitted on (`fit`) and scored against (`held`; same shape, scored with
// `fit`'s items excluded), and a line saying how it was made, for reports.
struct ValidationSplit {
  CsrMatrix fit;
  CsrMatrix held;
  std::string description;
};

// The split for data without times: a random `holdout_fraction` of each user's items (users with
// >= 2 items) held out, weight 1; the rest keep their weights. InvalidArgument if no user has two
// items.
Result<ValidationSplit> RandomHoldoutSplit(const CsrMatrix& train, const TuningOptions& options);

struct TuningTrial {
  double unobserved_weight = 0, regularization = 0;
  double ndcg20 = 0, recall20 = 0, seconds = 0;
};

struct TuningResult {
  IalsOptions chosen;
  std::vector<TuningTrial> trials;
  double seconds = 0;
  std::string validation;  // ValidationSplit::description
};

// Tunes `base`'s unobserved_weight and regularization for the model (iALS, blended with the item
// filter when filter_weight > 0) on `split`. InvalidArgument if the two matrices differ in shape
// or no user has a held-out item.
Result<TuningResult> TuneIals(const ValidationSplit& split, const IalsOptions& base,
                              double filter_weight, const TuningOptions& options);

// The same on RandomHoldoutSplit(train, options).
Result<TuningResult> TuneIals(const CsrMatrix& train, const IalsOptions& base, double filter_weight,
                              const TuningOptions& options);

// The main model: iALS blended with the normalized item filter (item_filter.h) with weight
// filter_weight (0: plain iALS).
std::unique_ptr<Recommender> MakeMainModel(const IalsOptions& ials, double filter_weight,
                                           IalsModel** ials_out = nullptr);

struct EvaluationOptions {
  IalsOptions ials;
  // Weight of the item filter in the main model; 0 = plain iALS. Default 0.3.
  double filter_weight = 0.3;
  TuningOptions tuning;
  // The tuning's split; unset: RandomHoldoutSplit of the training matrix. Data with times should
  // set it to the same protocol as the test, moved back one period (the time-split evaluation
  // holds out the horizon before the cutoff), so that α₀ and λ are chosen for the task measured.
  std::optional<ValidationSplit> validation;
  EvalOptions eval;
  // Baselines to run beside iALS, by name: "popularity", "item_knn", "repeat", "ease".
  std::vector<std::string> baselines = {"popularity", "item_knn", "repeat", "ease"};
  // Called after each iALS epoch; may be empty.
  std::function<void(const IalsProgress&)> on_progress;
};

struct EvaluationRun {
  int64_t users = 0, items = 0, train_nnz = 0, test_nnz = 0, test_users = 0;
  IalsOptions ials_options;                   // as used (after tuning)
  std::optional<TuningResult> tuning;         // when tuning ran
  ModelEvaluation ials;                       // the main model (named "ials" or "ials+filter")
  std::optional<ModelEvaluation> plain_ials;  // iALS alone, when the main model is a blend
  std::vector<ModelEvaluation> baselines;
  std::vector<IalsProgress> progress;  // per iALS epoch
  double ials_gflops_per_second = 0;   // achieved by the last epoch's solves
};

// Makes a baseline by name with its default options. InvalidArgument for an unknown name.
Result<std::unique_ptr<Recommender>> MakeBaseline(const std::string& name);

// Fits and evaluates iALS and the baselines. A baseline that cannot handle the data
// (FailedPrecondition from Fit, e.g. EASE above its item limit) is reported as skipped, not an
// error. InvalidArgument for bad options, mismatched shapes or no test users.
Result<EvaluationRun> EvaluateModels(const CsrMatrix& train, const CsrMatrix& test,
                                     const EvaluationOptions& options);

// Peak resident memory of this process so far, in bytes (Linux VmHWM), or 0 if unknown.
int64_t PeakRssBytes();

}  // namespace affinity

#include "affinity/evaluation.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include "affinity/models/baselines.h"
#include "affinity/models/item_filter.h"

namespace affinity {
namespace {

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The rows `users` (ascending) of m, the others emptied; weights 1.
Result<CsrMatrix> KeepRows(const CsrMatrix& m, const std::vector<int64_t>& users) {
  CsrBuilder kept(m.cols);
  for (int64_t u : users) {
    for (int64_t k = m.RowBegin(u); k < m.RowEnd(u); ++k) {
      AFFINITY_RETURN_IF_ERROR(kept.Add(u, m.indices[k], 1.0f));
    }
  }
  return kept.Finish(m.rows);
}

Result<ModelEvaluation> FitAndEvaluate(Recommender& model, const CsrMatrix& train,
                                       const CsrMatrix& test, const EvalOptions& eval) {
  ModelEvaluation out;
  out.name = std::string(model.name());
  const auto start = std::chrono::steady_clock::now();
  Status fit = model.Fit(train);
  out.train_seconds = Since(start);
  if (fit.code() == StatusCode::kFailedPrecondition) {
    out.skipped = fit.message();
    return out;
  }
  AFFINITY_RETURN_IF_ERROR(fit);
  AFFINITY_ASSIGN_OR_RETURN(EvalResult result, EvaluateTopK(model, train, test, eval));
  out.metrics = std::move(result.metrics);
  out.eval_seconds = result.seconds;
  return out;
}

// A fitted model shared by several blends: Fit is a no-op, scoring is delegated. Lets tuning fit
// the item filter (which does not depend on the tuned settings) once for all trials.
class FittedView final : public Recommender {
 public:
  explicit FittedView(const Recommender& model) : model_(model) {}
  std::string_view name() const override { return model_.name(); }
  Status Fit(const CsrMatrix&) override { return Status::Ok(); }
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override {
    model_.ScoreBatch(users, out);
  }

 private:
  const Recommender& model_;
};

// iALS blended with the item filter: weights 1 - w and w.
std::unique_ptr<Recommender> BlendWithFilter(std::unique_ptr<Recommender> ials,
                                             std::unique_ptr<Recommender> filter, double w) {
  std::vector<std::pair<std::unique_ptr<Recommender>, double>> parts;
  parts.emplace_back(std::move(ials), 1 - w);
  parts.emplace_back(std::move(filter), w);
  return std::make_unique<BlendRecommender>("ials+filter", std::move(parts));
}

}  // namespace

std::unique_ptr<Recommender> MakeMainModel(const IalsOptions& ials, double filter_weight,
                                           IalsModel** ials_out) {
  auto model = std::make_unique<IalsModel>(ials);
  if (ials_out) *ials_out = model.get();
  if (filter_weight <= 0) return model;
  return BlendWithFilter(std::move(model), std::make_unique<ItemFilterRecommender>(),
                         filter_weight);
}

Result<ValidationSplit> RandomHoldoutSplit(const CsrMatrix& train, const TuningOptions& options) {
  std::mt19937_64 rng(options.seed);
  CsrBuilder fit_part(train.cols), held_part(train.cols);
  std::vector<int64_t> users;  // with a held-out item
  std::vector<size_t> order;
  for (int64_t u = 0; u < train.rows; ++u) {
    const int64_t begin = train.RowBegin(u);
    const size_t n = static_cast<size_t>(train.RowEnd(u) - begin);
    order.resize(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t held = n >= 2 ? std::max<size_t>(1, static_cast<size_t>(options.holdout_fraction *
                                                                         static_cast<double>(n)))
                               : 0;
    for (size_t k = 0; k < n; ++k) {
      const int64_t e = begin + static_cast<int64_t>(order[k]);
      AFFINITY_RETURN_IF_ERROR(k < held ? held_part.Add(u, train.indices[e], 1.0f)
                                        : fit_part.Add(u, train.indices[e], train.values[e]));
    }
    if (held > 0) users.push_back(u);
  }
  if (users.empty()) {
    return Status::InvalidArgument("no user has two items to carve a validation split from",
                                   "interactions");
  }
  ValidationSplit split;
  AFFINITY_ASSIGN_OR_RETURN(split.fit, fit_part.Finish(train.rows));
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix held_all, held_part.Finish(train.rows));
  // Keep the held-out items of a sample of max_validation_users users (drawn here, from the same
  // random sequence, so a seed always gives the same split).
  std::shuffle(users.begin(), users.end(), rng);
  if (users.size() > static_cast<size_t>(options.max_validation_users)) {
    users.resize(options.max_validation_users);
  }
  std::sort(users.begin(), users.end());
  AFFINITY_ASSIGN_OR_RETURN(split.held, KeepRows(held_all, users));
  char description[96];
  std::snprintf(description, sizeof description, "a random %g%% of each user's training items",
                100 * options.holdout_fraction);
  split.description = description;
  return split;
}

Result<TuningResult> TuneIals(const ValidationSplit& split, const IalsOptions& base,
                              double filter_weight, const TuningOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const CsrMatrix& fit = split.fit;
  if (split.held.rows != fit.rows || split.held.cols != fit.cols) {
    return Status::InvalidArgument("the validation split's matrices differ in shape", "validation");
  }
  // Score at most max_validation_users of the users with held-out items, drawn at random.
  std::vector<int64_t> users;
  for (int64_t u = 0; u < split.held.rows; ++u) {
    if (split.held.RowEnd(u) > split.held.RowBegin(u)) users.push_back(u);
  }
  if (users.empty()) {
    return Status::InvalidArgument("the validation split holds out no item", "validation");
  }
  if (users.size() > static_cast<size_t>(options.max_validation_users)) {
    std::mt19937_64 rng(options.seed);
    std::shuffle(users.begin(), users.end(), rng);
    users.resize(options.max_validation_users);
    std::sort(users.begin(), users.end());
  }
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix validation, KeepRows(split.held, users));

  ItemFilterRecommender filter;
  if (filter_weight > 0) AFFINITY_RETURN_IF_ERROR(filter.Fit(fit));

  TuningResult result;
  result.chosen = base;
  result.validation = split.description;
  double best = -1;
  EvalOptions eval;
  eval.ks = {20};
  eval.num_threads = base.num_threads;
  for (const auto& [alpha0, lambda] : options.grid) {
    if (Since(start) > options.budget_seconds && !result.trials.empty()) break;
    const auto trial_start = std::chrono::steady_clock::now();
    IalsOptions o = base;
    o.unobserved_weight = alpha0;
    o.regularization = lambda;
    o.compute_loss = false;
    std::unique_ptr<Recommender> model = std::make_unique<IalsModel>(o);
    if (filter_weight > 0) {
      model =
          BlendWithFilter(std::move(model), std::make_unique<FittedView>(filter), filter_weight);
    }
    AFFINITY_RETURN_IF_ERROR(model->Fit(fit));
    AFFINITY_ASSIGN_OR_RETURN(EvalResult r, EvaluateTopK(*model, fit, validation, eval));
    TuningTrial t{alpha0, lambda, r.metrics["ndcg@20"], r.metrics["recall@20"], Since(trial_start)};
    result.trials.push_back(t);
    const double score = t.ndcg20 + 1e-3 * t.recall20;
    if (score > best) {
      best = score;
      result.chosen.unobserved_weight = alpha0;
      result.chosen.regularization = lambda;
    }
  }
  result.seconds = Since(start);
  return result;
}

Result<TuningResult> TuneIals(const CsrMatrix& train, const IalsOptions& base, double filter_weight,
                              const TuningOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  AFFINITY_ASSIGN_OR_RETURN(ValidationSplit split, RandomHoldoutSplit(train, options));
  AFFINITY_ASSIGN_OR_RETURN(TuningResult result, TuneIals(split, base, filter_weight, options));
  result.seconds = Since(start);
  return result;
}

Result<std::unique_ptr<Recommender>> MakeBaseline(const std::string& name) {
  if (name == "popularity") return std::unique_ptr<Recommender>(new PopularityRecommender());
  if (name == "item_knn") return std::unique_ptr<Recommender>(new ItemKnnRecommender());
  if (name == "repeat") return std::unique_ptr<Recommender>(new RepeatRecommender());
  if (name == "ease") return std::unique_ptr<Recommender>(new EaseRecommender());
  return Status::InvalidArgument(
      "unknown baseline '" + name + "' (expected popularity, item_knn, repeat or ease)",
      "baselines");
}

Result<EvaluationRun> EvaluateModels(const CsrMatrix& train, const CsrMatrix& test,
                                     const EvaluationOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.ials.Validate());
  AFFINITY_RETURN_IF_ERROR(options.eval.Validate());
  std::vector<std::unique_ptr<Recommender>> baselines;
  for (const auto& name : options.baselines) {
    AFFINITY_ASSIGN_OR_RETURN(auto model, MakeBaseline(name));
    baselines.push_back(std::move(model));
  }
  EvaluationRun run;
  run.users = train.rows;
  run.items = train.cols;
  run.train_nnz = train.nnz();
  run.test_nnz = test.nnz();
  for (int64_t u = 0; u < test.rows; ++u) run.test_users += test.RowEnd(u) > test.RowBegin(u);

  run.ials_options = options.ials;
  if (options.tuning.enabled) {
    AFFINITY_ASSIGN_OR_RETURN(
        TuningResult tuning,
        options.validation
            ? TuneIals(*options.validation, options.ials, options.filter_weight, options.tuning)
            : TuneIals(train, options.ials, options.filter_weight, options.tuning));
    run.ials_options = tuning.chosen;
    run.tuning = std::move(tuning);
  }
  IalsModel* ials = nullptr;
  auto main_model = MakeMainModel(run.ials_options, options.filter_weight, &ials);
  ials->set_progress_callback([&](const IalsProgress& p) {
    run.progress.push_back(p);
    if (p.seconds > 0) run.ials_gflops_per_second = ials->last_epoch_flops() / p.seconds / 1e9;
    if (options.on_progress) options.on_progress(p);
  });
  AFFINITY_ASSIGN_OR_RETURN(run.ials, FitAndEvaluate(*main_model, train, test, options.eval));
  if (options.filter_weight > 0) {
    // The same iALS factors, alone (it is the first part of the blend, already fitted).
    ModelEvaluation plain;
    plain.name = "ials";
    AFFINITY_ASSIGN_OR_RETURN(EvalResult r, EvaluateTopK(*ials, train, test, options.eval));
    plain.metrics = std::move(r.metrics);
    plain.eval_seconds = r.seconds;
    run.plain_ials = std::move(plain);
  }
  for (auto& model : baselines) {
    AFFINITY_ASSIGN_OR_RETURN(ModelEvaluation e, FitAndEvaluate(*model, train, test, options.eval));
    run.baselines.push_back(std::move(e));
  }
  return run;
}

int64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

}  // namespace affinity

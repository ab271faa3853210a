#include "affinity/evaluation.h"

#include <algorithm>
#include <chrono>
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

Result<TuningResult> TuneIals(const CsrMatrix& train, const IalsOptions& base, double filter_weight,
                              const TuningOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  // Validation split: a random holdout_fraction of each user's items (at least one kept).
  std::mt19937_64 rng(options.seed);
  CsrBuilder fit_part(train.cols), held_part(train.cols);
  std::vector<int64_t> candidates;
  std::vector<int32_t> row;
  for (int64_t u = 0; u < train.rows; ++u) {
    row.assign(train.indices.begin() + train.RowBegin(u), train.indices.begin() + train.RowEnd(u));
    std::vector<float> weights(train.values.begin() + train.RowBegin(u),
                               train.values.begin() + train.RowEnd(u));
    std::vector<size_t> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t held =
        row.size() >= 2 ? std::max<size_t>(1, static_cast<size_t>(options.holdout_fraction *
                                                                  static_cast<double>(row.size())))
                        : 0;
    for (size_t k = 0; k < order.size(); ++k) {
      AFFINITY_RETURN_IF_ERROR(k < held ? held_part.Add(u, row[order[k]], 1.0f)
                                        : fit_part.Add(u, row[order[k]], weights[order[k]]));
    }
    if (held > 0) candidates.push_back(u);
  }
  if (candidates.empty()) {
    return Status::InvalidArgument("no user has two items to carve a validation split from",
                                   "interactions");
  }
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix fit_matrix, fit_part.Finish(train.rows));
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix held_all, held_part.Finish(train.rows));
  // Score a sample of validation users only.
  std::shuffle(candidates.begin(), candidates.end(), rng);
  if (candidates.size() > static_cast<size_t>(options.max_validation_users)) {
    candidates.resize(options.max_validation_users);
  }
  std::sort(candidates.begin(), candidates.end());
  CsrBuilder sample(train.cols);
  for (int64_t u : candidates) {
    for (int64_t k = held_all.RowBegin(u); k < held_all.RowEnd(u); ++k) {
      AFFINITY_RETURN_IF_ERROR(sample.Add(u, held_all.indices[k], 1.0f));
    }
  }
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix validation, sample.Finish(train.rows));

  ItemFilterRecommender filter;
  if (filter_weight > 0) AFFINITY_RETURN_IF_ERROR(filter.Fit(fit_matrix));

  TuningResult result;
  result.chosen = base;
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
    AFFINITY_RETURN_IF_ERROR(model->Fit(fit_matrix));
    AFFINITY_ASSIGN_OR_RETURN(EvalResult r, EvaluateTopK(*model, fit_matrix, validation, eval));
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
    AFFINITY_ASSIGN_OR_RETURN(TuningResult tuning,
                              TuneIals(train, options.ials, options.filter_weight, options.tuning));
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

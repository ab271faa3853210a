#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "affinity/datasets.h"
#include "affinity/evaluation.h"
#include "affinity/new_products.h"
#include "affinity/store.h"
#include "affinity/time_split.h"
#include "affinity/time_util.h"
#include "commands.h"
#include "ials_flags.h"

namespace affinity::cli {
namespace {

struct EvaluateFlags {
  std::string protocol;
  std::string train, test;  // lightgcn
  std::string db, cutoff;   // time-split
  int horizon_days = 30;
  bool include_repeats = false;
  std::vector<std::string> baselines = {"popularity", "item_knn", "repeat", "ease"};
  bool json = false;
  bool quiet = false;
  bool no_tune = false;
  double tune_seconds = 240;
  double filter_weight = 0.3;
  std::string cold_start = "ridge";
  int calibration_periods = 1;
  bool per_launch = false;
  double cold_start_regularization = ColdStartOptions{}.regularization;
  IalsFlags ials;
};

nlohmann::json ModelJson(const ModelEvaluation& m) {
  nlohmann::json j = {{"train_seconds", m.train_seconds}, {"eval_seconds", m.eval_seconds}};
  for (const auto& [k, v] : m.metrics) j[k] = v;
  if (!m.skipped.empty()) j["skipped"] = m.skipped;
  return j;
}

// The store and cutoff of the store-based protocols (--db and --cutoff are required).
struct StoreAtCutoff {
  std::unique_ptr<Store> store;
  UnixSeconds cutoff = 0;
};
Result<StoreAtCutoff> OpenStoreAtCutoff(const EvaluateFlags& f) {
  if (f.db.empty() || f.cutoff.empty()) {
    return Status::InvalidArgument("--protocol " + f.protocol + " needs --db and --cutoff",
                                   "cutoff");
  }
  auto cutoff = ParseTimestamp(f.cutoff);
  if (!cutoff.ok()) return Status::InvalidArgument(cutoff.status().message(), "cutoff");
  StoreOptions so;
  so.read_only = true;
  AFFINITY_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(f.db, so));
  return StoreAtCutoff{std::move(store), *cutoff};
}

nlohmann::json AudienceJson(const AudienceMetrics& m) {
  return {{"recall@100", m.recall100}, {"ndcg@100", m.ndcg100}, {"auc", m.auc}};
}

// --protocol new-products: the launch study of new_products.h.
int RunNewProducts(EvaluateFlags& f, const IalsOptions& ials) {
  auto opened = OpenStoreAtCutoff(f);
  if (!opened.ok()) return Fail(opened.status());
  const std::unique_ptr<Store>& store = opened->store;
  const UnixSeconds* cutoff = &opened->cutoff;
  LaunchStudyOptions options;
  options.cutoff = *cutoff;
  options.horizon_days = f.horizon_days;
  options.ials = ials;
  auto method = ParseColdStartMethod(f.cold_start);
  if (!method.ok()) return Fail(Status::InvalidArgument(method.status().message(), "cold-start"));
  options.cold_start.method = *method;
  options.cold_start.regularization = f.cold_start_regularization;
  for (ColdStartMethod m : {ColdStartMethod::kRidge, ColdStartMethod::kKnn}) {
    if (m != *method) options.compare_methods.push_back(m);
  }
  if (!f.quiet) {
    std::fprintf(stderr,
                 "new-products: %d launch studies for the calibration, one at the cutoff; each "
                 "trains iALS: %s\n",
                 f.calibration_periods, Dump(IalsOptionsJson(ials), -1).c_str());
  }
  auto run = EvaluateNewProducts(*store, options, f.calibration_periods);
  if (!run.ok()) return Fail(run.status());
  const CalibrationReport& cal = run->calibration_report;
  nlohmann::json metrics = AudienceJson(run->model);
  metrics["ece"] = cal.ece;
  metrics["ece_quantile"] = cal.ece_quantile;
  metrics["predicted_buyers"] = cal.predicted_positives;
  metrics["observed_buyers"] = cal.observed_positives;
  metrics["new_products"] = run->new_products;
  metrics["products_with_buyers"] = run->model.products;
  nlohmann::json methods = nlohmann::json::object();
  for (const auto& [name, m] : run->methods) methods[name] = AudienceJson(m);
  nlohmann::json baselines = nlohmann::json::object();
  for (const auto& [name, m] : run->baselines) baselines[name] = AudienceJson(m);
  nlohmann::json bins = nlohmann::json::array();
  for (const auto& b : cal.bins) {
    bins.push_back({{"predicted", b.predicted}, {"observed", b.observed}, {"pairs", b.count}});
  }
  const LaunchStudy& study = run->study;
  nlohmann::json j = {
      {"protocol",
       {{"name", "new-products"},
        {"db", f.db},
        {"cutoff", FormatTimestamp(*cutoff)},
        {"horizon_days", f.horizon_days}}},
      {"data",
       {{"universe_customers", study.universe.size()},
        {"train_interactions", study.train_interactions},
        {"pairs", cal.pairs}}},
      {"options", IalsOptionsJson(ials)},
      {"cold_start",
       {{"method", f.cold_start},
        {"regularization", f.cold_start_regularization},
        {"targets", study.cold_start.targets},
        {"features", study.cold_start.features},
        {"train_rmse", study.cold_start.train_rmse},
        {"target_rms", study.cold_start.target_rms},
        {"seconds", study.cold_start.seconds}}},
      {"calibration",
       {{"method", "logistic"},
        {"features", run->calibration.features},
        {"weights", run->calibration.weights},
        {"intercept", run->calibration.intercept},
        {"fitted_on_launches", run->calibration.products},
        {"fitted_on_pairs", run->calibration.pairs},
        {"fitted_on_buyers", run->calibration.positives},
        {"reliability_bins", bins}}},
      {"metrics", metrics},
      {"methods", methods},
      {"baselines", baselines},
      {"train_seconds", study.train_seconds},
      {"seconds", run->seconds},
      {"peak_rss_mb", static_cast<double>(PeakRssBytes()) / (1 << 20)},
  };
  if (f.per_launch) {
    nlohmann::json launches = nlohmann::json::array();
    for (const LaunchOutcome& l : run->launches) {
      auto id = store->ProductExternalId(l.product);
      if (!id.ok()) return Fail(id.status());
      launches.push_back({{"product", *id},
                          {"title", l.title},
                          {"first_sale", FormatTimestamp(l.first_sale)},
                          {"predicted_buyers", l.predicted_buyers},
                          {"observed_buyers", l.observed_buyers}});
    }
    j["launches"] = std::move(launches);
  }
  if (f.json) {
    std::printf("%s\n", Dump(j).c_str());
    return 0;
  }
  std::printf(
      "new products first sold in [%s, +%d days): %lld (%lld with a buyer among %zu "
      "customers)\n",
      FormatTimestamp(*cutoff).c_str(), f.horizon_days, static_cast<long long>(run->new_products),
      static_cast<long long>(run->model.products), study.universe.size());
  std::printf("%-22s %10s %10s %8s\n", "audience ranker", "recall@100", "ndcg@100", "auc");
  auto row = [](const std::string& name, const AudienceMetrics& m) {
    std::printf("%-22s %10.4f %10.4f %8.4f\n", name.c_str(), m.recall100, m.ndcg100, m.auc);
  };
  row("audience model", run->model);
  for (const auto& [name, m] : run->methods) row("ials score (" + name + ")", m);
  for (const auto& [name, m] : run->baselines) row(name, m);
  std::printf(
      "calibration (logistic, fitted on %lld earlier launches): ECE %.4f (equal-count bins "
      "%.4f), predicted buyers %.1f vs observed %lld\n",
      static_cast<long long>(run->calibration.products), cal.ece, cal.ece_quantile,
      cal.predicted_positives, static_cast<long long>(cal.observed_positives));
  if (f.per_launch) {
    std::printf("%-14s %-20s %9s %8s  %s\n", "product", "first sale", "predicted", "observed",
                "title");
    for (const auto& l : j["launches"]) {
      std::printf("%-14s %-20s %9.1f %8lld  %s\n", l["product"].get<std::string>().c_str(),
                  l["first_sale"].get<std::string>().c_str(), l["predicted_buyers"].get<double>(),
                  static_cast<long long>(l["observed_buyers"].get<int64_t>()),
                  l["title"].get<std::string>().c_str());
    }
  }
  return 0;
}

int Run(EvaluateFlags& f) {
  EvaluationOptions options;
  if (Status s = f.ials.Fill(&options.ials); !s.ok()) return Fail(s);
  if (f.protocol == "new-products") return RunNewProducts(f, options.ials);
  options.baselines = f.baselines;
  std::erase(options.baselines, "");  // --baselines '' runs none
  options.filter_weight = f.filter_weight;
  options.tuning.budget_seconds = f.tune_seconds;
  // Tuning chooses α₀ and λ; a user who sets either has chosen.
  options.tuning.enabled = !f.no_tune && !f.ials.explicit_weights();
  options.eval.num_threads = options.ials.num_threads;
  if (!f.quiet) {
    options.on_progress = [](const IalsProgress& p) {
      std::fprintf(stderr, "iALS epoch %d: loss %.6f, %.2f s\n", p.iteration, p.loss, p.seconds);
    };
  }

  CsrMatrix train, test;
  nlohmann::json protocol;
  if (f.protocol == "lightgcn") {
    if (f.train.empty() || f.test.empty()) {
      return Fail(Status::InvalidArgument("--protocol lightgcn needs --train and --test", "train"));
    }
    auto split = ReadLightGcnSplit(f.train, f.test);
    if (!split.ok()) return Fail(split.status());
    train = std::move(split->train);
    test = std::move(split->test);
    protocol = {{"name", "lightgcn"}, {"train", f.train}, {"test", f.test}};
  } else if (f.protocol == "time-split") {
    auto opened = OpenStoreAtCutoff(f);
    if (!opened.ok()) return Fail(opened.status());
    const std::unique_ptr<Store>& store = opened->store;
    const UnixSeconds* cutoff = &opened->cutoff;
    TimeSplitOptions to;
    to.cutoff = *cutoff;
    to.horizon_days = f.horizon_days;
    to.include_repeats = f.include_repeats;
    auto split = MakeTimeSplit(*store, to);
    if (!split.ok()) return Fail(split.status());
    train = std::move(split->train);
    test = std::move(split->test);
    if (options.tuning.enabled) {
      // Tune for the task measured (time_split.h); with too little data before the cutoff for
      // that, on the random holdout.
      if (auto v = MakeTimeValidationSplit(*store, to); v.ok()) {
        options.validation = std::move(*v);
      } else if (!f.quiet) {
        std::fprintf(stderr, "tuning: no time-based validation split (%s); using a random one\n",
                     v.status().message().c_str());
      }
    }
    protocol = {{"name", "time-split"},
                {"db", f.db},
                {"cutoff", FormatTimestamp(*cutoff)},
                {"horizon_days", f.horizon_days},
                {"include_repeats", f.include_repeats}};
  } else {
    return Fail(Status::InvalidArgument(
        "--protocol must be lightgcn, time-split or new-products (got '" + f.protocol + "')",
        "protocol"));
  }
  auto run = EvaluateModels(train, test, options);
  if (!run.ok()) return Fail(run.status());
  if (run->tuning && !f.quiet) {
    std::fprintf(stderr, "tuning on %s\n", run->tuning->validation.c_str());
    PrintTuningTrials(*run->tuning);
  }
  std::fprintf(
      stderr, "hyperparameters: %s, filter_weight %g%s\n",
      Dump(IalsOptionsJson(run->ials_options), -1).c_str(), f.filter_weight,
      run->tuning ? " (alpha0 and lambda tuned on a validation split of the training data)" : "");

  nlohmann::json baselines = nlohmann::json::object();
  for (const auto& b : run->baselines) baselines[b.name] = ModelJson(b);
  if (run->plain_ials) baselines["ials"] = ModelJson(*run->plain_ials);
  nlohmann::json losses = nlohmann::json::array();
  for (const auto& p : run->progress) losses.push_back(p.loss);
  nlohmann::json j = {
      {"protocol", protocol},
      {"data",
       {{"users", run->users},
        {"items", run->items},
        {"train_interactions", run->train_nnz},
        {"test_interactions", run->test_nnz},
        {"test_users", run->test_users}}},
      {"model", run->ials.name},
      {"options", IalsOptionsJson(run->ials_options)},
      {"filter_weight", f.filter_weight},
      {"tuning", run->tuning ? TuningJson(*run->tuning) : nlohmann::json(nullptr)},
      {"metrics", run->ials.metrics},
      {"train_seconds", run->ials.train_seconds},
      {"eval_seconds", run->ials.eval_seconds},
      {"loss_per_epoch", losses},
      {"gflops_per_second", run->ials_gflops_per_second},
      {"baselines", baselines},
      {"peak_rss_mb", static_cast<double>(PeakRssBytes()) / (1 << 20)},
  };
  if (f.json) {
    std::printf("%s\n", Dump(j).c_str());
    return 0;
  }
  std::printf("%-12s", "model");
  for (const auto& [k, v] : run->ials.metrics) std::printf(" %12s", k.c_str());
  std::printf(" %9s\n", "train s");
  auto row = [&](const ModelEvaluation& m) {
    std::printf("%-12s", m.name.c_str());
    if (!m.skipped.empty()) {
      std::printf(" skipped: %s\n", m.skipped.c_str());
      return;
    }
    for (const auto& [k, v] : m.metrics) std::printf(" %12.4f", v);
    std::printf(" %9.2f\n", m.train_seconds);
  };
  row(run->ials);
  if (run->plain_ials) row(*run->plain_ials);
  for (const auto& b : run->baselines) row(b);
  return 0;
}

}  // namespace

Command RegisterEvaluate(CLI::App& app) {
  auto f = std::make_shared<EvaluateFlags>();
  CLI::App* sub = app.add_subcommand(
      "evaluate",
      "Offline evaluation of iALS against the baselines (popularity, item-kNN, repeat, EASE):\n"
      "Recall, NDCG, HitRate and coverage at 10 and 20, ranking all items, training items "
      "excluded.\n"
      "--protocol new-products ranks all customers for products first sold after the cutoff,\n"
      "embedded from their attributes only (recall@100, ndcg@100, AUC, calibration).");
  sub->add_option("--protocol", f->protocol, "lightgcn | time-split | new-products")->required();
  sub->add_option("--train", f->train, "lightgcn: training file (user item item ...)");
  sub->add_option("--test", f->test, "lightgcn: test file");
  sub->add_option("--db", f->db, "time-split, new-products: store directory");
  sub->add_option("--cutoff", f->cutoff,
                  "time-split, new-products: train before this date, test after");
  sub->add_option("--horizon-days", f->horizon_days,
                  "time-split, new-products: length of the test period")
      ->capture_default_str();
  sub->add_flag("--include-repeats", f->include_repeats,
                "time-split: keep re-purchases in the test set");
  sub->add_option("--baselines", f->baselines, "Baselines to run (none: --baselines '')")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--filter-weight", f->filter_weight,
                  "Weight of the normalized item filter blended with iALS (0: iALS alone)")
      ->capture_default_str();
  sub->add_option("--cold-start", f->cold_start,
                  "new-products: attribute-to-factor map, ridge | knn (the other is reported too)")
      ->capture_default_str();
  sub->add_flag("--per-launch", f->per_launch,
                "new-products: also list each new product's predicted and observed buyers");
  sub->add_option("--calibration-periods", f->calibration_periods,
                  "new-products: earlier launch periods the calibration is fitted on")
      ->capture_default_str();
  sub->add_option("--cold-start-lambda", f->cold_start_regularization,
                  "new-products: ridge regularization of the attribute map")
      ->capture_default_str();
  sub->add_flag("--no-tune", f->no_tune,
                "Skip the built-in tuning of --unobserved-weight and --regularization");
  sub->add_option("--tune-seconds", f->tune_seconds, "Time budget of the tuning")
      ->capture_default_str();
  sub->add_flag("--json", f->json, "Print one JSON object");
  sub->add_flag("-q,--quiet", f->quiet, "No progress output");
  f->ials.Register(sub);
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "affinity/datasets.h"
#include "affinity/evaluation.h"
#include "affinity/insights.h"
#include "affinity/interactions.h"
#include "affinity/new_products.h"
#include "affinity/snapshot.h"
#include "affinity/store.h"
#include "affinity/time_split.h"
#include "affinity/time_util.h"
#include "commands.h"
#include "ials_flags.h"

namespace affinity::cli {
namespace {

struct TrainFlags {
  std::string db;
  std::string snapshots;
  std::string train_file;
  std::string as_of;
  double half_life_days = 365;
  int horizon_days = 30;
  int calibration_periods = 1;
  double cold_start_regularization = ColdStartOptions{}.regularization;
  bool no_audience_model = false;
  bool no_tune = false;
  double tune_seconds = TuningOptions{}.budget_seconds;
  bool json = false;
  bool quiet = false;
  IalsFlags ials;
};

int64_t PeakRssMb() { return PeakRssBytes() >> 20; }

// The audience model for new products (new_products.h): fills the snapshot's fields and returns a
// report; a part that cannot be fitted (no launches in the data, no product attributes) is
// reported and left out, not an error.
nlohmann::json AddAudienceModel(const TrainFlags& f, const Store& store, const CsrMatrix& matrix,
                                const IalsModel& model, const IalsOptions& options,
                                const InteractionOptions& io, UnixSeconds end, Snapshot* snapshot) {
  if (!f.quiet) {
    std::fprintf(stderr,
                 "audience model: cold-start map, then calibration on %d earlier launch "
                 "period(s) of %d days (trains iALS again)\n",
                 f.calibration_periods, f.horizon_days);
  }
  AudienceModelOptions ao;
  ao.horizon_days = f.horizon_days;
  ao.calibration_periods = f.calibration_periods;
  ao.cold_start.regularization = f.cold_start_regularization;
  auto fitted = FitAudienceModel(store, matrix, model, options, io.half_life_days, end, ao);
  if (!fitted.ok()) return {{"skipped", fitted.status().ToString()}};
  nlohmann::json report = {{"seconds", fitted->seconds}};
  if (fitted->cold_start) {
    const ColdStartFitReport& r = fitted->cold_start_report;
    report["cold_start"] = {{"method", "ridge"},
                            {"targets", r.targets},
                            {"features", r.features},
                            {"train_rmse", r.train_rmse},
                            {"target_rms", r.target_rms}};
  } else {
    report["cold_start"] = {{"skipped", fitted->cold_start_skipped}};
  }
  if (fitted->calibration) {
    const LogisticCalibration& c = *fitted->calibration;
    report["calibration"] = {{"launches", c.products},
                             {"pairs", c.pairs},
                             {"buyers", c.positives},
                             {"horizon_days", c.horizon_days}};
  } else {
    report["calibration"] = {{"skipped", fitted->calibration_skipped}};
  }
  if (!f.quiet && (!fitted->cold_start || !fitted->calibration)) {
    std::fprintf(stderr, "audience model incomplete: %s\n", Dump(report, -1).c_str());
  }
  snapshot->cold_start = std::move(fitted->cold_start);
  snapshot->audience = std::move(fitted->calibration);
  snapshot->score_scale = fitted->score_scale;
  return report;
}

int Run(TrainFlags& f) {
  const auto start = std::chrono::steady_clock::now();
  IalsOptions options;
  if (Status s = f.ials.Fill(&options); !s.ok()) return Fail(s);
  if (f.db.empty() == f.train_file.empty()) {
    return Fail(Status::InvalidArgument("give exactly one of --db and --train", "db"));
  }
  Snapshot snapshot;
  CsrMatrix matrix;
  std::unique_ptr<Store> store_holder;
  InteractionOptions io;
  nlohmann::json source;
  nlohmann::json insights = nullptr;
  if (!f.train_file.empty()) {
    auto m = ReadLightGcnFile(f.train_file);
    if (!m.ok()) return Fail(m.status());
    matrix = std::move(*m);
    for (int64_t u = 0; u < matrix.rows; ++u) snapshot.customer_ids.push_back(std::to_string(u));
    for (int64_t i = 0; i < matrix.cols; ++i) snapshot.product_ids.push_back(std::to_string(i));
    source = {{"train_file", f.train_file}};
  } else {
    StoreOptions so;
    so.read_only = true;
    auto store = Store::Open(f.db, so);
    if (!store.ok()) return Fail(store.status());
    if (!f.as_of.empty()) {
      auto t = ParseTimestamp(f.as_of);
      if (!t.ok()) return Fail(Status::InvalidArgument(t.status().message(), "as-of"));
      io.to = *t + 1;  // events up to and including as_of
    }
    if (!(f.half_life_days >= 0)) {
      return Fail(Status::InvalidArgument("--half-life-days must be >= 0", "half-life-days"));
    }
    if (f.half_life_days > 0) io.half_life_days = f.half_life_days;
    // The decay's reference time, recorded so that the server's fold-in decays the same way.
    if (io.to) {
      io.reference_time = *io.to;
    } else {
      auto stats = (*store)->ComputeStats();
      if (!stats.ok()) return Fail(stats.status());
      io.reference_time = stats->last_event.value_or(0);
    }
    auto m = ReadPurchaseMatrix(**store, io);
    if (!m.ok()) return Fail(m.status());
    matrix = std::move(*m);
    for (int64_t u = 0; u < matrix.rows; ++u) {
      auto id = (*store)->CustomerExternalId(CustomerId{static_cast<uint32_t>(u)});
      snapshot.customer_ids.push_back(id.ok() ? *id : "");
    }
    for (int64_t i = 0; i < matrix.cols; ++i) {
      auto id = (*store)->ProductExternalId(ProductId{static_cast<uint32_t>(i)});
      snapshot.product_ids.push_back(id.ok() ? *id : "");
    }
    source = {{"db", f.db},
              {"as_of", f.as_of.empty() ? "latest" : f.as_of},
              {"half_life_days", f.half_life_days},
              {"reference_time", *io.reference_time}};
    // The full insights recomputation rides along with every retrain (about a second per few
    // thousand customers): a summary in the manifest, the per-customer rows in insights.jsonl.
    InsightsOptions insights_options;
    if (io.to) insights_options.calibration_end = *io.to - 1;
    auto shop = ComputeShopInsights(**store, insights_options);
    if (shop.ok()) {
      std::string rows;
      for (const auto& c : shop->customers) rows += Dump(CustomerInsightJson(c), -1) + "\n";
      snapshot.extra_files["insights.jsonl"] = std::move(rows);
      const InsightsModel& fitted = shop->model;
      insights = {{"calibration_end", FormatTimestamp(fitted.calibration_end)},
                  {"bgnbd",
                   {{"r", fitted.bgnbd.r},
                    {"alpha", fitted.bgnbd.alpha},
                    {"a", fitted.bgnbd.a},
                    {"b", fitted.bgnbd.b}}},
                  {"stages", shop->stages},
                  {"core_customers",
                   {{"count", shop->core_count},
                    {"share_of_customers", shop->core_share_of_customers},
                    {"share_of_value", shop->core_share_of_value}}}};
    } else if (!f.quiet) {
      std::fprintf(stderr, "insights skipped: %s\n", shop.status().ToString().c_str());
    }
    store_holder = std::move(*store);
  }
  // Built-in tuning of α₀ and λ (evaluation.h), for the model published: iALS alone. A store is
  // tuned on its last --horizon-days (time_split.h), as the time-split evaluation is; a file
  // without times on a random holdout.
  nlohmann::json tuning_report = nullptr;
  if (!f.no_tune && !f.ials.explicit_weights()) {
    TuningOptions to;
    to.budget_seconds = f.tune_seconds;
    std::optional<ValidationSplit> split;
    if (store_holder) {
      TimeSplitOptions last;
      last.cutoff = io.to ? *io.to : *io.reference_time + 1;
      last.horizon_days = f.horizon_days;
      auto v = MakeTimeValidationSplit(*store_holder, last);
      if (v.ok()) {
        split = std::move(*v);
      } else if (!f.quiet) {
        std::fprintf(stderr, "tuning: no time-based validation split (%s); using a random one\n",
                     v.status().message().c_str());
      }
    }
    if (!split) {
      auto v = RandomHoldoutSplit(matrix, to);
      if (!v.ok()) return Fail(v.status());
      split = std::move(*v);
    }
    if (!f.quiet) {
      std::fprintf(stderr, "tuning alpha0 and lambda on %s (budget %.0f s)\n",
                   split->description.c_str(), to.budget_seconds);
    }
    auto tuned = TuneIals(*split, options, /*filter_weight=*/0, to);
    if (!tuned.ok()) return Fail(tuned.status());
    if (!f.quiet) PrintTuningTrials(*tuned);
    options = tuned->chosen;
    tuning_report = TuningJson(*tuned);
  }
  if (!f.quiet) {
    std::fprintf(stderr, "training iALS on %lld x %lld (%lld interactions): %s\n",
                 static_cast<long long>(matrix.rows), static_cast<long long>(matrix.cols),
                 static_cast<long long>(matrix.nnz()), Dump(IalsOptionsJson(options), -1).c_str());
  }
  IalsModel model(options);
  nlohmann::json losses = nlohmann::json::array();
  model.set_progress_callback([&](const IalsProgress& p) {
    losses.push_back(p.loss);
    if (!f.quiet) {
      std::fprintf(stderr, "epoch %d/%d: loss %.6f, %.2f s\n", p.iteration, options.iterations,
                   p.loss, p.seconds);
    }
  });
  const auto train_start = std::chrono::steady_clock::now();
  if (Status s = model.Fit(matrix); !s.ok()) return Fail(s);
  const double train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();

  snapshot.user_factors = model.user_factors();
  snapshot.item_factors = model.item_factors();
  snapshot.item_weights = model.item_weights();
  nlohmann::json audience_report = nullptr;
  if (store_holder && !f.no_audience_model) {
    audience_report = AddAudienceModel(f, *store_holder, matrix, model, options, io,
                                       io.to ? *io.to : *io.reference_time + 1, &snapshot);
  }
  snapshot.manifest = {{"model", "ials"},
                       {"options", IalsOptionsJson(options)},
                       {"source", source},
                       {"interactions", matrix.nnz()},
                       {"loss_per_epoch", losses},
                       {"tuning", tuning_report},
                       {"train_seconds", train_seconds},
                       {"peak_rss_mb", PeakRssMb()},
                       {"insights", insights},
                       {"audience_model", audience_report}};
  int64_t left_out = 0;
  if (store_holder) {
    // A customer forgotten while this run trained (DELETE on a server beside it, which this run's
    // read-only view of the store does not see) is not published: the store as it is now says
    // who is still there.
    if (const char* forget = std::getenv("AFFINITY_TRAIN_TEST_FORGET")) {
      // Test hook (tests/tools/cli_test.cc; documented in docs/snapshots.md, like the campaign's
      // crash hooks): what a server beside this run does on DELETE, at the last moment.
      StoreOptions writable;
      writable.create_if_missing = false;
      auto writer = Store::Open(f.db, writable);
      if (!writer.ok()) return Fail(writer.status());
      if (auto forgot = (*writer)->ForgetCustomer(forget); !forgot.ok()) {
        return Fail(forgot.status());
      }
    }
    StoreOptions now_options;
    now_options.read_only = true;
    now_options.create_if_missing = false;
    auto now = Store::Open(f.db, now_options);
    if (!now.ok()) return Fail(now.status());
    auto gone = ForgetGoneCustomers(**now, &snapshot);
    if (!gone.ok()) return Fail(gone.status());
    left_out = *gone;
    if (left_out > 0 && !f.quiet) {
      std::fprintf(stderr, "left out %lld customers forgotten while this run trained\n",
                   static_cast<long long>(left_out));
    }
  }
  // An erasure (affinity forget --snapshots) may hold the root for a few seconds a version:
  // wait for it rather than lose the run.
  auto version = PublishSnapshot(f.snapshots, snapshot, /*wait_seconds=*/600);
  if (!version.ok()) return Fail(version.status());
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json report = {{"version", *version},
                           {"snapshots", f.snapshots},
                           {"customers", matrix.rows},
                           {"products", matrix.cols},
                           {"interactions", matrix.nnz()},
                           {"options", IalsOptionsJson(options)},
                           {"loss_per_epoch", losses},
                           {"tuning", tuning_report},
                           {"train_seconds", train_seconds},
                           {"total_seconds", total},
                           {"peak_rss_mb", PeakRssMb()},
                           {"forgotten_while_training", left_out},
                           {"audience_model", audience_report}};
  if (f.json) {
    std::printf("%s\n", Dump(report).c_str());
  } else {
    std::printf(
        "published snapshot v%06lld in %s: %lld customers x %lld products, %d factors, "
        "trained in %.1f s (peak RSS %lld MB)\n",
        static_cast<long long>(*version), f.snapshots.c_str(), static_cast<long long>(matrix.rows),
        static_cast<long long>(matrix.cols), options.factors, train_seconds,
        static_cast<long long>(PeakRssMb()));
  }
  return 0;
}

}  // namespace

Command RegisterTrain(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  CLI::App* sub = app.add_subcommand(
      "train",
      "The retraining job: read purchases (from a store, or a LightGCN-format file), tune iALS's\n"
      "alpha0 and lambda (on the store's last --horizon-days; unless given or --no-tune), train\n"
      "iALS, and publish a new model snapshot atomically (docs/snapshots.md).");
  sub->add_option("--db", f->db, "Store directory");
  sub->add_option("--train", f->train_file, "Train from a LightGCN-format file instead");
  sub->add_option("--snapshots", f->snapshots, "Snapshot root directory")->required();
  sub->add_option("--as-of", f->as_of,
                  "Use events up to and including this instant; a date means its 00:00 UTC "
                  "(default: all)");
  sub->add_option("--half-life-days", f->half_life_days,
                  "Recency half-life of purchase weights (0: no decay)")
      ->capture_default_str();
  sub->add_option("--horizon-days", f->horizon_days,
                  "The tuning's validation period, and the window of the audiences' calibrated "
                  "purchase probability")
      ->capture_default_str();
  sub->add_option("--calibration-periods", f->calibration_periods,
                  "Audiences: earlier launch periods the calibration is fitted on")
      ->capture_default_str();
  sub->add_option("--cold-start-lambda", f->cold_start_regularization,
                  "Audiences: ridge regularization of the attribute-to-factor map")
      ->capture_default_str();
  sub->add_flag("--no-tune", f->no_tune,
                "Skip the built-in tuning of --unobserved-weight and --regularization");
  sub->add_option("--tune-seconds", f->tune_seconds, "Time budget of the tuning")
      ->capture_default_str();
  sub->add_flag("--no-audience-model", f->no_audience_model,
                "Skip the cold-start map and the audience calibration");
  sub->add_flag("--json", f->json, "Print a JSON report");
  sub->add_flag("-q,--quiet", f->quiet, "No progress output");
  f->ials.Register(sub);
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "affinity/datasets.h"
#include "affinity/evaluation.h"
#include "affinity/insights.h"
#include "affinity/interactions.h"
#include "affinity/snapshot.h"
#include "affinity/store.h"
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
  bool json = false;
  bool quiet = false;
  IalsFlags ials;
};

int64_t PeakRssMb() { return PeakRssBytes() >> 20; }

int Run(TrainFlags& f) {
  const auto start = std::chrono::steady_clock::now();
  IalsOptions options;
  if (Status s = f.ials.Fill(&options); !s.ok()) return Fail(s);
  if (f.db.empty() == f.train_file.empty()) {
    return Fail(Status::InvalidArgument("give exactly one of --db and --train", "db"));
  }
  Snapshot snapshot;
  CsrMatrix matrix;
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
    InteractionOptions io;
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
  snapshot.manifest = {{"model", "ials"},
                       {"options", IalsOptionsJson(options)},
                       {"source", source},
                       {"interactions", matrix.nnz()},
                       {"loss_per_epoch", losses},
                       {"train_seconds", train_seconds},
                       {"peak_rss_mb", PeakRssMb()},
                       {"insights", insights}};
  auto version = PublishSnapshot(f.snapshots, snapshot);
  if (!version.ok()) return Fail(version.status());
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json report = {{"version", *version},          {"snapshots", f.snapshots},
                           {"customers", matrix.rows},     {"products", matrix.cols},
                           {"interactions", matrix.nnz()}, {"options", IalsOptionsJson(options)},
                           {"loss_per_epoch", losses},     {"train_seconds", train_seconds},
                           {"total_seconds", total},       {"peak_rss_mb", PeakRssMb()}};
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
      "The retraining job: read purchases (from a store, or a LightGCN-format file), train iALS,\n"
      "and publish a new model snapshot atomically (docs/snapshots.md).");
  sub->add_option("--db", f->db, "Store directory");
  sub->add_option("--train", f->train_file, "Train from a LightGCN-format file instead");
  sub->add_option("--snapshots", f->snapshots, "Snapshot root directory")->required();
  sub->add_option("--as-of", f->as_of,
                  "Use events up to and including this instant; a date means its 00:00 UTC "
                  "(default: all)");
  sub->add_option("--half-life-days", f->half_life_days,
                  "Recency half-life of purchase weights (0: no decay)")
      ->capture_default_str();
  sub->add_flag("--json", f->json, "Print a JSON report");
  sub->add_flag("-q,--quiet", f->quiet, "No progress output");
  f->ials.Register(sub);
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli

// `affinity audience`: the customers to tell about a product, from the command line (the same
// answer as GET /v1/products/{id}/audience).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "affinity/serving.h"
#include "affinity/store.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct AudienceFlags {
  std::string db;
  std::string snapshots;
  std::string product;
  int limit = 100;
  double horizon_days = 0;
  double min_probability = 0;
  int candidates = ServingOptions{}.audience_candidates;
  bool json = false;
};

int Run(const AudienceFlags& f) {
  StoreOptions so;
  so.read_only = true;  // may run beside a server on the same store
  auto store = Store::Open(f.db, so);
  if (!store.ok()) return Fail(store.status());
  ServingOptions options;
  options.max_audience = std::max(options.max_audience, f.limit);
  options.audience_candidates = f.candidates;
  auto engine = ServingEngine::Open(store->get(), f.snapshots, options);
  if (!engine.ok()) return Fail(engine.status());
  AudienceRequest r;
  r.product = f.product;
  r.limit = f.limit;
  if (f.horizon_days > 0) r.horizon_days = f.horizon_days;
  if (f.min_probability > 0) r.min_probability = f.min_probability;
  auto result = (*engine)->Audience(r);
  if (!result.ok()) return Fail(result.status());
  if (f.json) {
    std::printf("%s\n", Dump(AudienceResultJson(*result, &f.product)).c_str());
    return 0;
  }
  std::printf("audience of %s (model v%lld, product vector from %s): %zu customers",
              f.product.c_str(), static_cast<long long>(result->model_version),
              result->product_vector.c_str(), result->customers.size());
  if (result->calibrated) {
    std::printf(", %.1f expected buyers within %g days\n", result->expected_buyers,
                result->horizon_days);
  } else {
    std::printf(" (the snapshot has no audience calibration: scores only)\n");
  }
  std::printf("%-20s %10s %12s  %s\n", "customer", "score", "probability", "reason");
  for (const AudienceMember& m : result->customers) {
    std::string reason;
    if (m.reason_kind == "purchased") reason = "bought " + m.reason;
    if (m.reason_kind == "stated_interest") reason = "likes " + m.reason;
    std::printf("%-20s %10.4f %12s  %s\n", m.customer.c_str(), m.score,
                m.probability ? std::to_string(*m.probability).c_str() : "-", reason.c_str());
  }
  return 0;
}

}  // namespace

Command RegisterAudience(CLI::App& app) {
  auto f = std::make_shared<AudienceFlags>();
  CLI::App* sub = app.add_subcommand(
      "audience",
      "Customers to tell about a product, best first, with the calibrated probability that each\n"
      "buys it within the horizon and the reason (docs/audiences.md). A product without a trained\n"
      "vector is placed by its attributes.");
  sub->add_option("--db", f->db, "Store directory")->required();
  sub->add_option("--snapshots", f->snapshots, "Snapshot root directory")->required();
  sub->add_option("--product", f->product, "External product id")->required();
  sub->add_option("--limit", f->limit, "Customers to list")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  sub->add_option("--horizon-days", f->horizon_days,
                  "Window of the probability (default: the calibration's)");
  sub->add_option("--min-probability", f->min_probability, "Leave out less likely customers")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--candidates", f->candidates,
                  "Candidates per source at most, as a multiple of the limit (more: closer to "
                  "ranking every customer, slower)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  sub->add_flag("--json", f->json, "Print one JSON object");
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "affinity/store.h"
#include "affinity/time_util.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct StatsFlags {
  std::string db;
  bool json = false;
};

int Run(const StatsFlags& f) {
  StoreOptions options;
  options.create_if_missing = false;
  options.read_only = true;
  auto store = Store::Open(f.db, options);
  if (!store.ok()) return Fail(store.status());
  auto stats = (*store)->ComputeStats();
  if (!stats.ok()) return Fail(stats.status());
  const StoreStats& s = *stats;
  auto time_or_null = [](const std::optional<UnixSeconds>& t) -> nlohmann::json {
    return t ? nlohmann::json(FormatTimestamp(*t)) : nlohmann::json(nullptr);
  };
  nlohmann::json j = {
      {"customers", s.customers},
      {"products", s.products},
      {"events", s.events},
      {"events_by_type",
       {{"purchase", s.purchases}, {"return", s.returns}, {"other", s.other_events}}},
      {"customers_with_events", s.customers_with_events},
      {"first_event", time_or_null(s.first_event)},
      {"last_event", time_or_null(s.last_event)},
      {"events_per_customer",
       {{"p50", s.events_per_customer_p50},
        {"p90", s.events_per_customer_p90},
        {"p99", s.events_per_customer_p99},
        {"max", s.events_per_customer_max}}},
  };
  if (f.json) {
    std::printf("%s\n", Dump(j).c_str());
    return 0;
  }
  std::printf("store %s\n", f.db.c_str());
  std::printf("  customers            %lld (%lld with events)\n",
              static_cast<long long>(s.customers), static_cast<long long>(s.customers_with_events));
  std::printf("  products             %lld\n", static_cast<long long>(s.products));
  std::printf("  events               %lld (%lld purchases, %lld returns, %lld other)\n",
              static_cast<long long>(s.events), static_cast<long long>(s.purchases),
              static_cast<long long>(s.returns), static_cast<long long>(s.other_events));
  std::printf("  first event          %s\n", Dump(j["first_event"], -1).c_str());
  std::printf("  last event           %s\n", Dump(j["last_event"], -1).c_str());
  std::printf("  events per customer  p50 %lld, p90 %lld, p99 %lld, max %lld\n",
              static_cast<long long>(s.events_per_customer_p50),
              static_cast<long long>(s.events_per_customer_p90),
              static_cast<long long>(s.events_per_customer_p99),
              static_cast<long long>(s.events_per_customer_max));
  return 0;
}

}  // namespace

Command RegisterStats(CLI::App& app) {
  auto flags = std::make_shared<StatsFlags>();
  CLI::App* sub = app.add_subcommand("stats", "Print counts of a store (read-only).");
  sub->add_option("--db", flags->db, "Store directory")->required();
  sub->add_flag("--json", flags->json, "Print JSON");
  return [flags] { return Run(*flags); };
}

}  // namespace affinity::cli

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "affinity/insights.h"
#include "affinity/store.h"
#include "affinity/time_util.h"
#include "commands.h"

namespace affinity::cli {
namespace {

struct InsightsFlags {
  std::string db;
  std::string calibration_end;
  std::string holdout_end;
  std::string time_unit = "weeks";
  std::string customer;
  std::string customers_out;
  int top = 10;
  bool json = false;
  InsightsOptions options;
};

nlohmann::json ShopJson(const ShopInsights& s, const InsightsFlags& f, nlohmann::json customers) {
  const InsightsModel& m = s.model;
  nlohmann::json j = {
      {"calibration_end", FormatTimestamp(m.calibration_end)},
      {"time_unit", f.time_unit},
      {"bgnbd",
       {{"r", m.bgnbd.r},
        {"alpha", m.bgnbd.alpha},
        {"a", m.bgnbd.a},
        {"b", m.bgnbd.b},
        {"log_likelihood", m.bgnbd_log_likelihood}}},
      {"gamma_gamma", m.gamma_gamma_fitted ? nlohmann::json{{"p", m.gamma_gamma.p},
                                                            {"q", m.gamma_gamma.q},
                                                            {"gamma", m.gamma_gamma.gamma}}
                                           : nlohmann::json(nullptr)},
      {"stages", s.stages},
      {"core_customers",
       {{"count", s.core_count},
        {"share_of_customers", s.core_share_of_customers},
        {"share_of_value", s.core_share_of_value}}},
      {"median_gap_days", m.median_gap_days},
      {"seconds", s.seconds},
  };
  nlohmann::json pareto = nlohmann::json::array();
  for (const auto& p : s.pareto) {
    pareto.push_back({{"customer_share", p.customer_share}, {"value_share", p.value_share}});
  }
  j["pareto"] = pareto;
  std::vector<const CustomerInsight*> by_clv, at_risk;
  for (const auto& c : s.customers) {
    by_clv.push_back(&c);
    if (c.stage == LoyaltyStage::kAtRisk) at_risk.push_back(&c);
  }
  auto top = [&](std::vector<const CustomerInsight*>& v) {
    std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->clv > b->clv; });
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < v.size() && i < static_cast<size_t>(f.top); ++i) {
      out.push_back(CustomerInsightJson(*v[i]));
    }
    return out;
  };
  j["top_customers_by_clv"] = top(by_clv);
  j["at_risk"] = top(at_risk);
  if (s.holdout) {
    const HoldoutReport& h = *s.holdout;
    nlohmann::json bins = nlohmann::json::array();
    for (const auto& b : h.p_alive_bins) {
      bins.push_back({{"p_alive_low", b.p_alive_low},
                      {"p_alive_high", b.p_alive_high},
                      {"customers", b.customers},
                      {"mean_p_alive", b.mean_p_alive},
                      {"share_bought", b.share_bought}});
    }
    j["holdout"] = {
        {"period_units", h.period_units},
        {"customers", h.customers},
        {"actual_total", h.actual_total},
        {"predicted_total", h.predicted_total},
        {"naive_total", h.naive_total},
        {"mae", {{"bgnbd", h.mae_model}, {"naive", h.mae_naive}}},
        {"rmse", {{"bgnbd", h.rmse_model}, {"naive", h.rmse_naive}}},
        {"correlation", {{"bgnbd", h.correlation_model}, {"naive", h.correlation_naive}}},
        {"p_alive_bins", bins},
        {"predicted_dead", h.predicted_dead},
        {"predicted_dead_bought", h.predicted_dead_bought}};
    for (const auto& [stage, counts] : h.bought_by_stage) {
      j["holdout"]["bought_by_stage"][stage] = {{"customers", counts.first},
                                                {"share_bought", counts.second}};
    }
  }
  j["customers"] = std::move(customers);
  return j;
}

void PrintText(const ShopInsights& s) {
  const InsightsModel& m = s.model;
  std::printf("insights as of %s (%zu customers, %.2f s)\n",
              FormatTimestamp(m.calibration_end).c_str(), s.customers.size(), s.seconds);
  std::printf("  BG/NBD       r=%.4f alpha=%.4f a=%.4f b=%.4f\n", m.bgnbd.r, m.bgnbd.alpha,
              m.bgnbd.a, m.bgnbd.b);
  if (m.gamma_gamma_fitted) {
    std::printf("  Gamma-Gamma  p=%.4f q=%.4f gamma=%.4f\n", m.gamma_gamma.p, m.gamma_gamma.q,
                m.gamma_gamma.gamma);
  }
  std::printf("  stages      ");
  for (const auto& [stage, n] : s.stages)
    std::printf(" %s %lld", stage.c_str(), static_cast<long long>(n));
  std::printf("\n  core         %lld customers (%.1f%%) carry %.1f%% of value\n",
              static_cast<long long>(s.core_count), 100 * s.core_share_of_customers,
              100 * s.core_share_of_value);
  std::printf("  pareto      ");
  for (const auto& p : s.pareto) {
    std::printf(" top %.0f%% -> %.1f%%", 100 * p.customer_share, 100 * p.value_share);
  }
  std::printf("\n");
  if (s.holdout) {
    const HoldoutReport& h = *s.holdout;
    std::printf("  holdout      %.1f units, %lld customers: actual %.0f, BG/NBD %.0f, naive %.0f\n",
                h.period_units, static_cast<long long>(h.customers), h.actual_total,
                h.predicted_total, h.naive_total);
    std::printf("               MAE %.3f vs %.3f naive; correlation %.3f vs %.3f naive\n",
                h.mae_model, h.mae_naive, h.correlation_model, h.correlation_naive);
    std::printf("               bought in the holdout, by stage:");
    for (const auto& [stage, counts] : h.bought_by_stage) {
      std::printf(" %s %.0f%% of %lld", stage.c_str(), 100 * counts.second,
                  static_cast<long long>(counts.first));
    }
    std::printf("\n");
  }
}

int Run(InsightsFlags& f) {
  InsightsOptions& o = f.options;
  if (!f.calibration_end.empty()) {
    auto t = ParseTimestamp(f.calibration_end);
    if (!t.ok()) return Fail(Status::InvalidArgument(t.status().message(), "calibration-end"));
    o.calibration_end = *t;
  }
  if (!f.holdout_end.empty()) {
    auto t = ParseTimestamp(f.holdout_end);
    if (!t.ok()) return Fail(Status::InvalidArgument(t.status().message(), "holdout-end"));
    o.holdout_end = *t;
  }
  if (f.time_unit == "weeks") {
    o.time_unit_seconds = 7 * 86400;
  } else if (f.time_unit == "days") {
    o.time_unit_seconds = 86400;
  } else {
    return Fail(Status::InvalidArgument("--time-unit must be weeks or days", "time-unit"));
  }
  if (Status s = o.Validate(); !s.ok()) return Fail(s);

  StoreOptions store_options;
  store_options.create_if_missing = false;
  store_options.read_only = true;
  auto store = Store::Open(f.db, store_options);
  if (!store.ok()) return Fail(store.status());
  auto shop = ComputeShopInsights(**store, o);
  if (!shop.ok()) return Fail(shop.status());

  if (!f.customer.empty()) {
    auto id = (*store)->FindCustomer(f.customer);
    if (!id.ok()) return Fail(id.status());
    auto c = ComputeCustomerInsight(**store, shop->model, *id);
    if (!c.ok()) return Fail(c.status());
    std::printf("%s\n", Dump(CustomerInsightJson(*c)).c_str());
    return 0;
  }

  nlohmann::json customers = nlohmann::json::array();
  if (!f.customers_out.empty()) {
    std::ofstream out(f.customers_out);
    for (const auto& c : shop->customers) out << Dump(CustomerInsightJson(c), -1) << '\n';
    if (!out) return Fail(Status::IOError("cannot write " + f.customers_out));
    customers = f.customers_out;
  } else if (f.json) {
    for (const auto& c : shop->customers) customers.push_back(CustomerInsightJson(c));
  }
  if (f.json) {
    std::printf("%s\n", Dump(ShopJson(*shop, f, std::move(customers))).c_str());
  } else {
    PrintText(*shop);
  }
  return 0;
}

}  // namespace

Command RegisterInsights(CLI::App& app) {
  auto f = std::make_shared<InsightsFlags>();
  CLI::App* sub = app.add_subcommand(
      "insights",
      "Customer insights: RFM, BG/NBD P(alive) and expected purchases, Gamma-Gamma order value,\n"
      "CLV, loyalty stages, core customers (80/20) and churn reasons (docs/insights.md).");
  sub->add_option("--db", f->db, "Store directory")->required();
  sub->add_option("--calibration-end,--as-of", f->calibration_end,
                  "Fit on events up to and including this instant and report as of it; a date "
                  "means its 00:00 UTC (default: the last event)");
  sub->add_option("--holdout-end", f->holdout_end,
                  "Validate predictions on (calibration-end, holdout-end]");
  sub->add_option("--time-unit", f->time_unit, "weeks | days (BG/NBD time unit)")
      ->capture_default_str();
  sub->add_option("--horizon-days", f->options.horizon_days,
                  "Horizon of CLV and expected purchases")
      ->capture_default_str();
  sub->add_option("--discount-rate", f->options.annual_discount_rate, "Annual discount rate of CLV")
      ->capture_default_str();
  sub->add_option("--core-share", f->options.core_value_share,
                  "Share of value that defines the core customers")
      ->capture_default_str();
  sub->add_option("--customer", f->customer, "Print one customer's insights (JSON)");
  sub->add_option("--customers-out", f->customers_out,
                  "Write per-customer rows as JSON Lines to this file (the JSON then names it)");
  sub->add_option("--top", f->top, "Length of the top-CLV and at-risk lists")
      ->capture_default_str();
  sub->add_flag("--json", f->json, "Print JSON (with per-customer rows unless --customers-out)");
  return [f] { return Run(*f); };
}

}  // namespace affinity::cli

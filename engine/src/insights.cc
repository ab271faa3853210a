#include "affinity/insights.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "affinity/models/rfm.h"
#include "affinity/time_util.h"

namespace affinity {
namespace {

constexpr double kDay = 86400.0;

// One purchase day of a customer: its value and its spend by top-level category.
struct PurchaseDay {
  int64_t day = 0;
  double value = 0;
  std::vector<std::pair<int32_t, double>> by_category;
};

// What a customer's history says, before any model: the input to scoring.
struct CustomerFacts {
  uint32_t id = 0;
  std::vector<PurchaseDay> days;  // purchase days up to as_of, oldest first
  UnixSeconds first_purchase = 0;
  UnixSeconds last_purchase = 0;
  double monetary = 0;       // purchases minus returns up to as_of
  int64_t holdout_days = 0;  // purchase days in (as_of, holdout_end]
};

// Accumulates one customer's events (in time order) into CustomerFacts.
class FactsBuilder {
 public:
  FactsBuilder(const InsightsModel& model, UnixSeconds as_of,
               std::optional<UnixSeconds> holdout_end)
      : model_(model), as_of_(as_of), holdout_end_(holdout_end) {}

  void Reset(uint32_t id) {
    facts_ = CustomerFacts{};
    facts_.id = id;
    last_holdout_day_ = INT64_MIN;
  }

  void Add(const Event& e) {
    const double value = e.quantity * e.unit_price;
    const int64_t day = static_cast<int64_t>(std::floor(static_cast<double>(e.time) / kDay));
    if (e.time > as_of_) {
      if (holdout_end_ && e.time <= *holdout_end_ && e.type == EventType::kPurchase &&
          day != last_holdout_day_) {
        ++facts_.holdout_days;
        last_holdout_day_ = day;
      }
      return;
    }
    if (e.type == EventType::kReturn) facts_.monetary -= value;
    if (e.type != EventType::kPurchase) return;
    facts_.monetary += value;
    if (facts_.days.empty()) facts_.first_purchase = e.time;
    facts_.last_purchase = e.time;
    if (facts_.days.empty() || facts_.days.back().day != day) facts_.days.push_back({day, 0, {}});
    PurchaseDay& d = facts_.days.back();
    d.value += value;
    int32_t category = e.product.value < model_.product_category.size()
                           ? model_.product_category[e.product.value]
                           : -1;
    if (category >= 0) {
      auto it = std::find_if(d.by_category.begin(), d.by_category.end(),
                             [&](const auto& c) { return c.first == category; });
      if (it == d.by_category.end()) {
        d.by_category.emplace_back(category, value);
      } else {
        it->second += value;
      }
    }
  }

  const CustomerFacts& facts() const { return facts_; }

 private:
  const InsightsModel& model_;
  UnixSeconds as_of_;
  std::optional<UnixSeconds> holdout_end_;
  CustomerFacts facts_;
  int64_t last_holdout_day_ = INT64_MIN;
};

RepeatSummary SummaryOf(const CustomerFacts& f, UnixSeconds as_of, double unit) {
  return {static_cast<double>(f.days.size()) - 1,
          static_cast<double>(f.last_purchase - f.first_purchase) / unit,
          static_cast<double>(as_of - f.first_purchase) / unit};
}

double MeanRepeatValue(const CustomerFacts& f) {
  if (f.days.size() < 2) return 0;
  double total = 0;
  for (size_t i = 1; i < f.days.size(); ++i) total += f.days[i].value;
  return total / static_cast<double>(f.days.size() - 1);
}

// Mean gap between purchase days, in days (0 for one-time buyers).
double MeanGapDays(const CustomerFacts& f) {
  if (f.days.size() < 2) return 0;
  return static_cast<double>(f.last_purchase - f.first_purchase) / kDay /
         static_cast<double>(f.days.size() - 1);
}

// Score 1..5 of `value` within the sorted population (same rule as QuintileScores).
int Quintile(const std::vector<double>& sorted, double value, bool higher_is_better) {
  if (sorted.empty()) return 3;
  size_t k = higher_is_better
                 ? std::lower_bound(sorted.begin(), sorted.end(), value) - sorted.begin()
                 : sorted.end() - std::upper_bound(sorted.begin(), sorted.end(), value);
  // A value beyond the population (scored after the fit) still gets at most 5.
  return 1 + static_cast<int>(5 * std::min(k, sorted.size() - 1) / sorted.size());
}

std::string Fixed(double v, int digits = 0) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// Falling spend and category drift compare the last third of the purchase days with the rest.
void SpendAndDriftReasons(const CustomerFacts& f, const InsightsModel& m,
                          std::vector<ChurnReason>* reasons) {
  const size_t n = f.days.size();
  if (n < 3) return;
  const size_t recent = (n + 2) / 3;
  double earlier_total = 0, recent_total = 0;
  std::unordered_map<int32_t, double> earlier_cat, recent_cat;
  for (size_t i = 0; i < n; ++i) {
    bool is_recent = i >= n - recent;
    (is_recent ? recent_total : earlier_total) += f.days[i].value;
    for (const auto& [c, v] : f.days[i].by_category) (is_recent ? recent_cat : earlier_cat)[c] += v;
  }
  double earlier_avg = earlier_total / static_cast<double>(n - recent);
  double recent_avg = recent_total / static_cast<double>(recent);
  if (earlier_avg > 0 && recent_avg < m.options.falling_spend_ratio * earlier_avg) {
    reasons->push_back({"falling_spend",
                        {{"recent_order_value", recent_avg},
                         {"earlier_order_value", earlier_avg},
                         {"ratio", recent_avg / earlier_avg}},
                        "average order fell from " + Fixed(earlier_avg, 2) + " to " +
                            Fixed(recent_avg, 2) + " over the last " + std::to_string(recent) +
                            " purchase days"});
  }
  if (earlier_cat.empty() || recent_cat.empty()) return;
  double dot = 0, ne = 0, nr = 0;
  for (const auto& [c, v] : earlier_cat) {
    ne += v * v;
    if (auto it = recent_cat.find(c); it != recent_cat.end()) dot += v * it->second;
  }
  for (const auto& [c, v] : recent_cat) nr += v * v;
  if (ne <= 0 || nr <= 0) return;
  double similarity = dot / std::sqrt(ne * nr);
  if (similarity >= m.options.category_drift_similarity) return;
  auto top = [](const std::unordered_map<int32_t, double>& spend) {
    return std::max_element(spend.begin(), spend.end(),
                            [](const auto& a, const auto& b) { return a.second < b.second; })
        ->first;
  };
  int32_t was = top(earlier_cat), now = top(recent_cat);
  reasons->push_back({"category_drift",
                      {{"similarity", similarity}},
                      "spend moved from " + m.category_names[was] + " to " + m.category_names[now] +
                          " (similarity " + Fixed(similarity, 2) +
                          " of recent to earlier spend by category)"});
}

// Scores one customer: the model-based figures, RFM, stage, core flag and reasons.
CustomerInsight Score(const CustomerFacts& f, const InsightsModel& m, UnixSeconds as_of) {
  const InsightsOptions& o = m.options;
  const double unit = static_cast<double>(o.time_unit_seconds);
  CustomerInsight c;
  c.customer = CustomerId{f.id};
  c.first_purchase = f.first_purchase;
  c.last_purchase = f.last_purchase;
  c.purchase_days = static_cast<int64_t>(f.days.size());
  c.summary = SummaryOf(f, as_of, unit);
  c.recency_days = static_cast<double>(as_of - f.last_purchase) / kDay;
  c.monetary = f.monetary;
  c.r_score = Quintile(m.recency_sorted, c.recency_days, false);
  c.f_score = Quintile(m.frequency_sorted, static_cast<double>(c.purchase_days), true);
  c.m_score = Quintile(m.monetary_sorted, c.monetary, true);

  const double horizon = o.horizon_days * kDay / unit;
  c.p_alive = BgNbdProbabilityAlive(m.bgnbd, c.summary);
  c.expected_purchases = BgNbdExpectedPurchases(m.bgnbd, c.summary, horizon);
  const double mean_value = MeanRepeatValue(f);
  if (m.gamma_gamma_fitted && (c.summary.x == 0 || mean_value > 0)) {
    c.expected_order_value = GammaGammaExpectedValue(m.gamma_gamma, c.summary.x, mean_value);
  } else {
    c.expected_order_value = c.purchase_days > 0 ? std::max(0.0, f.monetary) / c.purchase_days : 0;
  }
  const double step = 30.4375 * kDay / unit;  // a month
  ClvOptions clv{.horizon = horizon,
                 .step = step,
                 .discount_per_step = std::pow(1 + o.annual_discount_rate, 30.4375 / 365.25) - 1};
  c.clv = CustomerLifetimeValue(m.bgnbd, c.summary, c.expected_order_value, clv);
  c.core = c.monetary > 0 && c.monetary >= m.core_threshold;

  // Stage (docs/insights.md).
  const double gap = c.recency_days;
  const double age = static_cast<double>(as_of - f.first_purchase) / kDay;
  const double own_gap = MeanGapDays(f);
  if (c.summary.x == 0) {
    if (age <= o.new_customer_days) {
      c.stage = LoyaltyStage::kNew;
    } else if (gap >
               std::max(2 * o.new_customer_days, o.one_time_lapsed_ratio * m.median_gap_days)) {
      c.stage = LoyaltyStage::kLapsed;
    } else {
      c.stage = LoyaltyStage::kAtRisk;
    }
  } else if (c.p_alive < o.lapsed_p_alive) {
    c.stage = LoyaltyStage::kLapsed;
  } else if (c.p_alive < o.at_risk_p_alive || gap > o.at_risk_gap_ratio * own_gap) {
    c.stage = LoyaltyStage::kAtRisk;
  } else if (c.purchase_days >= o.loyal_min_purchase_days) {
    c.stage = LoyaltyStage::kLoyal;
  } else {
    c.stage = LoyaltyStage::kRepeat;
  }

  if (c.stage == LoyaltyStage::kAtRisk || c.stage == LoyaltyStage::kLapsed) {
    const double usual = c.summary.x > 0 ? own_gap : m.median_gap_days;
    if (usual > 0 && gap > o.at_risk_gap_ratio * usual) {
      c.reasons.push_back({"recency_gap",
                           {{"gap_days", gap}, {"usual_gap_days", usual}, {"ratio", gap / usual}},
                           Fixed(gap) + " days since the last purchase, against " +
                               (c.summary.x > 0 ? "their usual " : "the shop's typical ") +
                               Fixed(usual) + " days between purchases"});
    }
    if (c.summary.x > 0 && c.p_alive < o.at_risk_p_alive) {
      c.reasons.push_back({"low_p_alive",
                           {{"p_alive", c.p_alive}},
                           "the BG/NBD model gives a " + Fixed(100 * c.p_alive) +
                               "% chance that they still buy here"});
    }
    SpendAndDriftReasons(f, m, &c.reasons);
  }
  return c;
}

double Correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  if (a.size() < 2) return 0;
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / n;
  double mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

Status LoadCategories(const Store& store, InsightsModel* m) {
  m->product_category.assign(store.product_id_limit(), -1);
  std::unordered_map<std::string, int32_t> index;
  return store.ScanProducts([&](ProductId id, const ProductAttributes& a) {
    if (a.category && !a.category->empty() && id.value < m->product_category.size()) {
      auto [it, inserted] =
          index.try_emplace(a.category->front(), static_cast<int32_t>(m->category_names.size()));
      if (inserted) m->category_names.push_back(a.category->front());
      m->product_category[id.value] = it->second;
    }
    return true;
  });
}

}  // namespace

std::string_view LoyaltyStageName(LoyaltyStage stage) {
  switch (stage) {
    case LoyaltyStage::kNew:
      return "new";
    case LoyaltyStage::kRepeat:
      return "repeat";
    case LoyaltyStage::kLoyal:
      return "loyal";
    case LoyaltyStage::kAtRisk:
      return "at_risk";
    case LoyaltyStage::kLapsed:
      return "lapsed";
  }
  return "unknown";
}

Status InsightsOptions::Validate() const {
  auto bad = [](const char* field, const char* why) {
    return Status::InvalidArgument(std::string(field) + " " + why, field);
  };
  if (time_unit_seconds <= 0) return bad("time_unit_seconds", "must be > 0");
  if (!(horizon_days > 0)) return bad("horizon_days", "must be > 0");
  if (!(annual_discount_rate >= 0)) return bad("annual_discount_rate", "must be >= 0");
  if (!(core_value_share > 0 && core_value_share <= 1)) {
    return bad("core_value_share", "must be in (0, 1]");
  }
  if (!(new_customer_days >= 0)) return bad("new_customer_days", "must be >= 0");
  if (!(lapsed_p_alive >= 0 && lapsed_p_alive <= at_risk_p_alive && at_risk_p_alive <= 1)) {
    return bad("at_risk_p_alive", "and lapsed_p_alive need 0 <= lapsed <= at_risk <= 1");
  }
  if (!(at_risk_gap_ratio > 0)) return bad("at_risk_gap_ratio", "must be > 0");
  if (!(one_time_lapsed_ratio > 0)) return bad("one_time_lapsed_ratio", "must be > 0");
  if (loyal_min_purchase_days < 2) return bad("loyal_min_purchase_days", "must be >= 2");
  if (holdout_end && (!calibration_end || *holdout_end <= *calibration_end)) {
    return bad("holdout_end", "needs a calibration_end before it");
  }
  return Status::Ok();
}

Result<ShopInsights> ComputeShopInsights(const Store& store, const InsightsOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  const auto start = std::chrono::steady_clock::now();
  ShopInsights out;
  InsightsModel& m = out.model;
  m.options = options;
  if (options.calibration_end) {
    m.calibration_end = *options.calibration_end;
  } else {
    AFFINITY_ASSIGN_OR_RETURN(StoreStats stats, store.ComputeStats());
    if (!stats.last_event) return Status::InvalidArgument("the store has no events", "db");
    m.calibration_end = *stats.last_event;
  }
  AFFINITY_RETURN_IF_ERROR(LoadCategories(store, &m));

  // One streaming pass: facts per customer (events arrive grouped by customer, oldest first).
  std::vector<CustomerFacts> facts;
  FactsBuilder builder(m, m.calibration_end, options.holdout_end);
  std::optional<uint32_t> current;
  auto finish = [&] {
    if (current && !builder.facts().days.empty()) facts.push_back(builder.facts());
  };
  AFFINITY_RETURN_IF_ERROR(store.ScanEvents([&](const Event& e) {
    if (current != e.customer.value) {
      finish();
      current = e.customer.value;
      builder.Reset(e.customer.value);
    }
    builder.Add(e);
    return true;
  }));
  finish();
  if (facts.empty()) {
    return Status::InvalidArgument("no customer bought anything by the calibration end",
                                   "calibration_end");
  }

  // Fit BG/NBD on every buyer and Gamma-Gamma on repeat buyers with positive repeat spend.
  const double unit = static_cast<double>(options.time_unit_seconds);
  std::vector<RepeatSummary> summaries;
  std::vector<SpendSummary> spend;
  std::vector<double> gaps;
  for (const auto& f : facts) {
    summaries.push_back(SummaryOf(f, m.calibration_end, unit));
    double mean = MeanRepeatValue(f);
    if (f.days.size() >= 2) {
      gaps.push_back(MeanGapDays(f));
      if (mean > 0) spend.push_back({static_cast<double>(f.days.size() - 1), mean});
    }
    m.recency_sorted.push_back(static_cast<double>(m.calibration_end - f.last_purchase) / kDay);
    m.frequency_sorted.push_back(static_cast<double>(f.days.size()));
    m.monetary_sorted.push_back(f.monetary);
  }
  AFFINITY_ASSIGN_OR_RETURN(BgNbdFit bg, FitBgNbd(summaries));
  m.bgnbd = bg.params;
  m.bgnbd_log_likelihood = bg.log_likelihood;
  if (!spend.empty()) {
    auto gg = FitGammaGamma(spend);
    if (gg.ok() && gg->params.q > 1) {
      m.gamma_gamma = gg->params;
      m.gamma_gamma_fitted = true;
    }
  }
  if (!gaps.empty()) {
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    m.median_gap_days = gaps[gaps.size() / 2];
  }
  std::sort(m.recency_sorted.begin(), m.recency_sorted.end());
  std::sort(m.frequency_sorted.begin(), m.frequency_sorted.end());
  std::sort(m.monetary_sorted.begin(), m.monetary_sorted.end());

  // Core customers: the smallest set of top customers by value carrying core_value_share of it.
  std::vector<double> values;
  for (const auto& f : facts) values.push_back(std::max(0.0, f.monetary));
  std::sort(values.rbegin(), values.rend());
  const double total = std::accumulate(values.begin(), values.end(), 0.0);
  double cumulative = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    cumulative += values[i];
    if (total > 0 && cumulative >= options.core_value_share * total) {
      m.core_threshold = values[i];
      out.core_count = static_cast<int64_t>(i + 1);
      out.core_share_of_value = cumulative / total;
      break;
    }
  }
  const double n = static_cast<double>(values.size());
  out.core_share_of_customers = static_cast<double>(out.core_count) / n;
  for (double share : {0.01, 0.05, 0.10, 0.20, 0.50, 0.80}) {
    auto k = static_cast<size_t>(std::ceil(share * n));
    double v = std::accumulate(values.begin(), values.begin() + std::min(k, values.size()), 0.0);
    out.pareto.push_back({share, total > 0 ? v / total : 0});
  }

  for (const auto& f : facts) {
    CustomerInsight c = Score(f, m, m.calibration_end);
    AFFINITY_ASSIGN_OR_RETURN(c.external_id, store.CustomerExternalId(c.customer));
    if (options.holdout_end) c.holdout_purchase_days = f.holdout_days;
    ++out.stages[std::string(LoyaltyStageName(c.stage))];
    out.customers.push_back(std::move(c));
  }
  // Flag exactly the core set: the top core_count customers by value, ties broken by id (the
  // threshold alone would flag every customer tied with the last one in).
  {
    std::vector<size_t> order(out.customers.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return out.customers[a].monetary > out.customers[b].monetary;
    });
    for (size_t i = 0; i < order.size(); ++i) {
      out.customers[order[i]].core = static_cast<int64_t>(i) < out.core_count;
    }
  }

  if (options.holdout_end) {
    HoldoutReport h;
    h.period_units = static_cast<double>(*options.holdout_end - m.calibration_end) / unit;
    std::vector<double> actual, model, naive;
    std::vector<HoldoutBin> bins(5);
    for (int b = 0; b < 5; ++b) bins[b] = {0.2 * b, 0.2 * (b + 1), 0, 0, 0};
    for (const auto& c : out.customers) {
      double a = static_cast<double>(*c.holdout_purchase_days);
      double p = BgNbdExpectedPurchases(m.bgnbd, c.summary, h.period_units);
      double q = c.summary.T > 0 ? c.summary.x / c.summary.T * h.period_units : 0;
      actual.push_back(a);
      model.push_back(p);
      naive.push_back(q);
      HoldoutBin& bin = bins[std::min(4, static_cast<int>(c.p_alive * 5))];
      ++bin.customers;
      bin.mean_p_alive += c.p_alive;
      bin.share_bought += a > 0 ? 1 : 0;
      auto& stage = h.bought_by_stage[std::string(LoyaltyStageName(c.stage))];
      ++stage.first;
      stage.second += a > 0 ? 1 : 0;
      if (c.summary.x > 0 && c.p_alive < options.lapsed_p_alive) {
        ++h.predicted_dead;
        h.predicted_dead_bought += a > 0 ? 1 : 0;
      }
    }
    for (auto& bin : bins) {
      if (bin.customers == 0) continue;
      bin.mean_p_alive /= static_cast<double>(bin.customers);
      bin.share_bought /= static_cast<double>(bin.customers);
    }
    h.p_alive_bins = bins;
    for (auto& [stage, counts] : h.bought_by_stage) {
      counts.second /= static_cast<double>(counts.first);
    }
    h.customers = static_cast<int64_t>(actual.size());
    for (size_t i = 0; i < actual.size(); ++i) {
      h.actual_total += actual[i];
      h.predicted_total += model[i];
      h.naive_total += naive[i];
      h.mae_model += std::abs(model[i] - actual[i]);
      h.mae_naive += std::abs(naive[i] - actual[i]);
      h.rmse_model += (model[i] - actual[i]) * (model[i] - actual[i]);
      h.rmse_naive += (naive[i] - actual[i]) * (naive[i] - actual[i]);
    }
    const double count = static_cast<double>(actual.size());
    h.mae_model /= count;
    h.mae_naive /= count;
    h.rmse_model = std::sqrt(h.rmse_model / count);
    h.rmse_naive = std::sqrt(h.rmse_naive / count);
    h.correlation_model = Correlation(model, actual);
    h.correlation_naive = Correlation(naive, actual);
    out.holdout = h;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

nlohmann::json CustomerInsightJson(const CustomerInsight& c) {
  nlohmann::json reasons = nlohmann::json::array();
  for (const auto& r : c.reasons) {
    reasons.push_back({{"code", r.code}, {"figures", r.figures}, {"detail", r.detail}});
  }
  nlohmann::json j = {
      {"customer", c.external_id},
      {"first_purchase", FormatTimestamp(c.first_purchase)},
      {"last_purchase", FormatTimestamp(c.last_purchase)},
      {"purchase_days", c.purchase_days},
      {"x", c.summary.x},
      {"t_x", c.summary.t_x},
      {"T", c.summary.T},
      {"recency_days", c.recency_days},
      {"monetary", c.monetary},
      {"rfm", {{"r", c.r_score}, {"f", c.f_score}, {"m", c.m_score}}},
      {"p_alive", c.p_alive},
      {"expected_purchases", c.expected_purchases},
      {"expected_order_value", c.expected_order_value},
      {"clv", c.clv},
      {"stage", LoyaltyStageName(c.stage)},
      {"core", c.core},
      {"reasons", reasons},
  };
  if (c.holdout_purchase_days) j["holdout_purchase_days"] = *c.holdout_purchase_days;
  return j;
}

Result<CustomerInsight> ComputeCustomerInsight(const Store& store, const InsightsModel& model,
                                               CustomerId customer,
                                               std::optional<UnixSeconds> as_of) {
  const UnixSeconds at = as_of.value_or(model.calibration_end);
  AFFINITY_ASSIGN_OR_RETURN(std::string external, store.CustomerExternalId(customer));
  AFFINITY_ASSIGN_OR_RETURN(std::vector<Event> history, store.CustomerHistory(customer));
  FactsBuilder builder(model, at, std::nullopt);
  builder.Reset(customer.value);
  for (const auto& e : history) builder.Add(e);
  if (builder.facts().days.empty()) {
    return Status::NotFound("customer '" + external + "' has no purchase by " +
                            FormatTimestamp(at));
  }
  CustomerInsight c = Score(builder.facts(), model, at);
  c.external_id = std::move(external);
  return c;
}

}  // namespace affinity

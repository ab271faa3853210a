// Customer insights: RFM scores, BG/NBD P(alive) and expected purchases, Gamma-Gamma expected
// order value, CLV, loyalty stage, core-customer flag and churn reasons, per customer and for the
// whole shop. The rules are documented in docs/insights.md.
//
// A full run (ComputeShopInsights) scans the store once, fits the models and scores every
// customer. The fitted InsightsModel then scores one customer from their history alone
// (ComputeCustomerInsight: one prefix scan and O(log n) work), which is how insights are kept
// fresh as events arrive between full runs.
//
// Thread safety: functions are reentrant; an InsightsModel is immutable after it is built and
// may be shared across threads.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "affinity/models/bgnbd.h"
#include "affinity/models/gamma_gamma.h"
#include "affinity/status.h"
#include "affinity/store.h"

namespace affinity {

struct InsightsOptions {
  // End of the calibration period (inclusive): events after it are ignored, and every figure is
  // "as of" this time. Default: the time of the last event in the store.
  std::optional<UnixSeconds> calibration_end;
  // If set, also validate on the holdout period (calibration_end, holdout_end]: compare each
  // customer's predicted purchases with the actual ones. Requires holdout_end > calibration_end.
  std::optional<UnixSeconds> holdout_end;
  // The BG/NBD time unit in seconds: a week (default, as in the papers) or a day.
  int64_t time_unit_seconds = 7 * 86400;
  // Horizon of expected purchases and CLV, in days. Default 365.
  double horizon_days = 365;
  // Annual discount rate for CLV. Default 0.10.
  double annual_discount_rate = 0.10;
  // Share of total value that defines the core customers (the smallest set carrying it).
  // Default 0.8 (the 80/20 rule).
  double core_value_share = 0.8;
  // Stage rules (docs/insights.md). A one-time buyer is "new" for this many days. Default 90.
  double new_customer_days = 90;
  // A repeat customer is at risk when P(alive) < at_risk_p_alive (default 0.5) or the current gap
  // exceeds at_risk_gap_ratio (default 2) times their own mean gap between purchase days.
  double at_risk_p_alive = 0.5;
  double at_risk_gap_ratio = 2.0;
  // A repeat customer is lapsed when P(alive) < lapsed_p_alive. Default 0.2.
  double lapsed_p_alive = 0.2;
  // A one-time buyer past new_customer_days is at risk, and lapsed once their silence exceeds
  // both 2 · new_customer_days and this many times the shop's median gap between purchase days.
  // Default 3.
  double one_time_lapsed_ratio = 3.0;
  // A repeat customer with at least this many purchase days is loyal. Default 4.
  int loyal_min_purchase_days = 4;
  // Churn reasons: spend is "falling" when recent orders average below this share of earlier
  // ones (default 0.7); categories "drift" when the cosine similarity of recent to earlier
  // spend by top-level category is below this (default 0.5).
  double falling_spend_ratio = 0.7;
  double category_drift_similarity = 0.5;

  // InvalidArgument naming the field for a non-positive unit or horizon, a negative discount
  // rate, shares or ratios out of range, or holdout_end <= calibration_end.
  Status Validate() const;
};

enum class LoyaltyStage { kNew, kRepeat, kLoyal, kAtRisk, kLapsed };
// "new", "repeat", "loyal", "at_risk", "lapsed".
std::string_view LoyaltyStageName(LoyaltyStage stage);

// Why a customer is slipping away, with the figures behind it.
struct ChurnReason {
  std::string code;  // "recency_gap", "low_p_alive", "falling_spend", "category_drift"
  std::map<std::string, double> figures;  // e.g. {"gap_days": 120, "usual_gap_days": 31}
  std::string detail;                     // one sentence for people
};

struct CustomerInsight {
  CustomerId customer;
  std::string external_id;
  UnixSeconds first_purchase = 0;
  UnixSeconds last_purchase = 0;
  int64_t purchase_days = 0;                  // distinct days with a purchase (frequency)
  RepeatSummary summary;                      // BG/NBD x, t_x, T in the time unit
  double recency_days = 0;                    // calibration_end - last purchase
  double monetary = 0;                        // net spend: purchases minus returns
  int r_score = 0, f_score = 0, m_score = 0;  // quintiles 1..5 (5 = best)
  double p_alive = 0;
  double expected_purchases = 0;  // over the horizon
  double expected_order_value = 0;
  double clv = 0;
  LoyaltyStage stage = LoyaltyStage::kNew;
  bool core = false;
  std::vector<ChurnReason> reasons;              // for at-risk and lapsed customers
  std::optional<int64_t> holdout_purchase_days;  // with a holdout period
};

// The fitted models and population statistics needed to score one customer.
struct InsightsModel {
  InsightsOptions options;
  UnixSeconds calibration_end = 0;
  BgNbdParams bgnbd;
  double bgnbd_log_likelihood = 0;
  bool gamma_gamma_fitted = false;
  GammaGammaParams gamma_gamma;
  double median_gap_days = 0;  // shop-wide median of customers' mean gap between purchase days
  // Value of the last customer in the core set. The full run flags exactly the core set (ties
  // broken by id); scoring one customer flags them core at or above this value.
  double core_threshold = 0;
  // Sorted population values for RFM quintiles.
  std::vector<double> recency_sorted, frequency_sorted, monetary_sorted;
  // Top-level category of each product id (index into category_names, -1 if none).
  std::vector<int32_t> product_category;
  std::vector<std::string> category_names;
};

struct ParetoPoint {
  double customer_share = 0;  // top share of customers by value ...
  double value_share = 0;     // ... and the share of value they carry
};

struct HoldoutBin {
  double p_alive_low = 0, p_alive_high = 0;
  int64_t customers = 0;
  double mean_p_alive = 0;
  double share_bought = 0;  // share of these customers with a purchase in the holdout
};

struct HoldoutReport {
  double period_units = 0;     // holdout length in time units
  int64_t customers = 0;       // customers with a first purchase by calibration_end
  double actual_total = 0;     // purchase days in the holdout, all customers
  double predicted_total = 0;  // BG/NBD
  double naive_total = 0;      // "same rate as before": x / T · period
  double mae_model = 0, mae_naive = 0;
  double rmse_model = 0, rmse_naive = 0;
  double correlation_model = 0, correlation_naive = 0;
  std::vector<HoldoutBin> p_alive_bins;  // calibration of P(alive), 5 bins
  int64_t predicted_dead = 0;            // P(alive) < lapsed_p_alive
  int64_t predicted_dead_bought = 0;     // ... who bought in the holdout anyway
  // Stage at the calibration end -> (customers, share who bought in the holdout): whether the
  // stages separate those who come back from those who do not.
  std::map<std::string, std::pair<int64_t, double>> bought_by_stage;
};

struct ShopInsights {
  InsightsModel model;
  std::vector<CustomerInsight> customers;  // by internal id
  std::map<std::string, int64_t> stages;   // stage name -> count
  int64_t core_count = 0;
  double core_share_of_customers = 0;
  double core_share_of_value = 0;
  std::vector<ParetoPoint> pareto;  // at 1, 5, 10, 20, 50, 80 % of customers
  std::optional<HoldoutReport> holdout;
  double seconds = 0;
};

// Scans the store, fits BG/NBD and Gamma-Gamma, scores every customer who bought by
// calibration_end. InvalidArgument for bad options or a store with no purchase by then; the
// fit's InvalidArgument if no customer has a repeat purchase; the store's IOError/Corruption.
// If Gamma-Gamma cannot be fitted (no repeat spend), expected order value falls back to the
// customer's own mean and gamma_gamma_fitted is false.
Result<ShopInsights> ComputeShopInsights(const Store& store, const InsightsOptions& options);

// One customer's insight as a JSON object (the CLI's and the API's rendering; field names in
// docs/insights.md). Cannot fail.
nlohmann::json CustomerInsightJson(const CustomerInsight& c);

// Scores one customer with a fitted model, from their stored history, as of `as_of` (default:
// the model's calibration_end; a later time, such as now, counts the events since). NotFound if
// the customer is unknown or has no purchase by then; the store's IOError/Corruption.
Result<CustomerInsight> ComputeCustomerInsight(const Store& store, const InsightsModel& model,
                                               CustomerId customer,
                                               std::optional<UnixSeconds> as_of = std::nullopt);

}  // namespace affinity

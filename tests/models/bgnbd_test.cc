#include "affinity/models/bgnbd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "affinity/models/gamma_gamma.h"
#include "affinity/models/rfm.h"

namespace affinity {
namespace {

// ---- CDNOW: the published parameters (see ../shared/data/cdnow/PROVENANCE.txt) ----

struct CdnowCustomer {
  RepeatSummary summary;
  double mean_repeat_value = 0;  // mean value of repeat purchase days
};

int64_t DayNumber(int yyyymmdd) {
  int y = yyyymmdd / 10000, m = yyyymmdd / 100 % 100, d = yyyymmdd % 100;
  // days_from_civil
  y -= m <= 2;
  int era = y / 400;
  int yoe = y - era * 400;
  int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097LL + doe - 719468;
}

// Calibration 1997-01-01 .. 1997-09-30, weeks, several transactions on one day count as one.
std::vector<CdnowCustomer> LoadCdnow(bool* found) {
  std::ifstream in(std::string(AFFINITY_SHARED_DATA_DIR) + "/cdnow/CDNOW_sample.txt");
  *found = static_cast<bool>(in);
  std::map<std::string, std::map<int64_t, double>> days;  // customer -> day -> value
  std::string line;
  const int64_t end = DayNumber(19970930);
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string customer, sample_id;
    int date = 0, cds = 0;
    double value = 0;
    row >> customer >> sample_id >> date >> cds >> value;
    if (DayNumber(date) <= end) days[customer][DayNumber(date)] += value;
  }
  std::vector<CdnowCustomer> out;
  for (const auto& [customer, by_day] : days) {
    CdnowCustomer c;
    int64_t first = by_day.begin()->first, last = by_day.rbegin()->first;
    c.summary = {static_cast<double>(by_day.size() - 1), (last - first) / 7.0, (end - first) / 7.0};
    double repeat_total = 0;
    for (auto it = std::next(by_day.begin()); it != by_day.end(); ++it) repeat_total += it->second;
    if (c.summary.x > 0) c.mean_repeat_value = repeat_total / c.summary.x;
    out.push_back(c);
  }
  return out;
}

TEST(BgNbd, ReproducesThePublishedCdnowParameters) {
  bool found = false;
  auto customers = LoadCdnow(&found);
  if (!found) GTEST_SKIP() << "../shared/data/cdnow is not beside this checkout";
  ASSERT_EQ(customers.size(), 2357u);
  std::vector<RepeatSummary> summaries;
  for (const auto& c : customers) summaries.push_back(c.summary);
  auto fit = FitBgNbd(summaries);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  // Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; each within 1%.
  EXPECT_NEAR(fit->params.r, 0.243, 0.01 * 0.243);
  EXPECT_NEAR(fit->params.alpha, 4.414, 0.01 * 4.414);
  EXPECT_NEAR(fit->params.a, 0.793, 0.01 * 0.793);
  EXPECT_NEAR(fit->params.b, 2.426, 0.01 * 2.426);
  std::printf("CDNOW BG/NBD: r=%.4f alpha=%.4f a=%.4f b=%.4f LL=%.2f\n", fit->params.r,
              fit->params.alpha, fit->params.a, fit->params.b, fit->log_likelihood);
  // The paper's log-likelihood at the optimum is -9582.4.
  EXPECT_NEAR(fit->log_likelihood, -9582.4, 0.5);
}

TEST(GammaGamma, ReproducesThePublishedCdnowParameters) {
  bool found = false;
  auto customers = LoadCdnow(&found);
  if (!found) GTEST_SKIP() << "../shared/data/cdnow is not beside this checkout";
  std::vector<SpendSummary> spend;
  for (const auto& c : customers) {
    if (c.summary.x >= 1) spend.push_back({c.summary.x, c.mean_repeat_value});
  }
  auto fit = FitGammaGamma(spend);
  ASSERT_TRUE(fit.ok()) << fit.status().ToString();
  std::printf("CDNOW Gamma-Gamma (%zu customers): p=%.4f q=%.4f gamma=%.4f\n", spend.size(),
              fit->params.p, fit->params.q, fit->params.gamma);
  // Fader, Hardie & Lee (2005b): p = 6.25, q = 3.74, gamma = 15.44; each within 1%.
  EXPECT_NEAR(fit->params.p, 6.25, 0.01 * 6.25) << spend.size();
  EXPECT_NEAR(fit->params.q, 3.74, 0.01 * 3.74);
  EXPECT_NEAR(fit->params.gamma, 15.44, 0.01 * 15.44);
}

// ---- Planted answers: customers simulated from the model itself ----

struct Simulated {
  RepeatSummary calibration;
  double future_purchases = 0;  // in (T, T + horizon]
  bool alive_at_T = false;
};

double Gamma(std::mt19937_64& rng, double shape, double scale) {
  return std::gamma_distribution<double>(shape, scale)(rng);
}

double Beta(std::mt19937_64& rng, double a, double b) {
  double x = Gamma(rng, a, 1), y = Gamma(rng, b, 1);
  return x / (x + y);
}

// Each customer: λ ~ Gamma(r, 1/α), p ~ Beta(a, b); first purchase at a uniform time in
// [0, 12) of a 52-unit calibration period; then repeat purchases as a Poisson(λ) process, and
// after each repeat purchase the customer drops out with probability p (FHL 2005 assumptions
// (i)-(iii); the likelihood's x = 0 term e^(-λT) shows there is no dropout at the first purchase).
std::vector<Simulated> Simulate(const BgNbdParams& truth, int n, double horizon, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::vector<Simulated> out;
  const double calibration_end = 52;
  for (int i = 0; i < n; ++i) {
    double lambda = Gamma(rng, truth.r, 1 / truth.alpha);
    double p = Beta(rng, truth.a, truth.b);
    double first = 12 * uniform(rng);
    double t = first, last = first;
    double x = 0, future = 0;
    double dropped_at = std::numeric_limits<double>::infinity();
    while (true) {
      t += -std::log(1 - uniform(rng)) / lambda;
      if (t > calibration_end + horizon) break;
      if (t <= calibration_end) {
        ++x;
        last = t;
      } else {
        ++future;
      }
      if (uniform(rng) < p) {
        dropped_at = t;
        break;
      }
    }
    out.push_back(
        {{x, last - first, calibration_end - first}, future, dropped_at > calibration_end});
  }
  return out;
}

TEST(BgNbd, RecoversPlantedParameters) {
  const BgNbdParams truth{0.5, 6.0, 0.8, 3.0};
  auto sim = Simulate(truth, 20000, 0, 7);
  std::vector<RepeatSummary> summaries;
  for (const auto& s : sim) summaries.push_back(s.calibration);
  auto fit = FitBgNbd(summaries);
  ASSERT_TRUE(fit.ok());
  EXPECT_TRUE(fit->converged);
  EXPECT_NEAR(fit->params.r, truth.r, 0.1 * truth.r);
  EXPECT_NEAR(fit->params.alpha, truth.alpha, 0.15 * truth.alpha);
  EXPECT_NEAR(fit->params.a, truth.a, 0.2 * truth.a);
  EXPECT_NEAR(fit->params.b, truth.b, 0.25 * truth.b);
  // The optimum beats the truth on its own data (it is the maximum).
  double ll_truth = 0;
  for (const auto& s : summaries) ll_truth += BgNbdLogLikelihood(truth, s);
  EXPECT_GE(fit->log_likelihood, ll_truth);
}

TEST(BgNbd, ConditionalExpectationMatchesSimulatedFuture) {
  const BgNbdParams truth{0.5, 6.0, 0.8, 3.0};
  const double horizon = 26;
  auto sim = Simulate(truth, 40000, horizon, 11);
  // Grouped by history, predicted future purchases match the simulated ones.
  double predicted_total = 0, actual_total = 0;
  double predicted_heavy = 0, actual_heavy = 0;  // customers with x >= 5
  for (const auto& s : sim) {
    double e = BgNbdExpectedPurchases(truth, s.calibration, horizon);
    predicted_total += e;
    actual_total += s.future_purchases;
    if (s.calibration.x >= 5) {
      predicted_heavy += e;
      actual_heavy += s.future_purchases;
    }
  }
  EXPECT_NEAR(predicted_total / actual_total, 1.0, 0.05);
  EXPECT_NEAR(predicted_heavy / actual_heavy, 1.0, 0.08);
}

TEST(BgNbd, ProbabilityAliveIsCalibrated) {
  const BgNbdParams truth{0.5, 6.0, 0.8, 3.0};
  auto sim = Simulate(truth, 40000, 0, 13);
  // Among repeat customers, mean P(alive) per bin matches the share actually alive.
  std::vector<double> predicted(5), alive(5), count(5);
  for (const auto& s : sim) {
    if (s.calibration.x == 0) continue;
    double pa = BgNbdProbabilityAlive(truth, s.calibration);
    int bin = std::min(4, static_cast<int>(pa * 5));
    predicted[bin] += pa;
    alive[bin] += s.alive_at_T ? 1 : 0;
    count[bin] += 1;
  }
  for (int b = 0; b < 5; ++b) {
    if (count[b] < 200) continue;
    EXPECT_NEAR(predicted[b] / count[b], alive[b] / count[b], 0.05) << "bin " << b;
  }
}

TEST(BgNbd, FormulaProperties) {
  const BgNbdParams p{0.243, 4.414, 0.793, 2.426};
  // One-time buyers are alive by the model's assumption.
  EXPECT_EQ(BgNbdProbabilityAlive(p, {0, 0, 30}), 1.0);
  // A long silence after frequent buying lowers P(alive) ...
  EXPECT_LT(BgNbdProbabilityAlive(p, {10, 5, 38}), BgNbdProbabilityAlive(p, {10, 37, 38}));
  // ... and stays finite and tiny for extreme histories instead of overflowing.
  double pa = BgNbdProbabilityAlive(p, {5000, 1, 1000});
  EXPECT_GE(pa, 0.0);
  EXPECT_LT(pa, 1e-100);
  EXPECT_TRUE(std::isfinite(BgNbdExpectedPurchases(p, {5000, 999, 1000}, 52)));
  EXPECT_GT(BgNbdExpectedPurchases(p, {5000, 999, 1000}, 52), 100);
  // Expected purchases grow with the horizon, are 0 at t = 0.
  EXPECT_EQ(BgNbdExpectedPurchases(p, {2, 30, 38}, 0), 0.0);
  EXPECT_LT(BgNbdExpectedPurchases(p, {2, 30, 38}, 10), BgNbdExpectedPurchases(p, {2, 30, 38}, 39));
  // 2F1 against closed forms: 2F1(1,1;2;z) = -ln(1-z)/z; 2F1(a,b;b;z) = (1-z)^-a.
  EXPECT_NEAR(Hypergeometric2F1(1, 1, 2, 0.5), -std::log(0.5) / 0.5, 1e-12);
  EXPECT_NEAR(Hypergeometric2F1(0.7, 3, 3, 0.3), std::pow(0.7, -0.7), 1e-12);
  // Fit errors.
  EXPECT_EQ(FitBgNbd({}).status().code(), StatusCode::kInvalidArgument);
  std::vector<RepeatSummary> no_repeat = {{0, 0, 10}, {0, 0, 5}};
  EXPECT_EQ(FitBgNbd(no_repeat).status().code(), StatusCode::kInvalidArgument);
  std::vector<RepeatSummary> bad = {{1, 11, 10}};
  EXPECT_EQ(FitBgNbd(bad).status().field(), "customers[0]");
}

TEST(GammaGamma, RecoversPlantedParametersAndExpectedValue) {
  const GammaGammaParams truth{6.0, 4.0, 15.0};
  std::mt19937_64 rng(5);
  std::vector<SpendSummary> spend;
  std::vector<double> true_means;
  for (int i = 0; i < 20000; ++i) {
    double nu = Gamma(rng, truth.q, 1 / truth.gamma);
    int x = 1 + static_cast<int>(rng() % 6);
    double total = 0;
    for (int k = 0; k < x; ++k) total += Gamma(rng, truth.p, 1 / nu);
    spend.push_back({static_cast<double>(x), total / x});
    true_means.push_back(truth.p / nu);
  }
  auto fit = FitGammaGamma(spend);
  ASSERT_TRUE(fit.ok());
  EXPECT_NEAR(fit->params.p, truth.p, 0.1 * truth.p);
  EXPECT_NEAR(fit->params.q, truth.q, 0.1 * truth.q);
  EXPECT_NEAR(fit->params.gamma, truth.gamma, 0.15 * truth.gamma);
  // The posterior mean value is closer to each customer's true mean than their observed mean.
  double err_posterior = 0, err_observed = 0;
  for (size_t i = 0; i < spend.size(); ++i) {
    double e = GammaGammaExpectedValue(truth, spend[i].x, spend[i].mean_value);
    err_posterior += std::abs(e - true_means[i]);
    err_observed += std::abs(spend[i].mean_value - true_means[i]);
  }
  EXPECT_LT(err_posterior, err_observed);
  EXPECT_NEAR(GammaGammaExpectedValue(truth, 0, 0), 6.0 * 15.0 / 3.0, 1e-12);
  std::vector<SpendSummary> bad = {{2, 10}, {0.5, 3}};
  EXPECT_EQ(FitGammaGamma(bad).status().field(), "customers[1]");
}

TEST(Clv, DiscountingAndHorizon) {
  const BgNbdParams p{0.243, 4.414, 0.793, 2.426};
  RepeatSummary s{4, 30, 38};
  ClvOptions no_discount{.horizon = 52, .step = 4.348125, .discount_per_step = 0};
  // Without discounting, CLV = expected purchases over the horizon x value.
  EXPECT_NEAR(CustomerLifetimeValue(p, s, 20, no_discount), 20 * BgNbdExpectedPurchases(p, s, 52),
              1e-9);
  ClvOptions discounted = no_discount;
  discounted.discount_per_step = 0.01;
  double v = CustomerLifetimeValue(p, s, 20, discounted);
  EXPECT_LT(v, CustomerLifetimeValue(p, s, 20, no_discount));
  EXPECT_GT(v, 0.85 * CustomerLifetimeValue(p, s, 20, no_discount));
  ClvOptions longer = discounted;
  longer.horizon = 104;
  EXPECT_GT(CustomerLifetimeValue(p, s, 20, longer), v);
}

TEST(Rfm, QuintileScores) {
  std::vector<double> v = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_EQ(QuintileScores(v, true), (std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
  EXPECT_EQ(QuintileScores(v, false), (std::vector<int>{5, 5, 4, 4, 3, 3, 2, 2, 1, 1}));
  // Ties share the lower score.
  std::vector<double> ties = {1, 1, 1, 1, 2};
  EXPECT_EQ(QuintileScores(ties, true), (std::vector<int>{1, 1, 1, 1, 5}));
  EXPECT_TRUE(QuintileScores({}, true).empty());
}

}  // namespace
}  // namespace affinity

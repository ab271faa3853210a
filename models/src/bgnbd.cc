#include "affinity/models/bgnbd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "affinity/models/nelder_mead.h"

namespace affinity {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The fit searches log-parameters in [-10, 10] (parameters in [4.5e-5, 22026]). Real customer
// bases sit well inside; data without visible dropout pushes a -> 0 and b -> inf (the NBD limit),
// and the box stops that drift at a point whose predictions equal the limit's.
constexpr double kMaxLogParam = 10;

// log(e^a + e^b) without overflow.
double LogSumExp(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  double m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

// log( a/(b+x-1) ((α+T)/(α+t_x))^(r+x) ) for x > 0: the odds of "dropped out" vs "alive".
double LogDeadOdds(const BgNbdParams& p, const RepeatSummary& s) {
  return std::log(p.a) - std::log(p.b + s.x - 1) +
         (p.r + s.x) * (std::log(p.alpha + s.T) - std::log(p.alpha + s.t_x));
}

Status CheckSummary(const RepeatSummary& s, size_t i) {
  if (!std::isfinite(s.x) || !std::isfinite(s.t_x) || !std::isfinite(s.T) || s.x < 0 || s.t_x < 0 ||
      s.t_x > s.T + 1e-9) {
    return Status::InvalidArgument("need finite 0 <= x and 0 <= t_x <= T",
                                   "customers[" + std::to_string(i) + "]");
  }
  return Status::Ok();
}

}  // namespace

double BgNbdLogLikelihood(const BgNbdParams& p, const RepeatSummary& s) {
  const double x = s.x;
  double a1 = std::lgamma(p.r + x) - std::lgamma(p.r) + p.r * std::log(p.alpha);
  double a2 =
      std::lgamma(p.a + p.b) + std::lgamma(p.b + x) - std::lgamma(p.b) - std::lgamma(p.a + p.b + x);
  double a3 = -(p.r + x) * std::log(p.alpha + s.T);
  double a4 =
      x > 0 ? std::log(p.a) - std::log(p.b + x - 1) - (p.r + x) * std::log(p.alpha + s.t_x) : -kInf;
  return a1 + a2 + LogSumExp(a3, a4);
}

Result<BgNbdFit> FitBgNbd(std::span<const RepeatSummary> customers) {
  if (customers.empty()) return Status::InvalidArgument("no customers to fit", "customers");
  bool any_repeat = false;
  for (size_t i = 0; i < customers.size(); ++i) {
    AFFINITY_RETURN_IF_ERROR(CheckSummary(customers[i], i));
    any_repeat |= customers[i].x > 0;
  }
  if (!any_repeat) {
    return Status::InvalidArgument("no customer made a repeat purchase; BG/NBD cannot be fitted",
                                   "customers");
  }
  // The terms that depend on x alone (the Gamma and Beta functions) are computed once per
  // distinct x and evaluation; each customer then costs two logarithms and an exponential.
  std::vector<double> xs;
  for (const auto& s : customers) xs.push_back(s.x);
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  std::vector<size_t> x_index(customers.size());
  for (size_t i = 0; i < customers.size(); ++i) {
    x_index[i] = std::lower_bound(xs.begin(), xs.end(), customers[i].x) - xs.begin();
  }
  std::vector<double> x_terms(xs.size()), x_dead(xs.size());
  const double n = static_cast<double>(customers.size());
  auto objective = [&](const std::vector<double>& log_params) {
    for (double v : log_params) {
      if (std::abs(v) > kMaxLogParam) return kInf;
    }
    const BgNbdParams p{std::exp(log_params[0]), std::exp(log_params[1]), std::exp(log_params[2]),
                        std::exp(log_params[3])};
    const double base =
        -std::lgamma(p.r) + p.r * std::log(p.alpha) + std::lgamma(p.a + p.b) - std::lgamma(p.b);
    for (size_t k = 0; k < xs.size(); ++k) {
      const double x = xs[k];
      x_terms[k] = base + std::lgamma(p.r + x) + std::lgamma(p.b + x) - std::lgamma(p.a + p.b + x);
      x_dead[k] = x > 0 ? std::log(p.a) - std::log(p.b + x - 1) : -kInf;
    }
    double ll = 0;
    for (size_t i = 0; i < customers.size(); ++i) {
      const RepeatSummary& s = customers[i];
      const size_t k = x_index[i];
      ll += x_terms[k] + LogSumExp(-(p.r + s.x) * std::log(p.alpha + s.T),
                                   x_dead[k] - (p.r + s.x) * std::log(p.alpha + s.t_x));
    }
    return std::isfinite(ll) ? -ll / n : kInf;
  };
  AFFINITY_ASSIGN_OR_RETURN(NelderMeadResult opt,
                            MinimizeNelderMead(objective, {0.0, 0.0, 0.0, 0.0}));
  BgNbdFit fit;
  fit.params = {std::exp(opt.x[0]), std::exp(opt.x[1]), std::exp(opt.x[2]), std::exp(opt.x[3])};
  fit.log_likelihood = -opt.value * n;
  fit.iterations = opt.iterations;
  fit.converged = opt.converged;
  return fit;
}

double BgNbdProbabilityAlive(const BgNbdParams& p, const RepeatSummary& s) {
  if (s.x <= 0) return 1.0;
  double log_odds = LogDeadOdds(p, s);
  if (log_odds > 700) return 0.0;
  return 1.0 / (1.0 + std::exp(log_odds));
}

double Hypergeometric2F1(double a, double b, double c, double z) {
  double term = 1.0, sum = 1.0;
  for (int n = 0; n < 100000; ++n) {
    term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
    sum += term;
    if (std::abs(term) <= 1e-14 * std::abs(sum)) break;
  }
  return sum;
}

double BgNbdExpectedPurchases(const BgNbdParams& p, const RepeatSummary& s, double t) {
  if (t <= 0) return 0.0;
  const double x = s.x;
  const double a = std::abs(p.a - 1) < 1e-9 ? 1 + 1e-9 : p.a;  // the formula has a pole at a = 1
  const double z = t / (p.alpha + s.T + t);
  double hyp = Hypergeometric2F1(a + p.b - 1 - p.r, a - 1, a + p.b + x - 1, z);
  double numerator = (a + p.b + x - 1) / (a - 1) * (1 - std::pow(1 - z, a - 1) * hyp);
  double alive_denominator = 1.0;
  if (x > 0) {
    double log_odds = LogDeadOdds(p, s);
    if (log_odds > 700) return 0.0;
    alive_denominator += std::exp(log_odds);
  }
  return numerator / alive_denominator;
}

}  // namespace affinity

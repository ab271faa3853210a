#include "affinity/models/gamma_gamma.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "affinity/models/nelder_mead.h"

namespace affinity {

double GammaGammaLogLikelihood(const GammaGammaParams& g, const SpendSummary& s) {
  const double px = g.p * s.x;
  return std::lgamma(px + g.q) - std::lgamma(px) - std::lgamma(g.q) + g.q * std::log(g.gamma) +
         (px - 1) * std::log(s.mean_value) + px * std::log(s.x) -
         (px + g.q) * std::log(g.gamma + s.mean_value * s.x);
}

Result<GammaGammaFit> FitGammaGamma(std::span<const SpendSummary> customers) {
  if (customers.empty()) return Status::InvalidArgument("no customers to fit", "customers");
  for (size_t i = 0; i < customers.size(); ++i) {
    const auto& s = customers[i];
    if (!std::isfinite(s.x) || !std::isfinite(s.mean_value) || s.x < 1 || s.mean_value <= 0) {
      return Status::InvalidArgument("need x >= 1 and mean_value > 0",
                                     "customers[" + std::to_string(i) + "]");
    }
  }
  const double n = static_cast<double>(customers.size());
  auto objective = [&](const std::vector<double>& log_params) {
    for (double v : log_params) {
      if (std::abs(v) > 10) return std::numeric_limits<double>::infinity();  // as in FitBgNbd
    }
    GammaGammaParams g{std::exp(log_params[0]), std::exp(log_params[1]), std::exp(log_params[2])};
    double ll = 0;
    for (const auto& s : customers) ll += GammaGammaLogLikelihood(g, s);
    return std::isfinite(ll) ? -ll / n : std::numeric_limits<double>::infinity();
  };
  AFFINITY_ASSIGN_OR_RETURN(NelderMeadResult opt, MinimizeNelderMead(objective, {0.0, 1.0, 0.0}));
  GammaGammaFit fit;
  fit.params = {std::exp(opt.x[0]), std::exp(opt.x[1]), std::exp(opt.x[2])};
  fit.log_likelihood = -opt.value * n;
  fit.iterations = opt.iterations;
  fit.converged = opt.converged;
  return fit;
}

double GammaGammaExpectedValue(const GammaGammaParams& g, double x, double mean_value) {
  if (x <= 0) return g.p * g.gamma / (g.q - 1);
  return g.p * (g.gamma + x * mean_value) / (g.p * x + g.q - 1);
}

double CustomerLifetimeValue(const BgNbdParams& bgnbd, const RepeatSummary& s, double value,
                             const ClvOptions& o) {
  double clv = 0;
  double previous = 0;
  int i = 1;
  for (double end = o.step;; end += o.step, ++i) {
    double t = std::min(end, o.horizon);
    double expected = BgNbdExpectedPurchases(bgnbd, s, t);
    clv += (expected - previous) * value / std::pow(1 + o.discount_per_step, i);
    previous = expected;
    if (t >= o.horizon) break;
  }
  return clv;
}

}  // namespace affinity

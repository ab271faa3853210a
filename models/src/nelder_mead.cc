#include "affinity/models/nelder_mead.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace affinity {
namespace {

double Eval(const std::function<double(const std::vector<double>&)>& f,
            const std::vector<double>& x) {
  double v = f(x);
  return std::isnan(v) ? std::numeric_limits<double>::infinity() : v;
}

// One run of the adaptive Nelder–Mead method (Gao & Han 2012 coefficients, which behave better
// than the classic ones as the dimension grows).
NelderMeadResult RunOnce(const std::function<double(const std::vector<double>&)>& f,
                         const std::vector<double>& start, const NelderMeadOptions& o) {
  const size_t n = start.size();
  const double dim = static_cast<double>(n);
  const double alpha = 1.0, beta = 1.0 + 2.0 / dim, gamma = 0.75 - 1.0 / (2.0 * dim),
               delta = 1.0 - 1.0 / dim;
  std::vector<std::vector<double>> simplex(n + 1, start);
  for (size_t i = 0; i < n; ++i) simplex[i + 1][i] += o.initial_step;
  std::vector<double> values(n + 1);
  for (size_t i = 0; i <= n; ++i) values[i] = Eval(f, simplex[i]);
  std::vector<size_t> order(n + 1);
  std::vector<double> centroid(n), trial(n), trial2(n);

  NelderMeadResult result;
  const int stall_window = 50 * static_cast<int>(n);
  double best_at_window_start = std::numeric_limits<double>::infinity();
  for (result.iterations = 0; result.iterations < o.max_iterations; ++result.iterations) {
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return values[a] < values[b]; });
    const size_t best = order.front(), worst = order.back(), second = order[n - 1];
    if (result.iterations % stall_window == 0) {
      if (best_at_window_start - values[best] < o.stall_tolerance * (1 + std::abs(values[best]))) {
        result.converged = std::isfinite(values[best]);  // f no longer improves
        break;
      }
      best_at_window_start = values[best];
    }
    double x_spread = 0;
    for (size_t i = 0; i <= n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        x_spread = std::max(x_spread, std::abs(simplex[i][j] - simplex[best][j]));
      }
    }
    if (std::isfinite(values[worst]) && values[worst] - values[best] <= o.f_tolerance &&
        x_spread <= o.x_tolerance) {
      result.converged = true;
      break;
    }
    std::fill(centroid.begin(), centroid.end(), 0.0);
    for (size_t i = 0; i <= n; ++i) {
      if (i == worst) continue;
      for (size_t j = 0; j < n; ++j) centroid[j] += simplex[i][j] / dim;
    }
    auto point = [&](double t, std::vector<double>* out) {  // centroid + t (centroid - worst)
      for (size_t j = 0; j < n; ++j)
        (*out)[j] = centroid[j] + t * (centroid[j] - simplex[worst][j]);
    };
    point(alpha, &trial);
    double fr = Eval(f, trial);
    if (fr < values[best]) {
      point(beta, &trial2);
      double fe = Eval(f, trial2);
      if (fe < fr) {
        simplex[worst] = trial2;
        values[worst] = fe;
      } else {
        simplex[worst] = trial;
        values[worst] = fr;
      }
      continue;
    }
    if (fr < values[second]) {
      simplex[worst] = trial;
      values[worst] = fr;
      continue;
    }
    // Contraction: outside if the reflection improved on the worst, inside otherwise.
    bool outside = fr < values[worst];
    point(outside ? gamma : -gamma, &trial2);
    double fc = Eval(f, trial2);
    if (fc < (outside ? fr : values[worst])) {
      simplex[worst] = trial2;
      values[worst] = fc;
      continue;
    }
    // Shrink towards the best vertex.
    for (size_t i = 0; i <= n; ++i) {
      if (i == best) continue;
      for (size_t j = 0; j < n; ++j) {
        simplex[i][j] = simplex[best][j] + delta * (simplex[i][j] - simplex[best][j]);
      }
      values[i] = Eval(f, simplex[i]);
    }
  }
  size_t best = std::min_element(values.begin(), values.end()) - values.begin();
  result.x = simplex[best];
  result.value = values[best];
  return result;
}

}  // namespace

Result<NelderMeadResult> MinimizeNelderMead(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> start,
    const NelderMeadOptions& options) {
  if (start.empty()) return Status::InvalidArgument("start point is empty", "start");
  if (!std::isfinite(Eval(f, start))) {
    return Status::InvalidArgument("objective is not finite at the start point", "start");
  }
  NelderMeadResult best = RunOnce(f, start, options);
  int total = best.iterations;
  for (int r = 0; r < options.restarts; ++r) {
    NelderMeadResult next = RunOnce(f, best.x, options);
    total += next.iterations;
    if (next.value < best.value) best = std::move(next);
  }
  best.iterations = total;
  return best;
}

}  // namespace affinity

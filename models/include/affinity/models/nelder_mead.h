// Derivative-free minimization (Nelder–Mead simplex), for small maximum-likelihood fits.
//
// Thread safety: reentrant; no shared state.
#pragma once

#include <functional>
#include <vector>

#include "affinity/status.h"

namespace affinity {

struct NelderMeadOptions {
  // Side length of the initial simplex along each axis. Default 0.5 (suits log-parameters).
  double initial_step = 0.5;
  // Stop when the spread of the simplex's function values falls below this. Default 1e-12.
  double f_tolerance = 1e-12;
  // Stop when every vertex is also this close to the best one (max norm). Default 1e-7: for
  // log-parameters, a relative precision far below what any fitted parameter means.
  double x_tolerance = 1e-7;
  // Iterations per start. Default 5000 (a 4-parameter fit converges in a few hundred; a fit
  // pressed against a bound may use them all).
  int max_iterations = 5000;
  // Stop when the best value improved by less than stall_tolerance · (1 + |best|) over the last
  // 50 · dimension iterations: the simplex is crawling along a flat ridge (e.g. a likelihood
  // whose optimum lies on a bound). Default 1e-10.
  double stall_tolerance = 1e-10;
  // Re-start from the best point this many times (a fresh simplex escapes a collapsed one).
  // Default 2.
  int restarts = 2;
};

struct NelderMeadResult {
  std::vector<double> x;
  double value = 0;
  int iterations = 0;
  // True when the tolerances were met or the value stopped improving (stall_tolerance); false
  // when max_iterations ran out first.
  bool converged = false;
};

// Minimizes `f` from `start`. `f` may return +inf (or NaN, treated as +inf) for points outside
// its domain. InvalidArgument if `start` is empty or f(start) is not finite.
Result<NelderMeadResult> MinimizeNelderMead(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> start,
    const NelderMeadOptions& options = {});

}  // namespace affinity

// BG/NBD ("beta-geometric / negative binomial distribution") model of repeat buying, after
// Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", Marketing Science 24(2).
//
// Each customer is summarized by (x, t_x, T) in a chosen time unit (weeks in the paper):
//   x   = number of repeat purchases (purchase occasions after the first; several on one day
//         count as one),
//   t_x = time from the first purchase to the last one,
//   T   = time from the first purchase to the end of the calibration period.
// While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each purchase
// they drop out with probability p ~ Beta(a, b).
//
// Thread safety: plain functions over values; reentrant.
#pragma once

#include <span>

#include "affinity/status.h"

namespace affinity {

struct RepeatSummary {
  double x = 0;    // repeat purchases, >= 0
  double t_x = 0;  // 0 <= t_x <= T
  double T = 0;    // > 0 for a useful summary (T = 0 contributes nothing to the fit)
};

struct BgNbdParams {
  double r = 1, alpha = 1, a = 1, b = 1;  // all > 0
};

struct BgNbdFit {
  BgNbdParams params;
  double log_likelihood = 0;  // sum over customers at the optimum
  int iterations = 0;
  bool converged = false;
};

// Log-likelihood of one customer (FHL 2005 eq. 6), computed in log space so large x is stable:
//   L = Γ(r+x) α^r / Γ(r) · B(a, b+x) / B(a, b) · [ (α+T)^-(r+x) + [x>0] a/(b+x-1) (α+t_x)^-(r+x) ]
double BgNbdLogLikelihood(const BgNbdParams& p, const RepeatSummary& s);

// Maximum-likelihood fit (Nelder–Mead on the log-parameters, each kept in [-10, 10]; data with no
// visible dropout ends at the a -> 0, b -> inf wall, which predicts like the NBD limit).
// InvalidArgument if `customers` is empty, has an invalid summary (negative x, t_x > T, non-finite
// values; names the index), or no customer repeats (x = 0 for all: the dropout process is then
// unidentifiable).
Result<BgNbdFit> FitBgNbd(std::span<const RepeatSummary> customers);

// Probability that the customer is still alive at T (FHL 2005 eq. 13):
//   1 / (1 + [x>0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x)); 1 for x = 0.
double BgNbdProbabilityAlive(const BgNbdParams& p, const RepeatSummary& s);

// Expected number of purchases in the next `t` time units, given the customer's history
// (FHL 2005 eq. 10), evaluated with Euler's transformation of the 2F1 so that it stays finite
// for large x:
//   E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) · [1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)]
//                         / (1 + [x>0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x)),   z = t/(α+T+t).
double BgNbdExpectedPurchases(const BgNbdParams& p, const RepeatSummary& s, double t);

// Gauss hypergeometric function 2F1(a, b; c; z) for |z| < 1 by its power series (to relative
// precision 1e-14 or 100000 terms). Exposed for tests.
double Hypergeometric2F1(double a, double b, double c, double z);

}  // namespace affinity

// Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV: Using
// Iso-Value Curves for Customer Base Analysis", J. Marketing Research 42(4)), and customer
// lifetime value combining it with BG/NBD.
//
// A customer's transaction values are Gamma(p, ν) with ν ~ Gamma(q, γ) across customers; it is
// fitted on customers with x >= 1 repeat transactions and their mean repeat-transaction value m.
//
// Thread safety: plain functions over values; reentrant.
#pragma once

#include <span>

#include "affinity/models/bgnbd.h"
#include "affinity/status.h"

namespace affinity {

struct SpendSummary {
  double x = 0;           // number of transactions averaged (>= 1)
  double mean_value = 0;  // their mean value (> 0)
};

struct GammaGammaParams {
  double p = 1, q = 2, gamma = 1;  // all > 0
};

struct GammaGammaFit {
  GammaGammaParams params;
  double log_likelihood = 0;
  int iterations = 0;
  bool converged = false;
};

// Log-likelihood of one customer's mean value m over x transactions:
//   lnΓ(px+q) - lnΓ(px) - lnΓ(q) + q ln γ + (px-1) ln m + px ln x - (px+q) ln(γ + m x)
double GammaGammaLogLikelihood(const GammaGammaParams& p, const SpendSummary& s);

// Maximum-likelihood fit. InvalidArgument if `customers` is empty or holds an x < 1 or a
// mean_value <= 0 (naming the index).
Result<GammaGammaFit> FitGammaGamma(std::span<const SpendSummary> customers);

// Expected mean transaction value of a customer (FHL 2005b eq. 5):
//   (q-1)/(px+q-1) · pγ/(q-1) + px/(px+q-1) · m, i.e. p(γ + x m)/(px + q - 1);
// for x = 0 (no repeat history) the population mean pγ/(q-1). Requires q > 1 for x = 0.
double GammaGammaExpectedValue(const GammaGammaParams& p, double x, double mean_value);

struct ClvOptions {
  double horizon = 52;                 // in the BG/NBD time unit (52 weeks = a year)
  double step = 4.348125;              // discounting step in time units (a month, in weeks)
  double discount_per_step = 0.00797;  // (1 + 10% a year)^(1/12) - 1
};

// Discounted expected value over the horizon: Σ_i (E[Y(i·step)] - E[Y((i-1)·step)]) · value
// / (1 + discount_per_step)^i, the expected purchases from BG/NBD and `value` the expected value
// per purchase (GammaGammaExpectedValue). The last step is shortened to end at the horizon.
double CustomerLifetimeValue(const BgNbdParams& bgnbd, const RepeatSummary& s, double value,
                             const ClvOptions& options);

}  // namespace affinity

// Turning audience evidence into probabilities, and measuring how well that worked.
//
// Logistic calibration: P(buy within the horizon | x) = σ(b + Σ_k w_k x_k), σ(z) = 1/(1+e^-z),
// for a few named features x of a (customer, product) pair, fitted by maximum likelihood
// (Newton's method with step halving on the logistic loss) on the outcomes of past launches.
// With one feature, the model score, this is Platt scaling (Platt 1999); with several it is also
// the learned blend that ranks the audience. With the intercept b, the fitted probabilities sum
// exactly to the number of observed buyers on the fitting data — the property that keeps
// "expected buyers" honest on data like it. Pairs may carry weights (e.g. 1/q for negatives kept
// with probability q when subsampling).
//
// A probability for another horizon h than the fitted one H assumes a constant purchase hazard
// over the period: P_h = 1 − (1 − P_H)^(h/H).
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "affinity/status.h"

namespace affinity {

struct LogisticCalibration {
  std::vector<std::string> features;  // names, in the order of `weights`
  std::vector<double> weights;        // w_k
  double intercept = 0;               // b
  double horizon_days = 30;           // H: the window the outcomes were counted in
  int64_t pairs = 0;                  // (customer, product) pairs it was fitted on (unweighted)
  int64_t positives = 0;              // of which bought
  int64_t products = 0;               // launches it was fitted on (set by the caller)

  // b + Σ w_k x_k; x has one value per feature (extra values are ignored, missing count 0).
  double Logit(std::span<const double> x) const;
  // σ(Logit(x)), rescaled to `horizon_days` (the fitted horizon when <= 0).
  double Probability(std::span<const double> x, double horizon_days = 0) const;
  // The probability of logit z, as Probability: non-decreasing in z, so that a ranking by the
  // logit is a ranking by the probability (and a floor on one is a floor on the other).
  double ProbabilityOfLogit(double z, double horizon_days = 0) const;
};

// Fits the model on `x` (row-major, pairs × names.size()) with outcomes `labels` (1 = bought)
// and optional per-pair `weights` (empty: all 1). InvalidArgument if the sizes do not match, a
// value is not finite, a weight is not positive, or there is no positive or no negative.
Result<LogisticCalibration> FitLogistic(std::span<const float> x, std::span<const uint8_t> labels,
                                        std::span<const float> weights,
                                        std::vector<std::string> names, double horizon_days);

// Reliability of predicted probabilities against outcomes.
struct CalibrationReport {
  // Expected calibration error: Σ_b (n_b / N) |mean predicted_b − observed rate_b| over 10 bins
  // of equal width on [0, 1] (ece) and over 10 bins of equal count, by predicted value
  // (ece_quantile, which resolves the small probabilities that equal-width bins lump together).
  double ece = 0;
  double ece_quantile = 0;
  double predicted_positives = 0;  // Σ predicted
  int64_t observed_positives = 0;  // Σ outcomes
  int64_t pairs = 0;
  // The equal-count bins: mean predicted and observed rate, and size.
  struct Bin {
    double predicted = 0, observed = 0;
    int64_t count = 0;
  };
  std::vector<Bin> bins;
};

// InvalidArgument if the lengths differ or there is nothing to measure.
Result<CalibrationReport> MeasureCalibration(std::span<const double> predicted,
                                             std::span<const uint8_t> labels);

// Area under the ROC curve of `scores` against `labels` (Mann–Whitney, ties counted half): the
// probability that a random positive outscores a random negative. NaN when there is no positive
// or no negative. O(n log n).
double Auc(std::span<const float> scores, std::span<const uint8_t> labels);

}  // namespace affinity

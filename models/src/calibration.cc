#include "affinity/models/calibration.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace affinity {
namespace {

double Sigmoid(double z) {
  return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
}

}  // namespace

double LogisticCalibration::Logit(std::span<const double> x) const {
  double z = intercept;
  for (size_t k = 0; k < weights.size() && k < x.size(); ++k) z += weights[k] * x[k];
  return z;
}

double LogisticCalibration::Probability(std::span<const double> x, double horizon) const {
  return ProbabilityOfLogit(Logit(x), horizon);
}

double LogisticCalibration::ProbabilityOfLogit(double z, double horizon) const {
  const double p = Sigmoid(z);
  if (horizon <= 0 || horizon == horizon_days || horizon_days <= 0) return p;
  return 1.0 - std::pow(1.0 - p, horizon / horizon_days);
}

Result<LogisticCalibration> FitLogistic(std::span<const float> x, std::span<const uint8_t> labels,
                                        std::span<const float> pair_weights,
                                        std::vector<std::string> names, double horizon_days) {
  const size_t k = names.size();
  const size_t n = labels.size();
  if (k == 0 || x.size() != n * k || (!pair_weights.empty() && pair_weights.size() != n)) {
    return Status::InvalidArgument("features, labels and weights do not match in size", "labels");
  }
  LogisticCalibration c;
  c.features = std::move(names);
  c.horizon_days = horizon_days;
  c.pairs = static_cast<int64_t>(n);
  for (float v : x) {
    if (!std::isfinite(v)) return Status::InvalidArgument("a feature is not finite", "features");
  }
  for (float w : pair_weights) {
    if (!(w > 0) || !std::isfinite(w)) {
      return Status::InvalidArgument("a weight is not positive", "weights");
    }
  }
  auto weight = [&](size_t i) -> double { return pair_weights.empty() ? 1.0 : pair_weights[i]; };
  double pos = 0, total = 0;
  for (size_t i = 0; i < n; ++i) {
    c.positives += labels[i] != 0;
    pos += labels[i] ? weight(i) : 0;
    total += weight(i);
  }
  if (c.positives == 0 || c.positives == c.pairs) {
    return Status::InvalidArgument("calibration needs both buyers and non-buyers", "labels");
  }
  // Standardize each feature (weighted mean 0, spread 1) so that Newton is well conditioned.
  std::vector<double> mean(k, 0), scale(k, 0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < k; ++j) mean[j] += weight(i) * x[i * k + j];
  }
  for (size_t j = 0; j < k; ++j) mean[j] /= total;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < k; ++j) {
      const double d = x[i * k + j] - mean[j];
      scale[j] += weight(i) * d * d;
    }
  }
  for (size_t j = 0; j < k; ++j) scale[j] = std::sqrt(scale[j] / total) + 1e-12;
  // Parameters θ = (w'_1..w'_k, b') on standardized features; a tiny ridge on w' keeps
  // separable data finite.
  constexpr double kRidge = 1e-6;
  const size_t m = k + 1;
  std::vector<double> theta(m, 0), z(k);
  theta[k] = std::log(pos / (total - pos));
  auto standardized = [&](size_t i, size_t j) { return (x[i * k + j] - mean[j]) / scale[j]; };
  auto logit = [&](const std::vector<double>& t, size_t i) {
    double v = t[k];
    for (size_t j = 0; j < k; ++j) v += t[j] * standardized(i, j);
    return v;
  };
  auto loss = [&](const std::vector<double>& t) {
    double l = 0;
    for (size_t j = 0; j < k; ++j) l += 0.5 * kRidge * t[j] * t[j];
    for (size_t i = 0; i < n; ++i) {
      // −log σ(z) for buyers, −log σ(−z) otherwise, computed stably.
      const double v = labels[i] ? -logit(t, i) : logit(t, i);
      l += weight(i) * (v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)));
    }
    return l;
  };
  double current = loss(theta);
  for (int it = 0; it < 100; ++it) {
    Eigen::VectorXd g = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(m));
    Eigen::MatrixXd h =
        Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(m));
    for (size_t j = 0; j < k; ++j) {
      g[j] = kRidge * theta[j];
      h(j, j) = kRidge;
    }
    Eigen::VectorXd row(static_cast<Eigen::Index>(m));
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < k; ++j) row[j] = standardized(i, j);
      row[k] = 1;
      const double p = Sigmoid(logit(theta, i));
      g += weight(i) * (p - (labels[i] ? 1.0 : 0.0)) * row;
      h.selfadjointView<Eigen::Lower>().rankUpdate(row, weight(i) * std::max(p * (1 - p), 1e-12));
    }
    const Eigen::VectorXd step = h.selfadjointView<Eigen::Lower>().ldlt().solve(g);
    if (!step.allFinite()) break;
    double size = 1;
    std::vector<double> next(m);
    double next_loss = 0;
    for (;;) {
      for (size_t j = 0; j < m; ++j) next[j] = theta[j] - size * step[j];
      next_loss = loss(next);
      if (next_loss <= current || size < 1e-6) break;
      size /= 2;
    }
    if (!(next_loss <= current)) break;
    const bool done = current - next_loss < 1e-12 * std::max(1.0, current);
    theta = next;
    current = next_loss;
    if (done) break;
  }
  // Back to the raw features: w_j = w'_j / scale_j, b = b' − Σ w_j mean_j.
  c.intercept = theta[k];
  for (size_t j = 0; j < k; ++j) {
    c.weights.push_back(theta[j] / scale[j]);
    c.intercept -= c.weights.back() * mean[j];
  }
  return c;
}

Result<CalibrationReport> MeasureCalibration(std::span<const double> predicted,
                                             std::span<const uint8_t> labels) {
  if (predicted.size() != labels.size()) {
    return Status::InvalidArgument("predictions and labels differ in length", "labels");
  }
  if (predicted.empty()) return Status::InvalidArgument("nothing to measure", "predicted");
  CalibrationReport r;
  const auto n = static_cast<int64_t>(predicted.size());
  r.pairs = n;
  constexpr int kBins = 10;
  std::vector<double> sum_p(kBins, 0), sum_y(kBins, 0);
  std::vector<int64_t> count(kBins, 0);
  for (int64_t i = 0; i < n; ++i) {
    const double p = std::clamp(predicted[i], 0.0, 1.0);
    const int bin = std::min(kBins - 1, static_cast<int>(p * kBins));
    sum_p[bin] += p;
    sum_y[bin] += labels[i] ? 1 : 0;
    ++count[bin];
    r.predicted_positives += p;
    r.observed_positives += labels[i] ? 1 : 0;
  }
  for (int bin = 0; bin < kBins; ++bin) {
    if (count[bin] > 0) r.ece += std::abs(sum_p[bin] - sum_y[bin]) / static_cast<double>(n);
  }
  // Equal-count bins over the predictions in ascending order.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t x, int64_t y) { return predicted[x] < predicted[y]; });
  for (int bin = 0; bin < kBins; ++bin) {
    const int64_t lo = n * bin / kBins, hi = n * (bin + 1) / kBins;
    if (hi <= lo) continue;
    CalibrationReport::Bin b;
    for (int64_t k = lo; k < hi; ++k) {
      b.predicted += std::clamp(predicted[order[k]], 0.0, 1.0);
      b.observed += labels[order[k]] ? 1 : 0;
    }
    r.ece_quantile += std::abs(b.predicted - b.observed) / static_cast<double>(n);
    b.count = hi - lo;
    b.predicted /= static_cast<double>(b.count);
    b.observed /= static_cast<double>(b.count);
    r.bins.push_back(b);
  }
  return r;
}

double Auc(std::span<const float> scores, std::span<const uint8_t> labels) {
  const size_t n = std::min(scores.size(), labels.size());
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return scores[x] < scores[y]; });
  // Sum of the positives' ranks (1-based, ties given their average rank).
  double rank_sum = 0;
  int64_t positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double avg = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]]) {
        rank_sum += avg;
        ++positives;
      }
    }
    i = j;
  }
  const auto negatives = static_cast<int64_t>(n) - positives;
  if (positives == 0 || negatives == 0) return std::numeric_limits<double>::quiet_NaN();
  const auto p = static_cast<double>(positives);
  return (rank_sum - p * (p + 1) / 2) / (p * static_cast<double>(negatives));
}

}  // namespace affinity

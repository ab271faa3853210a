#include "affinity/models/ials.h"

#include <omp.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

namespace affinity {
namespace {

using Vec = Eigen::VectorXf;
using ConstRow = Eigen::Map<const Vec>;
using Row = Eigen::Map<Vec>;

int Threads(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

// c = 1 + α f(r).
float Confidence(const IalsOptions& o, float r) {
  if (o.confidence_alpha == 0) return 1.0f;
  double f = o.confidence == ConfidenceTransform::kBinary ? 1.0
             : o.confidence == ConfidenceTransform::kLog  ? std::log1p(static_cast<double>(r))
                                                          : static_cast<double>(r);
  return static_cast<float>(1.0 + o.confidence_alpha * f);
}

// λ_u = λ (|I_u| + α₀ |I|)^ν for a row with `observed` entries against `others` columns.
float RowRegularization(const IalsOptions& o, int64_t observed, int64_t others) {
  double base = static_cast<double>(observed) + o.unobserved_weight * static_cast<double>(others);
  return static_cast<float>(o.regularization * std::pow(base, o.regularization_exponent));
}

// Σ_k weight_k y_k y_kᵀ = Yᵀ diag(weights) Y.
Eigen::MatrixXf WeightedGram(const RowMajorMatrixXf& y, const Eigen::VectorXf& weights) {
  return y.transpose() * (y.array().colwise() * weights.array()).matrix();
}

// Solves every row of `x` (one per row of `m`) with `y` fixed; returns the flops spent.
// The all-pairs matrix of row u is row_scale(u) · Yᵀ diag(y_weights) Y.
double SolveSide(const CsrMatrix& m, const RowMajorMatrixXf& y, const Eigen::VectorXf& y_weights,
                 const Eigen::VectorXf& row_scale, const IalsOptions& o, RowMajorMatrixXf* x) {
  const int d = o.factors;
  const Eigen::MatrixXf base_gram = WeightedGram(y, y_weights);
  const int64_t others = y.rows();
  double flops = 2.0 * static_cast<double>(others) * d * d;
  const int steps = o.cg_steps;

#pragma omp parallel num_threads(Threads(o.num_threads)) reduction(+ : flops)
  {
    Vec r(d), p(d), ap(d), b(d);
    Eigen::MatrixXf a(d, d);
#pragma omp for schedule(dynamic, 256)
    for (int64_t u = 0; u < m.rows; ++u) {
      Row xu(x->row(u).data(), d);
      const int64_t begin = m.RowBegin(u), end = m.RowEnd(u);
      const int64_t n = end - begin;
      if (n == 0) {  // no observations: the minimizer of α₀ wᵀGw + λ‖w‖² is 0
        xu.setZero();
        continue;
      }
      const float scale = row_scale(u);
      const float lambda = RowRegularization(o, n, others);
      if (o.solver == IalsSolver::kCholesky) {
        // A = scale G + λI + Σ c h hᵀ;  b = Σ c h;  w = A⁻¹ b.
        a = scale * base_gram;
        a.diagonal().array() += lambda;
        b.setZero();
        for (int64_t k = begin; k < end; ++k) {
          ConstRow h(y.row(m.indices[k]).data(), d);
          const float c = Confidence(o, m.values[k]);
          a.selfadjointView<Eigen::Lower>().rankUpdate(h, c);
          b += c * h;
        }
        xu = a.selfadjointView<Eigen::Lower>().llt().solve(b);
        flops += static_cast<double>(n) * d * d + static_cast<double>(d) * d * d / 3;
        continue;
      }
      // Conjugate gradient on A w = b from the current w (A's all-pairs part is scale · G).
      // r = b - A w = Σ c (1 - h·w) h - scale G w - λ w
      r.noalias() = -scale * (base_gram * xu);
      r -= lambda * xu;
      for (int64_t k = begin; k < end; ++k) {
        ConstRow h(y.row(m.indices[k]).data(), d);
        const float c = Confidence(o, m.values[k]);
        r += (c * (1.0f - h.dot(xu))) * h;
      }
      p = r;
      float rs_old = r.squaredNorm();
      int step = 0;
      for (; step < steps && rs_old > 1e-20f; ++step) {
        // Ap = scale G p + Σ c (h·p) h + λ p
        ap.noalias() = scale * (base_gram * p);
        ap += lambda * p;
        for (int64_t k = begin; k < end; ++k) {
          ConstRow h(y.row(m.indices[k]).data(), d);
          ap += (Confidence(o, m.values[k]) * h.dot(p)) * h;
        }
        const float alpha = rs_old / p.dot(ap);
        xu += alpha * p;
        r -= alpha * ap;
        const float rs_new = r.squaredNorm();
        p = r + (rs_new / rs_old) * p;
        rs_old = rs_new;
      }
      flops += static_cast<double>(step + 1) * (4.0 * n * d + 2.0 * d * d);
    }
  }
  return flops;
}

}  // namespace

Status IalsOptions::Validate() const {
  auto bad = [](const char* field, const char* why) {
    return Status::InvalidArgument(std::string(field) + " " + why, field);
  };
  if (factors < 1) return bad("factors", "must be >= 1");
  if (iterations < 0) return bad("iterations", "must be >= 0");
  if (!(unobserved_weight >= 0)) return bad("unobserved_weight", "must be >= 0");
  if (!std::isfinite(unobserved_popularity_exponent)) {
    return bad("unobserved_popularity_exponent", "must be finite");
  }
  if (!(regularization >= 0)) return bad("regularization", "must be >= 0");
  if (!(regularization_exponent >= 0)) return bad("regularization_exponent", "must be >= 0");
  if (!(confidence_alpha >= 0)) return bad("confidence_alpha", "must be >= 0");
  if (cg_steps < 1) return bad("cg_steps", "must be >= 1");
  if (!(init_stddev > 0)) return bad("init_stddev", "must be > 0");
  if (num_threads < 0) return bad("num_threads", "must be >= 0");
  return Status::Ok();
}

IalsModel::IalsModel(IalsOptions options) : options_(std::move(options)) {}

Status IalsModel::Fit(const CsrMatrix& interactions) {
  AFFINITY_RETURN_IF_ERROR(options_.Validate());
  if (interactions.rows == 0 || interactions.cols == 0 || interactions.nnz() == 0) {
    return Status::InvalidArgument("the interaction matrix is empty", "interactions");
  }
  const int d = options_.factors;
  std::mt19937_64 rng(options_.seed);
  std::normal_distribution<float> normal(0.0f,
                                         static_cast<float>(options_.init_stddev / std::sqrt(d)));
  user_factors_.resize(interactions.rows, d);
  item_factors_.resize(interactions.cols, d);
  for (int64_t i = 0; i < user_factors_.size(); ++i) user_factors_.data()[i] = normal(rng);
  for (int64_t i = 0; i < item_factors_.size(); ++i) item_factors_.data()[i] = normal(rng);

  const CsrMatrix transposed = interactions.Transposed();
  // a_i = α₀ |I| n_i^η / Σ_j n_j^η; the item side scales its Gram WᵀW by a_i per row.
  item_weights_.resize(interactions.cols);
  for (int64_t i = 0; i < interactions.cols; ++i) {
    const double n = static_cast<double>(transposed.RowEnd(i) - transposed.RowBegin(i));
    item_weights_(i) =
        n > 0 ? static_cast<float>(std::pow(n, options_.unobserved_popularity_exponent)) : 0.0f;
  }
  // Normalize over the observed items, so that the mean weight of the items the model learns is
  // α₀ whatever the number of never-seen columns (e.g. products launched after a cutoff).
  const auto observed = static_cast<double>((item_weights_.array() > 0).count());
  if (observed > 0) {
    item_weights_ *=
        static_cast<float>(options_.unobserved_weight * observed) / item_weights_.sum();
  }
  const Eigen::VectorXf ones_users = Eigen::VectorXf::Ones(interactions.rows);
  for (int it = 1; it <= options_.iterations; ++it) {
    const auto start = std::chrono::steady_clock::now();
    last_epoch_flops_ =
        SolveSide(interactions, item_factors_, item_weights_, ones_users, options_, &user_factors_);
    last_epoch_flops_ +=
        SolveSide(transposed, user_factors_, ones_users, item_weights_, options_, &item_factors_);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress_) {
      double loss =
          options_.compute_loss ? Loss(interactions) : std::numeric_limits<double>::quiet_NaN();
      progress_({it, loss, seconds});
    }
  }
  item_gram_ = WeightedGram(item_factors_, item_weights_);
  return Status::Ok();
}

double IalsModel::Loss(const CsrMatrix& m) const {
  const int d = options_.factors;
  // Σ_all a_i (w·h)² = Σ_jk (WᵀW)_jk (Hᵀ diag(a) H)_jk
  const Eigen::MatrixXf ww = user_factors_.transpose() * user_factors_;
  const Eigen::MatrixXf hh = WeightedGram(item_factors_, item_weights_);
  double loss = static_cast<double>(ww.cwiseProduct(hh).sum());
  double observed = 0, reg = 0;
#pragma omp parallel for num_threads(Threads(options_.num_threads)) reduction(+ : observed, reg) \
    schedule(dynamic, 256)
  for (int64_t u = 0; u < m.rows; ++u) {
    ConstRow w(user_factors_.row(u).data(), d);
    for (int64_t k = m.RowBegin(u); k < m.RowEnd(u); ++k) {
      ConstRow h(item_factors_.row(m.indices[k]).data(), d);
      const double e = 1.0 - static_cast<double>(w.dot(h));
      observed += Confidence(options_, m.values[k]) * e * e;
    }
    reg += RowRegularization(options_, m.RowEnd(u) - m.RowBegin(u), m.cols) * w.squaredNorm();
  }
  std::vector<int64_t> item_counts(m.cols, 0);
  for (int32_t i : m.indices) ++item_counts[i];
  for (int64_t i = 0; i < m.cols; ++i) {
    reg += RowRegularization(options_, item_counts[i], m.rows) * item_factors_.row(i).squaredNorm();
  }
  return (loss + observed + reg) / static_cast<double>(std::max<int64_t>(1, m.nnz()));
}

void IalsModel::ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const {
  RowMajorMatrixXf w(users.size(), options_.factors);
  for (size_t k = 0; k < users.size(); ++k) w.row(k) = user_factors_.row(users[k]);
  out->noalias() = w * item_factors_.transpose();
}

Result<Eigen::VectorXf> IalsModel::FoldInUser(std::span<const int32_t> items,
                                              std::span<const float> weights) const {
  if (item_factors_.rows() == 0) return Status::FailedPrecondition("the model is not fitted");
  return FoldInSolver::WithGram(options_, &item_factors_, item_gram_).Solve(items, weights);
}

FoldInSolver FoldInSolver::WithGram(const IalsOptions& options,
                                    const RowMajorMatrixXf* item_factors, Eigen::MatrixXf gram) {
  FoldInSolver solver(options, item_factors);
  solver.gram_ = std::move(gram);
  return solver;
}

FoldInSolver::FoldInSolver(const IalsOptions& options, const RowMajorMatrixXf* item_factors,
                           Eigen::VectorXf item_weights)
    : options_(options), item_factors_(item_factors) {
  if (item_weights.size() != item_factors->rows()) {
    // α₀ for every item the model learned (a non-zero row), 0 for never-seen columns.
    item_weights = (item_factors->rowwise().squaredNorm().array() > 0).cast<float>().matrix() *
                   static_cast<float>(options.unobserved_weight);
  }
  gram_ = WeightedGram(*item_factors, item_weights);
}

Status FoldInSolver::Prepare(std::span<const int32_t> items, std::span<const float> weights,
                             Eigen::LLT<Eigen::MatrixXf>* llt, Eigen::VectorXf* b) const {
  if (items.size() != weights.size()) {
    return Status::InvalidArgument("items and weights differ in length", "weights");
  }
  const int d = factors();
  const RowMajorMatrixXf& h_all = *item_factors_;
  // A = G_a + λ_u I + Σ c h hᵀ;  b = Σ c h.
  Eigen::MatrixXf a = gram_;
  a.diagonal().array() +=
      RowRegularization(options_, static_cast<int64_t>(items.size()), h_all.rows());
  b->setZero(d);
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k] < 0 || items[k] >= h_all.rows()) {
      return Status::InvalidArgument("item " + std::to_string(items[k]) + " is out of range",
                                     "items");
    }
    if (!(weights[k] > 0)) return Status::InvalidArgument("weights must be > 0", "weights");
    ConstRow h(h_all.row(items[k]).data(), d);
    const float c = Confidence(options_, weights[k]);
    a.selfadjointView<Eigen::Lower>().rankUpdate(h, c);
    *b += c * h;
  }
  llt->compute(a.selfadjointView<Eigen::Lower>());
  if (llt->info() != Eigen::Success) {
    return Status::FailedPrecondition("the fold-in system is not positive definite");
  }
  return Status::Ok();
}

Result<Eigen::VectorXf> FoldInSolver::Solve(std::span<const int32_t> items,
                                            std::span<const float> weights) const {
  if (items.empty() && weights.empty()) return Vec(Vec::Zero(factors()));
  Eigen::LLT<Eigen::MatrixXf> llt;
  Vec b;
  AFFINITY_RETURN_IF_ERROR(Prepare(items, weights, &llt, &b));
  return Vec(llt.solve(b));
}

Result<std::vector<int>> FoldInSolver::Explain(std::span<const int32_t> items,
                                               std::span<const float> weights,
                                               std::span<const int32_t> targets) const {
  const RowMajorMatrixXf& h_all = *item_factors_;
  for (int32_t t : targets) {
    if (t < 0 || t >= h_all.rows()) {
      return Status::InvalidArgument("target " + std::to_string(t) + " is out of range", "targets");
    }
  }
  std::vector<int> best(targets.size(), -1);
  if (items.empty()) return best;
  if (ExplainInBasis(items, weights, targets, &best)) return best;
  Eigen::LLT<Eigen::MatrixXf> llt;
  Vec b;
  AFFINITY_RETURN_IF_ERROR(Prepare(items, weights, &llt, &b));
  const int d = factors();
  // term(j, i) = c_i h_jᵀ A⁻¹ h_i: solve A X = H_tᵀ for the targets (k solves, not n), then
  // every term is one dot product with an item row.
  Eigen::MatrixXf ht(d, static_cast<Eigen::Index>(targets.size()));
  for (size_t t = 0; t < targets.size(); ++t) ht.col(t) = h_all.row(targets[t]).transpose();
  const Eigen::MatrixXf x = llt.solve(ht);
  for (size_t t = 0; t < targets.size(); ++t) {
    float top = -std::numeric_limits<float>::infinity();
    for (size_t k = 0; k < items.size(); ++k) {
      ConstRow h(h_all.row(items[k]).data(), d);
      const float term = Confidence(options_, weights[k]) * x.col(t).dot(h);
      if (term > top) {
        top = term;
        best[t] = static_cast<int>(k);
      }
    }
  }
  return best;
}

void FoldInSolver::PrepareExplanations() {
  // In double: the small eigenvalues of a Gram matrix are where float loses digits.
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram_.cast<double>());
  if (eig.info() != Eigen::Success) return;  // Explain keeps the direct path
  gram_eigenvalues_ = eig.eigenvalues().cast<float>();
  items_in_basis_ = *item_factors_ * eig.eigenvectors().cast<float>();
}

bool FoldInSolver::ExplainInBasis(std::span<const int32_t> items, std::span<const float> weights,
                                  std::span<const int32_t> targets, std::vector<int>* best) const {
  const RowMajorMatrixXf& basis = items_in_basis_;
  const auto n = static_cast<Eigen::Index>(items.size());
  const int d = factors();
  if (basis.rows() == 0 || n > d || items.size() != weights.size()) return false;
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k] < 0 || items[k] >= basis.rows() || !(weights[k] > 0)) return false;
  }
  // The rows are scattered over the whole basis (a cache miss each when serving): every line of
  // them is asked for before the first is used, so that the misses overlap.
  auto prefetch = [&](int32_t row) {
    const float* at = basis.data() + static_cast<Eigen::Index>(row) * d;
    for (int j = 0; j < d; j += 16) __builtin_prefetch(at + j);
  };
  for (int32_t i : items) prefetch(i);
  for (int32_t t : targets) {
    if (t >= 0 && t < basis.rows()) prefetch(t);
  }
  // B⁻¹ = Q diag(1 / (Λ + λ_u)) Qᵀ, so h_jᵀ B⁻¹ h_i = Σ_m ĥ_jm ĥ_im / (Λ_m + λ_u).
  const float lambda = RowRegularization(options_, n, item_factors_->rows());
  const Eigen::ArrayXf shifted = gram_eigenvalues_.array() + lambda;
  if (!(shifted.minCoeff() > 1e-6f * std::max(1.0f, shifted.maxCoeff()))) return false;
  const Eigen::VectorXf scale = shifted.inverse().sqrt().matrix();
  // Rows ĥ D^½ of the interactions (P) and the targets (T).
  Eigen::MatrixXf p(n, d);
  for (Eigen::Index k = 0; k < n; ++k) {
    p.row(k) = basis.row(items[static_cast<size_t>(k)]).cwiseProduct(scale.transpose());
  }
  Eigen::MatrixXf t(static_cast<Eigen::Index>(targets.size()), d);
  for (size_t j = 0; j < targets.size(); ++j) {
    t.row(static_cast<Eigen::Index>(j)) = basis.row(targets[j]).cwiseProduct(scale.transpose());
  }
  // A = B + Hᵀ C H. By Woodbury, c_i h_jᵀ A⁻¹ h_i = (S_tu M⁻¹)_ji with S_tu = T Pᵀ and
  // M = C⁻¹ + P Pᵀ: the terms are one n × n solve away.
  Eigen::MatrixXf m = p * p.transpose();
  for (Eigen::Index k = 0; k < n; ++k) {
    m(k, k) += 1.0f / Confidence(options_, weights[static_cast<size_t>(k)]);
  }
  const Eigen::LLT<Eigen::MatrixXf> llt(m);
  if (llt.info() != Eigen::Success) return false;
  const Eigen::MatrixXf terms = llt.solve(p * t.transpose());  // n × k: column j = target j
  for (size_t j = 0; j < targets.size(); ++j) {
    Eigen::Index top = 0;
    terms.col(static_cast<Eigen::Index>(j)).maxCoeff(&top);
    (*best)[j] = static_cast<int>(top);
  }
  return true;
}

}  // namespace affinity

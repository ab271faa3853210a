#include "affinity/models/baselines.h"

#include <omp.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace affinity {
namespace {

int Threads(int requested) { return requested > 0 ? requested : omp_get_max_threads(); }

Status BadOption(const char* field, const char* why) {
  return Status::InvalidArgument(std::string(field) + " " + why, field);
}

// Checks that `m` is a well-formed CSR matrix of non-negative finite weights with at least one
// positive entry (an interaction). O(rows + nnz).
Status CheckInteractions(const CsrMatrix& m) {
  auto bad = [](const std::string& why) {
    return Status::InvalidArgument("interaction matrix: " + why, "interactions");
  };
  if (m.rows <= 0 || m.cols <= 0) return bad("the matrix is empty");
  if (m.cols > int64_t{std::numeric_limits<int32_t>::max()})
    return bad("too many columns for int32 item ids");
  if (static_cast<int64_t>(m.indptr.size()) != m.rows + 1 || m.indptr.front() != 0 ||
      m.indptr.back() != m.nnz() || static_cast<int64_t>(m.values.size()) != m.nnz()) {
    return bad("indptr, indices and values do not agree");
  }
  for (int64_t r = 0; r < m.rows; ++r) {
    if (m.indptr[r + 1] < m.indptr[r]) return bad("indptr is not non-decreasing");
  }
  int64_t positive = 0;
  for (int64_t k = 0; k < m.nnz(); ++k) {
    if (m.indices[k] < 0 || m.indices[k] >= m.cols) return bad("a column index is out of range");
    const float v = m.values[k];
    if (!std::isfinite(v) || v < 0) return bad("weights must be finite and >= 0");
    positive += v > 0;
  }
  if (positive == 0) return bad("the matrix has no positive entries");
  return Status::Ok();
}

// The entries of `m` with a positive weight; their values set to 1 if `binarize` (X = [R > 0]).
CsrMatrix PositivePart(const CsrMatrix& m, bool binarize) {
  CsrMatrix out;
  out.rows = m.rows;
  out.cols = m.cols;
  out.indptr.reserve(static_cast<size_t>(m.rows) + 1);
  out.indptr.push_back(0);
  out.indices.reserve(m.indices.size());
  out.values.reserve(m.values.size());
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t k = m.RowBegin(r); k < m.RowEnd(r); ++k) {
      if (!(m.values[k] > 0)) continue;
      out.indices.push_back(m.indices[k]);
      out.values.push_back(binarize ? 1.0f : m.values[k]);
    }
    out.indptr.push_back(out.nnz());
  }
  return out;
}

// n_i, the number of positive entries in each column of `m`.
Eigen::VectorXf ColumnCounts(const CsrMatrix& m) {
  Eigen::VectorXf counts = Eigen::VectorXf::Zero(m.cols);
  for (int64_t k = 0; k < m.nnz(); ++k) {
    if (m.values[k] > 0) counts(m.indices[k]) += 1.0f;
  }
  return counts;
}

// Whether every user is a row of the fitted matrix (ScoreBatch's precondition; for asserts).
[[maybe_unused]] bool UsersInRange(std::span<const int32_t> users, int64_t rows) {
  return std::all_of(users.begin(), users.end(), [&](int32_t u) { return u >= 0 && u < rows; });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Popularity.

PopularityRecommender::PopularityRecommender(PopularityOptions options)
    : options_(std::move(options)) {}

Status PopularityRecommender::Fit(const CsrMatrix& interactions) {
  AFFINITY_RETURN_IF_ERROR(options_.Validate());
  AFFINITY_RETURN_IF_ERROR(CheckInteractions(interactions));
  popularity_ = ColumnCounts(interactions);
  return Status::Ok();
}

void PopularityRecommender::ScoreBatch(std::span<const int32_t> users,
                                       RowMajorMatrixXf* out) const {
  assert(popularity_.size() > 0 && "Fit must succeed before ScoreBatch");
  out->resize(static_cast<Eigen::Index>(users.size()), popularity_.size());
  out->rowwise() = popularity_.transpose();
}

// ---------------------------------------------------------------------------------------------
// Item-kNN.

Status ItemKnnOptions::Validate() const {
  if (neighbors < 1) return BadOption("neighbors", "must be >= 1");
  if (!std::isfinite(shrink) || shrink < 0) return BadOption("shrink", "must be finite and >= 0");
  if (num_threads < 0) return BadOption("num_threads", "must be >= 0");
  return Status::Ok();
}

ItemKnnRecommender::ItemKnnRecommender(ItemKnnOptions options) : options_(std::move(options)) {}

Status ItemKnnRecommender::Fit(const CsrMatrix& interactions) {
  AFFINITY_RETURN_IF_ERROR(options_.Validate());
  AFFINITY_RETURN_IF_ERROR(CheckInteractions(interactions));
  CsrMatrix x = PositivePart(interactions, /*binarize=*/true);
  const CsrMatrix xt = x.Transposed();  // items x users: row i lists U_i
  const int64_t items = x.cols;
  const size_t keep = static_cast<size_t>(options_.neighbors);
  const double shrink = options_.shrink;

  // ‖x_i‖ = √n_i for a binary column.
  std::vector<double> norm(static_cast<size_t>(items));
  for (int64_t i = 0; i < items; ++i) {
    norm[i] = std::sqrt(static_cast<double>(xt.RowEnd(i) - xt.RowBegin(i)));
  }

  using Entry = std::pair<int32_t, float>;  // (item j, sim(i, j))
  std::vector<std::vector<Entry>> rows(static_cast<size_t>(items));
#pragma omp parallel num_threads(Threads(options_.num_threads))
  {
    // Scratch per thread: dense co-occurrence counters (reset after each row through `touched`).
    std::vector<int64_t> count(static_cast<size_t>(items), 0);
    std::vector<int32_t> touched;
    std::vector<Entry> candidates;
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < items; ++i) {
      // c_ij = |U_i ∩ U_j| = Σ_{u ∈ U_i} x_uj: walk item i's users and count their items.
      touched.clear();
      for (int64_t e = xt.RowBegin(i); e < xt.RowEnd(i); ++e) {
        const int64_t u = xt.indices[e];
        for (int64_t f = x.RowBegin(u); f < x.RowEnd(u); ++f) {
          const int32_t j = x.indices[f];
          if (j != i && count[j]++ == 0) touched.push_back(j);
        }
      }
      // sim(i, j) = c_ij / (√n_i √n_j + shrink); then keep the k largest (ties: lower j).
      candidates.clear();
      for (int32_t j : touched) {
        const double sim = static_cast<double>(count[j]) / (norm[i] * norm[j] + shrink);
        candidates.emplace_back(j, static_cast<float>(sim));
        count[j] = 0;
      }
      if (candidates.size() > keep) {
        std::nth_element(candidates.begin(), candidates.begin() + static_cast<ptrdiff_t>(keep),
                         candidates.end(), [](const Entry& a, const Entry& b) {
                           return a.second > b.second ||
                                  (a.second == b.second && a.first < b.first);
                         });
        candidates.resize(keep);
      }
      std::sort(candidates.begin(), candidates.end());  // ascending item id, as CSR requires
      rows[i].assign(candidates.begin(), candidates.end());
    }
  }

  CsrMatrix s;
  s.rows = items;
  s.cols = items;
  s.indptr.reserve(static_cast<size_t>(items) + 1);
  s.indptr.push_back(0);
  for (const auto& row : rows) {
    for (const auto& [j, sim] : row) {
      s.indices.push_back(j);
      s.values.push_back(sim);
    }
    s.indptr.push_back(s.nnz());
  }
  history_ = std::move(x);
  similarities_ = std::move(s);
  return Status::Ok();
}

void ItemKnnRecommender::ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const {
  assert(history_.rows > 0 && "Fit must succeed before ScoreBatch");
  assert(UsersInRange(users, history_.rows));
  out->setZero(static_cast<Eigen::Index>(users.size()), similarities_.cols);
  // score(u, ·) = x_u S = Σ_{j ∈ I_u} S_j·: scatter the sparse rows of S at the user's items.
  for (size_t k = 0; k < users.size(); ++k) {
    float* row = out->row(static_cast<Eigen::Index>(k)).data();
    const int64_t u = users[k];
    for (int64_t e = history_.RowBegin(u); e < history_.RowEnd(u); ++e) {
      const int32_t j = history_.indices[e];
      for (int64_t f = similarities_.RowBegin(j); f < similarities_.RowEnd(j); ++f) {
        row[similarities_.indices[f]] += similarities_.values[f];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Repeat.

Status RepeatOptions::Validate() const {
  if (!std::isfinite(popularity_weight) || popularity_weight < 0) {
    return BadOption("popularity_weight", "must be finite and >= 0");
  }
  return Status::Ok();
}

RepeatRecommender::RepeatRecommender(RepeatOptions options) : options_(std::move(options)) {}

Status RepeatRecommender::Fit(const CsrMatrix& interactions) {
  AFFINITY_RETURN_IF_ERROR(options_.Validate());
  AFFINITY_RETURN_IF_ERROR(CheckInteractions(interactions));
  // ε · n_i / max_j n_j (max n ≥ 1: CheckInteractions found a positive entry).
  const Eigen::VectorXf counts = ColumnCounts(interactions);
  popularity_term_ = counts * static_cast<float>(options_.popularity_weight / counts.maxCoeff());
  weights_ = PositivePart(interactions, /*binarize=*/false);
  return Status::Ok();
}

void RepeatRecommender::ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const {
  assert(weights_.rows > 0 && "Fit must succeed before ScoreBatch");
  assert(UsersInRange(users, weights_.rows));
  // score(u, i) = ε n_i / max n + r_ui.
  out->resize(static_cast<Eigen::Index>(users.size()), popularity_term_.size());
  out->rowwise() = popularity_term_.transpose();
  for (size_t k = 0; k < users.size(); ++k) {
    float* row = out->row(static_cast<Eigen::Index>(k)).data();
    const int64_t u = users[k];
    for (int64_t e = weights_.RowBegin(u); e < weights_.RowEnd(u); ++e) {
      row[weights_.indices[e]] += weights_.values[e];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// EASE.

Status EaseOptions::Validate() const {
  if (!std::isfinite(lambda) || lambda <= 0) return BadOption("lambda", "must be finite and > 0");
  if (max_items < 1) return BadOption("max_items", "must be >= 1");
  if (num_threads < 0) return BadOption("num_threads", "must be >= 0");
  return Status::Ok();
}

EaseRecommender::EaseRecommender(EaseOptions options) : options_(std::move(options)) {}

Status EaseRecommender::Fit(const CsrMatrix& interactions) {
  AFFINITY_RETURN_IF_ERROR(options_.Validate());
  AFFINITY_RETURN_IF_ERROR(CheckInteractions(interactions));
  if (interactions.cols > options_.max_items) {
    return Status::FailedPrecondition(
        "EASE needs a dense items x items matrix: " + std::to_string(interactions.cols) +
        " items exceed max_items = " + std::to_string(options_.max_items));
  }
  CsrMatrix x = PositivePart(interactions, /*binarize=*/true);
  const CsrMatrix xt = x.Transposed();  // items x users: row i lists U_i
  const Eigen::Index n = x.cols;
  const int threads = Threads(options_.num_threads);

  // G = XᵀX + λI. Column i: G_ji = Σ_{u ∈ U_i} x_uj (+ λ if j = i), so walking item i's users
  // and their items fills column i alone; columns are independent, hence parallel. Counts are
  // exact in double.
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(n, n);  // column-major
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
  for (Eigen::Index i = 0; i < n; ++i) {
    double* column = g.col(i).data();
    for (int64_t e = xt.RowBegin(i); e < xt.RowEnd(i); ++e) {
      const int64_t u = xt.indices[e];
      for (int64_t f = x.RowBegin(u); f < x.RowEnd(u); ++f) column[x.indices[f]] += 1.0;
    }
  }
  g.diagonal().array() += options_.lambda;

  // G = LLᵀ, in place (L overwrites the lower triangle of g). ~n³/3 flops.
  Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(g);
  if (llt.info() != Eigen::Success) {
    return Status::Internal("EASE: the Cholesky factorization of XᵀX + λI failed");
  }

  // P = G⁻¹ = L⁻ᵀ L⁻¹, one block of columns E = I[:, s:s+w] at a time (blocks in parallel):
  //   forward  L Y = E:  rows < s of E are 0, so rows < s of Y are 0 and only the trailing
  //                      system L[s:, s:] Y[s:] = E[s:] is solved (Σ_blocks ~n³/3 flops);
  //   back     Lᵀ P[:, s:s+w] = Y                                   (~n³ flops in all);
  // then B_ij = -P_ij / P_jj for i ≠ j and B_jj = 0, written straight into float B, so the full
  // double P never exists (peak memory ~ 8n² for L + 4n² for B).
  RowMajorMatrixXf b(n, n);
  constexpr Eigen::Index kBlock = 256;
  const Eigen::Index num_blocks = (n + kBlock - 1) / kBlock;
  const auto& factor = llt.matrixLLT();  // a reference into g (binding a MatrixXd& would copy n²)
#pragma omp parallel num_threads(threads)
  {
    Eigen::MatrixXd rhs;  // scratch per thread: n x w
    Eigen::VectorXd scale;
#pragma omp for schedule(dynamic, 1)
    for (Eigen::Index block = 0; block < num_blocks; ++block) {
      const Eigen::Index s = block * kBlock;
      const Eigen::Index w = std::min(kBlock, n - s);
      rhs.setZero(n, w);
      for (Eigen::Index k = 0; k < w; ++k) rhs(s + k, k) = 1.0;
      factor.bottomRightCorner(n - s, n - s)
          .triangularView<Eigen::Lower>()
          .solveInPlace(rhs.bottomRows(n - s));
      llt.matrixU().solveInPlace(rhs);
      // scale_k = -1 / P_jj for j = s + k (P_jj > 0: P is positive definite).
      scale = -rhs.block(s, 0, w, w).diagonal().cwiseInverse();
      for (Eigen::Index i = 0; i < n; ++i) {
        float* b_row = b.row(i).data() + s;
        for (Eigen::Index k = 0; k < w; ++k) {
          b_row[k] = static_cast<float>(rhs(i, k) * scale(k));
        }
      }
      for (Eigen::Index k = 0; k < w; ++k) b(s + k, s + k) = 0.0f;
    }
  }
  history_ = std::move(x);
  weights_ = std::move(b);
  return Status::Ok();
}

void EaseRecommender::ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const {
  assert(history_.rows > 0 && "Fit must succeed before ScoreBatch");
  assert(UsersInRange(users, history_.rows));
  out->setZero(static_cast<Eigen::Index>(users.size()), weights_.cols());
  // score(u, ·) = x_u B = Σ_{j ∈ I_u} B_j· (rows of the row-major B: contiguous, vectorized).
  for (size_t k = 0; k < users.size(); ++k) {
    const int64_t u = users[k];
    auto row = out->row(static_cast<Eigen::Index>(k));
    for (int64_t e = history_.RowBegin(u); e < history_.RowEnd(u); ++e) {
      row += weights_.row(history_.indices[e]);
    }
  }
}

}  // namespace affinity

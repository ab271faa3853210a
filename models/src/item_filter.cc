#include "affinity/models/item_filter.h"

#include <cmath>

namespace affinity {

Status ItemFilterRecommender::Fit(const CsrMatrix& m) {
  if (m.rows == 0 || m.cols == 0 || m.nnz() == 0) {
    return Status::InvalidArgument("the interaction matrix is empty", "interactions");
  }
  // Binarize, and weight each entry 1 / sqrt(deg(u) deg(i)).
  history_ = m;
  std::fill(history_.values.begin(), history_.values.end(), 1.0f);
  std::vector<float> item_degree(m.cols, 0.0f);
  for (int32_t i : m.indices) item_degree[i] += 1;
  std::vector<Eigen::Triplet<float>> entries;
  entries.reserve(m.nnz());
  for (int64_t u = 0; u < m.rows; ++u) {
    const float user_degree = static_cast<float>(m.RowEnd(u) - m.RowBegin(u));
    for (int64_t k = m.RowBegin(u); k < m.RowEnd(u); ++k) {
      entries.emplace_back(u, m.indices[k],
                           1.0f / std::sqrt(user_degree * item_degree[m.indices[k]]));
    }
  }
  Eigen::SparseMatrix<float, Eigen::RowMajor> normalized(m.rows, m.cols);
  normalized.setFromTriplets(entries.begin(), entries.end());
  // P = R̃ᵀ R̃ (items x items).
  Eigen::SparseMatrix<float, Eigen::RowMajor> transposed = normalized.transpose();
  filter_ = transposed * normalized;
  return Status::Ok();
}

void ItemFilterRecommender::ScoreBatch(std::span<const int32_t> users,
                                       RowMajorMatrixXf* out) const {
  out->setZero(static_cast<Eigen::Index>(users.size()), filter_.cols());
  for (size_t k = 0; k < users.size(); ++k) {
    float* row = out->row(static_cast<Eigen::Index>(k)).data();
    // r_u P = Σ_{j ∈ history(u)} P_j·
    for (int64_t e = history_.RowBegin(users[k]); e < history_.RowEnd(users[k]); ++e) {
      for (Eigen::SparseMatrix<float, Eigen::RowMajor>::InnerIterator it(filter_,
                                                                         history_.indices[e]);
           it; ++it) {
        row[it.col()] += it.value();
      }
    }
  }
}

Status BlendRecommender::Fit(const CsrMatrix& interactions) {
  if (parts_.empty()) return Status::InvalidArgument("a blend needs at least one model", "parts");
  for (auto& [model, weight] : parts_) {
    if (!(weight > 0)) return Status::InvalidArgument("blend weights must be > 0", "weights");
    AFFINITY_RETURN_IF_ERROR(model->Fit(interactions));
  }
  return Status::Ok();
}

void BlendRecommender::ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const {
  RowMajorMatrixXf part;
  for (size_t p = 0; p < parts_.size(); ++p) {
    parts_[p].first->ScoreBatch(users, &part);
    // z = (s - mean) / std per user row, then weighted.
    Eigen::VectorXf mean = part.rowwise().mean();
    part.colwise() -= mean;
    Eigen::VectorXf stddev = (part.array().square().rowwise().mean().sqrt() + 1e-12f).matrix();
    part.array().colwise() *= (static_cast<float>(parts_[p].second) / stddev.array());
    if (p == 0) {
      out->swap(part);
    } else {
      *out += part;
    }
  }
}

}  // namespace affinity

// A normalized item-item graph filter (the linear filter of GF-CF, Shen et al. 2021, "How
// Powerful is Graph Convolution for Recommendation?"), and a blend of two recommenders.
//
// Filter: with R the binarized users x items matrix, D_U and D_I its user and item degrees, and
// R̃ = D_U^-1/2 R D_I^-1/2, the item-item matrix P = R̃ᵀ R̃ smooths a user's history over items
// co-consumed by similar users, discounting heavy users and popular items:
//   score(u, ·) = r_u P   (r_u the user's binary history row).
// P is sparse (its non-zeros are the co-occurring item pairs) and held in memory.
//
// Blend: score = Σ_m weight_m · z_m(u, ·), where z_m standardizes model m's scores of a user over
// all items (zero mean, unit variance), so that models on different scales mix by weight.
//
// Thread safety: Fit is not thread-safe; ScoreBatch is const and may run concurrently.
#pragma once

#include <Eigen/SparseCore>
#include <memory>
#include <string>
#include <vector>

#include "affinity/models/recommender.h"

namespace affinity {

class ItemFilterRecommender final : public Recommender {
 public:
  std::string_view name() const override { return "item_filter"; }
  // Builds P. InvalidArgument for an empty matrix.
  Status Fit(const CsrMatrix& interactions) override;
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;
  // Non-zeros of P (memory ~ 8 bytes each).
  int64_t filter_nonzeros() const { return filter_.nonZeros(); }

 private:
  CsrMatrix history_;  // binarized training rows
  Eigen::SparseMatrix<float, Eigen::RowMajor> filter_;
};

class BlendRecommender final : public Recommender {
 public:
  // `parts`: the models and their weights (> 0). Takes ownership.
  BlendRecommender(std::string name,
                   std::vector<std::pair<std::unique_ptr<Recommender>, double>> parts)
      : name_(std::move(name)), parts_(std::move(parts)) {}
  std::string_view name() const override { return name_; }
  // Fits every part; the first error is returned.
  Status Fit(const CsrMatrix& interactions) override;
  void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const override;
  Recommender& part(size_t i) { return *parts_[i].first; }

 private:
  std::string name_;
  std::vector<std::pair<std::unique_ptr<Recommender>, double>> parts_;
};

}  // namespace affinity

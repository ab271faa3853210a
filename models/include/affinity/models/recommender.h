// The interface shared by every recommendation model (iALS and the baselines), so that training,
// evaluation and serving treat them alike.
//
// Ids are the rows (users/customers) and columns (items/products) of the training matrix.
//
// Thread safety: Fit is not thread-safe; after Fit, ScoreBatch is const and may be called from
// several threads at once.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string_view>

#include "affinity/models/csr_matrix.h"
#include "affinity/status.h"

namespace affinity {

using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class Recommender {
 public:
  virtual ~Recommender() = default;

  // Short stable name: "ials", "popularity", "item_knn", "repeat", "ease".
  virtual std::string_view name() const = 0;

  // Learns from a users x items matrix of non-negative interaction weights (e.g. purchased
  // quantity). InvalidArgument for an empty matrix or bad options; FailedPrecondition if the
  // model cannot handle the size (EASE above its item limit).
  virtual Status Fit(const CsrMatrix& interactions) = 0;

  // Scores every item for each of `users` into `out` (resized to users.size() x items): higher
  // is better. Items the user interacted with in training are NOT excluded here; evaluation and
  // serving exclude them as they need. Precondition: Fit succeeded; users in range.
  virtual void ScoreBatch(std::span<const int32_t> users, RowMajorMatrixXf* out) const = 0;
};

}  // namespace affinity

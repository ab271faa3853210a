// Reading the store's events into a customers x products matrix for training and evaluation,
// in one streaming pass (events are never all held in memory as objects).
#pragma once

#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "affinity/models/csr_matrix.h"
#include "affinity/status.h"
#include "affinity/store.h"

namespace affinity {

struct InteractionOptions {
  // Only events with from <= time < to count. Default: all.
  std::optional<UnixSeconds> from;
  std::optional<UnixSeconds> to;
  // Subtract returned quantity from purchased quantity. Default true.
  bool subtract_returns = true;
  // Recency weighting: each event's quantity counts 0.5^(age / half_life_days), its age measured
  // from `reference_time` (default: `to`, else the newest event). Unset: no decay.
  std::optional<double> half_life_days;
  std::optional<UnixSeconds> reference_time;
};

// Builds a CSR matrix with rows = store.customer_id_limit(), cols = store.product_id_limit()
// (indexed by internal id), whose (c, p) weight is
//   r_cp = Σ_{purchases of p by c in the window} quantity · decay  -  (the same over returns),
// decay = 0.5^(age_days / half_life_days) (1 without a half-life); pairs with r <= 0 are left
// out. Views and carts are ignored. InvalidArgument for a half-life <= 0; the store's
// IOError/Corruption.
Result<CsrMatrix> ReadPurchaseMatrix(const Store& store, const InteractionOptions& options);

// One customer's row of that matrix from their history (as Store::CustomerHistory returns it),
// with the same window, returns and decay; the reference time defaults to `to`, else the newest
// event in `history`. Pairs (product, r) with r > 0, by product id. InvalidArgument for a
// half-life <= 0. This is what the server folds in when a customer's events change.
Result<std::vector<std::pair<ProductId, float>>> NetPurchases(std::span<const Event> history,
                                                              const InteractionOptions& options);

}  // namespace affinity

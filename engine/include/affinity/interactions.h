// Reading the store's events into a customers x products matrix for training and evaluation,
// in one streaming pass (events are never all held in memory as objects).
#pragma once

#include <optional>

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
};

// Builds a CSR matrix with rows = store.customer_id_limit(), cols = store.product_id_limit()
// (indexed by internal id), whose (c, p) weight is the purchased quantity of p by c in the window
// (minus returns); pairs with weight <= 0 are left out. Views and carts are ignored.
// Fails with the store's error (IOError, Corruption).
Result<CsrMatrix> ReadPurchaseMatrix(const Store& store, const InteractionOptions& options);

}  // namespace affinity

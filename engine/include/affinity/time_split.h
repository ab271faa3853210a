// The time-split evaluation protocol on a shop's store: train on purchases before a cutoff, test on
// what the same customers buy in the following period.
#pragma once

#include "affinity/evaluation.h"
#include "affinity/models/csr_matrix.h"
#include "affinity/status.h"
#include "affinity/store.h"

namespace affinity {

struct TimeSplitOptions {
  UnixSeconds cutoff = 0;  // train on events with time < cutoff
  int horizon_days = 30;   // test on purchases in [cutoff, cutoff + horizon_days)
  // Keep in the test set products the customer had already bought before the cutoff. Default
  // false: evaluation ranks all products with the customer's training products excluded, so only
  // new products can be hit (the discovery task). With true, the caller must not exclude them.
  bool include_repeats = false;
  Status Validate() const;  // InvalidArgument (field "horizon_days") for horizon_days < 1
};

struct TimeSplit {
  CsrMatrix train;  // customers x products (internal ids), purchased quantity minus returns
  CsrMatrix test;   // same shape; 1 for each product bought in the test window
  int64_t test_customers = 0;  // customers with >= 1 training purchase and >= 1 test product
};

// Builds the split in one pass over the store. Customers without a training purchase get no test
// row (they are cold-start cases, not this protocol's). InvalidArgument if no customer qualifies.
Result<TimeSplit> MakeTimeSplit(const Store& store, const TimeSplitOptions& options);

// The split that tunes hyperparameters for a time split `test` without looking at its test
// period: the same protocol moved back one horizon (fit on events before cutoff - horizon, hold
// out what customers first bought in the horizon before the cutoff), so the choice is made for
// the task measured, on training data only. The retraining job uses it with the cutoff at the
// end of its data. Errors as MakeTimeSplit (InvalidArgument when no customer qualifies).
Result<ValidationSplit> MakeTimeValidationSplit(const Store& store, const TimeSplitOptions& test);

}  // namespace affinity

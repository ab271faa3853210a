#include "affinity/time_split.h"

#include <algorithm>
#include <string>

#include "affinity/interactions.h"
#include "affinity/time_util.h"

namespace affinity {

Status TimeSplitOptions::Validate() const {
  if (horizon_days < 1) return Status::InvalidArgument("horizon_days must be >= 1", "horizon_days");
  return Status::Ok();
}

Result<TimeSplit> MakeTimeSplit(const Store& store, const TimeSplitOptions& options) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  TimeSplit split;
  InteractionOptions train_window;
  train_window.to = options.cutoff;
  AFFINITY_ASSIGN_OR_RETURN(split.train, ReadPurchaseMatrix(store, train_window));

  InteractionOptions test_window;
  test_window.from = options.cutoff;
  test_window.to = options.cutoff + int64_t{options.horizon_days} * 86400;
  test_window.subtract_returns = false;
  AFFINITY_ASSIGN_OR_RETURN(CsrMatrix bought, ReadPurchaseMatrix(store, test_window));

  // Keep test entries of customers with training history, minus repeats unless asked; weight 1.
  CsrBuilder builder(split.train.cols);
  const int64_t rows = std::min(split.train.rows, bought.rows);
  for (int64_t u = 0; u < rows; ++u) {
    if (split.train.RowBegin(u) == split.train.RowEnd(u)) continue;
    bool any = false;
    for (int64_t k = bought.RowBegin(u); k < bought.RowEnd(u); ++k) {
      const int32_t item = bought.indices[k];
      if (item >= split.train.cols) continue;
      if (!options.include_repeats && split.train.At(u, item) > 0) continue;
      AFFINITY_RETURN_IF_ERROR(builder.Add(u, item, 1.0f));
      any = true;
    }
    split.test_customers += any ? 1 : 0;
  }
  AFFINITY_ASSIGN_OR_RETURN(split.test, builder.Finish(split.train.rows));
  if (split.test_customers == 0) {
    return Status::InvalidArgument(
        "no customer with purchases before the cutoff bought a new product in the test period",
        "cutoff");
  }
  return split;
}

Result<ValidationSplit> MakeTimeValidationSplit(const Store& store, const TimeSplitOptions& test) {
  AFFINITY_RETURN_IF_ERROR(test.Validate());
  TimeSplitOptions earlier = test;
  earlier.cutoff -= int64_t{test.horizon_days} * 86400;
  AFFINITY_ASSIGN_OR_RETURN(TimeSplit split, MakeTimeSplit(store, earlier));
  return ValidationSplit{std::move(split.train), std::move(split.test),
                         "the " + std::to_string(test.horizon_days) + " days before " +
                             FormatTimestamp(test.cutoff) + " (fitted on the data before " +
                             FormatTimestamp(earlier.cutoff) + ")"};
}

}  // namespace affinity

// Readers for public benchmark files that are not shops (no store involved).
#pragma once

#include <string>

#include "affinity/models/csr_matrix.h"
#include "affinity/status.h"

namespace affinity {

// A train/test split in the LightGCN format: one line per user, "user item item ...", 0-based
// integer ids, space-separated (plain or .gz). Both matrices have the same shape: users and items
// = 1 + the largest id seen in either file. Weights are 1.
struct LightGcnSplit {
  CsrMatrix train;
  CsrMatrix test;
};

// One LightGCN-format file as a matrix with 1 + the largest user id rows and 1 + the largest item
// id columns. Errors as for ReadLightGcnSplit.
Result<CsrMatrix> ReadLightGcnFile(const std::string& path);

// InvalidArgument "path:line: reason" for a token that is not a non-negative integer; IOError if
// a file cannot be read. A user listed twice has the union of the items; repeated items count once.
Result<LightGcnSplit> ReadLightGcnSplit(const std::string& train_path,
                                        const std::string& test_path);

}  // namespace affinity

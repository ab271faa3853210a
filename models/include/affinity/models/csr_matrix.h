// A compressed-sparse-row matrix of float weights (customers x products) and a builder that
// fills it from triplets streamed in row order, the order in which the store scans events.
//
// Thread safety: a finished CsrMatrix is immutable and may be read concurrently; a CsrBuilder
// is not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "affinity/status.h"

namespace affinity {

struct CsrMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> indptr;   // rows + 1 offsets into indices/values
  std::vector<int32_t> indices;  // column of each entry; ascending within a row
  std::vector<float> values;     // weight of each entry

  int64_t nnz() const { return static_cast<int64_t>(indices.size()); }
  // Entries of row r are [indptr[r], indptr[r+1]).
  int64_t RowBegin(int64_t r) const { return indptr[r]; }
  int64_t RowEnd(int64_t r) const { return indptr[r + 1]; }
  // Weight at (r, c), 0 if absent (binary search in the row).
  float At(int64_t r, int32_t c) const;
  // The transpose (products x customers), in O(nnz).
  CsrMatrix Transposed() const;
};

class CsrBuilder {
 public:
  // `cols`: number of columns; every column index must be in [0, cols). Summed entries whose
  // value is <= `drop_at_or_below` are left out (e.g. purchases fully cancelled by returns).
  explicit CsrBuilder(int64_t cols, float drop_at_or_below = 0.0f)
      : cols_(cols), drop_(drop_at_or_below) {
    indptr_.push_back(0);
  }

  // Adds `value` at (row, col); entries at the same position are summed. Rows must arrive in
  // non-decreasing order (columns within a row in any order). InvalidArgument if a row goes back
  // or the column is out of range; nothing is added then.
  Status Add(int64_t row, int32_t col, float value);

  // Finishes a matrix with `rows` rows (> every row added). InvalidArgument if rows is too
  // small. The builder is left empty, ready for another matrix of the same shape.
  Result<CsrMatrix> Finish(int64_t rows);

 private:
  void CloseRowsUpTo(int64_t row);
  int64_t cols_;
  int64_t current_row_ = 0;
  std::vector<int64_t> indptr_;
  std::vector<std::pair<int32_t, float>> row_entries_;  // entries of current_row_
  std::vector<int32_t> indices_;
  std::vector<float> values_;
  float drop_ = 0.0f;
};

}  // namespace affinity

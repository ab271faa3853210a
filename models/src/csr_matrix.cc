#include "affinity/models/csr_matrix.h"

#include <algorithm>

namespace affinity {

float CsrMatrix::At(int64_t r, int32_t c) const {
  auto begin = indices.begin() + indptr[r];
  auto end = indices.begin() + indptr[r + 1];
  auto it = std::lower_bound(begin, end, c);
  return it != end && *it == c ? values[it - indices.begin()] : 0.0f;
}

CsrMatrix CsrMatrix::Transposed() const {
  CsrMatrix t;
  t.rows = cols;
  t.cols = rows;
  t.indptr.assign(cols + 1, 0);
  for (int32_t c : indices) ++t.indptr[c + 1];
  for (int64_t c = 0; c < cols; ++c) t.indptr[c + 1] += t.indptr[c];
  t.indices.resize(indices.size());
  t.values.resize(values.size());
  std::vector<int64_t> next(t.indptr.begin(), t.indptr.end() - 1);
  // Rows are visited in ascending order, so each transposed row comes out sorted.
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      int64_t dst = next[indices[k]]++;
      t.indices[dst] = static_cast<int32_t>(r);
      t.values[dst] = values[k];
    }
  }
  return t;
}

Status CsrBuilder::Add(int64_t row, int32_t col, float value) {
  if (row < current_row_) {
    return Status::InvalidArgument("rows must be added in non-decreasing order", "row");
  }
  if (col < 0 || col >= cols_) return Status::InvalidArgument("column out of range", "col");
  if (row > current_row_) CloseRowsUpTo(row);
  row_entries_.emplace_back(col, value);
  return Status::Ok();
}

void CsrBuilder::CloseRowsUpTo(int64_t row) {
  std::sort(row_entries_.begin(), row_entries_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < row_entries_.size();) {
    int32_t col = row_entries_[i].first;
    float sum = 0;
    for (; i < row_entries_.size() && row_entries_[i].first == col; ++i) {
      sum += row_entries_[i].second;
    }
    if (sum > drop_) {
      indices_.push_back(col);
      values_.push_back(sum);
    }
  }
  row_entries_.clear();
  for (; current_row_ < row; ++current_row_) {
    indptr_.push_back(static_cast<int64_t>(indices_.size()));
  }
}

Result<CsrMatrix> CsrBuilder::Finish(int64_t rows) {
  if (rows < current_row_ + (row_entries_.empty() ? 0 : 1)) {
    return Status::InvalidArgument("rows is smaller than the largest row added", "rows");
  }
  CloseRowsUpTo(rows);
  CsrMatrix m;
  m.rows = rows;
  m.cols = cols_;
  m.indptr = std::move(indptr_);
  m.indices = std::move(indices_);
  m.values = std::move(values_);
  *this = CsrBuilder(cols_, drop_);
  return m;
}

}  // namespace affinity

#include "affinity/models/csr_matrix.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace affinity {
namespace {

CsrMatrix FinishOk(CsrBuilder& builder, int64_t rows) {
  auto m = builder.Finish(rows);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : CsrMatrix{};
}

void ExpectSameMatrix(const CsrMatrix& want, const CsrMatrix& got) {
  EXPECT_EQ(want.rows, got.rows);
  EXPECT_EQ(want.cols, got.cols);
  EXPECT_EQ(want.indptr, got.indptr);
  EXPECT_EQ(want.indices, got.indices);
  EXPECT_EQ(want.values, got.values);
}

// The 3 x 4 matrix
//   [0 1 0 2]
//   [3 0 0 0]
//   [0 4 5 0]
CsrMatrix Small() {
  CsrBuilder b(4);
  EXPECT_TRUE(b.Add(0, 3, 2).ok());
  EXPECT_TRUE(b.Add(0, 1, 1).ok());
  EXPECT_TRUE(b.Add(1, 0, 3).ok());
  EXPECT_TRUE(b.Add(2, 2, 5).ok());
  EXPECT_TRUE(b.Add(2, 1, 4).ok());
  return FinishOk(b, 3);
}

TEST(CsrBuilder, BuildsRowMajorArrays) {
  CsrMatrix m = Small();
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 4);
  EXPECT_EQ(m.nnz(), 5);
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 2, 3, 5}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{1, 3, 0, 1, 2}));
  EXPECT_EQ(m.values, (std::vector<float>{1, 2, 3, 4, 5}));
  EXPECT_EQ(m.RowBegin(2), 3);
  EXPECT_EQ(m.RowEnd(2), 5);
}

TEST(CsrBuilder, SumsDuplicates) {
  CsrBuilder b(3);
  ASSERT_TRUE(b.Add(0, 1, 1.5f).ok());
  ASSERT_TRUE(b.Add(0, 2, 1).ok());
  ASSERT_TRUE(b.Add(0, 1, 2).ok());
  ASSERT_TRUE(b.Add(0, 1, 0.25f).ok());
  ASSERT_TRUE(b.Add(1, 1, 7).ok());  // same column, next row: not merged
  CsrMatrix m = FinishOk(b, 2);
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{1, 2, 1}));
  EXPECT_EQ(m.values, (std::vector<float>{3.75f, 1, 7}));
}

TEST(CsrBuilder, SortsColumnsWithinRows) {
  CsrBuilder b(10);
  for (int32_t c : {9, 0, 5, 3, 7}) ASSERT_TRUE(b.Add(0, c, static_cast<float>(c + 1)).ok());
  for (int32_t c : {4, 2}) ASSERT_TRUE(b.Add(1, c, static_cast<float>(c + 1)).ok());
  CsrMatrix m = FinishOk(b, 2);
  EXPECT_EQ(m.indices, (std::vector<int32_t>{0, 3, 5, 7, 9, 2, 4}));
  EXPECT_EQ(m.values, (std::vector<float>{1, 4, 6, 8, 10, 3, 5}));
}

TEST(CsrBuilder, SkipsEmptyRows) {
  CsrBuilder b(2);
  ASSERT_TRUE(b.Add(1, 0, 1).ok());
  ASSERT_TRUE(b.Add(1, 1, 2).ok());
  ASSERT_TRUE(b.Add(4, 1, 3).ok());
  CsrMatrix m = FinishOk(b, 7);
  EXPECT_EQ(m.rows, 7);
  // Rows 0, 2, 3, 5, 6 are empty.
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 0, 2, 2, 2, 3, 3, 3}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_EQ(m.values, (std::vector<float>{1, 2, 3}));
}

TEST(CsrBuilder, DropsNonPositiveSumsByDefault) {
  CsrBuilder b(4);
  ASSERT_TRUE(b.Add(0, 0, 2).ok());
  ASSERT_TRUE(b.Add(0, 0, -2).ok());  // cancels to 0: dropped
  ASSERT_TRUE(b.Add(0, 1, -1).ok());  // negative: dropped
  ASSERT_TRUE(b.Add(0, 2, 3).ok());
  ASSERT_TRUE(b.Add(0, 2, -1).ok());  // 2: kept
  ASSERT_TRUE(b.Add(0, 3, 0).ok());   // 0: dropped
  ASSERT_TRUE(b.Add(1, 1, -5).ok());  // a row whose every entry is dropped
  CsrMatrix m = FinishOk(b, 2);
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{2}));
  EXPECT_EQ(m.values, (std::vector<float>{2}));
}

TEST(CsrBuilder, DropsSumsAtOrBelowTheThreshold) {
  CsrBuilder b(4, /*drop_at_or_below=*/1.0f);
  ASSERT_TRUE(b.Add(0, 0, 1.0f).ok());  // == threshold: dropped
  ASSERT_TRUE(b.Add(0, 1, 0.5f).ok());
  ASSERT_TRUE(b.Add(0, 1, 1.0f).ok());   // 1.5: kept
  ASSERT_TRUE(b.Add(0, 2, 0.75f).ok());  // below: dropped
  ASSERT_TRUE(b.Add(0, 3, 1.25f).ok());  // kept
  CsrMatrix m = FinishOk(b, 1);
  EXPECT_EQ(m.indices, (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(m.values, (std::vector<float>{1.5f, 1.25f}));
}

TEST(CsrBuilder, NegativeThresholdKeepsZeros) {
  CsrBuilder b(2, /*drop_at_or_below=*/-1.0f);
  ASSERT_TRUE(b.Add(0, 0, 0.0f).ok());
  ASSERT_TRUE(b.Add(0, 1, -1.0f).ok());
  CsrMatrix m = FinishOk(b, 1);
  EXPECT_EQ(m.indices, (std::vector<int32_t>{0}));
  EXPECT_EQ(m.values, (std::vector<float>{0.0f}));
}

TEST(CsrBuilder, RejectsGoingBackARowAndAddsNothing) {
  CsrBuilder b(3);
  ASSERT_TRUE(b.Add(2, 0, 1).ok());
  Status s = b.Add(1, 1, 5);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.field(), "row");
  // The same row again is fine.
  ASSERT_TRUE(b.Add(2, 2, 1).ok());
  CsrMatrix m = FinishOk(b, 3);
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 0, 0, 2}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(m.At(1, 1), 0.0f);
}

TEST(CsrBuilder, RejectsOutOfRangeColumnsAndAddsNothing) {
  CsrBuilder b(3);
  ASSERT_TRUE(b.Add(0, 1, 1).ok());
  for (int32_t col : {-1, 3, 1000}) {
    Status s = b.Add(0, col, 9);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << col;
    EXPECT_EQ(s.field(), "col") << col;
  }
  // A rejected Add on a later row must not advance the current row either.
  EXPECT_FALSE(b.Add(5, 3, 1).ok());
  ASSERT_TRUE(b.Add(1, 2, 4).ok());
  CsrMatrix m = FinishOk(b, 2);  // 2 rows suffice: row 5 was never added
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(m.values, (std::vector<float>{1, 4}));
}

TEST(CsrBuilder, FinishWithTooFewRowsFails) {
  CsrBuilder b(2);
  ASSERT_TRUE(b.Add(0, 0, 1).ok());
  ASSERT_TRUE(b.Add(3, 1, 2).ok());
  for (int64_t rows : {-1, 0, 1, 3}) {
    auto m = b.Finish(rows);
    ASSERT_FALSE(m.ok()) << rows;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << rows;
  }
  // The failed calls left the builder intact.
  CsrMatrix m = FinishOk(b, 4);
  EXPECT_EQ(m.indptr, (std::vector<int64_t>{0, 1, 1, 1, 2}));
  EXPECT_EQ(m.values, (std::vector<float>{1, 2}));
}

TEST(CsrBuilder, EmptyBuilder) {
  CsrBuilder b(5);
  EXPECT_FALSE(b.Finish(-1).ok());
  CsrMatrix none = FinishOk(b, 0);
  EXPECT_EQ(none.rows, 0);
  EXPECT_EQ(none.cols, 5);
  EXPECT_EQ(none.indptr, (std::vector<int64_t>{0}));
  EXPECT_EQ(none.nnz(), 0);
  CsrMatrix zeros = FinishOk(b, 3);
  EXPECT_EQ(zeros.indptr, (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(zeros.nnz(), 0);
}

TEST(CsrBuilder, IsReusableAfterFinish) {
  CsrBuilder b(3, 0.5f);
  ASSERT_TRUE(b.Add(4, 2, 1).ok());
  CsrMatrix first = FinishOk(b, 5);
  EXPECT_EQ(first.nnz(), 1);
  // Row 0 again: the builder starts over with the same shape and threshold.
  ASSERT_TRUE(b.Add(0, 1, 2).ok());
  ASSERT_TRUE(b.Add(0, 2, 0.5f).ok());  // dropped by the kept threshold
  EXPECT_FALSE(b.Add(0, 3, 1).ok());    // cols kept
  CsrMatrix second = FinishOk(b, 1);
  EXPECT_EQ(second.cols, 3);
  EXPECT_EQ(second.indptr, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(second.indices, (std::vector<int32_t>{1}));
  EXPECT_EQ(second.values, (std::vector<float>{2}));
}

TEST(CsrMatrix, AtReadsPresentAndAbsentEntries) {
  CsrMatrix m = Small();
  const float want[3][4] = {{0, 1, 0, 2}, {3, 0, 0, 0}, {0, 4, 5, 0}};
  for (int64_t r = 0; r < 3; ++r) {
    for (int32_t c = 0; c < 4; ++c) EXPECT_EQ(m.At(r, c), want[r][c]) << r << "," << c;
  }
}

TEST(CsrMatrix, TransposedSmall) {
  // Transpose of Small():
  //   [0 3 0]
  //   [1 0 4]
  //   [0 0 5]
  //   [2 0 0]
  CsrMatrix t = Small().Transposed();
  EXPECT_EQ(t.rows, 4);
  EXPECT_EQ(t.cols, 3);
  EXPECT_EQ(t.indptr, (std::vector<int64_t>{0, 1, 3, 4, 5}));
  EXPECT_EQ(t.indices, (std::vector<int32_t>{1, 0, 2, 2, 0}));
  EXPECT_EQ(t.values, (std::vector<float>{3, 1, 4, 5, 2}));
}

TEST(CsrMatrix, TransposedWithEmptyRowsAndColumns) {
  // 3 x 3, only (2, 0) = 7: the transpose has only (0, 2) = 7.
  CsrBuilder b(3);
  ASSERT_TRUE(b.Add(2, 0, 7).ok());
  CsrMatrix t = FinishOk(b, 3).Transposed();
  EXPECT_EQ(t.indptr, (std::vector<int64_t>{0, 1, 1, 1}));
  EXPECT_EQ(t.indices, (std::vector<int32_t>{2}));
  EXPECT_EQ(t.values, (std::vector<float>{7}));
  // No entries at all; non-square.
  CsrBuilder e(2);
  CsrMatrix et = FinishOk(e, 3).Transposed();
  EXPECT_EQ(et.rows, 2);
  EXPECT_EQ(et.cols, 3);
  EXPECT_EQ(et.indptr, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(et.nnz(), 0);
}

TEST(CsrMatrix, TransposingTwiceGivesTheOriginal) {
  CsrMatrix small = Small();
  ExpectSameMatrix(small, small.Transposed().Transposed());

  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> col(0, 29);
  std::uniform_int_distribution<int> per_row(0, 6);
  CsrBuilder b(30);
  for (int64_t r = 0; r < 50; ++r) {
    int n = per_row(rng);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(b.Add(r, col(rng), static_cast<float>(i + 1)).ok());
  }
  CsrMatrix m = FinishOk(b, 55);
  CsrMatrix t = m.Transposed();
  EXPECT_EQ(t.rows, 30);
  EXPECT_EQ(t.cols, 55);
  EXPECT_EQ(t.nnz(), m.nnz());
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int32_t c = 0; c < 30; ++c) ASSERT_EQ(m.At(r, c), t.At(c, static_cast<int32_t>(r)));
  }
  // Each transposed row is sorted.
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t k = t.RowBegin(r) + 1; k < t.RowEnd(r); ++k) {
      EXPECT_LT(t.indices[k - 1], t.indices[k]);
    }
  }
  ExpectSameMatrix(m, t.Transposed());
}

}  // namespace
}  // namespace affinity

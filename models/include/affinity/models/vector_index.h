// VectorIndex: top-k maximum-inner-product search over the rows of a matrix, behind one adapter
// over Faiss (which throws; nothing here does).
//
// Kinds (VectorIndexOptions::kind; kAuto picks by size):
//   exact  Faiss IndexFlatIP: every vector scored, results exact. Cost per query n·d flops.
//   hnsw   Faiss IndexHNSWFlat on inner-product similarity (graph search); per-query cost
//          ~ ef_search·M·d flops. Good for k up to a few hundred.
//   ivf    k-means cells (Faiss's IVF training and assignment), nprobe of nlist cells scanned
//          per query; serves a large k (an audience of thousands) in one pass. k-means cells
//          follow L2 distance, not the inner product, so the rows are clustered after the
//          MIPS-to-NN reduction of Bachrach et al. (2014): row x becomes [x, sqrt(M² - ‖x‖²)]
//          with M the largest row norm and a query q becomes [q, 0], so ‖q' - x'‖² = ‖q‖² + M² -
//          2 q·x and the nearest row is the one with the largest q·x. Each cell's rows are kept
//          contiguous as 8-bit codes per dimension over the rows' range (a quarter of the
//          memory traffic of a float scan, which is what a query waits on; the centroids
//          likewise); the best k + max(16, k/4) of the scan are re-scored in float.
// Candidates of every kind are re-scored exactly (q·x from the original rows) before they are
// returned. Scans use kernels chosen at run time, four rows per pass: float rows with AVX2/FMA;
// 8-bit codes with AVX-512 VNNI (the query rounded to signed bytes, 64 byte products per
// instruction) or else AVX2/FMA on the float query; and a portable fallback for each. The top-k
// selection of a scan compares 16 scores at a time with AVX-512, else 4 with SSE2.
// AFFINITY_NO_AVX512=1 in the environment turns the AVX-512 kernels off.
// (Measured choices: benchmarks/bench_search.cc; README "Serving".)
//
// Rows that are entirely zero (customers or products the model has not learned) are not indexed.
// Build measures recall@10 of an approximate index against exact search on sample queries.
//
// Thread safety: immutable after Build; Search may be called from any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "affinity/models/recommender.h"
#include "affinity/status.h"

namespace affinity {

enum class VectorIndexKind { kAuto, kExact, kHnsw, kIvf };

// "auto", "exact", "hnsw", "ivf"; ParseVectorIndexKind: InvalidArgument for anything else.
std::string_view VectorIndexKindName(VectorIndexKind kind);
Result<VectorIndexKind> ParseVectorIndexKind(std::string_view name);

struct VectorIndexOptions {
  // Which index; kAuto: exact up to `exact_limit` rows, else `approximate`. Default kAuto.
  VectorIndexKind kind = VectorIndexKind::kAuto;
  // The largest set searched exactly under kAuto. Default 50,000 (an exact query then costs
  // ~3 M flops, about 1 ms on one core at 64 factors).
  int64_t exact_limit = 50'000;
  // The approximate kind kAuto picks above `exact_limit`. Default kHnsw.
  VectorIndexKind approximate = VectorIndexKind::kHnsw;
  // HNSW: graph degree M (default 32), build breadth (default 80), search breadth (default 128;
  // a query for k results always searches at least k + 16 wide).
  int hnsw_m = 32;
  int hnsw_ef_construction = 80;
  int hnsw_ef_search = 128;
  // IVF: cells (0: 4·sqrt(n) within 1..1024; more cells cost k-means time at build) and cells
  // scanned per query (default 16); a query for k results scans at least ivf_scan_factor·k rows
  // (default 10), so a large k keeps its recall. A scan reads (d+1)·4 bytes per row from memory:
  // at 1M customers an audience query is bound by memory bandwidth, not arithmetic.
  int ivf_nlist = 0;
  int ivf_nprobe = 16;
  double ivf_scan_factor = 10;
  // Sample queries for the recall measurement at build time (0: do not measure). Default 200.
  int recall_queries = 200;
  uint64_t seed = 7;

  // InvalidArgument naming the field for non-positive sizes or an approximate kind of kAuto.
  Status Validate() const;
};

class VectorIndex {
 public:
  struct Hit {
    int64_t row = 0;  // row of the indexed matrix
    float score = 0;  // exact inner product with the query
  };

  // Indexes the non-zero rows of `vectors` (copied). `queries` (rows of the same width) are the
  // sample for the recall measurement, e.g. user vectors for an item index; null or empty: the
  // indexed rows themselves. InvalidArgument for bad options or 2^32 or more non-zero rows;
  // Internal if Faiss fails.
  static Result<std::unique_ptr<VectorIndex>> Build(const RowMajorMatrixXf& vectors,
                                                    const VectorIndexOptions& options,
                                                    const RowMajorMatrixXf* queries = nullptr);
  ~VectorIndex();

  // The top `k` rows by inner product with `query` (factors() floats), best first, at most
  // size() of them. InvalidArgument for k < 0; Internal if Faiss fails.
  Result<std::vector<Hit>> Search(const float* query, int64_t k) const;
  // The rows of the top `k` as Search finds them, for candidate generation: an IVF index ranks
  // its rows by their 8-bit codes only and skips Search's exact re-scoring of the best k +
  // k/4 (thousands of scattered rows for a large k), so near-ties can differ from Search's
  // answer. Best first by that ranking; other kinds answer as Search. Errors as Search.
  Result<std::vector<int64_t>> SearchRows(const float* query, int64_t k) const;

  VectorIndexKind kind() const { return kind_; }
  int64_t size() const { return static_cast<int64_t>(rows_.size()); }
  int factors() const { return factors_; }
  // Recall@10 of Search against exact search over the sample queries: 1 for exact, NaN if not
  // measured.
  double recall_at_10() const { return recall_at_10_; }
  double build_seconds() const { return build_seconds_; }

 private:
  VectorIndex() = default;
  // IVF: the positions of the best `want` rows by their codes among the cells probed for k
  // rows, best first (as (code score, position)).
  std::vector<std::pair<float, int64_t>> ScanCells(const float* query, int64_t k,
                                                   size_t want) const;
  struct Faiss;
  std::unique_ptr<Faiss> faiss_;
  VectorIndexKind kind_ = VectorIndexKind::kExact;
  int factors_ = 0;
  std::vector<int64_t> rows_;  // index position -> row of the original matrix
  RowMajorMatrixXf vectors_;   // the indexed rows, for exact re-scoring
  VectorIndexOptions options_;
  // IVF: nlist_ cells. Cell c holds the positions cell_pos_[cell_start_[c] .. cell_start_[c+1])
  // and, in the same order, their rows as 8-bit codes (d per row: x_j ≈ min_j + code_step_j ·
  // code) in cell_codes_; centroid_codes_ are the cells' k-means centres (first d coordinates,
  // 8-bit codes in the same way with centroid_step_) and centroid_norms2_ their squared norms with
  // the augmented coordinate.
  int64_t nlist_ = 1;
  std::vector<uint8_t> centroid_codes_;
  Eigen::VectorXf centroid_step_;
  Eigen::VectorXf centroid_norms2_;
  std::vector<int64_t> cell_start_;
  std::vector<int64_t> cell_pos_;
  std::vector<uint8_t> cell_codes_;
  Eigen::VectorXf code_step_;  // per dimension: a code's unit (codes count from the minimum)
  double recall_at_10_ = 1;
  double build_seconds_ = 0;
};

}  // namespace affinity

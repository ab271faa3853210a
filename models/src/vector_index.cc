#include "affinity/models/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/utils/Heap.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <random>
#include <unordered_set>

namespace affinity {

struct VectorIndex::Faiss {
  std::unique_ptr<faiss::IndexFlat> quantizer;  // IVF's coarse quantizer (owned here)
  std::unique_ptr<faiss::Index> index;
  Eigen::VectorXf centroid_norms2;  // IVF: ‖c‖² of each cell's centroid
};

namespace {

using FaissIdx = faiss::Index::idx_t;

// a·b over d floats. Debian builds Faiss for the x86-64 baseline, where its distance kernels are
// scalar loops; this one is cloned for Haswell (AVX2 + FMA) and picked at load time, and is what
// every query spends its time in.
__attribute__((target_clones("arch=haswell", "default"))) float Dot(const float* a, const float* b,
                                                                    int d) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

// HNSW minimizes distances: the inner product enters negated (as Faiss's own IP search does).
class NegativeInnerProduct final : public faiss::DistanceComputer {
 public:
  NegativeInnerProduct(const float* base, int d) : base_(base), d_(d) {}
  void set_query(const float* x) override { query_ = x; }
  float operator()(idx_t i) override { return -Dot(query_, base_ + i * d_, d_); }
  float symmetric_dis(idx_t i, idx_t j) override {
    return -Dot(base_ + i * d_, base_ + j * d_, d_);
  }

 private:
  const float* base_;
  const float* query_ = nullptr;
  int d_;
};

// The best k of a stream of (score, position): a min-heap on score.
class Best {
 public:
  explicit Best(size_t k) : k_(k) { heap_.reserve(k); }
  void Push(float score, int64_t pos) {
    if (heap_.size() < k_) {
      heap_.emplace_back(score, pos);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
    } else if (score > heap_.front().first) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
      heap_.back() = {score, pos};
      std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
    }
  }
  std::vector<std::pair<float, int64_t>>& items() { return heap_; }

 private:
  size_t k_;
  std::vector<std::pair<float, int64_t>> heap_;
};

// The exact top k of `query` against `vectors` (Eigen GEMV + partial sort), for the recall check.
std::vector<int64_t> ExactTop(const RowMajorMatrixXf& vectors, const float* query, int64_t k) {
  const Eigen::Map<const Eigen::VectorXf> q(query, vectors.cols());
  const Eigen::VectorXf scores = vectors * q;
  std::vector<int64_t> order(static_cast<size_t>(scores.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  k = std::min<int64_t>(k, scores.size());
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return scores(a) > scores(b); });
  order.resize(static_cast<size_t>(k));
  return order;
}

}  // namespace

std::string_view VectorIndexKindName(VectorIndexKind kind) {
  switch (kind) {
    case VectorIndexKind::kAuto:
      return "auto";
    case VectorIndexKind::kExact:
      return "exact";
    case VectorIndexKind::kHnsw:
      return "hnsw";
    case VectorIndexKind::kIvf:
      return "ivf";
  }
  return "?";
}

Result<VectorIndexKind> ParseVectorIndexKind(std::string_view name) {
  for (auto kind : {VectorIndexKind::kAuto, VectorIndexKind::kExact, VectorIndexKind::kHnsw,
                    VectorIndexKind::kIvf}) {
    if (name == VectorIndexKindName(kind)) return kind;
  }
  return Status::InvalidArgument("index kind must be auto, exact, hnsw or ivf", "kind");
}

Status VectorIndexOptions::Validate() const {
  auto bad = [](const char* field, const char* what) {
    return Status::InvalidArgument(std::string(field) + " " + what, field);
  };
  if (exact_limit < 0) return bad("exact_limit", "must be >= 0");
  if (approximate == VectorIndexKind::kAuto) return bad("approximate", "must name a kind");
  if (hnsw_m < 2) return bad("hnsw_m", "must be >= 2");
  if (hnsw_ef_construction < 1) return bad("hnsw_ef_construction", "must be >= 1");
  if (hnsw_ef_search < 1) return bad("hnsw_ef_search", "must be >= 1");
  if (ivf_nlist < 0) return bad("ivf_nlist", "must be >= 0");
  if (ivf_nprobe < 1) return bad("ivf_nprobe", "must be >= 1");
  if (!(ivf_scan_factor >= 0)) return bad("ivf_scan_factor", "must be >= 0");
  if (recall_queries < 0) return bad("recall_queries", "must be >= 0");
  return Status::Ok();
}

VectorIndex::~VectorIndex() = default;

Result<std::unique_ptr<VectorIndex>> VectorIndex::Build(const RowMajorMatrixXf& vectors,
                                                        const VectorIndexOptions& options,
                                                        const RowMajorMatrixXf* queries) {
  AFFINITY_RETURN_IF_ERROR(options.Validate());
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<VectorIndex> out(new VectorIndex());
  out->options_ = options;
  out->factors_ = static_cast<int>(vectors.cols());
  const int d = out->factors_;
  for (Eigen::Index r = 0; r < vectors.rows(); ++r) {
    if (vectors.row(r).squaredNorm() > 0) out->rows_.push_back(r);
  }
  const auto n = static_cast<int64_t>(out->rows_.size());
  out->vectors_.resize(n, d);
  for (int64_t i = 0; i < n; ++i) out->vectors_.row(i) = vectors.row(out->rows_[i]);

  VectorIndexKind kind = options.kind;
  if (kind == VectorIndexKind::kAuto) {
    kind = n <= options.exact_limit ? VectorIndexKind::kExact : options.approximate;
  }
  out->kind_ = kind;
  out->faiss_ = std::make_unique<Faiss>();
  try {
    if (kind == VectorIndexKind::kExact) {
      // Nothing to build: a query scans the rows (Search).
    } else if (kind == VectorIndexKind::kHnsw) {
      // The graph is built on inner-product similarity directly (Faiss's HNSW supports it).
      auto hnsw =
          std::make_unique<faiss::IndexHNSWFlat>(d, options.hnsw_m, faiss::METRIC_INNER_PRODUCT);
      hnsw->hnsw.efConstruction = options.hnsw_ef_construction;
      hnsw->add(n, out->vectors_.data());
      out->faiss_->index = std::move(hnsw);
    } else {
      // The MIPS-to-NN reduction: x' = [x, sqrt(M² - ‖x‖²)], then L2 k-means cells.
      const Eigen::VectorXf norms2 = out->vectors_.rowwise().squaredNorm();
      const float max_norm2 = n > 0 ? norms2.maxCoeff() : 0.0f;
      RowMajorMatrixXf augmented(n, d + 1);
      augmented.leftCols(d) = out->vectors_;
      augmented.col(d) = (max_norm2 - norms2.array()).max(0.0f).sqrt().matrix();
      const int64_t nlist_wanted =
          options.ivf_nlist > 0
              ? options.ivf_nlist
              : std::clamp<int64_t>(static_cast<int64_t>(4 * std::sqrt(static_cast<double>(n))), 1,
                                    1024);
      // k-means needs at least one row per cell.
      const int64_t cells = std::max<int64_t>(1, std::min<int64_t>(nlist_wanted, n));
      out->nlist_ = cells;
      out->faiss_->quantizer = std::make_unique<faiss::IndexFlatL2>(d + 1);
      auto ivf = std::make_unique<faiss::IndexIVFFlat>(out->faiss_->quantizer.get(), d + 1,
                                                       static_cast<size_t>(cells));
      // k-means on a sample of at most 64 rows per cell (Faiss's own cap is 256).
      const int64_t sample = std::min<int64_t>(n, 64 * cells);
      ivf->cp.max_points_per_centroid = 64;
      ivf->cp.seed = static_cast<int>(options.seed);
      ivf->verbose = false;
      if (n > 0) {
        RowMajorMatrixXf train(sample, d + 1);
        std::vector<int64_t> pick(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) pick[static_cast<size_t>(i)] = i;
        std::mt19937_64 rng(options.seed);
        std::shuffle(pick.begin(), pick.end(), rng);
        for (int64_t i = 0; i < sample; ++i) train.row(i) = augmented.row(pick[i]);
        ivf->train(sample, train.data());
        ivf->add(n, augmented.data());
      }
      if (n > 0) {
        const Eigen::Map<const RowMajorMatrixXf> centroids(out->faiss_->quantizer->get_xb(), cells,
                                                           d + 1);
        out->faiss_->centroid_norms2 = centroids.rowwise().squaredNorm();
      } else {
        out->nlist_ = 0;
      }
      out->faiss_->index = std::move(ivf);
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("faiss: ") + e.what());
  }
  out->build_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Recall@10 against exact search.
  if (kind == VectorIndexKind::kExact) {
    out->recall_at_10_ = 1.0;
  } else if (options.recall_queries == 0 || n == 0) {
    out->recall_at_10_ = std::numeric_limits<double>::quiet_NaN();
  } else {
    const RowMajorMatrixXf& pool = queries != nullptr && queries->rows() > 0 && queries->cols() == d
                                       ? *queries
                                       : out->vectors_;
    std::mt19937_64 rng(options.seed + 1);
    std::uniform_int_distribution<Eigen::Index> pick(0, pool.rows() - 1);
    int64_t found = 0, wanted = 0;
    for (int q = 0; q < options.recall_queries; ++q) {
      const Eigen::Index row = pick(rng);
      if (pool.row(row).squaredNorm() == 0) continue;
      const Eigen::VectorXf query = pool.row(row).transpose();
      const std::vector<int64_t> truth = ExactTop(out->vectors_, query.data(), 10);
      AFFINITY_ASSIGN_OR_RETURN(std::vector<Hit> hits, out->Search(query.data(), 10));
      std::unordered_set<int64_t> got;
      for (const Hit& h : hits) got.insert(h.row);
      for (int64_t t : truth) found += got.count(out->rows_[static_cast<size_t>(t)]);
      wanted += static_cast<int64_t>(truth.size());
    }
    out->recall_at_10_ = wanted > 0 ? static_cast<double>(found) / static_cast<double>(wanted)
                                    : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

Result<std::vector<VectorIndex::Hit>> VectorIndex::Search(const float* query, int64_t k) const {
  if (k < 0) return Status::InvalidArgument("k must be >= 0", "k");
  std::vector<Hit> hits;
  k = std::min<int64_t>(k, size());
  if (k == 0) return hits;
  const int d = factors_;
  const float* base = vectors_.data();
  Best best(static_cast<size_t>(k));
  try {
    if (kind_ == VectorIndexKind::kExact) {
      for (int64_t i = 0; i < size(); ++i) best.Push(Dot(query, base + i * d, d), i);
    } else if (kind_ == VectorIndexKind::kHnsw) {
      // Faiss's graph walk with this file's distance kernel, and one visited-table per thread
      // (Faiss's own search allocates one of `size()` bytes per query).
      const auto& index = static_cast<const faiss::IndexHNSWFlat&>(*faiss_->index);
      thread_local std::unique_ptr<faiss::VisitedTable> visited;
      if (!visited || visited->visited.size() < static_cast<size_t>(index.ntotal)) {
        visited = std::make_unique<faiss::VisitedTable>(static_cast<int>(index.ntotal));
      }
      NegativeInnerProduct distance(base, d);
      distance.set_query(query);
      std::vector<float> distances(static_cast<size_t>(k));
      std::vector<FaissIdx> labels(static_cast<size_t>(k));
      faiss::maxheap_heapify(static_cast<size_t>(k), distances.data(), labels.data());
      faiss::SearchParametersHNSW params;
      params.efSearch = static_cast<int>(std::max<int64_t>(options_.hnsw_ef_search, k + 16));
      index.hnsw.search(distance, static_cast<int>(k), labels.data(), distances.data(), *visited,
                        &params);
      visited->advance();
      for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] >= 0) best.Push(-distances[i], labels[i]);
      }
    } else {
      // Cells: the nprobe centroids nearest to q' = [q, 0] in L2, i.e. with the largest
      // q·c - ‖c‖²/2 (the augmented coordinate of q' is 0). Then every row of those cells is
      // scored by q·x (its first d coordinates).
      const auto& index = static_cast<const faiss::IndexIVFFlat&>(*faiss_->index);
      const double cell = static_cast<double>(size()) / static_cast<double>(nlist_);
      const auto nprobe = static_cast<size_t>(std::min<double>(
          static_cast<double>(nlist_),
          std::max<double>(options_.ivf_nprobe,
                           std::ceil(options_.ivf_scan_factor * static_cast<double>(k) / cell))));
      const float* centroids = faiss_->quantizer->get_xb();
      Best cells(nprobe);
      for (int64_t c = 0; c < nlist_; ++c) {
        cells.Push(Dot(query, centroids + c * (d + 1), d) - 0.5f * faiss_->centroid_norms2(c), c);
      }
      for (const auto& [unused, c] : cells.items()) {
        const size_t n = index.invlists->list_size(static_cast<size_t>(c));
        const auto* codes =
            reinterpret_cast<const float*>(index.invlists->get_codes(static_cast<size_t>(c)));
        const FaissIdx* ids = index.invlists->get_ids(static_cast<size_t>(c));
        for (size_t j = 0; j < n; ++j) best.Push(Dot(query, codes + j * (d + 1), d), ids[j]);
      }
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("faiss: ") + e.what());
  }
  auto& found = best.items();
  std::sort(found.begin(), found.end(), std::greater<>());
  hits.reserve(found.size());
  for (const auto& [score, pos] : found) hits.push_back({rows_[static_cast<size_t>(pos)], score});
  return hits;
}

}  // namespace affinity

#include "affinity/models/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <random>
#include <unordered_set>

namespace affinity {

struct VectorIndex::Faiss {
  std::unique_ptr<faiss::IndexFlat> quantizer;  // IVF's coarse quantizer (owned here)
  std::unique_ptr<faiss::Index> index;
};

namespace {

using FaissIdx = faiss::Index::idx_t;

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
      out->faiss_->index = std::make_unique<faiss::IndexFlatIP>(d);
      out->faiss_->index->add(n, out->vectors_.data());
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
      const int64_t nlist =
          options.ivf_nlist > 0
              ? options.ivf_nlist
              : std::max<int64_t>(1, static_cast<int64_t>(4 * std::sqrt(static_cast<double>(n))));
      out->nlist_ = nlist;
      out->faiss_->quantizer = std::make_unique<faiss::IndexFlatL2>(d + 1);
      auto ivf = std::make_unique<faiss::IndexIVFFlat>(out->faiss_->quantizer.get(), d + 1,
                                                       static_cast<size_t>(nlist));
      // k-means on a sample of at most 64 rows per cell (Faiss's own cap is 256).
      const int64_t sample = std::min<int64_t>(n, 64 * nlist);
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
  std::vector<float> distances(static_cast<size_t>(k));
  std::vector<FaissIdx> labels(static_cast<size_t>(k), -1);
  try {
    if (kind_ == VectorIndexKind::kExact) {
      faiss_->index->search(1, query, k, distances.data(), labels.data());
    } else if (kind_ == VectorIndexKind::kHnsw) {
      faiss::SearchParametersHNSW params;
      params.efSearch = static_cast<int>(std::max<int64_t>(options_.hnsw_ef_search, k + 16));
      faiss_->index->search(1, query, k, distances.data(), labels.data(), &params);
    } else {
      std::vector<float> q(query, query + d);
      q.push_back(0.0f);  // the query side of the MIPS-to-NN reduction
      faiss::SearchParametersIVF params;
      // Scan at least ivf_scan_factor·k rows: a large k (an audience) needs more cells.
      const double cell = static_cast<double>(size()) / static_cast<double>(nlist_);
      params.nprobe = static_cast<size_t>(std::min<double>(
          static_cast<double>(nlist_),
          std::max<double>(options_.ivf_nprobe,
                           std::ceil(options_.ivf_scan_factor * static_cast<double>(k) / cell))));
      faiss_->index->search(1, q.data(), k, distances.data(), labels.data(), &params);
    }
  } catch (const std::exception& e) {
    return Status::Internal(std::string("faiss: ") + e.what());
  }
  const Eigen::Map<const Eigen::VectorXf> q(query, d);
  hits.reserve(static_cast<size_t>(k));
  for (FaissIdx label : labels) {
    if (label < 0) continue;
    // Exact re-scoring: the approximate kinds return L2 distances in the augmented space.
    hits.push_back({rows_[static_cast<size_t>(label)], vectors_.row(label).dot(q)});
  }
  std::stable_sort(hits.begin(), hits.end(),
                   [](const Hit& a, const Hit& b) { return a.score > b.score; });
  return hits;
}

}  // namespace affinity

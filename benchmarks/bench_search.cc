// Vector search: each VectorIndex kind on real iALS factors, with recall@10 against exact search
// beside the time per query.
//
//   AFFINITY_BENCH_SNAPSHOTS=DIR build/benchmarks/bench_search
//
// DIR is a snapshot root (e.g. from `affinity train --train gowalla/train.txt.gz --factors 64`).
// Without it, factors are synthetic: 64 clusters of Gaussian vectors with varied norms
// (100k products x 64, 200k customers x 64).
// Items are searched with customer vectors as queries (recommendations, k = 10); customers with
// item vectors (audiences, k = 10 and k = 1000). AFFINITY_BENCH_EF_SEARCH sets HNSW's search
// breadth (default VectorIndexOptions::hnsw_ef_search), AFFINITY_BENCH_NPROBE the IVF cells
// scanned per query (default VectorIndexOptions::ivf_nprobe), AFFINITY_BENCH_NLIST the IVF cell
// count (default VectorIndexOptions::ivf_nlist: automatic).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <unordered_set>

#include "affinity/models/vector_index.h"
#include "affinity/snapshot.h"

namespace affinity {
namespace {

RowMajorMatrixXf Clustered(int64_t n, int d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  RowMajorMatrixXf centres(64, d);
  for (int64_t i = 0; i < centres.size(); ++i) centres.data()[i] = normal(rng);
  RowMajorMatrixXf m(n, d);
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) m(i, j) = centres(i % 64, j) + 0.5f * normal(rng);
    m.row(i) *= (0.5f + static_cast<float>(i % 7) / 4.0f) / std::sqrt(static_cast<float>(d));
  }
  return m;
}

struct Data {
  RowMajorMatrixXf users, items;
  std::string source;
};

const Data& GetData() {
  static const Data data = [] {
    Data d;
    if (const char* root = std::getenv("AFFINITY_BENCH_SNAPSHOTS")) {
      auto s = LoadSnapshot(root);
      if (!s.ok()) {
        std::fprintf(stderr, "bench_search: %s\n", s.status().ToString().c_str());
        std::exit(2);
      }
      d.users = std::move(s->user_factors);
      d.items = std::move(s->item_factors);
      d.source = root;
    } else {
      d.users = Clustered(200'000, 64, 1);
      d.items = Clustered(100'000, 64, 2);
      d.source = "synthetic";
    }
    return d;
  }();
  return data;
}

// Exact top-k rows of `base` for `query`.
std::unordered_set<int64_t> Truth(const RowMajorMatrixXf& base, const Eigen::VectorXf& q, int k) {
  const Eigen::VectorXf scores = base * q;
  std::vector<int64_t> order(static_cast<size_t>(scores.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return scores(a) > scores(b); });
  return {order.begin(), order.begin() + k};
}

// state.range(0): kind; range(1): 0 = items (queries: users), 1 = customers (queries: items);
// range(2): k.
void BM_Search(benchmark::State& state) {
  const Data& data = GetData();
  const auto kind = static_cast<VectorIndexKind>(state.range(0));
  const bool customers = state.range(1) == 1;
  const int k = static_cast<int>(state.range(2));
  const RowMajorMatrixXf& base = customers ? data.users : data.items;
  const RowMajorMatrixXf& queries = customers ? data.items : data.users;
  VectorIndexOptions o;
  o.kind = kind;
  o.recall_queries = 0;
  if (const char* ef = std::getenv("AFFINITY_BENCH_EF_SEARCH")) o.hnsw_ef_search = std::atoi(ef);
  if (const char* nprobe = std::getenv("AFFINITY_BENCH_NPROBE")) o.ivf_nprobe = std::atoi(nprobe);
  if (const char* nlist = std::getenv("AFFINITY_BENCH_NLIST")) o.ivf_nlist = std::atoi(nlist);
  auto index = VectorIndex::Build(base, o);
  if (!index.ok()) {
    state.SkipWithError(index.status().ToString().c_str());
    return;
  }
  // Non-zero query rows, in a fixed random order.
  std::vector<Eigen::Index> rows;
  for (Eigen::Index r = 0; r < queries.rows(); ++r) {
    if (queries.row(r).squaredNorm() > 0) rows.push_back(r);
  }
  std::shuffle(rows.begin(), rows.end(), std::mt19937_64(3));
  size_t next = 0;
  for (auto _ : state) {
    const Eigen::VectorXf q = queries.row(rows[next++ % rows.size()]).transpose();
    auto hits = (*index)->Search(q.data(), k);
    benchmark::DoNotOptimize(hits);
  }
  // Recall@k over 200 queries (outside the timed loop).
  int64_t found = 0, wanted = 0;
  for (size_t i = 0; i < std::min<size_t>(200, rows.size()); ++i) {
    const Eigen::VectorXf q = queries.row(rows[i]).transpose();
    const auto truth = Truth(base, q, k);
    auto hits = (*index)->Search(q.data(), k);
    for (const auto& h : *hits) found += truth.count(h.row);
    wanted += k;
  }
  state.counters["recall"] = static_cast<double>(found) / static_cast<double>(wanted);
  state.counters["build_s"] = (*index)->build_seconds();
  state.counters["size"] = static_cast<double>((*index)->size());
  state.SetLabel(std::string(VectorIndexKindName(kind)) + (customers ? " customers" : " items") +
                 " k=" + std::to_string(k) + " (" + data.source + ")");
}

void Args(benchmark::internal::Benchmark* b) {
  for (auto kind : {VectorIndexKind::kExact, VectorIndexKind::kHnsw, VectorIndexKind::kIvf}) {
    b->Args({static_cast<int64_t>(kind), 0, 10});
  }
  for (auto kind : {VectorIndexKind::kExact, VectorIndexKind::kHnsw, VectorIndexKind::kIvf}) {
    b->Args({static_cast<int64_t>(kind), 1, 10});
    b->Args({static_cast<int64_t>(kind), 1, 1000});
  }
}
BENCHMARK(BM_Search)->Apply(Args)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace affinity

BENCHMARK_MAIN();

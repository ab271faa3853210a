// iALS speed: one epoch on a synthetic matrix shaped like MovieLens-20M (138,493 users x 20,720
// items, 10M non-zeros, power-law item popularity), at 64 and 128 factors; Eigen's dense GEMM in
// the same run, so the epoch's achieved GFLOP/s is reported as a fraction of what the machine's
// matrix multiply reaches; and the latency of one user fold-in (what the server does per
// purchase).
//
//   build/benchmarks/bench_als --benchmark_repetitions=3 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <unordered_set>

#include "affinity/models/ials.h"

namespace affinity {
namespace {

constexpr int64_t kUsers = 138493, kItems = 20720, kTargetNnz = 10000000;

// Users' activity ~ log-normal, items ~ Zipf(1.0) by popularity rank, duplicates merged.
const CsrMatrix& Ml20mShaped() {
  static const CsrMatrix* m = [] {
    std::mt19937_64 rng(7);
    std::vector<double> cdf(kItems);
    double total = 0;
    for (int64_t i = 0; i < kItems; ++i) cdf[i] = total += 1.0 / static_cast<double>(i + 1);
    for (double& c : cdf) c /= total;
    std::lognormal_distribution<double> activity(3.6, 1.0);
    std::vector<double> counts(kUsers);
    double sum = 0;
    for (auto& c : counts) sum += c = activity(rng);
    std::uniform_real_distribution<double> uniform(0, 1);
    CsrBuilder builder(kItems);
    std::vector<int32_t> row;
    std::unordered_set<int32_t> seen;
    for (int64_t u = 0; u < kUsers; ++u) {
      const auto n = std::clamp<int64_t>(
          static_cast<int64_t>(counts[u] / sum * static_cast<double>(kTargetNnz)), 5, kItems / 2);
      // n distinct items, drawn by popularity.
      row.clear();
      seen.clear();
      while (static_cast<int64_t>(row.size()) < n) {
        auto i = static_cast<int32_t>(std::lower_bound(cdf.begin(), cdf.end(), uniform(rng)) -
                                      cdf.begin());
        if (seen.insert(i).second) row.push_back(i);
      }
      for (int32_t i : row) (void)builder.Add(u, i, 1.0f);
    }
    return new CsrMatrix(std::move(builder.Finish(kUsers).value()));
  }();
  return *m;
}

void BM_Als_Epoch(benchmark::State& state) {
  const CsrMatrix& m = Ml20mShaped();
  IalsOptions o;
  o.factors = static_cast<int>(state.range(0));
  o.iterations = 1;
  o.num_threads = 2;
  o.compute_loss = false;
  o.unobserved_weight = 0.02;
  o.regularization = 0.003;
  double flops = 0;
  for (auto _ : state) {
    IalsModel model(o);
    if (!model.Fit(m).ok()) state.SkipWithError("fit failed");
    flops = model.last_epoch_flops();
  }
  state.counters["nnz"] = static_cast<double>(m.nnz());
  state.counters["GFLOP_per_epoch"] = flops / 1e9;
  state.counters["GFLOPs"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
}
// One epoch includes the random initialization and transposition (< 5% of it at 64 factors).
BENCHMARK(BM_Als_Epoch)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Eigen_Gemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Eigen::setNbThreads(2);
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(
      2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Eigen_Gemm)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Als_FoldIn(benchmark::State& state) {
  static IalsModel* model = [] {
    IalsOptions o;
    o.factors = 64;
    o.iterations = 2;
    o.num_threads = 2;
    o.compute_loss = false;
    auto* m = new IalsModel(o);
    (void)m->Fit(Ml20mShaped());
    return m;
  }();
  const CsrMatrix& m = Ml20mShaped();
  const int64_t user = 12345;
  std::vector<int32_t> items(m.indices.begin() + m.RowBegin(user),
                             m.indices.begin() + m.RowEnd(user));
  std::vector<float> weights(items.size(), 1.0f);
  for (auto _ : state) {
    auto w = model->FoldInUser(items, weights);
    benchmark::DoNotOptimize(w);
  }
  state.counters["history"] = static_cast<double>(items.size());
}
BENCHMARK(BM_Als_FoldIn)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace affinity

BENCHMARK_MAIN();

// The spread of an audience's cost over products: bench_serving gives the mean time of
// GET /v1/products/{id}/audience without HTTP; this gives its percentiles and the candidates
// scored, over random products of the synthetic load shop (the engine call and the JSON
// document), from THREADS threads calling at once (the server's audience slots: calls that run
// together compete for the caches and the memory bus, which one thread alone does not show).
//
//   build/benchmarks/audience_latency [SHOP_DIR=/tmp/affinity-load-am] [REQUESTS=3000]
//                                     [LIMIT=1000] [THREADS=1]
//
// The shop is made by make_serving_shop (with its audience model: last argument 1). One
// unrecorded pass over REQUESTS random products fills the caches, then a second, recorded pass
// over other random products (REQUESTS per thread) prints the mean, p50 / p90 / p99 / max in µs,
// the answers per second over all threads, the candidates' median and p99 and the answer's mean
// size. Opening the shop takes ~30 s. Exit code 2 on bad arguments or a shop that does not
// open.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "affinity/serving.h"
#include "affinity/store.h"

namespace affinity {
namespace {

int Run(const std::string& dir, int requests, int limit, int threads) {
  StoreOptions store_options;
  store_options.read_only = true;
  auto store = Store::Open(dir + "/db", store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "audience_latency: %s\n", store.status().ToString().c_str());
    return 2;
  }
  auto engine = ServingEngine::Open(store->get(), dir + "/snapshots", ServingOptions{});
  if (!engine.ok()) {
    std::fprintf(stderr, "audience_latency: %s\n", engine.status().ToString().c_str());
    return 2;
  }
  const int64_t products = (*store)->product_id_limit();
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<double> micros;
    std::vector<int64_t> candidates;
    size_t bytes = 0;
    std::mutex mu;  // guards the three above and `failed`
    bool failed = false;
    // One thread's calls: REQUESTS random products (its own seed), recorded together at the end.
    auto calls = [&](int thread) {
      std::mt19937_64 rng(static_cast<uint64_t>(7 + 1000 * pass + thread));
      std::uniform_int_distribution<int64_t> product(0, products - 1);
      std::vector<double> mine;
      std::vector<int64_t> mine_candidates;
      size_t mine_bytes = 0;
      for (int i = 0; i < requests; ++i) {
        AudienceRequest request;
        request.limit = limit;
        request.product = "p" + std::to_string(product(rng));
        const auto start = std::chrono::steady_clock::now();
        auto result = (*engine)->Audience(request);
        if (!result.ok()) {
          std::lock_guard lock(mu);
          std::fprintf(stderr, "audience_latency: %s: %s\n", request.product.c_str(),
                       result.status().ToString().c_str());
          failed = true;
          return;
        }
        const std::string json = AudienceResultJsonText(*result, &request.product);
        mine.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count());
        mine_candidates.push_back(result->candidates);
        mine_bytes += json.size();
      }
      std::lock_guard lock(mu);
      micros.insert(micros.end(), mine.begin(), mine.end());
      candidates.insert(candidates.end(), mine_candidates.begin(), mine_candidates.end());
      bytes += mine_bytes;
    };
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(calls, t);
    for (auto& t : pool) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (failed) return 1;
    if (pass == 0) continue;  // warm-up
    const double mean =
        std::accumulate(micros.begin(), micros.end(), 0.0) / static_cast<double>(micros.size());
    std::sort(micros.begin(), micros.end());
    std::sort(candidates.begin(), candidates.end());
    auto at = [](const auto& v, double q) { return v[static_cast<size_t>(q * (v.size() - 1))]; };
    std::printf(
        "limit %d, %d threads x %d products: mean %.0f p50 %.0f p90 %.0f p99 %.0f max %.0f us; "
        "%.0f answers/s; candidates median %lld p99 %lld; %.0f KB per answer\n",
        limit, threads, requests, mean, at(micros, 0.5), at(micros, 0.9), at(micros, 0.99),
        micros.back(), static_cast<double>(micros.size()) / seconds,
        static_cast<long long>(at(candidates, 0.5)), static_cast<long long>(at(candidates, 0.99)),
        static_cast<double>(bytes) / 1024 / static_cast<double>(micros.size()));
  }
  return 0;
}

}  // namespace
}  // namespace affinity

int main(int argc, char** argv) {
  if (argc > 5 || (argc > 1 && std::string(argv[1]).starts_with("-"))) {
    std::fprintf(stderr, "usage: audience_latency [SHOP_DIR] [REQUESTS] [LIMIT] [THREADS]\n");
    return 2;
  }
  const std::string dir = argc > 1 ? argv[1] : "/tmp/affinity-load-am";
  const int requests = argc > 2 ? std::atoi(argv[2]) : 3000;
  const int limit = argc > 3 ? std::atoi(argv[3]) : 1000;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  if (requests < 1 || limit < 1 || threads < 1) {
    std::fprintf(stderr,
                 "audience_latency: REQUESTS, LIMIT and THREADS must be positive integers\n");
    return 2;
  }
  return affinity::Run(dir, requests, limit, threads);
}

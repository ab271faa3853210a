// The spread of an audience's cost over products: bench_serving gives the mean time of
// GET /v1/products/{id}/audience without HTTP; this gives its percentiles and the candidates
// scored, over random products of the synthetic load shop (the engine call and the JSON
// document, one thread).
//
//   build/benchmarks/audience_latency [SHOP_DIR=/tmp/affinity-load-am] [REQUESTS=3000]
//                                     [LIMIT=1000]
//
// The shop is made by make_serving_shop (with its audience model: last argument 1). One
// unrecorded pass over REQUESTS random products fills the caches, then a second, recorded pass
// over other random products prints p50 / p90 / p99 / max in µs, the candidates' median and p99
// and the answer's mean size. Opening the shop takes ~30 s. Exit code 2 on bad arguments or a shop
// that does not open.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "affinity/serving.h"
#include "affinity/store.h"

namespace affinity {
namespace {

int Run(const std::string& dir, int requests, int limit) {
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
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> product(0, (*store)->product_id_limit() - 1);
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<double> micros;
    std::vector<int64_t> candidates;
    size_t bytes = 0;
    for (int i = 0; i < requests; ++i) {
      AudienceRequest request;
      request.limit = limit;
      request.product = "p" + std::to_string(product(rng));
      const auto start = std::chrono::steady_clock::now();
      auto result = (*engine)->Audience(request);
      if (!result.ok()) {
        std::fprintf(stderr, "audience_latency: %s: %s\n", request.product.c_str(),
                     result.status().ToString().c_str());
        return 1;
      }
      const std::string json = AudienceResultJsonText(*result, &request.product);
      micros.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
              .count());
      candidates.push_back(result->candidates);
      bytes += json.size();
    }
    if (pass == 0) continue;  // warm-up
    std::sort(micros.begin(), micros.end());
    std::sort(candidates.begin(), candidates.end());
    auto at = [](const auto& v, double q) { return v[static_cast<size_t>(q * (v.size() - 1))]; };
    std::printf(
        "limit %d, %d products: p50 %.0f p90 %.0f p99 %.0f max %.0f us; candidates "
        "median %lld p99 %lld; %.0f KB per answer\n",
        limit, requests, at(micros, 0.5), at(micros, 0.9), at(micros, 0.99), micros.back(),
        static_cast<long long>(at(candidates, 0.5)), static_cast<long long>(at(candidates, 0.99)),
        static_cast<double>(bytes) / 1024 / static_cast<double>(requests));
  }
  return 0;
}

}  // namespace
}  // namespace affinity

int main(int argc, char** argv) {
  if (argc > 4 || (argc > 1 && std::string(argv[1]).starts_with("-"))) {
    std::fprintf(stderr, "usage: audience_latency [SHOP_DIR] [REQUESTS] [LIMIT]\n");
    return 2;
  }
  const std::string dir = argc > 1 ? argv[1] : "/tmp/affinity-load-am";
  const int requests = argc > 2 ? std::atoi(argv[2]) : 3000;
  const int limit = argc > 3 ? std::atoi(argv[3]) : 1000;
  if (requests < 1 || limit < 1) {
    std::fprintf(stderr, "audience_latency: REQUESTS and LIMIT must be positive integers\n");
    return 2;
  }
  return affinity::Run(dir, requests, limit);
}
